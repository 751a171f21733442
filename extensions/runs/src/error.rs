//! The one error type of this crate.

/// Failures of the runs extension.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad `[extensions.runs]` table; activation fails (handled by the host).
    #[error("invalid runs config: {0}")]
    Config(String),
    /// The storage backend failed; the caller logs it or answers a 500.
    #[error(transparent)]
    Storage(#[from] dispatch_kernel::abi::StorageError),
    /// A record could not be encoded (never expected; logged by the caller).
    #[error("cannot encode a run record: {0}")]
    Encode(String),
    /// The routes collide with mounted ones; activation fails.
    #[error("cannot mount the runs routes: {0}")]
    Mount(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
