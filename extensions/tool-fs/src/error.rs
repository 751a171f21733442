//! Failures of the walking tools (`glob`, `grep`) before they become the `ToolError` the
//! model reads. The other tools build `ToolError`s directly.

use dispatch_kernel::abi::ToolError;

pub type Result<T> = std::result::Result<T, ToolFsError>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolFsError {
    /// The call's cancel token fired during the walk. Reported as `Aborted`.
    #[error("cancelled")]
    Cancelled,
    /// A glob or regex the model wrote does not parse. The model fixes it.
    #[error("invalid {kind} `{pattern}`: {message}")]
    Pattern {
        kind: &'static str,
        pattern: String,
        message: String,
    },
    /// The blocking walk task failed (panicked). Logged and reported as fatal.
    #[error("the search task failed: {0}")]
    Task(String),
}

impl From<ToolFsError> for ToolError {
    fn from(err: ToolFsError) -> ToolError {
        match err {
            ToolFsError::Cancelled => ToolError::Aborted,
            ToolFsError::Pattern { .. } => ToolError::Model(err.to_string()),
            ToolFsError::Task(_) => ToolError::Fatal(err.to_string()),
        }
    }
}
