//! The extension's own failures: bad configuration, found at activation.

/// Raised by `activate`; the standard extension is then disabled and reported, and the
/// operator fixes `[extensions.tool-shell]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("tool-shell: {0}")]
    Config(String),
}

pub type Result<T> = std::result::Result<T, Error>;
