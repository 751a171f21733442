#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Acknowledged writes survive the writer process being killed (SIGKILL, no shutdown): this
//! test binary re-runs itself as a child that writes until it is killed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use dispatch_kernel::abi::{LogRange, Storage, WriteBatch};
use dispatch_storage_sqlite::{Config, SqliteStorage};
use tempfile::TempDir;

/// Set (to the database path) only in the child process.
const CHILD_DB: &str = "DISPATCH_STORAGE_SQLITE_CRASH_DB";
/// Acknowledgements the parent waits for before killing the child.
const ACKS_BEFORE_KILL: usize = 300;

/// Kills the child however the test ends, so a failing assertion leaves no process behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn acknowledged_writes_survive_a_killed_process() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("crash.db");
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_writes_until_killed",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_DB, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // "acked <task> <seq> <key>" per acknowledged batch, written after the ack arrived.
    let mut acked: Vec<(u64, String)> = Vec::new();
    let stdout = BufReader::new(child.0.stdout.take().unwrap());
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("acked ") {
            let mut parts = rest.split(' ');
            let seq = parts.next().unwrap().parse().unwrap();
            acked.push((seq, parts.next().unwrap().to_string()));
            if acked.len() == ACKS_BEFORE_KILL {
                break;
            }
        }
    }
    assert_eq!(acked.len(), ACKS_BEFORE_KILL, "the child stopped early");
    // SIGKILL while the child's writers are still busy: no shutdown code runs.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    assert!(
        std::fs::metadata(PathBuf::from(wal)).unwrap().len() > 0,
        "no clean shutdown ran: the WAL was left for recovery"
    );

    let conn = rusqlite::Connection::open(&path).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    drop(conn);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let storage = SqliteStorage::open(&Config::at(&path)).unwrap();
        let scope = storage.scope("crash", &[]).await.unwrap();
        let page = scope.read_log("log", LogRange::default()).await.unwrap();
        let stored: BTreeMap<u64, Vec<u8>> =
            page.entries.into_iter().map(|e| (e.seq, e.data)).collect();
        assert_eq!(
            stored.keys().copied().collect::<Vec<_>>(),
            (1..=page.last_seq).collect::<Vec<_>>(),
            "seqs are gap-free after the crash"
        );
        for (seq, key) in &acked {
            assert_eq!(
                stored.get(seq),
                Some(&key.clone().into_bytes()),
                "entry {seq}"
            );
            assert_eq!(
                scope.get(key).await.unwrap(),
                Some(seq.to_string().into_bytes()),
                "key {key}"
            );
        }
    });
}

/// The child side of the test above; returns at once in a normal test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_writes_until_killed() {
    let Some(path) = std::env::var_os(CHILD_DB) else {
        return;
    };
    let storage = SqliteStorage::open(&Config::at(&PathBuf::from(path))).unwrap();
    let scope = storage.scope("crash", &[]).await.unwrap();
    let stdout = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let writers: Vec<_> = (0..4)
        .map(|task| {
            let scope = scope.clone();
            let stdout = stdout.clone();
            tokio::spawn(async move {
                // Bounded so a lost parent cannot leave this running for long.
                for i in 0..100_000 {
                    let key = format!("k/{task}/{i}");
                    // Every write carries some bulk, so the kill lands mid-transaction often.
                    let batch = WriteBatch::new()
                        .append("log", vec![key.clone().into_bytes()])
                        .append("bulk", vec![vec![task; 16 * 1024]; 4]);
                    let receipt = scope.write(batch).await.unwrap();
                    let seq = *receipt.appended[0].1.clone().unwrap().start();
                    // The key's value is the seq: written in a second batch, acked before
                    // the line is printed.
                    scope
                        .write(WriteBatch::new().put(key.clone(), seq.to_string().into_bytes()))
                        .await
                        .unwrap();
                    let mut out = stdout.lock().unwrap();
                    writeln!(out, "acked {seq} {key}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
}
