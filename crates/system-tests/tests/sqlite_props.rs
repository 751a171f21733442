#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The conversation store's history invariants on a real SQLite file (the store's own
//! proptests run on `MemoryStorage`):
//! - random appends (user text, assistant text/reasoning/tool calls with good and broken
//!   arguments, tool results that answer, orphan or duplicate, error chunks, empty messages)
//!   to 1–3 conversations, some of them concurrent: seqs are 1-based and gap-free per
//!   conversation, each append's chunks are contiguous and as given, sequential appends are
//!   ordered; `window(since, before, limit)` equals filtering the full list (ascending, the
//!   newest `limit`); load is provider-valid; the file reopened gives identical windows and
//!   loads.
//! - a row overwritten with bytes that do not parse is skipped by load and window and does
//!   not fail the conversation.

use std::path::Path;
use std::sync::Arc;

use dispatch_conversation_store::repair::{INTERRUPTED_OUTPUT, check_provider_valid};
use dispatch_conversation_store::{MAX_WINDOW, Store, keys};
use dispatch_kernel::abi::{
    ConversationStore, History, HistoryPage, HistoryWindow, Message, RepairReport,
};
use dispatch_system_tests::{Db, assistant, call, step, text, tool, user};
use dispatch_wire::{Chunk, Id, Role, StoredChunk};
use proptest::prelude::*;
use serde_json::{Value, json};
use tempfile::TempDir;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

// --- random appends ---

const CONVERSATIONS: [&str; 3] = ["alpha", "beta", "gamma"];

/// One message of an append, before ids are given.
#[derive(Debug, Clone)]
enum Shape {
    User(String),
    Assistant {
        reasoning: bool,
        text: Option<String>,
        /// Call ids are drawn from a few, so some repeat.
        calls: Vec<(u8, Value)>,
        error: bool,
    },
    /// Results for these call ids: answers, orphans or duplicates.
    Results(Vec<(u8, bool)>),
    /// An assistant message holding only an error chunk (a failed step).
    Error,
    /// No chunks at all: stores nothing.
    Empty,
}

fn arguments() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => Just(json!({"path": "src/main.rs"})),
        1 => Just(json!({})),
        1 => Just(json!("{\"path\": \"a\"}")),
        1 => "[ -~]{0,40}".prop_map(Value::String),
        1 => Just(json!([1, 2])),
        1 => Just(Value::Null),
    ]
}

fn words() -> impl Strategy<Value = String> {
    "[a-zA-Zé0-9 ]{0,16}"
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        3 => words().prop_map(Shape::User),
        4 => (
            any::<bool>(),
            prop::option::of(words()),
            prop::collection::vec((0u8..6, arguments()), 0..3),
            prop::bool::weighted(0.15),
        )
            .prop_map(|(reasoning, text, calls, error)| Shape::Assistant {
                reasoning,
                text,
                calls,
                error,
            }),
        3 => prop::collection::vec((0u8..6, any::<bool>()), 1..3).prop_map(Shape::Results),
        1 => Just(Shape::Error),
        1 => Just(Shape::Empty),
    ]
}

#[derive(Debug, Clone)]
struct Append {
    conversation: usize,
    messages: Vec<Shape>,
}

#[derive(Debug, Clone)]
enum Op {
    One(Append),
    /// Started together, each on its own task; they may hit one conversation.
    Concurrent(Vec<Append>),
}

fn append(conversations: usize) -> impl Strategy<Value = Append> {
    (0..conversations, prop::collection::vec(shape(), 0..4)).prop_map(|(conversation, messages)| {
        Append {
            conversation,
            messages,
        }
    })
}

fn ops() -> impl Strategy<Value = (usize, Vec<Op>)> {
    (1..=CONVERSATIONS.len()).prop_flat_map(|conversations| {
        let op = prop_oneof![
            4 => append(conversations).prop_map(Op::One),
            1 => prop::collection::vec(append(conversations), 2..5).prop_map(Op::Concurrent),
        ];
        (Just(conversations), prop::collection::vec(op, 0..14))
    })
}

