#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The storage service against real SQLite files in temporary directories: the extension's
//! lifecycle, key-value pairs, logs, batches, the writer's grouping and shutdown, and reads
//! running beside a long write.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use dispatch_kernel::abi::{
    LogEntry, LogPage, LogRange, Migration, MigrationTx, STORAGE, Scope, Storage, StorageError,
    WriteBatch, WriteReceipt,
};
use dispatch_kernel::host::{Host, HostConfig};
use dispatch_storage_sqlite::{Config, Durability, Pragmas, SqliteStorage, StorageSqliteExtension};
use pretty_assertions::assert_eq;
use tempfile::TempDir;

fn db(dir: &TempDir) -> PathBuf {
    dir.path().join("test.db")
}

fn open(path: &Path) -> SqliteStorage {
    SqliteStorage::open(&Config::at(path)).unwrap()
}

async fn scope(storage: &SqliteStorage, name: &str) -> Arc<dyn Scope> {
    storage.scope(name, &[]).await.unwrap()
}

fn entry(seq: u64, data: &str) -> LogEntry {
    LogEntry {
        seq,
        data: data.as_bytes().to_vec(),
    }
}

fn receipt(appended: &[(&str, Option<std::ops::RangeInclusive<u64>>)]) -> WriteReceipt {
    WriteReceipt {
        appended: appended
            .iter()
            .map(|(log, seqs)| (log.to_string(), seqs.clone()))
            .collect(),
    }
}

/// Polls a future exactly once, as the kernel does with an aborted turn's persistence.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

fn wal_len(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal)).map_or(0, |m| m.len())
}

// ---- the extension ----------------------------------------------------------------------

#[test]
fn is_compliant() {
    let dir = TempDir::new().unwrap();
    dispatch_test_support::assert_extension_compliance(
        Arc::new(StorageSqliteExtension::default()),
        env!("CARGO_MANIFEST_DIR"),
        vec![],
        HostConfig {
            data_dir: dir.path().to_path_buf(),
            ..HostConfig::default()
        },
    );
    let db = dir.path().join("dispatch.db");
    assert!(
        db.exists(),
        "the database is created at <data_dir>/dispatch.db"
    );
    assert_eq!(wal_len(&db), 0, "a clean shutdown checkpoints the WAL");
}

#[tokio::test]
async fn the_extension_provides_storage_and_closes_it_on_deactivate() {
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().join("not/yet/there");
    let mut host = Host::new(
        vec![Arc::new(StorageSqliteExtension::default())],
        HostConfig {
            data_dir: data_dir.clone(),
            ..HostConfig::default()
        },
    )
    .unwrap();
    host.activate().await.unwrap();
    let storage = host.services().get(&STORAGE).unwrap();
    let app = storage.scope("app", &[]).await.unwrap();
    app.write(WriteBatch::new().put("k", b"v".to_vec()))
        .await
        .unwrap();

    host.deactivate().await;
    assert!(host.services().get(&STORAGE).is_err());
    assert_eq!(
        app.write(WriteBatch::new().put("k", b"w".to_vec())).await,
        Err(StorageError::Closed)
    );
    assert_eq!(app.get("k").await, Err(StorageError::Closed));
    assert_eq!(wal_len(&data_dir.join("dispatch.db")), 0);

    let reopened = open(&data_dir.join("dispatch.db"));
    assert_eq!(
        scope(&reopened, "app").await.get("k").await,
        Ok(Some(b"v".to_vec()))
    );
}

