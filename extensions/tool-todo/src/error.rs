//! The crate's one error type.

use dispatch_kernel::abi::StorageError;

/// What can go wrong in `tool-todo`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad `[extensions.tool-todo]` table. Handled by the host (activation fails).
    #[error("invalid config: {0}")]
    Config(String),
    /// The storage service failed; nothing was committed. Handled by the caller: the tool
    /// reports it as `Fatal`, the route as a 500.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The route collides with a mounted one. Handled by the host (activation fails).
    #[error("{0}")]
    Mount(String),
    /// A list that cannot be encoded as JSON (never expected). Handled like `Storage`.
    #[error("encoding the todo list: {0}")]
    Encode(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
