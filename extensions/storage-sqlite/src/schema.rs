//! The storage schema itself (not the scopes' data), versioned with `PRAGMA user_version`.
//!
//! Steps are append-only: a released step is never edited, a change is a new step. Versions 1
//! and 2 were split by concern (key-value pairs first, logs second) so the upgrade path is
//! exercised by the tests from the first release on.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};

/// `(version, what it does, SQL)`, in order; version `n` is at index `n - 1`.
const STEPS: &[(i64, &str, &str)] = &[
    (
        1,
        "scoped key-value pairs and the journal of applied scope migrations",
        "CREATE TABLE kv (
             scope TEXT NOT NULL,
             key   TEXT NOT NULL,
             value BLOB NOT NULL,
             PRIMARY KEY (scope, key)
         ) WITHOUT ROWID;
         CREATE TABLE scope_migrations (
             scope       TEXT NOT NULL,
             version     INTEGER NOT NULL,
             description TEXT NOT NULL,
             applied_at  TEXT NOT NULL,
             PRIMARY KEY (scope, version)
         ) WITHOUT ROWID;",
    ),
    (
        2,
        "append-only logs: one counter row per log (kept when the log is cleared) and entries \
         keyed by (log, seq), so a window of a log is one primary-key range scan",
        "CREATE TABLE logs (
             id       INTEGER PRIMARY KEY,
             scope    TEXT NOT NULL,
             name     TEXT NOT NULL,
             last_seq INTEGER NOT NULL,
             UNIQUE (scope, name)
         );
         CREATE TABLE log_entries (
             log_id INTEGER NOT NULL REFERENCES logs (id),
             seq    INTEGER NOT NULL,
             data   BLOB NOT NULL,
             PRIMARY KEY (log_id, seq)
         ) WITHOUT ROWID;",
    ),
];

/// The storage schema version this build writes.
pub const VERSION: i64 = STEPS.len() as i64;

/// Brings the database to [`VERSION`], each step in its own transaction with its
/// `user_version` bump. Refuses a database written by a newer schema.
pub(crate) fn upgrade(conn: &mut Connection) -> Result<()> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > VERSION {
        return Err(Error::SchemaTooNew {
            found,
            supported: VERSION,
        });
    }
    for &(version, description, sql) in STEPS.iter().filter(|(v, _, _)| *v > found) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have upgraded between our read and the lock.
        let current: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if current >= version {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, description, "Storage schema upgraded");
    }
    Ok(())
}