/// The messages of an append, with ids unique to it (`<op>.<append>.<message>`).
fn messages(tag: &str, shapes: &[Shape]) -> Vec<Message> {
    let call_id = |n: u8| format!("k{n}");
    shapes
        .iter()
        .enumerate()
        .map(|(i, shape)| {
            let message_id = format!("{tag}.{i}");
            match shape {
                Shape::User(t) => user(&message_id, t),
                Shape::Assistant {
                    reasoning,
                    text: body,
                    calls,
                    error,
                } => {
                    let mut chunks = Vec::new();
                    if *reasoning {
                        chunks.push(Chunk::Reasoning {
                            text: "thinking".into(),
                            signature: Some("sig".into()),
                            redacted: None,
                        });
                    }
                    if let Some(t) = body {
                        chunks.push(text(t));
                    }
                    for (n, input) in calls {
                        chunks.push(call(&call_id(*n), input.clone()));
                    }
                    if *error {
                        chunks.push(Chunk::Error {
                            message: "stream cut".into(),
                            code: Some("502".into()),
                        });
                    }
                    assistant(&message_id, chunks)
                }
                Shape::Results(results) => tool(
                    &message_id,
                    results
                        .iter()
                        .map(|&(n, is_error)| Chunk::ToolResult {
                            tool_call_id: Id::from(call_id(n)),
                            tool_name: "run_shell".into(),
                            output: format!("out {n}"),
                            is_error,
                        })
                        .collect(),
                ),
                Shape::Error => assistant(
                    &message_id,
                    vec![Chunk::Error {
                        message: "provider refused".into(),
                        code: None,
                    }],
                ),
                Shape::Empty => Message::new(Id::from(message_id), Role::Assistant, Vec::new()),
            }
        })
        .collect()
}

/// One append as done: its op, its conversation, what it was given and what it returned.
struct Done {
    op: usize,
    conversation: usize,
    given: Vec<Message>,
    returned: Vec<StoredChunk>,
}

async fn run_ops(store: &Arc<Store>, ops: &[Op]) -> Vec<Done> {
    let mut done = Vec::new();
    for (op, item) in ops.iter().enumerate() {
        let appends: Vec<&Append> = match item {
            Op::One(append) => vec![append],
            Op::Concurrent(appends) => appends.iter().collect(),
        };
        let tasks: Vec<_> = appends
            .into_iter()
            .enumerate()
            .map(|(a, append)| {
                let store = store.clone();
                let conversation = append.conversation;
                let given = messages(&format!("{op}.{a}"), &append.messages);
                tokio::spawn(async move {
                    let returned = store
                        .append(CONVERSATIONS[conversation], None, None, &given)
                        .await
                        .unwrap();
                    Done {
                        op,
                        conversation,
                        given,
                        returned,
                    }
                })
            })
            .collect();
        for task in tasks {
            done.push(task.await.unwrap());
        }
    }
    done
}

fn expected_window(full: &[StoredChunk], window: HistoryWindow) -> HistoryPage {
    let in_range: Vec<StoredChunk> = full
        .iter()
        .filter(|c| window.since_seq.is_none_or(|s| c.seq > s))
        .filter(|c| window.before_seq.is_none_or(|b| c.seq < b))
        .cloned()
        .collect();
    let take = window
        .limit
        .map_or(in_range.len(), |l| l.min(MAX_WINDOW).min(in_range.len()));
    let cut = in_range.len() - take;
    HistoryPage {
        chunks: in_range[cut..].to_vec(),
        last_seq: full.len() as u64,
        has_more: cut > 0,
    }
}

/// What one conversation reads as: its full window, the random windows and its load.
#[derive(Debug, PartialEq)]
struct Reads {
    full: HistoryPage,
    windows: Vec<HistoryPage>,
    history: History,
}

async fn reads(store: &Store, conversation: &str, windows: &[HistoryWindow]) -> Reads {
    let mut pages = Vec::new();
    for window in windows {
        pages.push(store.window(conversation, *window).await.unwrap());
    }
    Reads {
        full: store
            .window(conversation, HistoryWindow::default())
            .await
            .unwrap(),
        windows: pages,
        history: store.load(conversation).await.unwrap(),
    }
}

