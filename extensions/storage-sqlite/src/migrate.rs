//! Scope migrations, run on the writer thread: each pending migration in its own transaction
//! together with its row in `scope_migrations`, so a migration is applied exactly once or
//! not at all.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;

use dispatch_kernel::abi::{LogEntry, LogRange, Migration, MigrationTx, StorageError};
use rusqlite::{Connection, TransactionBehavior, params};

use crate::error::{Error, Result};
use crate::sql;

/// Applies the migrations of `migrations` the scope has not recorded, in version order.
///
/// Refused before anything runs: a version listed twice, version 0, and an unrecorded
/// version below the scope's highest recorded one (it can no longer run in order).
/// Recorded versions missing from the list (a newer build wrote the scope) are logged.
pub(crate) fn run(conn: &mut Connection, scope: &str, migrations: &[Migration]) -> Result<()> {
    sql::check_name("scope", scope)?;
    let fail = |version: u32, message: String| Error::Migration {
        scope: scope.to_string(),
        version,
        message,
    };
    let mut list = migrations.to_vec();
    list.sort_by_key(|m| m.version);
    if let Some(pair) = list.windows(2).find(|w| w[0].version == w[1].version) {
        return Err(fail(pair[0].version, "the version is listed twice".into()));
    }
    if list.first().is_some_and(|m| m.version == 0) {
        return Err(fail(0, "versions start at 1".into()));
    }

    let recorded: BTreeSet<u32> = conn
        .prepare_cached("SELECT version FROM scope_migrations WHERE scope = ?1")?
        .query_map(params![scope], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let newest = recorded.last().copied().unwrap_or(0);
    if let Some(m) = list
        .iter()
        .find(|m| m.version < newest && !recorded.contains(&m.version))
    {
        return Err(fail(
            m.version,
            format!(
                "never applied, but the scope is already at version {newest}; \
                 add changes as versions above {newest}"
            ),
        ));
    }
    let unknown: Vec<u32> = recorded
        .iter()
        .copied()
        .filter(|v| !list.iter().any(|m| m.version == *v))
        .collect();
    if !unknown.is_empty() {
        tracing::warn!(scope, versions = ?unknown, "Scope has migrations this build does not know");
    }

    for m in list.iter().filter(|m| !recorded.contains(&m.version)) {
        let fail = |message: String| fail(m.version, message);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|err| fail(err.to_string()))?;
        let applied = std::panic::catch_unwind(AssertUnwindSafe(|| {
            (m.apply)(&mut ScopeTx { conn: &tx, scope })
        }));
        match applied {
            Ok(Ok(())) => {}
            // Dropping `tx` rolls the migration back.
            Ok(Err(err)) => return Err(fail(err.to_string())),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string panic".to_string());
                return Err(fail(format!("panicked: {message}")));
            }
        }
        tx.execute(
            "INSERT INTO scope_migrations (scope, version, description, applied_at)
             VALUES (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
            params![scope, m.version, m.description],
        )
        .map_err(|err| fail(err.to_string()))?;
        tx.commit().map_err(|err| fail(err.to_string()))?;
        tracing::info!(
            scope,
            version = m.version,
            description = m.description,
            "Scope migration applied"
        );
    }
    Ok(())
}

/// A migration's view: its own scope, inside its transaction.
struct ScopeTx<'c> {
    conn: &'c Connection,
    scope: &'c str,
}

impl MigrationTx for ScopeTx<'_> {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(sql::get(self.conn, self.scope, key)?)
    }

    fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        Ok(sql::put(self.conn, self.scope, key, value)?)
    }

    fn delete(&mut self, key: &str) -> Result<(), StorageError> {
        Ok(sql::delete(self.conn, self.scope, key)?)
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        Ok(sql::list(self.conn, self.scope, prefix)?)
    }

    fn logs(&mut self, prefix: &str) -> Result<Vec<String>, StorageError> {
        Ok(sql::logs(self.conn, self.scope, prefix)?)
    }

    fn read_log(&mut self, log: &str) -> Result<Vec<LogEntry>, StorageError> {
        Ok(sql::read_log(self.conn, self.scope, log, LogRange::default())?.entries)
    }

    fn rewrite_entry(&mut self, log: &str, seq: u64, data: &[u8]) -> Result<(), StorageError> {
        Ok(sql::rewrite_entry(self.conn, self.scope, log, seq, data)?)
    }
}
