//! The extension's one error type: what can stop it from activating. Failures of a tool
//! call are `ToolError`s the model reads, not this.

/// Why the extension could not activate. Handled by the host, which disables the
/// extension and reports the message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config field has an unusable value; the user fixes `dispatch.toml`.
    #[error("invalid config `{field}`: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    /// The HTTP client could not be built (TLS setup); a broken installation.
    #[error("{0}")]
    Client(String),
}

pub type Result<T> = std::result::Result<T, Error>;