fn window() -> impl Strategy<Value = HistoryWindow> {
    (
        prop::option::of(0u64..40),
        prop::option::of(0u64..40),
        prop::option::of(0usize..12),
    )
        .prop_map(|(since_seq, before_seq, limit)| HistoryWindow {
            since_seq,
            before_seq,
            limit,
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn appends_windows_and_loads_hold_on_sqlite_and_survive_reopening(
        (conversations, ops) in ops(),
        windows in prop::collection::vec(window(), 1..6),
    ) {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("dispatch.db");
        runtime().block_on(async {
            let db = Db::open(&path).await.unwrap();
            let done = run_ops(&db.store, &ops).await;
            let mut before_reopen = Vec::new();
            for (c, conversation) in CONVERSATIONS.iter().enumerate().take(conversations) {
                let mut mine: Vec<&Done> = done.iter().filter(|d| d.conversation == c).collect();
                for d in &mine {
                    // Each append's chunks are the given ones, contiguous.
                    let given: Vec<(&Id, Role, &Chunk)> = d
                        .given
                        .iter()
                        .flat_map(|m| m.chunks.iter().map(move |chunk| (&m.id, m.role, chunk)))
                        .collect();
                    let returned: Vec<(&Id, Role, &Chunk)> =
                        d.returned.iter().map(|s| (&s.message_id, s.role, &s.chunk)).collect();
                    prop_assert_eq!(returned, given);
                    let seqs: Vec<u64> = d.returned.iter().map(|s| s.seq).collect();
                    let first = seqs.first().copied().unwrap_or_default();
                    let contiguous: Vec<u64> = (first..first + seqs.len() as u64).collect();
                    prop_assert_eq!(&seqs, &contiguous);
                }
                // Appends of different ops are ordered by op; within a concurrent op any
                // order.
                mine.retain(|d| !d.returned.is_empty());
                mine.sort_by_key(|d| d.returned[0].seq);
                for pair in mine.windows(2) {
                    let (a, b) = (pair[0].op, pair[1].op);
                    prop_assert!(a <= b, "op {} stored after op {}", a, b);
                }
                let full: Vec<StoredChunk> =
                    mine.iter().flat_map(|d| d.returned.clone()).collect();
                let seqs: Vec<u64> = full.iter().map(|s| s.seq).collect();
                let gap_free: Vec<u64> = (1..=full.len() as u64).collect();
                prop_assert_eq!(&seqs, &gap_free, "{} seqs", conversation);

                let now = reads(&db.store, conversation, &windows).await;
                prop_assert_eq!(&now.full, &expected_window(&full, HistoryWindow::default()));
                for (window, page) in windows.iter().zip(&now.windows) {
                    prop_assert_eq!(page, &expected_window(&full, *window), "{:?}", window);
                }
                if let Err(problem) = check_provider_valid(&now.history.messages) {
                    let messages = &now.history.messages;
                    prop_assert!(false, "{}: {}\n{:#?}", conversation, problem, messages);
                }
                dispatch_test_support::check_history(&now.history.messages);
                prop_assert_eq!(now.history.last_seq, full.len() as u64);
                prop_assert_eq!(now.history.repair.skipped_corrupt_rows, 0);
                before_reopen.push(now);
            }
            db.close().await;

            let db = Db::open(&path).await.unwrap();
            for (c, conversation) in CONVERSATIONS.iter().enumerate().take(conversations) {
                let again = reads(&db.store, conversation, &windows).await;
                prop_assert_eq!(&again, &before_reopen[c], "{} after reopening", conversation);
            }
            db.close().await;
            Ok(())
        })?;
    }
}

// --- corrupt rows ---

/// The test conversation: the user's request (seq 1), then steps 1..=3 (seqs 2..=10).
fn steps() -> Vec<Vec<Message>> {
    let mut out = vec![vec![user("u0", "fix the build")]];
    out.extend((1..=3).map(|n| step(n, &format!("out {n}"))));
    out
}

/// Replaces `log_entries.data` of `seq` in the conversation's history log by what `damage`
/// makes of it (the store's layout: scope `conversation-store`, log `h/<conversation>`; see
/// its `keys` module), directly with SQL, as a bad disk or a foreign writer would.
fn damage_row(path: &Path, conversation: &str, seq: u64, damage: Damage) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let log_id: i64 = conn
        .query_row(
            "SELECT id FROM logs WHERE scope = ?1 AND name = ?2",
            (keys::SCOPE, format!("h/{conversation}")),
            |row| row.get(0),
        )
        .unwrap();
    let old: Vec<u8> = conn
        .query_row(
            "SELECT data FROM log_entries WHERE log_id = ?1 AND seq = ?2",
            (log_id, seq),
            |row| row.get(0),
        )
        .unwrap();
    let new = match damage {
        Damage::Garbage => b"\xff\xfe\x00{not json".to_vec(),
        Damage::Truncated => old[..old.len() / 2].to_vec(),
    };
    let changed = conn
        .execute(
            "UPDATE log_entries SET data = ?1 WHERE log_id = ?2 AND seq = ?3",
            (new, log_id, seq),
        )
        .unwrap();
    assert_eq!(changed, 1);
}

/// How the row is broken.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Not UTF-8, not JSON.
    Garbage,
    /// The first half of the original JSON (a torn write).
    Truncated,
}

