//! The storage service: a narrow, backend-neutral shape (scoped key-value pairs plus
//! append-only logs with seqs assigned at commit, and per-scope migrations), so extensions
//! never see SQL or each other's data, and a PostgreSQL backend can be added later.

use std::ops::RangeInclusive;
use std::sync::Arc;

use async_trait::async_trait;

use crate::host::ServiceKey;

/// The storage service, provided by `storage-sqlite`.
pub const STORAGE: ServiceKey<dyn Storage> = ServiceKey::new("kernel.storage");

/// Failures of the storage backend. Handled by the calling extension (usually mapped to a
/// 5xx-free error of its own: a failed write means the data was not committed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// A key, log name or scope name the backend refuses (empty, too long, control bytes).
    #[error("invalid storage input: {0}")]
    Invalid(String),
    /// A migration failed; nothing of it was committed.
    #[error("migration {scope}#{version} failed: {message}")]
    Migration {
        scope: String,
        version: u32,
        message: String,
    },
    /// The backend is shutting down or its writer is gone.
    #[error("storage is closed")]
    Closed,
    /// The database itself failed (I/O, corruption, full disk); the write did not commit.
    #[error("storage failure: {0}")]
    Backend(String),
}

/// Longest accepted scope, key or log name, in bytes.
pub const MAX_STORAGE_NAME_BYTES: usize = 512;

/// The naming rule every backend enforces: 1 to [`MAX_STORAGE_NAME_BYTES`] bytes without
/// control characters (NUL included). `kind` names what is checked (`scope`, `key`, `log`);
/// the error is the message of a `StorageError::Invalid`.
pub fn check_storage_name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{kind} name is empty"));
    }
    if name.len() > MAX_STORAGE_NAME_BYTES {
        return Err(format!(
            "{kind} name is {} bytes, the limit is {MAX_STORAGE_NAME_BYTES}",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{kind} name {name:?} contains a control character"));
    }
    Ok(())
}

/// A versioned, idempotent change of one scope's data, applied once, in version order, each
/// migration in its own transaction together with its record, before the scope is handed out.
#[derive(Clone, Copy)]
pub struct Migration {
    /// 1, 2, 3 …; the scope's current version is the highest applied.
    pub version: u32,
    pub description: &'static str,
    pub apply: fn(&mut dyn MigrationTx) -> Result<(), StorageError>,
}

impl std::fmt::Debug for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Migration({} {})", self.version, self.description)
    }
}

/// What a migration may do to its own scope, synchronously, inside its transaction.
pub trait MigrationTx {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;
    fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StorageError>;
    fn delete(&mut self, key: &str) -> Result<(), StorageError>;
    /// Keys and values whose key starts with `prefix`, sorted by key.
    fn list(&mut self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError>;
    /// Names of the scope's logs starting with `prefix`, sorted.
    fn logs(&mut self, prefix: &str) -> Result<Vec<String>, StorageError>;
    /// Every entry of a log, ascending.
    fn read_log(&mut self, log: &str) -> Result<Vec<LogEntry>, StorageError>;
    /// Replaces the data of one existing entry (its seq is kept).
    fn rewrite_entry(&mut self, log: &str, seq: u64, data: &[u8]) -> Result<(), StorageError>;
}

/// One entry of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// 1-based within its log, monotonic, assigned inside the committing transaction.
    pub seq: u64,
    pub data: Vec<u8>,
}

/// Which entries to read: `after < seq < before`, the newest `limit` of them, ascending.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogRange {
    pub after: Option<u64>,
    pub before: Option<u64>,
    pub limit: Option<usize>,
}

/// A read of a log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogPage {
    /// Ascending by seq.
    pub entries: Vec<LogEntry>,
    /// The log's last assigned seq (0 for a log never appended to).
    pub last_seq: u64,
    /// Whether entries in the range exist below the first one returned (cut by `limit`).
    pub has_more: bool,
}

/// One write of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    Put {
        key: String,
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    /// Appends entries to a log, assigning the next seqs.
    Append {
        log: String,
        entries: Vec<Vec<u8>>,
    },
    /// Removes a log's entries; its seq counter is kept, so later appends continue after the
    /// last seq ever assigned (readers syncing by seq never see a seq reused).
    ClearLog {
        log: String,
    },
}

/// Writes committed together in one transaction, or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub ops: Vec<WriteOp>,
}

impl WriteBatch {
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    pub fn put(mut self, key: impl Into<String>, value: Vec<u8>) -> WriteBatch {
        self.ops.push(WriteOp::Put {
            key: key.into(),
            value,
        });
        self
    }

    pub fn delete(mut self, key: impl Into<String>) -> WriteBatch {
        self.ops.push(WriteOp::Delete { key: key.into() });
        self
    }

    pub fn append(mut self, log: impl Into<String>, entries: Vec<Vec<u8>>) -> WriteBatch {
        self.ops.push(WriteOp::Append {
            log: log.into(),
            entries,
        });
        self
    }

    pub fn clear_log(mut self, log: impl Into<String>) -> WriteBatch {
        self.ops.push(WriteOp::ClearLog { log: log.into() });
        self
    }
}

/// What a committed batch assigned: for each `Append` op, in op order, its log and the seqs
/// of its entries (empty range for an empty append).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReceipt {
    pub appended: Vec<(String, Option<RangeInclusive<u64>>)>,
}

/// One extension's private key space and logs. Scope names, keys and log names are 1 to
/// 512 bytes without control characters (else `StorageError::Invalid`).
///
/// Writes are serialized by the backend (one writer), so two batches never interleave and
/// seqs of one log are gap-free. A write's future hands the batch to the writer on its first
/// poll and resolves once it is committed.
#[async_trait]
pub trait Scope: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Keys and values whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError>;
    async fn read_log(&self, log: &str, range: LogRange) -> Result<LogPage, StorageError>;
    async fn last_seq(&self, log: &str) -> Result<u64, StorageError>;
    async fn write(&self, batch: WriteBatch) -> Result<WriteReceipt, StorageError>;
}

/// The storage backend.
#[async_trait]
pub trait Storage: Send + Sync {
    /// The scope `name` (by convention the extension id), after applying every migration of
    /// `migrations` newer than the scope's recorded version. Idempotent.
    async fn scope(
        &self,
        name: &str,
        migrations: &[Migration],
    ) -> Result<Arc<dyn Scope>, StorageError>;
}
