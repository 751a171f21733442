//! Cross-crate tests of real parts wired together; never a dependency of production code.
//!
//! The conversation store ([`Store`]) on the SQLite storage ([`SqliteStorage`]) on a real
//! file, with the real clock: `tests/crash.rs` kills a writer process (`crash-child`) with
//! SIGKILL again and again, `tests/sqlite_props.rs` checks the store's invariants on SQLite
//! with proptest, and `benches/store.rs` measures appends, loads and windows. This library
//! holds what they share: [`Db`] (a store opened on a database file), message builders and
//! the crash drill's deterministic history ([`drill`]), and [`e2e`]: the harness that runs the
//! real `dispatch-server`, `dispatch-mock-llm` and `dispatch` binaries for `tests/server_*.rs`.
//!
//! Test code only: panicking on a broken expectation is the point, so the unwrap lints are off.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use dispatch_clock::SystemClock;
use dispatch_conversation_store::Store;
use dispatch_kernel::abi::{Message, Storage};
use dispatch_storage_sqlite::{Config, Durability, SqliteStorage};

pub mod e2e;

/// The conversation store on a SQLite file, with the storage kept so it can be closed.
pub struct Db {
    pub store: Arc<Store>,
    pub storage: Arc<SqliteStorage>,
}

impl Db {
    /// Opens (creating if needed) the database at `path` with default settings
    /// (`durability = "normal"`) and the store on it.
    pub async fn open(path: &Path) -> anyhow::Result<Db> {
        Db::open_with(Config {
            durability: Durability::Normal,
            ..Config::at(path)
        })
        .await
    }

    /// Opens the storage with `config` (on the blocking pool: opening is blocking) and the
    /// store on it, with the system clock and `/srv/dispatch` as the server default cwd.
    pub async fn open_with(config: Config) -> anyhow::Result<Db> {
        let path = config.path.clone().unwrap_or_default();
        let storage = tokio::task::spawn_blocking(move || SqliteStorage::open(&config))
            .await?
            .with_context(|| format!("opening {}", path.display()))?;
        let storage = Arc::new(storage);
        let store = Store::open(
            storage.clone() as Arc<dyn Storage>,
            Arc::new(SystemClock::new()),
            dispatch_conversation_store::Config {
                server_default_cwd: Some("/srv/dispatch".into()),
            },
        )
        .await?;
        Ok(Db { store, storage })
    }

    /// Commits what is queued, checkpoints the WAL and closes the file.
    pub async fn close(self) {
        self.storage.close().await;
    }
}

pub use dispatch_test_support::history::{assistant, call, id, result, text, tool, user};

/// One agent step as a turn stores it (3 chunks): the assistant message `a<n>` with its text
/// and the tool call `call<n>`, then the tool message `t<n>` with that call's result.
pub fn step(n: u64, output: &str) -> Vec<Message> {
    let call_id = format!("call{n}");
    vec![
        assistant(
            &format!("a{n}"),
            vec![
                text(&format!("Step {n}: running the command.")),
                call(
                    &call_id,
                    serde_json::json!({"cmd": format!("echo {n}"), "step": n}),
                ),
            ],
        ),
        tool(&format!("t{n}"), vec![result(&call_id, output)]),
    ]
}

/// The crash drill's history, a pure function of the step number so a process that
/// restarts on the same file continues it, and a checker knows every byte of it.
///
/// Step 0 is the user's request (1 chunk, seq 1); step `k ≥ 1` is [`step`]`(k, ..)` (3
/// chunks, seqs `3k-1..=3k+1`) with a tool output of 0.5 to 4 KB. Every chunk carries the
/// turn id [`drill::TURN`] and the step id `<TURN>#<k>`; each step is one `append`.
pub mod drill {
    use std::ops::RangeInclusive;

    use dispatch_kernel::abi::{HistoryPage, Message};
    use dispatch_wire::{Id, StoredChunk};

    pub const CONVERSATION: &str = "crash-drill";
    pub const TURN: &str = "turn-drill";
    pub const REQUEST: &str = "Run the crash drill: one command per step, until stopped.";

    pub fn turn_id() -> Id {
        Id::from(TURN)
    }

    pub fn step_id(step: u64) -> Id {
        Id::from(format!("{TURN}#{step}"))
    }

    /// The messages `step` appends.
    pub fn messages(step: u64) -> Vec<Message> {
        if step == 0 {
            return vec![super::user("u0", REQUEST)];
        }
        let bulk = "0123456789abcdef".repeat(32 * (1 + (step as usize % 8)));
        super::step(step, &format!("output of step {step}: {bulk}"))
    }

    /// The seqs `step` occupies.
    pub fn seqs(step: u64) -> RangeInclusive<u64> {
        match step {
            0 => 1..=1,
            k => 3 * k - 1..=3 * k + 1,
        }
    }

    /// The stored chunks of steps `0..=last` (`createdAt` 0: the clock's part is not ours).
    pub fn chunks_through(last: Option<u64>) -> Vec<StoredChunk> {
        let Some(last) = last else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for step in 0..=last {
            for message in messages(step) {
                for chunk in message.chunks {
                    out.push(StoredChunk {
                        seq: out.len() as u64 + 1,
                        message_id: message.id.clone(),
                        role: message.role,
                        turn_id: Some(turn_id()),
                        step_id: Some(step_id(step)),
                        created_at: 0,
                        chunk,
                    });
                }
            }
        }
        out
    }

    /// The messages of steps `0..=last`, as a clean load returns them.
    pub fn messages_through(last: Option<u64>) -> Vec<Message> {
        last.map_or_else(Vec::new, |last| (0..=last).flat_map(messages).collect())
    }

    /// The step a stored chunk belongs to, from its step id.
    pub fn step_of(chunk: &StoredChunk) -> Option<u64> {
        chunk
            .step_id
            .as_deref()?
            .strip_prefix(TURN)?
            .strip_prefix('#')?
            .parse()
            .ok()
    }

    /// The step to append next, given the newest stored chunk (`window` with limit 1).
    pub fn next_step(newest: &HistoryPage) -> anyhow::Result<u64> {
        match newest.chunks.last() {
            None if newest.last_seq == 0 => Ok(0),
            None => anyhow::bail!(
                "the newest row (seq {}) of the drill does not parse",
                newest.last_seq
            ),
            Some(chunk) => {
                let step = step_of(chunk)
                    .ok_or_else(|| anyhow::anyhow!("not a drill chunk: {chunk:?}"))?;
                anyhow::ensure!(
                    *seqs(step).end() == chunk.seq,
                    "the newest chunk (seq {}) does not end step {step}: a torn step",
                    chunk.seq
                );
                Ok(step + 1)
            }
        }
    }
}