/// Stores [`steps`], breaks row `seq`, reopens the file, and checks the load (its messages
/// with `edit` applied to the clean ones, and its repair report), windows around the row,
/// and that the conversation still takes appends.
#[track_caller]
fn check(seq: u64, damage: Damage, edit: fn(&mut Vec<Message>), expect: RepairReport) {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("dispatch.db");
    let runtime = runtime();
    let clean = runtime.block_on(async {
        let db = Db::open(&path).await.unwrap();
        for messages in steps() {
            db.store.append("c", None, None, &messages).await.unwrap();
        }
        let clean = db
            .store
            .window("c", HistoryWindow::default())
            .await
            .unwrap();
        db.close().await;
        clean
    });
    damage_row(&path, "c", seq, damage);

    runtime.block_on(async {
        let db = Db::open(&path).await.unwrap();
        let store = &db.store;
        let mut messages: Vec<Message> = steps().into_iter().flatten().collect();
        edit(&mut messages);
        let history = store.load("c").await.unwrap();
        assert_eq!(history.repair, expect, "repair of seq {seq} ({damage:?})");
        assert_eq!(history.messages, messages, "load of seq {seq} ({damage:?})");
        assert_eq!(history.last_seq, 10);
        check_provider_valid(&history.messages).unwrap();

        let without: Vec<StoredChunk> = clean
            .chunks
            .iter()
            .filter(|c| c.seq != seq)
            .cloned()
            .collect();
        let page = store.window("c", HistoryWindow::default()).await.unwrap();
        assert_eq!(
            page,
            HistoryPage {
                chunks: without.clone(),
                last_seq: 10,
                has_more: false
            }
        );
        // The newest 3 of `seq-2..=seq+1` hold the broken row: one chunk fewer than `limit`.
        let around = HistoryWindow {
            since_seq: Some(seq - 3),
            before_seq: Some(seq + 2),
            limit: Some(3),
        };
        let page = store.window("c", around).await.unwrap();
        let expected: Vec<StoredChunk> = without
            .iter()
            .filter(|c| c.seq == seq - 1 || c.seq == seq + 1)
            .cloned()
            .collect();
        assert_eq!(
            page,
            HistoryPage {
                chunks: expected,
                last_seq: 10,
                has_more: true
            }
        );

        // The conversation goes on.
        let stored = store
            .append("c", None, None, &step(4, "out 4"))
            .await
            .unwrap();
        assert_eq!(
            stored.iter().map(|c| c.seq).collect::<Vec<_>>(),
            [11, 12, 13]
        );
        let history = store.load("c").await.unwrap();
        check_provider_valid(&history.messages).unwrap();
        assert_eq!(
            history.messages[history.messages.len() - 2..],
            step(4, "out 4")
        );
        db.close().await;
    });
}

#[test]
fn a_corrupt_row_is_skipped_and_never_fails_the_conversation() {
    let skipped = RepairReport {
        skipped_corrupt_rows: 1,
        ..RepairReport::default()
    };
    // Seq 5: the text of step 2's assistant message `a2`.
    let drop_text = |m: &mut Vec<Message>| {
        m[3].chunks.remove(0);
    };
    check(5, Damage::Garbage, drop_text, skipped);
    check(5, Damage::Truncated, drop_text, skipped);
    // Seq 6: step 2's tool call; its result is then an orphan, and `t2` goes with it.
    let drop_call = |m: &mut Vec<Message>| {
        m[3].chunks.remove(1);
        m.remove(4);
    };
    let orphan = RepairReport {
        dropped_orphan_results: 1,
        ..skipped
    };
    check(6, Damage::Garbage, drop_call, orphan);
    check(6, Damage::Truncated, drop_call, orphan);
    // Seq 7: step 2's result; the call gets a synthesized "interrupted" one.
    let interrupt = |m: &mut Vec<Message>| {
        m[4] = tool(
            "a2:results",
            vec![Chunk::ToolResult {
                tool_call_id: Id::from("call2"),
                tool_name: "run_shell".into(),
                output: INTERRUPTED_OUTPUT.into(),
                is_error: true,
            }],
        );
    };
    let synthesized = RepairReport {
        synthesized_results: 1,
        ..skipped
    };
    check(7, Damage::Garbage, interrupt, synthesized);
    check(7, Damage::Truncated, interrupt, synthesized);
}