/// Activates the extension with `table` as its config in a fresh data dir and reports
/// where the database went, or why activation failed.
#[track_caller]
fn check_config(table: &str, expect: Result<&str, &str>) {
    let dir = TempDir::new().unwrap();
    let config = HostConfig {
        data_dir: dir.path().to_path_buf(),
        extensions: [("storage-sqlite".to_string(), toml::from_str(table).unwrap())].into(),
        ..HostConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcome = runtime.block_on(async {
        let mut host =
            Host::new(vec![Arc::new(StorageSqliteExtension::default())], config).unwrap();
        let outcome = host.activate().await.map(|_| ());
        host.deactivate().await;
        outcome
    });
    match (outcome, expect) {
        (Ok(()), Ok(file)) => assert!(dir.path().join(file).exists(), "no {file}"),
        (Err(err), Err(fragment)) => {
            assert!(
                err.to_string().contains(fragment),
                "{err} lacks `{fragment}`"
            )
        }
        (outcome, expect) => panic!("got {outcome:?}, expected {expect:?}"),
    }
}

#[test]
fn config_places_the_database_and_rejects_bad_values() {
    check_config("", Ok("dispatch.db"));
    check_config(r#"path = "sub/other.db""#, Ok("sub/other.db"));
    check_config(r#"durability = "full""#, Ok("dispatch.db"));
    check_config("readers = 1\nbusy_timeout_ms = 10", Ok("dispatch.db"));
    check_config("readers = 0", Err("readers must be between 1 and 64"));
    check_config(
        r#"durability = "paranoid""#,
        Err("unknown variant `paranoid`"),
    );
    check_config("pth = \"x.db\"", Err("unknown field `pth`"));
}

#[test]
fn durability_selects_the_synchronous_pragma() {
    let dir = TempDir::new().unwrap();
    let normal = open(&db(&dir));
    assert_eq!(
        normal.pragmas(),
        &Pragmas {
            journal_mode: "wal".to_string(),
            synchronous: "normal".to_string(),
            foreign_keys: true,
            busy_timeout_ms: 5000,
        }
    );
    drop(normal);
    let full = SqliteStorage::open(&Config {
        durability: Durability::Full,
        busy_timeout_ms: 250,
        ..Config::at(&db(&dir))
    })
    .unwrap();
    assert_eq!(full.pragmas().synchronous, "full");
    assert_eq!(full.pragmas().busy_timeout_ms, 250);
}

// ---- key-value pairs --------------------------------------------------------------------

#[tokio::test]
async fn key_value_pairs_put_get_delete_and_list_by_prefix() {
    let dir = TempDir::new().unwrap();
    let storage = open(&db(&dir));
    let app = scope(&storage, "app").await;
    app.write(
        WriteBatch::new()
            .put("conv/b", b"2".to_vec())
            .put("conv/a", b"1".to_vec())
            .put("conv0", b"not under conv/".to_vec())
            .put("conv/c", b"3".to_vec())
            .put("other", b"x".to_vec()),
    )
    .await
    .unwrap();
    app.write(
        WriteBatch::new()
            .put("conv/a", b"1 again".to_vec())
            .delete("conv/c")
            .delete("never-there"),
    )
    .await
    .unwrap();

    assert_eq!(app.get("conv/a").await, Ok(Some(b"1 again".to_vec())));
    assert_eq!(app.get("conv/c").await, Ok(None));
    assert_eq!(
        app.list("conv/").await.unwrap(),
        vec![
            ("conv/a".to_string(), b"1 again".to_vec()),
            ("conv/b".to_string(), b"2".to_vec()),
        ]
    );
    let all: Vec<String> = app
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(all, vec!["conv/a", "conv/b", "conv0", "other"]);
    assert_eq!(app.list("zzz").await, Ok(vec![]));
}

#[tokio::test]
async fn scopes_do_not_see_each_other() {
    let dir = TempDir::new().unwrap();
    let storage = open(&db(&dir));
    let one = scope(&storage, "one").await;
    let two = scope(&storage, "two").await;
    one.write(
        WriteBatch::new()
            .put("k", b"one".to_vec())
            .append("log", vec![b"1".to_vec()]),
    )
    .await
    .unwrap();
    two.write(WriteBatch::new().put("k", b"two".to_vec()))
        .await
        .unwrap();

    assert_eq!(one.get("k").await, Ok(Some(b"one".to_vec())));
    assert_eq!(two.get("k").await, Ok(Some(b"two".to_vec())));
    assert_eq!(two.list("").await.unwrap().len(), 1);
    assert_eq!(two.last_seq("log").await, Ok(0));
    assert_eq!(
        two.read_log("log", LogRange::default()).await,
        Ok(LogPage::default())
    );
    two.write(WriteBatch::new().delete("k").clear_log("log"))
        .await
        .unwrap();
    assert_eq!(one.get("k").await, Ok(Some(b"one".to_vec())));
    assert_eq!(
        one.read_log("log", LogRange::default())
            .await
            .unwrap()
            .entries,
        vec![entry(1, "1")]
    );
}

#[tokio::test]
async fn names_are_validated() {
    let dir = TempDir::new().unwrap();
    let storage = open(&db(&dir));
    fn invalid<T>(outcome: Result<T, StorageError>) -> bool {
        matches!(outcome, Err(StorageError::Invalid(_)))
    }
    assert!(invalid(storage.scope("", &[]).await.map(|_| ())));
    assert!(invalid(storage.scope("a\0b", &[]).await.map(|_| ())));
    let app = scope(&storage, "app").await;
    let long = "k".repeat(513);
    assert!(invalid(app.get("").await));
    assert!(invalid(app.get(&long).await));
    assert!(invalid(app.get("line\nbreak").await));
    assert!(invalid(app.last_seq("").await));
    assert!(invalid(app.read_log(&long, LogRange::default()).await));
    assert!(invalid(app.write(WriteBatch::new().put("", vec![])).await));
    assert!(invalid(app.write(WriteBatch::new().delete("a\0")).await));
    assert!(invalid(
        app.write(WriteBatch::new().append(long.clone(), vec![vec![1]]))
            .await
    ));
    assert!(invalid(app.write(WriteBatch::new().clear_log("")).await));
    // A prefix is not a name: one no valid key can start with just matches nothing.
    assert_eq!(app.list(&long).await, Ok(vec![]));
    assert_eq!(app.list("a\0").await, Ok(vec![]));
    let longest = "k".repeat(512);
    app.write(WriteBatch::new().put(longest.clone(), vec![]))
        .await
        .unwrap();
    assert_eq!(app.get(&longest).await, Ok(Some(vec![])));
}

// ---- logs -------------------------------------------------------------------------------

#[tokio::test]
async fn appends_assign_gap_free_seqs_with_a_receipt_per_append() {
    let dir = TempDir::new().unwrap();
    let storage = open(&db(&dir));
    let app = scope(&storage, "app").await;
    let first = app
        .write(
            WriteBatch::new()
                .append("a", vec![b"a1".to_vec(), b"a2".to_vec()])
                .put("k", b"v".to_vec())
                .append("b", vec![b"b1".to_vec()])
                .append("a", vec![b"a3".to_vec()])
                .append("c", vec![]),
        )
        .await
        .unwrap();
    assert_eq!(
        first,
        receipt(&[
            ("a", Some(1..=2)),
            ("b", Some(1..=1)),
            ("a", Some(3..=3)),
            ("c", None)
        ])
    );
    let second = app
        .write(WriteBatch::new().append("a", vec![b"a4".to_vec(), b"a5".to_vec()]))
        .await
        .unwrap();
    assert_eq!(second, receipt(&[("a", Some(4..=5))]));
    assert_eq!(app.last_seq("a").await, Ok(5));
    assert_eq!(app.last_seq("c").await, Ok(0));
    assert_eq!(
        app.read_log("a", LogRange::default())
            .await
            .unwrap()
            .entries,
        vec![
            entry(1, "a1"),
            entry(2, "a2"),
            entry(3, "a3"),
            entry(4, "a4"),
            entry(5, "a5")
        ]
    );
}

#[tokio::test]
async fn a_batch_with_a_failing_op_commits_nothing() {
    let dir = TempDir::new().unwrap();
    let storage = open(&db(&dir));
    let app = scope(&storage, "app").await;
    app.write(WriteBatch::new().append("log", vec![b"1".to_vec()]))
        .await
        .unwrap();
    let failed = app
        .write(
            WriteBatch::new()
                .put("k", b"v".to_vec())
                .append("log", vec![b"2".to_vec(), b"3".to_vec()])
                .append("new", vec![b"x".to_vec()])
                .put("", b"invalid key".to_vec()),
        )
        .await;
    assert!(
        matches!(failed, Err(StorageError::Invalid(_))),
        "{failed:?}"
    );
    assert_eq!(app.get("k").await, Ok(None));
    assert_eq!(app.last_seq("log").await, Ok(1));
    assert_eq!(app.last_seq("new").await, Ok(0));
    let next = app
        .write(WriteBatch::new().append("log", vec![b"2".to_vec()]))
        .await
        .unwrap();
    assert_eq!(
        next,
        receipt(&[("log", Some(2..=2))]),
        "the failed append's seqs were not used"
    );
}

/// Compares a page of a log holding seqs 1..=10 (data = the seq) with the expected seqs
/// and `has_more`.
#[track_caller]
fn check_range(page: &LogPage, seqs: &[u64], has_more: bool) {
    for e in &page.entries {
        assert_eq!(e.data, e.seq.to_string().into_bytes());
    }
    let got: Vec<u64> = page.entries.iter().map(|e| e.seq).collect();
    assert_eq!(
        (got.as_slice(), page.has_more, page.last_seq),
        (seqs, has_more, 10)
    );
}

#[tokio::test]
async fn read_log_ranges() {
    let dir = TempDir::new().unwrap();
    let storage = open(&db(&dir));
    let app = scope(&storage, "app").await;
    app.write(WriteBatch::new().append(
        "log",
        (1..=10).map(|i: u64| i.to_string().into_bytes()).collect(),
    ))
    .await
    .unwrap();
    let all: &[u64] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    let range = |after, before, limit| LogRange {
        after,
        before,
        limit,
    };
    let cases: Vec<(LogRange, &[u64], bool)> = vec![
        (range(None, None, None), all, false),
        (range(None, None, Some(3)), &[8, 9, 10], true),
        (range(None, None, Some(10)), all, false),
        (range(None, None, Some(50)), all, false),
        (range(None, Some(5), Some(2)), &[3, 4], true),
        (range(None, Some(3), Some(2)), &[1, 2], false),
        (range(Some(7), None, None), &[8, 9, 10], false),
        (range(Some(2), Some(6), None), &[3, 4, 5], false),
        (range(Some(2), Some(6), Some(3)), &[3, 4, 5], false),
        (range(Some(2), Some(6), Some(2)), &[4, 5], true),
        (range(None, None, Some(0)), &[], true),
        (range(Some(10), None, Some(0)), &[], false),
        (range(Some(10), None, None), &[], false),
        (range(None, Some(1), None), &[], false),
        (range(Some(6), Some(4), None), &[], false),
        (range(None, Some(u64::MAX), Some(1)), &[10], true),
        (range(Some(u64::MAX), None, None), &[], false),
    ];
    for (range, seqs, has_more) in cases {
        check_range(&app.read_log("log", range).await.unwrap(), seqs, has_more);
    }
    assert_eq!(
        app.read_log("unknown", LogRange::default()).await,
        Ok(LogPage::default())
    );
}

#[tokio::test]
async fn clearing_a_log_keeps_its_counter() {
    let dir = TempDir::new().unwrap();
    let storage = open(&db(&dir));
    let app = scope(&storage, "app").await;
    app.write(WriteBatch::new().append("log", vec![b"1".to_vec(), b"2".to_vec()]))
        .await
        .unwrap();
    app.write(
        WriteBatch::new()
            .clear_log("log")
            .clear_log("never-appended"),
    )
    .await
    .unwrap();
    assert_eq!(
        app.read_log("log", LogRange::default()).await,
        Ok(LogPage {
            entries: vec![],
            last_seq: 2,
            has_more: false,
        })
    );
    let next = app
        .write(WriteBatch::new().append("log", vec![b"3".to_vec()]))
        .await
        .unwrap();
    assert_eq!(next, receipt(&[("log", Some(3..=3))]));
    // Clear and append in one batch: the append continues after the cleared seqs.
    let same_batch = app
        .write(
            WriteBatch::new()
                .clear_log("log")
                .append("log", vec![b"4".to_vec()]),
        )
        .await
        .unwrap();
    assert_eq!(same_batch, receipt(&[("log", Some(4..=4))]));
    assert_eq!(
        app.read_log("log", LogRange::default())
            .await
            .unwrap()
            .entries,
        vec![entry(4, "4")]
    );
}

// ---- the writer -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_get_gap_free_seqs_and_every_entry_once() {
    const TASKS: u64 = 32;
    const EACH: u64 = 25;
    let dir = TempDir::new().unwrap();
    let storage = open(&db(&dir));
    let app = scope(&storage, "app").await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut assigned = Vec::new();
                for i in 0..EACH {
                    let data = format!("{t}/{i}").into_bytes();
                    let receipt = app
                        .write(WriteBatch::new().append("log", vec![data.clone()]))
                        .await
                        .unwrap();
                    let seqs = receipt.appended[0].1.clone().unwrap();
                    assert_eq!(seqs.start(), seqs.end());
                    assigned.push(LogEntry {
                        seq: *seqs.start(),
                        data,
                    });
                }
                assigned
            })
        })
        .collect();
    let mut assigned = Vec::new();
    for task in tasks {
        assigned.extend(task.await.unwrap());
    }
    assigned.sort_by_key(|e| e.seq);

    let page = app.read_log("log", LogRange::default()).await.unwrap();
    assert_eq!(page.last_seq, TASKS * EACH);
    assert_eq!(
        page.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=TASKS * EACH).collect::<Vec<_>>()
    );
    assert_eq!(
        page.entries, assigned,
        "each receipt names where its entry is"
    );
}

