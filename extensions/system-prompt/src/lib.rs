//! The `system-prompt` core extension: registers [`SYSTEM_PROMPT`], each conversation's
//! system prompt rendered from a template ([`template`]: `[type:name]` variables,
//! `[if]…[else]…[endif]`, `[section:<tier> <name>]` markers) into sections ordered stable →
//! project → semi-stable → volatile, stored in the storage scope `system-prompt` (layout in
//! [`keys`]) and served byte for byte on every later turn until the conversation's cwd
//! changes or it is invalidated. The template persists in the same scope; the built-in
//! default is [`DEFAULT_TEMPLATE`] unless `template_file` replaces it ([`Config`]).
//!
//! It must never re-render a stored prompt for an unchanged cwd (the provider's prompt cache
//! depends on identical bytes), never fail a render because of the environment (a missing
//! file or `git`, a non-repository, a slow command: the variable renders empty), never
//! accept a template it cannot render (every error is reported with its line when the
//! template is set), never run `git` without a timeout, and never reach storage other than
//! through the `STORAGE` service.
//!
//! Time variables are UTC, from the `clock` service when it runs (else the system clock).
//! Outside the host (tests, embedding), build the service with [`PromptService::open`].

use std::sync::Arc;

use async_trait::async_trait;
use dispatch_kernel::abi::{
    CLOCK, Extension, Manifest, STORAGE, SYSTEM_PROMPT, SystemPromptService,
};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error as KernelError};

mod config;
mod error;
pub mod keys;
mod resolve;
mod service;
pub mod template;
pub mod vars;

pub use config::{Config, MAX_FILE_BYTES_LIMIT};
pub use error::{Error, Result};
pub use resolve::GIT_STATUS_LINES;
pub use service::{CACHE_ENTRIES, PromptService};
pub use template::{MAX_TEMPLATE_BYTES, Template};

/// The built-in template: a coding-agent persona and rules (`stable`), the cwd, repository
/// root and AGENTS.md (else CLAUDE.md) (`project`), OS, model and git branch
/// (`semi-stable`), the date (`volatile`).
pub const DEFAULT_TEMPLATE: &str = include_str!("default_template.txt");

/// Registers the system-prompt service.
#[derive(Debug, Default)]
pub struct SystemPromptExtension;

#[async_trait]
impl Extension for SystemPromptExtension {
    fn manifest(&self) -> Result<Manifest, KernelError> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let config: Config = host.config()?;
        let storage = host.service(&STORAGE)?;
        // An optional dependency: activated first when present.
        let clock = host.service(&CLOCK).ok();
        let service = PromptService::open(storage, clock.clone(), &config).await?;
        tracing::info!(
            default_template = service.is_default_template(),
            template_file = ?config.template_file,
            clock = if clock.is_some() { "clock service" } else { "system" },
            "System prompt ready"
        );
        let service: Arc<dyn SystemPromptService> = service;
        host.provide(&SYSTEM_PROMPT, service)?;
        Ok(())
    }
}
