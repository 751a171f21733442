#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The conversation store on a real SQLite file (`durability = "normal"`, in a `TempDir`):
//! - appends, each awaited to its acknowledgement: one chunk at a time (a message of one
//!   text chunk) and a step at a time (assistant text + tool call + tool result: 3 chunks);
//!   throughput is in chunks (items) per second;
//! - a full `load` (read, parse, repair) of a 100k-chunk conversation;
//! - a 100-chunk window (the newest 100) of a 1k- and of a 100k-chunk conversation: the
//!   two should cost the same.
//!
//! Conversations are built once per benchmark, outside the timed closures, from whole steps
//! appended 1000 at a time.
//!
//! Run: `cargo bench -p dispatch-system-tests --bench store`

use std::cell::Cell;

use dispatch_kernel::abi::{ConversationStore, HistoryWindow, Message};
use dispatch_system_tests::{Db, assistant, step, text, user};
use divan::Bencher;
use divan::counter::ItemsCount;
use tempfile::TempDir;
use tokio::runtime::Runtime;

fn main() {
    divan::main();
}

/// A tool output of a typical small size (a short command's output).
const OUTPUT: &str = "Compiling dispatch v0.1.0\nFinished `dev` profile in 2.31s\n\
                      running 12 tests\ntest result: ok. 12 passed; 0 failed\n";

struct Fixture {
    runtime: Runtime,
    db: Db,
    _dir: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = TempDir::new().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let db = runtime
            .block_on(Db::open(&dir.path().join("bench.db")))
            .unwrap();
        Fixture {
            runtime,
            db,
            _dir: dir,
        }
    }

    /// A fixture holding `conversation` with exactly `chunks` chunks (`chunks ≡ 1 mod 3`):
    /// the user's request, then whole steps.
    fn with_conversation(conversation: &str, chunks: u64) -> Fixture {
        assert_eq!(chunks % 3, 1, "a request plus whole steps");
        let f = Fixture::new();
        let steps = (chunks - 1) / 3;
        f.runtime.block_on(async {
            let store = &f.db.store;
            store
                .append(conversation, None, None, &[user("u0", "fix the build")])
                .await
                .unwrap();
            let mut next = 1;
            while next <= steps {
                let last = steps.min(next + 999);
                let batch: Vec<Message> = (next..=last).flat_map(|n| step(n, OUTPUT)).collect();
                next = last + 1;
                store
                    .append(conversation, None, None, &batch)
                    .await
                    .unwrap();
            }
            let page = store
                .window(conversation, HistoryWindow::default())
                .await
                .unwrap();
            assert_eq!(page.last_seq, chunks);
        });
        f
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.runtime.block_on(self.db.storage.close());
    }
}

#[divan::bench]
fn append_one_chunk(bencher: Bencher) {
    let f = Fixture::new();
    let n = Cell::new(0u64);
    bencher
        .counter(ItemsCount::new(1u32))
        .with_inputs(|| {
            n.set(n.get() + 1);
            assistant(
                &format!("m{}", n.get()),
                vec![text("Here is the next sentence the model streamed.")],
            )
        })
        .bench_local_refs(|message| {
            f.runtime
                .block_on(
                    f.db.store
                        .append("c", None, None, std::slice::from_ref(message)),
                )
                .unwrap()
        });
}

#[divan::bench]
fn append_one_step(bencher: Bencher) {
    let f = Fixture::new();
    let n = Cell::new(0u64);
    bencher
        .counter(ItemsCount::new(3u32))
        .with_inputs(|| {
            n.set(n.get() + 1);
            step(n.get(), OUTPUT)
        })
        .bench_local_refs(|messages| {
            f.runtime
                .block_on(f.db.store.append("c", None, None, messages))
                .unwrap()
        });
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn load_100k_chunks(bencher: Bencher) {
    let f = Fixture::with_conversation("big", 100_000);
    bencher
        .counter(ItemsCount::new(100_000u32))
        .bench_local(|| {
            let history = f.runtime.block_on(f.db.store.load("big")).unwrap();
            assert_eq!(history.last_seq, 100_000);
            history
        });
}

#[divan::bench(args = [1_000, 100_000])]
fn window_newest_100(bencher: Bencher, chunks: u64) {
    let f = Fixture::with_conversation("c", chunks);
    let window = HistoryWindow {
        limit: Some(100),
        ..HistoryWindow::default()
    };
    bencher.counter(ItemsCount::new(100u32)).bench_local(|| {
        let page = f.runtime.block_on(f.db.store.window("c", window)).unwrap();
        assert_eq!(page.chunks.len(), 100);
        page
    });
}
