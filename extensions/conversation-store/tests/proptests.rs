#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests on `MemoryStorage`: (a) append/load/window invariants for clean histories,
//! (b) any history, however broken, loads provider-valid.

mod common;

use common::*;
use dispatch_conversation_store::keys;
use dispatch_conversation_store::repair::check_provider_valid;
use dispatch_kernel::abi::{ConversationStore, HistoryWindow, Message};
use dispatch_wire::{Chunk, Id, Role, StoredChunk};
use proptest::prelude::*;
use serde_json::{Value, json};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// --- (a) clean histories ---

/// One turn-shaped piece of a clean history.
#[derive(Debug, Clone)]
enum Step {
    User(String),
    Assistant {
        reasoning: Option<String>,
        text: Option<String>,
        calls: usize,
    },
}

fn words() -> impl Strategy<Value = String> {
    "[a-zA-Zé0-9 ]{0,12}[a-z]"
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        words().prop_map(Step::User),
        (
            prop::option::of(words()),
            prop::option::of(words()),
            0usize..4
        )
            .prop_map(|(reasoning, text, calls)| Step::Assistant {
                reasoning,
                // An assistant message without tool calls has text.
                text: if calls == 0 {
                    Some(text.unwrap_or_else(|| "ok".into()))
                } else {
                    text
                },
                calls,
            }),
    ]
}

/// Messages of a provider-valid history with unique message and call ids.
fn clean_messages(steps: &[Step]) -> Vec<Message> {
    let mut messages = Vec::new();
    let mut next_call = 0;
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::User(t) => messages.push(user(&format!("u{i}"), t)),
            Step::Assistant {
                reasoning,
                text: body,
                calls,
            } => {
                let mut chunks = Vec::new();
                if let Some(r) = reasoning {
                    chunks.push(Chunk::Reasoning {
                        text: r.clone(),
                        signature: Some("sig".into()),
                        redacted: None,
                    });
                }
                if let Some(t) = body {
                    chunks.push(text(t));
                }
                let ids: Vec<String> = (0..*calls)
                    .map(|_| {
                        next_call += 1;
                        format!("call{next_call}")
                    })
                    .collect();
                for (n, id) in ids.iter().enumerate() {
                    chunks.push(call(id, json!({"n": n, "path": format!("f{n}")})));
                }
                messages.push(assistant(&format!("a{i}"), chunks));
                if !ids.is_empty() {
                    let results = ids
                        .iter()
                        .map(|id| result(id, &format!("out {id}")))
                        .collect();
                    messages.push(tool(&format!("t{i}"), results));
                }
            }
        }
    }
    messages
}

/// Splits `messages` into consecutive appends at the given cut points.
fn batches(messages: &[Message], cuts: &[usize]) -> Vec<Vec<Message>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (messages.len() + 1)).collect();
    cuts.push(0);
    cuts.push(messages.len());
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .map(|w| messages[w[0]..w[1]].to_vec())
        .collect()
}

fn expected_window(
    full: &[StoredChunk],
    since: Option<u64>,
    before: Option<u64>,
    limit: Option<usize>,
) -> (Vec<StoredChunk>, bool) {
    let in_range: Vec<StoredChunk> = full
        .iter()
        .filter(|c| since.is_none_or(|s| c.seq > s) && before.is_none_or(|b| c.seq < b))
        .cloned()
        .collect();
    let take = limit.map_or(in_range.len(), |l| l.min(1000).min(in_range.len()));
    let cut = in_range.len() - take;
    (in_range[cut..].to_vec(), cut > 0)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn appends_load_and_windows_agree(
        steps in prop::collection::vec(step(), 0..16),
        cuts in prop::collection::vec(0usize..64, 0..6),
        windows in prop::collection::vec(
            (prop::option::of(0u64..50), prop::option::of(0u64..50), prop::option::of(0usize..20)),
            1..5,
        ),
    ) {
        runtime().block_on(async {
            let f = fixture().await;
            let messages = clean_messages(&steps);
            let mut returned = Vec::new();
            for batch in batches(&messages, &cuts) {
                returned.extend(f.store.append("c", None, None, &batch).await.unwrap());
            }
            let n = messages.iter().map(|m| m.chunks.len() as u64).sum::<u64>();
            let seqs: Vec<u64> = returned.iter().map(|c| c.seq).collect();
            prop_assert_eq!(seqs, (1..=n).collect::<Vec<_>>());

            let full = f.store.window("c", HistoryWindow::default()).await.unwrap();
            prop_assert_eq!(&full.chunks, &returned);
            prop_assert_eq!((full.last_seq, full.has_more), (n, false));

            for (since, before, limit) in windows {
                let page = f
                    .store
                    .window("c", HistoryWindow { since_seq: since, before_seq: before, limit })
                    .await
                    .unwrap();
                let (chunks, has_more) = expected_window(&full.chunks, since, before, limit);
                prop_assert_eq!(&page.chunks, &chunks, "window {:?} {:?} {:?}", since, before, limit);
                prop_assert_eq!((page.has_more, page.last_seq), (has_more, n));
            }

            let history = f.store.load("c").await.unwrap();
            prop_assert!(history.repair.is_clean(), "{:?}", history.repair);
            prop_assert_eq!(history.last_seq, n);
            prop_assert_eq!(&history.messages, &messages);
            Ok(())
        })?;
    }
}

