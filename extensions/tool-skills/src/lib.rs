//! The `tool-skills` standard extension: skills are Markdown files in `~/.skills` and
//! `<cwd>/.skills` (the cwd's shadow home's by name; line 1 a summary, line 2 `---`, then
//! the body — see [`skill`]). It registers the `load_skill` tool ([`tool`]), which reads a
//! skill live and returns its body, and a `TOOLS_FILTER` filter ([`filter`]) that, once per
//! turn, rewrites `load_skill`'s description and `name` enum to list the skills of that
//! turn's cwd, or removes the tool when there are none. The list lives in the tool
//! definition, not in the system prompt, and is rebuilt per turn only, so it is stable
//! across the steps of a turn and byte-identical while the skills do not change.
//!
//! Every file access goes through the exec backend of the turn's computer ([`folders`]).
//! It must never read outside the two skill folders (a name with `/` or `..` is refused
//! before it becomes a path, and a skill whose real path leaves its canonical folder is
//! neither listed nor loaded), never read more than the head of each file to list it, and
//! never let a slow listing hold a turn (bounded by `list_timeout_ms`).

use std::sync::Arc;

use async_trait::async_trait;
use dispatch_kernel::abi::{Extension, Manifest, TOOLS_FILTER};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error as KernelError};

mod config;
mod error;
pub mod filter;
pub mod folders;
pub mod skill;
pub mod tool;

pub use config::Config;
pub use error::{Error, Result};
pub use filter::{FILTER_PRIORITY, SkillsFilter};
pub use folders::Folders;
pub use tool::LoadSkillTool;

/// Registers `load_skill` and the tools filter that lists the skills per turn.
#[derive(Debug, Default)]
pub struct ToolSkillsExtension;

#[async_trait]
impl Extension for ToolSkillsExtension {
    fn manifest(&self) -> Result<Manifest, KernelError> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let config: Config = host.config()?;
        config.validate()?;
        let home = config.home.clone();
        let folders = Arc::new(Folders::new(host.services(), config));
        host.register_tool(Arc::new(LoadSkillTool::base(folders.clone())))?;
        host.add_filter(
            &TOOLS_FILTER,
            FILTER_PRIORITY,
            Arc::new(SkillsFilter::new(folders)),
        );
        tracing::info!(
            tool = skill::NAME,
            filter_priority = FILTER_PRIORITY,
            home = ?home,
            "Skills tool registered"
        );
        Ok(())
    }
}
