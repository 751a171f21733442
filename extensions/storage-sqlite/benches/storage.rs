#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The storage service on a real file: acknowledged appends (one entry per batch, and 100
//! per batch), the same from 16 concurrent writers (the writer groups them), and reading the
//! newest 100 entries of a 1k- and a 100k-entry log. Entries are 512 bytes. Setup (opening,
//! filling logs) happens outside the timed closures; each write is awaited to its ack.
//!
//! Run: `cargo bench -p dispatch-storage-sqlite`

use std::sync::Arc;

use dispatch_kernel::abi::{LogRange, Scope, Storage, WriteBatch};
use dispatch_storage_sqlite::{Config, Durability, SqliteStorage};
use divan::Bencher;
use divan::counter::ItemsCount;
use tempfile::TempDir;
use tokio::runtime::Runtime;

fn main() {
    divan::main();
}

const ENTRY: [u8; 512] = [b'x'; 512];

struct Fixture {
    runtime: Runtime,
    scope: Arc<dyn Scope>,
    _storage: SqliteStorage,
    _dir: TempDir,
}

fn fixture(durability: Durability, threads: usize) -> Fixture {
    let dir = TempDir::new().unwrap();
    let storage = SqliteStorage::open(&Config {
        durability,
        ..Config::at(&dir.path().join("bench.db"))
    })
    .unwrap();
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .unwrap()
    };
    let scope = runtime.block_on(storage.scope("bench", &[])).unwrap();
    Fixture {
        runtime,
        scope,
        _storage: storage,
        _dir: dir,
    }
}

#[divan::bench(args = [Durability::Normal, Durability::Full])]
fn append_one_entry_per_batch(bencher: Bencher, durability: Durability) {
    let f = fixture(durability, 1);
    bencher.counter(ItemsCount::new(1u32)).bench_local(|| {
        f.runtime
            .block_on(
                f.scope
                    .write(WriteBatch::new().append("log", vec![ENTRY.to_vec()])),
            )
            .unwrap()
    });
}

#[divan::bench(args = [Durability::Normal, Durability::Full])]
fn append_100_entries_per_batch(bencher: Bencher, durability: Durability) {
    let f = fixture(durability, 1);
    bencher
        .counter(ItemsCount::new(100u32))
        .with_inputs(|| vec![ENTRY.to_vec(); 100])
        .bench_local_values(|entries| {
            f.runtime
                .block_on(f.scope.write(WriteBatch::new().append("log", entries)))
                .unwrap()
        });
}

/// 16 tasks each appending one entry per batch at the same time: one iteration is all 16
/// acknowledged, so the time per item shows what grouping queued batches saves.
#[divan::bench(args = [Durability::Normal, Durability::Full])]
fn append_one_entry_per_batch_16_concurrent(bencher: Bencher, durability: Durability) {
    let f = fixture(durability, 2);
    bencher.counter(ItemsCount::new(16u32)).bench_local(|| {
        f.runtime.block_on(async {
            let writes: Vec<_> = (0..16)
                .map(|_| {
                    let scope = f.scope.clone();
                    tokio::spawn(async move {
                        scope
                            .write(WriteBatch::new().append("log", vec![ENTRY.to_vec()]))
                            .await
                            .unwrap()
                    })
                })
                .collect();
            for write in writes {
                write.await.unwrap();
            }
        })
    });
}

#[divan::bench(args = [1_000, 100_000])]
fn read_newest_100(bencher: Bencher, log_len: usize) {
    let f = fixture(Durability::Normal, 1);
    f.runtime.block_on(async {
        for _ in 0..log_len / 1000 {
            f.scope
                .write(WriteBatch::new().append("log", vec![ENTRY.to_vec(); 1000]))
                .await
                .unwrap();
        }
        // Another log interleaved in the same table, as in a real database.
        f.scope
            .write(WriteBatch::new().append("other", vec![ENTRY.to_vec(); 1000]))
            .await
            .unwrap();
    });
    let range = LogRange {
        limit: Some(100),
        ..LogRange::default()
    };
    bencher.counter(ItemsCount::new(100u32)).bench_local(|| {
        let page = f.runtime.block_on(f.scope.read_log("log", range)).unwrap();
        assert_eq!(page.entries.len(), 100);
        page
    });
}
