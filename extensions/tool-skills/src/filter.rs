//! The tools filter: once per turn, lists the skills of the turn's cwd and home and puts a
//! `load_skill` whose description and `name` enum list them in place of the one in the tool
//! set, or removes `load_skill` when there are none (or they cannot be listed in time).

use std::sync::Arc;

use async_trait::async_trait;
use dispatch_kernel::abi::{Tool, ToolsFilterCtx};
use dispatch_kernel::host::Filter;

use crate::folders::Folders;
use crate::skill::{NAME, Skill};
use crate::tool::LoadSkillTool;

/// Where the filter runs in the `TOOLS_FILTER` chain (lower runs first).
pub const FILTER_PRIORITY: i32 = 100;

pub struct SkillsFilter {
    folders: Arc<Folders>,
}

impl SkillsFilter {
    pub fn new(folders: Arc<Folders>) -> SkillsFilter {
        SkillsFilter { folders }
    }

    async fn skills(&self, ctx: &ToolsFilterCtx) -> Result<Vec<Skill>, String> {
        let computer = ctx.computer_id.as_deref();
        let backend = self
            .folders
            .backend(computer)
            .map_err(|err| err.to_string())?;
        let dirs = self.folders.dirs(&*backend, computer, ctx.cwd.as_deref());
        Ok(self.folders.list(&*backend, &dirs).await)
    }
}

#[async_trait]
impl Filter<Vec<Arc<dyn Tool>>, ToolsFilterCtx> for SkillsFilter {
    async fn apply(
        &self,
        mut tools: Vec<Arc<dyn Tool>>,
        ctx: &ToolsFilterCtx,
    ) -> Vec<Arc<dyn Tool>> {
        let Some(at) = tools.iter().position(|tool| tool.spec().name == NAME) else {
            return tools;
        };
        let timeout = self.folders.config().list_timeout();
        let skills = match tokio::time::timeout(timeout, self.skills(ctx)).await {
            Ok(Ok(skills)) => skills,
            Ok(Err(err)) => {
                tracing::warn!(
                    conversation_id = %ctx.conversation_id,
                    error = %err,
                    "Cannot list skills; the turn runs without load_skill"
                );
                Vec::new()
            }
            Err(_) => {
                tracing::warn!(
                    conversation_id = %ctx.conversation_id,
                    timeout_ms = self.folders.config().list_timeout_ms,
                    "Listing skills timed out; the turn runs without load_skill"
                );
                Vec::new()
            }
        };
        if skills.is_empty() {
            tools.remove(at);
        } else {
            tools[at] = Arc::new(LoadSkillTool::listing(self.folders.clone(), &skills));
        }
        tools
    }
}
