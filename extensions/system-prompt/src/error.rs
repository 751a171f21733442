//! The crate's one error type. It crosses the service boundary as the ABI's
//! [`SystemPromptError`] ([`Error::into_service`]); at activation it reaches the host as a
//! `BoxError` (the extension fails to activate).

use std::path::PathBuf;

use dispatch_kernel::abi::{StorageError, SystemPromptError};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The template does not parse. The client that sent it fixes it (a 400 naming
    /// `template`); for `template_file`, the operator.
    #[error("line {line}: {message}")]
    Template { line: usize, message: String },

    /// The template is larger than [`crate::MAX_TEMPLATE_BYTES`]. Handled like `Template`.
    #[error("the template is {bytes} bytes; the limit is {limit}")]
    TooLarge { bytes: usize, limit: usize },

    /// The configured `template_file` cannot be read or does not parse. The operator fixes
    /// the file or the config; activation fails.
    #[error("template file {}: {message}", path.display())]
    TemplateFile { path: PathBuf, message: String },

    /// The `[extensions.system-prompt]` table holds an unusable value. The operator fixes it;
    /// activation fails.
    #[error("invalid system-prompt config: {0}")]
    Config(String),

    /// The storage service failed; nothing was committed. A 500 for a client, an activation
    /// failure at boot.
    #[error("storage failure: {0}")]
    Storage(String),
}

impl Error {
    /// The error as the service trait reports it.
    pub fn into_service(self) -> SystemPromptError {
        match self {
            Error::Template { .. }
            | Error::TooLarge { .. }
            | Error::TemplateFile { .. }
            | Error::Config(_) => SystemPromptError::InvalidTemplate(self.to_string()),
            Error::Storage(message) => SystemPromptError::Storage(message),
        }
    }
}

impl From<StorageError> for Error {
    fn from(err: StorageError) -> Error {
        tracing::error!(error = %err, "Storage failed");
        Error::Storage(err.to_string())
    }
}
