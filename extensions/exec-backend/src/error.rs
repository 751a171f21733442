//! The extension's own failures: bad configuration, found at activation.

/// Raised by `activate`; a core extension failing stops boot, so the operator fixes the
/// config (`[extensions.exec-backend]` in `dispatch.toml`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An `allow` entry is neither absolute nor `~`-based.
    #[error("exec-backend: allowance `{entry}` ({scope}) must be absolute or start with `~/`")]
    RelativeAllowance { entry: String, scope: String },
    /// An `allow` entry starts with `~` but no home directory is known.
    #[error("exec-backend: allowance `{entry}` ({scope}) uses `~`, but HOME is not set")]
    NoHome { entry: String, scope: String },
}

pub type Result<T> = std::result::Result<T, Error>;
