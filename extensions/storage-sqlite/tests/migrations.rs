#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Scope migrations (applied once, in order, atomically, across reopen) and upgrades of the
//! storage schema itself, on real database files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dispatch_kernel::abi::{
    LogEntry, LogRange, Migration, MigrationTx, Scope, Storage, StorageError, WriteBatch,
};
use dispatch_storage_sqlite::{Config, Error, SCHEMA_VERSION, SqliteStorage};
use pretty_assertions::assert_eq;
use tempfile::TempDir;

fn db(dir: &TempDir) -> PathBuf {
    dir.path().join("test.db")
}

fn open(path: &Path) -> SqliteStorage {
    SqliteStorage::open(&Config::at(path)).unwrap()
}

/// Counts its runs in the scope itself and records the order it ran in.
fn v1_count(tx: &mut dyn MigrationTx) -> Result<(), StorageError> {
    let runs = tx.get("runs/v1")?.map_or(0, |v| v[0]);
    tx.put("runs/v1", &[runs + 1])?;
    let order = tx.get("order")?.unwrap_or_default();
    tx.put("order", &[order, b"1".to_vec()].concat())
}

fn v2_count(tx: &mut dyn MigrationTx) -> Result<(), StorageError> {
    let runs = tx.get("runs/v2")?.map_or(0, |v| v[0]);
    tx.put("runs/v2", &[runs + 1])?;
    let order = tx.get("order")?.unwrap_or_default();
    tx.put("order", &[order, b"2".to_vec()].concat())
}

const V1: Migration = Migration {
    version: 1,
    description: "count v1",
    apply: v1_count,
};
const V2: Migration = Migration {
    version: 2,
    description: "count v2",
    apply: v2_count,
};

fn migration(
    version: u32,
    apply: fn(&mut dyn MigrationTx) -> Result<(), StorageError>,
) -> Migration {
    Migration {
        version,
        description: "test",
        apply,
    }
}

async fn get(scope: &Arc<dyn Scope>, key: &str) -> Option<Vec<u8>> {
    scope.get(key).await.unwrap()
}

#[tokio::test]
async fn migrations_run_once_in_version_order_also_across_reopen() {
    let dir = TempDir::new().unwrap();
    let storage = open(&db(&dir));
    // Listed out of order on purpose: they run by version.
    let app = storage.scope("app", &[V2, V1]).await.unwrap();
    assert_eq!(get(&app, "order").await, Some(b"12".to_vec()));
    let again = storage.scope("app", &[V1, V2]).await.unwrap();
    assert_eq!(get(&again, "runs/v1").await, Some(vec![1]));
    storage.close().await;

    let reopened = open(&db(&dir));
    let app = reopened.scope("app", &[V1, V2]).await.unwrap();
    assert_eq!(get(&app, "runs/v1").await, Some(vec![1]));
    assert_eq!(get(&app, "runs/v2").await, Some(vec![1]));
    assert_eq!(get(&app, "order").await, Some(b"12".to_vec()));
    // Another scope has its own versions.
    let other = reopened.scope("other", &[V1]).await.unwrap();
    assert_eq!(get(&other, "runs/v1").await, Some(vec![1]));
}

/// Version 2 of a store: values under `item/` become upper case and every entry of every
/// `events/` log gets a `v2:` prefix.
fn v2_upgrade_items(tx: &mut dyn MigrationTx) -> Result<(), StorageError> {
    for (key, value) in tx.list("item/")? {
        tx.put(&key, &value.to_ascii_uppercase())?;
    }
    for log in tx.logs("events/")? {
        for entry in tx.read_log(&log)? {
            tx.rewrite_entry(&log, entry.seq, &[b"v2:".as_slice(), &entry.data].concat())?;
        }
    }
    Ok(())
}

fn noop(_: &mut dyn MigrationTx) -> Result<(), StorageError> {
    Ok(())
}

#[tokio::test]
async fn a_new_migration_applies_to_data_written_under_the_old_version() {
    let dir = TempDir::new().unwrap();
    let old = open(&db(&dir));
    let app = old.scope("app", &[migration(1, noop)]).await.unwrap();
    app.write(
        WriteBatch::new()
            .put("item/a", b"apple".to_vec())
            .put("other", b"kept".to_vec())
            .append("events/x", vec![b"e1".to_vec(), b"e2".to_vec()])
            .append("events/y", vec![b"e3".to_vec()])
            .append("notes", vec![b"n1".to_vec()]),
    )
    .await
    .unwrap();
    old.close().await;

    let new = open(&db(&dir));
    let app = new
        .scope("app", &[migration(1, noop), migration(2, v2_upgrade_items)])
        .await
        .unwrap();
    assert_eq!(get(&app, "item/a").await, Some(b"APPLE".to_vec()));
    assert_eq!(get(&app, "other").await, Some(b"kept".to_vec()));
    let log = |name: &'static str| {
        let app = app.clone();
        async move { app.read_log(name, LogRange::default()).await.unwrap() }
    };
    assert_eq!(
        log("events/x").await.entries,
        vec![
            LogEntry {
                seq: 1,
                data: b"v2:e1".to_vec()
            },
            LogEntry {
                seq: 2,
                data: b"v2:e2".to_vec()
            },
        ]
    );
    assert_eq!(log("events/y").await.entries[0].data, b"v2:e3".to_vec());
    assert_eq!(log("notes").await.entries[0].data, b"n1".to_vec());
    // Seqs continue after a rewrite.
    let receipt = app
        .write(WriteBatch::new().append("events/x", vec![b"e4".to_vec()]))
        .await
        .unwrap();
    assert_eq!(receipt.appended[0].1, Some(3..=3));
}

