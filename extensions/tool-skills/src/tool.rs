//! The `load_skill` tool: reads a skill live (the cwd's folder first, then home's) and
//! returns its body. The same handler serves the spec registered at activation and the
//! per-turn spec the tools filter puts in its place.

use std::sync::Arc;

use async_trait::async_trait;
use dispatch_kernel::abi::{Tool, ToolCtx, ToolError, ToolOutput, ToolSpec};
use dispatch_stdx::or_cancel;
use dispatch_tool_kit::str_arg;
use serde_json::Value;

use crate::folders::Folders;
use crate::skill::{self, Skill};

/// `load_skill`.
pub struct LoadSkillTool {
    spec: ToolSpec,
    folders: Arc<Folders>,
}

impl LoadSkillTool {
    /// The tool registered at activation: any valid name, no listing.
    pub fn base(folders: Arc<Folders>) -> LoadSkillTool {
        LoadSkillTool {
            spec: skill::spec(None),
            folders,
        }
    }

    /// The tool of one turn, listing `skills` (sorted, non-empty).
    pub fn listing(folders: Arc<Folders>, skills: &[Skill]) -> LoadSkillTool {
        LoadSkillTool {
            spec: skill::spec(Some(skills)),
            folders,
        }
    }
}

#[async_trait]
impl Tool for LoadSkillTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, input: Value, ctx: ToolCtx) -> Result<ToolOutput, ToolError> {
        if ctx.cancel.is_cancelled() {
            return Err(ToolError::Aborted);
        }
        let name = str_arg(&input, "name")?;
        let load = async {
            let backend = self.folders.backend(ctx.computer_id.as_deref())?;
            let dirs = self
                .folders
                .dirs(&*backend, ctx.computer_id.as_deref(), ctx.cwd.as_deref());
            self.folders.load(&*backend, &dirs, name).await
        };
        let body = or_cancel(&ctx.cancel, load)
            .await
            .map_err(|_| ToolError::Aborted)??;
        Ok(ToolOutput::text(body))
    }
}
