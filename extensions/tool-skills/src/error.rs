//! The crate's one error type.

/// What can go wrong in `tool-skills` outside a tool call (calls fail with `ToolError`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad `[extensions.tool-skills]` table. Handled by the host (activation fails).
    #[error("invalid config: {0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