fn writes_then_fails(tx: &mut dyn MigrationTx) -> Result<(), StorageError> {
    tx.put("half-done", b"x")?;
    tx.put("runs/v1", &[99])?;
    Err(StorageError::Invalid(
        "the data is not what v2 expects".to_string(),
    ))
}

fn writes_then_panics(tx: &mut dyn MigrationTx) -> Result<(), StorageError> {
    tx.put("half-done", b"x")?;
    panic!("bug in a migration");
}

fn rewrites_a_missing_entry(tx: &mut dyn MigrationTx) -> Result<(), StorageError> {
    tx.put("half-done", b"x")?;
    tx.rewrite_entry("log", 7, b"nope")
}

#[tokio::test]
async fn a_failing_migration_rolls_back_and_reports() {
    let dir = TempDir::new().unwrap();
    let storage = open(&db(&dir));
    for failing in [
        writes_then_fails,
        writes_then_panics,
        rewrites_a_missing_entry,
    ] {
        let outcome = storage
            .scope("app", &[V1, migration(2, failing)])
            .await
            .map(|_| ());
        let Err(StorageError::Migration {
            scope,
            version,
            message,
        }) = outcome
        else {
            panic!("expected a migration error, got {outcome:?}");
        };
        assert_eq!((scope.as_str(), version), ("app", 2), "{message}");
        // v1 committed on its own; nothing of v2 did.
        let app = storage.scope("app", &[V1]).await.unwrap();
        assert_eq!(get(&app, "half-done").await, None);
        assert_eq!(get(&app, "runs/v1").await, Some(vec![1]));
    }
    // Fixed, it applies, and the writer survived the panic.
    let app = storage.scope("app", &[V1, V2]).await.unwrap();
    assert_eq!(get(&app, "runs/v2").await, Some(vec![1]));
}

#[tokio::test]
async fn inconsistent_migration_lists_are_refused_before_anything_runs() {
    let dir = TempDir::new().unwrap();
    let storage = open(&db(&dir));
    storage
        .scope("app", &[V1, migration(3, noop)])
        .await
        .unwrap();
    let version_of = |outcome: Result<Arc<dyn Scope>, StorageError>| match outcome {
        Err(StorageError::Migration { version, .. }) => version,
        other => panic!("expected a migration error, got {:?}", other.map(|_| ())),
    };
    // 2 was never applied but the scope is at 3 already: it cannot run in order.
    assert_eq!(
        version_of(storage.scope("app", &[V1, V2, migration(3, noop)]).await),
        2
    );
    assert_eq!(version_of(storage.scope("fresh", &[V1, V1]).await), 1);
    assert_eq!(
        version_of(storage.scope("fresh", &[migration(0, noop)]).await),
        0
    );
    let fresh = storage.scope("fresh", &[V1]).await.unwrap();
    assert_eq!(get(&fresh, "runs/v1").await, Some(vec![1]));
}

/// The storage tables as schema version 1 created them, frozen here: upgrading a real old
/// file is what this test is about, so it must not follow edits of the current schema.
const SCHEMA_V1: &str = "
    CREATE TABLE kv (
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
    ) WITHOUT ROWID;
    PRAGMA user_version = 1;
    INSERT INTO kv VALUES ('app', 'greeting', CAST('hello' AS BLOB));
    INSERT INTO scope_migrations VALUES ('app', 1, 'count v1', '2025-01-01T00:00:00.000Z');
";

fn user_version(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap()
}

#[tokio::test]
async fn a_database_of_an_older_storage_schema_is_upgraded_on_open() {
    let dir = TempDir::new().unwrap();
    let path = db(&dir);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(SCHEMA_V1)
        .unwrap();

    let storage = open(&path);
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    let app = storage.scope("app", &[V1]).await.unwrap();
    assert_eq!(get(&app, "greeting").await, Some(b"hello".to_vec()));
    assert_eq!(
        get(&app, "runs/v1").await,
        None,
        "v1 was recorded, so it did not run again"
    );
    let receipt = app
        .write(WriteBatch::new().append("log", vec![b"first".to_vec()]))
        .await
        .unwrap();
    assert_eq!(receipt.appended[0].1, Some(1..=1));
    storage.close().await;

    // Upgrading is idempotent.
    let again = open(&path);
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    let app = again.scope("app", &[V1]).await.unwrap();
    assert_eq!(app.last_seq("log").await, Ok(1));
}

#[test]
fn a_database_of_a_newer_storage_schema_is_refused() {
    let dir = TempDir::new().unwrap();
    let path = db(&dir);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let err = SqliteStorage::open(&Config::at(&path)).err();
    assert!(
        matches!(err, Some(Error::SchemaTooNew { found: 99, .. })),
        "{err:?}"
    );
}
