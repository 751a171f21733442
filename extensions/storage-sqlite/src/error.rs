use std::path::PathBuf;

use dispatch_kernel::abi::StorageError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything this crate can fail with. Crosses the service boundary as [`StorageError`]
/// (`From<Error>`); the opening variants reach the host as an activation failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `[extensions.storage-sqlite]` table holds an unusable value. The operator fixes it.
    #[error("invalid storage config: {0}")]
    Config(String),

    /// The database's directory could not be created. The operator fixes permissions or path.
    #[error("cannot create the database directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },

    /// The database file could not be opened or set up (permissions, not a database, no WAL).
    #[error("cannot open the database {}: {message}", path.display())]
    Open { path: PathBuf, message: String },

    /// The file was written by a newer build whose storage schema this one does not know.
    /// The operator runs the newer build or restores a backup.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },

    /// The writer thread could not be started.
    #[error("cannot start the storage writer thread: {0}")]
    Thread(std::io::Error),

    /// A key, log or scope name the backend refuses. The calling extension handles it.
    #[error("{0}")]
    Invalid(String),

    /// A scope migration failed or is inconsistent with what the database recorded; nothing
    /// of it was committed. The extension owning the scope fails to activate.
    #[error("migration {scope}#{version} failed: {message}")]
    Migration {
        scope: String,
        version: u32,
        message: String,
    },

    /// The storage was closed (deactivated or dropped) or its writer is gone.
    #[error("storage is closed")]
    Closed,

    /// SQLite itself failed (I/O, full disk, corruption, busy beyond the timeout); nothing of
    /// the failing write was committed. The calling extension reports it.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// A read task died before answering (a panic in the read path: a bug).
    #[error("storage reader failed: {0}")]
    Reader(String),
}

impl From<Error> for StorageError {
    fn from(err: Error) -> StorageError {
        match err {
            Error::Invalid(message) => StorageError::Invalid(message),
            Error::Migration {
                scope,
                version,
                message,
            } => StorageError::Migration {
                scope,
                version,
                message,
            },
            Error::Closed => StorageError::Closed,
            Error::Config(_)
            | Error::CreateDir { .. }
            | Error::Open { .. }
            | Error::SchemaTooNew { .. }
            | Error::Thread(_)
            | Error::Sqlite(_)
            | Error::Reader(_) => StorageError::Backend(err.to_string()),
        }
    }
}
