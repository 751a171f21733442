use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[extensions.storage-sqlite]` in `dispatch.toml`; every field has a default.
///
/// ```toml
/// [extensions.storage-sqlite]
/// path = "/var/lib/dispatch/dispatch.db"  # default: <data_dir>/dispatch.db
/// busy_timeout_ms = 5000
/// durability = "normal"                   # or "full"
/// readers = 2
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The database file. Unset: `dispatch.db` in the server's data directory (`./dispatch.db`
    /// when the host has none). A relative path is taken relative to the data directory.
    /// The parent directory is created if missing.
    pub path: Option<PathBuf>,
    /// How long a connection waits for a lock held by another connection or process before
    /// failing with a backend error.
    pub busy_timeout_ms: u64,
    /// What an acknowledged write survives; see [`Durability`].
    pub durability: Durability,
    /// Read-only connections serving reads concurrently with the writer (1..=64).
    pub readers: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            path: None,
            busy_timeout_ms: 5000,
            durability: Durability::Normal,
            readers: 2,
        }
    }
}

impl Config {
    /// Defaults with the database at `path` (tests, benchmarks, embedding).
    pub fn at(path: &Path) -> Config {
        Config {
            path: Some(path.to_path_buf()),
            ..Config::default()
        }
    }

    /// The database file for a server whose data directory is `data_dir` (may be empty).
    pub fn resolve_path(&self, data_dir: &Path) -> PathBuf {
        match &self.path {
            Some(path) => data_dir.join(path),
            None => data_dir.join("dispatch.db"),
        }
    }
}

/// SQLite's `synchronous` setting in WAL mode: when a commit reaches the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `synchronous = NORMAL`: a commit is in the write-ahead log before it is acknowledged,
    /// and the log is synced at checkpoints. Every acknowledged write survives a crash or
    /// kill of the process (kill -9 included); the last ones before a power loss or OS crash
    /// may be lost, but the database is never corrupted. Fast: no fsync per commit.
    #[default]
    Normal,
    /// `synchronous = FULL`: the write-ahead log is synced on every commit, so acknowledged
    /// writes also survive power loss and OS crashes, at the cost of one fsync per write
    /// transaction (the writer groups queued batches into one transaction to amortise it).
    Full,
}

impl Durability {
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        }
    }
}