static GROUP_STARTED: Barrier = Barrier::new(2);
static GROUP_RELEASE: Barrier = Barrier::new(2);

fn hold_the_writer_for_grouping(_: &mut dyn MigrationTx) -> Result<(), StorageError> {
    GROUP_STARTED.wait();
    GROUP_RELEASE.wait();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_batches_commit_together_and_fail_alone() {
    let dir = TempDir::new().unwrap();
    let storage = Arc::new(open(&db(&dir)));
    let app = scope(&storage, "app").await;
    let gate = tokio::spawn({
        let storage = storage.clone();
        async move {
            let hold = Migration {
                version: 1,
                description: "hold the writer",
                apply: hold_the_writer_for_grouping,
            };
            storage.scope("gate", &[hold]).await.map(|_| ())
        }
    });
    tokio::task::spawn_blocking(|| GROUP_STARTED.wait())
        .await
        .unwrap();

    // The writer is busy: these three queue up and are picked up as one group.
    let mut writes = vec![
        app.write(WriteBatch::new().append("log", vec![b"a".to_vec()])),
        app.write(
            WriteBatch::new()
                .append("log", vec![b"lost".to_vec()])
                .put("k", b"lost".to_vec())
                .delete(""),
        ),
        app.write(
            WriteBatch::new()
                .append("log", vec![b"b".to_vec(), b"c".to_vec()])
                .put("k", b"kept".to_vec()),
        ),
    ];
    for write in &mut writes {
        assert!(poll_once(write).is_pending());
    }
    tokio::task::spawn_blocking(|| GROUP_RELEASE.wait())
        .await
        .unwrap();
    gate.await.unwrap().unwrap();

    let mut outcomes = Vec::new();
    for write in writes {
        outcomes.push(write.await);
    }
    assert_eq!(outcomes[0], Ok(receipt(&[("log", Some(1..=1))])));
    assert!(
        matches!(outcomes[1], Err(StorageError::Invalid(_))),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[2], Ok(receipt(&[("log", Some(2..=3))])));
    assert_eq!(
        app.read_log("log", LogRange::default())
            .await
            .unwrap()
            .entries,
        vec![entry(1, "a"), entry(2, "b"), entry(3, "c")]
    );
    assert_eq!(app.get("k").await, Ok(Some(b"kept".to_vec())));
}

#[tokio::test]
async fn a_write_polled_once_and_dropped_is_still_committed() {
    let dir = TempDir::new().unwrap();
    let storage = open(&db(&dir));
    let app = scope(&storage, "app").await;
    let mut write = app.write(WriteBatch::new().append("log", vec![b"persisted".to_vec()]));
    let _ = poll_once(&mut write);
    drop(write);
    // The writer is FIFO: once a later write is acknowledged the dropped one is committed.
    app.write(WriteBatch::new().put("after", vec![]))
        .await
        .unwrap();
    assert_eq!(
        app.read_log("log", LogRange::default())
            .await
            .unwrap()
            .entries,
        vec![entry(1, "persisted")]
    );
}

#[tokio::test]
async fn closing_commits_queued_writes_then_refuses_work() {
    let dir = TempDir::new().unwrap();
    let path = db(&dir);
    let storage = open(&path);
    let app = scope(&storage, "app").await;
    let mut queued: Vec<_> = (0..20u8)
        .map(|i| app.write(WriteBatch::new().append("log", vec![vec![i]])))
        .collect();
    // The writer thread may already have answered a write by its first poll: keep that
    // answer instead of polling a finished future again.
    let mut early: Vec<Option<_>> = queued
        .iter_mut()
        .map(|write| match poll_once(write) {
            Poll::Ready(result) => Some(result),
            Poll::Pending => None,
        })
        .collect();
    storage.close().await;
    for (i, write) in queued.into_iter().enumerate() {
        let seq = i as u64 + 1;
        let result = match early[i].take() {
            Some(result) => result,
            None => write.await,
        };
        assert_eq!(result, Ok(receipt(&[("log", Some(seq..=seq))])));
    }
    assert_eq!(wal_len(&path), 0, "closing checkpoints the WAL");
    assert_eq!(
        app.write(WriteBatch::new().put("k", vec![])).await,
        Err(StorageError::Closed)
    );
    assert_eq!(app.last_seq("log").await, Err(StorageError::Closed));
    assert!(matches!(
        storage.scope("other", &[]).await,
        Err(StorageError::Closed)
    ));
    storage.close().await;

    let reopened = open(&path);
    assert_eq!(scope(&reopened, "app").await.last_seq("log").await, Ok(20));
}

#[tokio::test]
async fn dropping_the_storage_closes_its_scopes() {
    let dir = TempDir::new().unwrap();
    let storage = open(&db(&dir));
    let app = scope(&storage, "app").await;
    app.write(WriteBatch::new().put("k", vec![1]))
        .await
        .unwrap();
    drop(storage);
    assert_eq!(
        app.write(WriteBatch::new().put("k", vec![2])).await,
        Err(StorageError::Closed)
    );
    let reopened = open(&db(&dir));
    assert_eq!(
        scope(&reopened, "app").await.get("k").await,
        Ok(Some(vec![1]))
    );
}

// ---- reads beside a long write ----------------------------------------------------------

static BULK_STARTED: Barrier = Barrier::new(2);
static BULK_RELEASE: Barrier = Barrier::new(2);

/// A large write transaction that stays open until the test releases it.
fn bulk_write_then_wait(tx: &mut dyn MigrationTx) -> Result<(), StorageError> {
    for i in 0..5000 {
        tx.put(&format!("bulk/{i:05}"), &[7; 200])?;
    }
    BULK_STARTED.wait();
    BULK_RELEASE.wait();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_answered_while_a_large_write_is_in_progress() {
    let dir = TempDir::new().unwrap();
    let storage = Arc::new(open(&db(&dir)));
    let app = scope(&storage, "app").await;
    app.write(
        WriteBatch::new()
            .put("k", b"committed".to_vec())
            .append("log", vec![b"1".to_vec()]),
    )
    .await
    .unwrap();

    let bulk = tokio::spawn({
        let storage = storage.clone();
        async move {
            let migration = Migration {
                version: 1,
                description: "bulk",
                apply: bulk_write_then_wait,
            };
            storage.scope("bulk", &[migration]).await.map(|_| ())
        }
    });
    tokio::task::spawn_blocking(|| BULK_STARTED.wait())
        .await
        .unwrap();

    // The writer thread now sits inside a transaction with 5000 uncommitted rows. Reads must
    // not wait for it; the timeout only turns a regression into a failure instead of a hang.
    let reads = async {
        (
            app.get("k").await,
            app.list("").await,
            app.read_log("log", LogRange::default()).await,
            app.last_seq("log").await,
        )
    };
    let (get, list, log, last_seq) = tokio::time::timeout(Duration::from_secs(60), reads)
        .await
        .expect("reads waited for the writer");
    assert_eq!(get, Ok(Some(b"committed".to_vec())));
    assert_eq!(list.unwrap().len(), 1);
    assert_eq!(log.unwrap().entries, vec![entry(1, "1")]);
    assert_eq!(last_seq, Ok(1));

    tokio::task::spawn_blocking(|| BULK_RELEASE.wait())
        .await
        .unwrap();
    bulk.await.unwrap().unwrap();
    let bulk = scope(&storage, "bulk").await;
    assert_eq!(bulk.list("bulk/").await.unwrap().len(), 5000);
}
