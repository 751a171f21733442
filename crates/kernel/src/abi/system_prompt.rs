//! The system-prompt service: a conversation's system prompt, rendered from a template into
//! ordered sections and reused byte for byte turn over turn. Provided by `system-prompt`;
//! used by the session orchestrator (each turn) and transports (`/system-prompt`).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use dispatch_wire::{Id, SystemPromptVariable, SystemSectionRecord};

use crate::abi::SystemSection;
use crate::host::ServiceKey;

pub const SYSTEM_PROMPT: ServiceKey<dyn SystemPromptService> = ServiceKey::new("system-prompt");

/// What a prompt is built for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptContext {
    pub conversation_id: Id,
    /// The turn's effective cwd.
    pub cwd: PathBuf,
    /// The model id as selected, e.g. `claude-sonnet-4-5`.
    pub model: String,
    /// The provider instance serving it.
    pub provider: String,
    pub workspace_id: String,
}

/// A conversation's system prompt: sections in stable → project → semi-stable → volatile
/// order, and a record (name, tier, size, hash) of each.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltPrompt {
    pub sections: Arc<[SystemSection]>,
    pub records: Vec<SystemSectionRecord>,
    /// The cwd it was built for.
    pub cwd: PathBuf,
    /// True when this call rendered it (first turn, or the cwd changed); false when the
    /// stored prompt was reused unchanged.
    pub rebuilt: bool,
}

/// The template in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptTemplate {
    pub template: String,
    pub is_default: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SystemPromptError {
    /// The template does not parse (unbalanced `[if]`, unknown variable, ...). A 400 naming
    /// `template`, with the line.
    #[error("invalid template: {0}")]
    InvalidTemplate(String),
    /// Storage failed. A 500.
    #[error("storage failure: {0}")]
    Storage(String),
}

#[async_trait]
pub trait SystemPromptService: Send + Sync {
    /// The conversation's prompt for a turn: the stored one when it was built for the same
    /// cwd (byte-identical, so the provider's prompt cache holds), else rendered from the
    /// current template and stored. Rendering never fails on missing files or a missing
    /// `git`: such variables render empty.
    async fn prompt(&self, ctx: &PromptContext) -> Result<BuiltPrompt, SystemPromptError>;

    /// The prompt last built for the conversation, if any, without building one.
    async fn stored(&self, conversation_id: &str)
    -> Result<Option<BuiltPrompt>, SystemPromptError>;

    /// Forgets the conversation's stored prompt so the next turn renders it afresh (after
    /// compaction).
    async fn invalidate(&self, conversation_id: &str) -> Result<(), SystemPromptError>;

    async fn template(&self) -> Result<PromptTemplate, SystemPromptError>;

    /// Checks and stores a new template; `None` restores the built-in default. Existing
    /// conversations keep their stored prompt until their cwd changes.
    async fn set_template(
        &self,
        template: Option<&str>,
    ) -> Result<PromptTemplate, SystemPromptError>;

    /// Every variable a template may use.
    fn variables(&self) -> Vec<SystemPromptVariable>;
}