// --- (b) broken histories ---

/// One stored row of an arbitrary, possibly broken history.
#[derive(Debug, Clone)]
enum Row {
    Chunk {
        message: u8,
        role: Role,
        chunk: Chunk,
    },
    /// Bytes that are not a history row.
    Corrupt(Vec<u8>),
    /// A well-formed row of a chunk kind this build does not know.
    FutureKind { message: u8 },
}

fn arguments() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"path": "a"})),
        Just(json!({})),
        Just(json!("{\"path\": \"b\"}")),
        "[ -~]{0,300}".prop_map(Value::String),
        Just(json!([1, 2])),
        Just(Value::Null),
        any::<i64>().prop_map(|n| json!(n)),
    ]
}

fn chunk() -> impl Strategy<Value = Chunk> {
    let call_id = (0u8..6).prop_map(|n| Id::from(format!("k{n}")));
    prop_oneof![
        "[a-z ]{0,6}".prop_map(|t| Chunk::Text { text: t }),
        "[a-z]{0,6}".prop_map(|t| Chunk::Reasoning {
            text: t,
            signature: None,
            redacted: None
        }),
        (call_id.clone(), arguments()).prop_map(|(tool_call_id, input)| Chunk::ToolCall {
            tool_call_id,
            tool_name: "run".into(),
            input,
        }),
        (call_id, any::<bool>()).prop_map(|(tool_call_id, is_error)| Chunk::ToolResult {
            tool_call_id,
            tool_name: "run".into(),
            output: "out".into(),
            is_error,
        }),
        Just(Chunk::Error {
            message: "boom".into(),
            code: Some("500".into())
        }),
    ]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::User), Just(Role::Assistant), Just(Role::Tool)]
}

fn row() -> impl Strategy<Value = Row> {
    prop_oneof![
        8 => (0u8..6, role(), chunk()).prop_map(|(message, role, chunk)| Row::Chunk { message, role, chunk }),
        1 => prop::collection::vec(any::<u8>(), 0..20).prop_map(Row::Corrupt),
        1 => (0u8..6).prop_map(|message| Row::FutureKind { message }),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_history_loads_provider_valid(rows in prop::collection::vec(row(), 0..40)) {
        runtime().block_on(async {
            let f = fixture().await;
            let log = "h/c";
            let mut corrupt = 0;
            let mut calls_written = std::collections::HashSet::new();
            for row in &rows {
                match row {
                    Row::Chunk { message, role, chunk } => {
                        if let Chunk::ToolCall { tool_call_id, .. } = chunk {
                            calls_written.insert(tool_call_id.clone());
                        }
                        let message = Message::new(Id::from(format!("m{message}")), *role, vec![chunk.clone()]);
                        f.store.append("c", None, None, &[message]).await.unwrap();
                    }
                    Row::Corrupt(bytes) => {
                        // Random bytes almost never form a row; count only those that do not.
                        if serde_json::from_slice::<Value>(bytes).is_err() {
                            corrupt += 1;
                            f.storage.inject_raw(keys::SCOPE, log, bytes);
                        }
                    }
                    Row::FutureKind { message } => {
                        let data = format!(r#"{{"messageId":"m{message}","role":"assistant","createdAt":1,"chunk":{{"type":"image","url":"x"}}}}"#);
                        f.storage.inject_raw(keys::SCOPE, log, data.as_bytes());
                    }
                }
            }
            let history = f.store.load("c").await.unwrap();
            if let Err(problem) = check_provider_valid(&history.messages) {
                prop_assert!(false, "{problem}\n{:#?}", history.messages);
            }
            dispatch_test_support::check_history(&history.messages);
            prop_assert_eq!(history.repair.skipped_corrupt_rows, corrupt);
            prop_assert_eq!(history.last_seq, rows.iter().filter(|r| !matches!(r, Row::Corrupt(b) if serde_json::from_slice::<Value>(b).is_ok())).count() as u64);
            for message in &history.messages {
                for (id, _, _) in message.tool_calls() {
                    prop_assert!(calls_written.contains(id), "invented call {}", id);
                }
            }

            // Repair is a fixed point: the repaired history stored again loads unchanged.
            f.store.append("again", None, None, &history.messages).await.unwrap();
            let again = f.store.load("again").await.unwrap();
            prop_assert!(again.repair.is_clean(), "{:?}", again.repair);
            prop_assert_eq!(&again.messages, &history.messages);
            Ok(())
        })?;
    }
}
