#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every behaviour of the conversation store, through the `ConversationStore` trait on
//! `MemoryStorage`.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::*;
use dispatch_conversation_store::repair::{INTERRUPTED_OUTPUT, check_provider_valid};
use dispatch_conversation_store::{MAX_WINDOW, Store, keys};
use dispatch_kernel::abi::{
    ConversationFilter, ConversationSettings, ConversationStore, HistoryWindow, LogPage, LogRange,
    Migration, RepairReport, Scope, Storage, StorageError, StoreError, WorkspaceUpdate, WriteBatch,
    WriteReceipt,
};
use dispatch_test_support::MemoryStorage;
use dispatch_wire::{
    Chunk, ConversationStatus, DEFAULT_WORKSPACE_ID, FinishReason, ReasoningEffort, Role,
    StoredChunk, TurnMetrics, Usage,
};
use pretty_assertions::assert_eq;
use serde_json::json;

fn log(conversation_id: &str) -> String {
    format!("h/{conversation_id}")
}

fn seqs(chunks: &[StoredChunk]) -> Vec<u64> {
    chunks.iter().map(|c| c.seq).collect()
}

fn window(since: Option<u64>, before: Option<u64>, limit: Option<usize>) -> HistoryWindow {
    HistoryWindow {
        since_seq: since,
        before_seq: before,
        limit,
    }
}

async fn all(store: &Store, conversation_id: &str) -> Vec<StoredChunk> {
    store
        .window(conversation_id, HistoryWindow::default())
        .await
        .unwrap()
        .chunks
}

// --- append ---

#[tokio::test]
async fn append_assigns_gap_free_seqs_and_keeps_every_field() {
    let f = fixture().await;
    let turn = id("t1");
    let step = id("t1#0");
    let first = f
        .store
        .append("c1", Some(&turn), None, &[user("m1", "hello")])
        .await
        .unwrap();
    f.clock.advance(5);
    let second = f
        .store
        .append(
            "c1",
            Some(&turn),
            Some(&step),
            &[
                assistant("m2", vec![text("hi"), call("k1", json!({"cmd": "ls"}))]),
                tool("m3", vec![result("k1", "a b")]),
            ],
        )
        .await
        .unwrap();
    assert_eq!(seqs(&first), vec![1]);
    assert_eq!(seqs(&second), vec![2, 3, 4]);
    assert_eq!(
        second[2],
        StoredChunk {
            seq: 4,
            message_id: id("m3"),
            role: Role::Tool,
            turn_id: Some(turn.clone()),
            step_id: Some(step.clone()),
            created_at: START_MS + 5,
            chunk: result("k1", "a b"),
        }
    );
    let stored: Vec<StoredChunk> = first.into_iter().chain(second).collect();
    assert_eq!(all(&f.store, "c1").await, stored);
}

#[tokio::test]
async fn append_is_one_batch_that_creates_and_titles_the_conversation() {
    let f = fixture().await;
    assert_eq!(f.store.meta("c1").await.unwrap(), None);
    let commits = f.storage.commits();
    f.store
        .append(
            "c1",
            None,
            None,
            &[
                assistant("m0", vec![text("greeting first")]),
                user("m1", "  Fix the\n flaky   test  "),
                user("m2", "second"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(f.storage.commits(), commits + 1);
    let meta = f.store.meta("c1").await.unwrap().unwrap();
    assert_eq!(meta.title, "Fix the flaky test");
    assert_eq!(meta.workspace_id, DEFAULT_WORKSPACE_ID);
    assert_eq!(meta.status, ConversationStatus::Idle);
    assert_eq!(
        (meta.created_at, meta.last_activity_at),
        (START_MS, START_MS)
    );

    f.clock.advance(1000);
    f.store
        .append("c1", None, None, &[user("m3", "another title?")])
        .await
        .unwrap();
    let meta = f.store.meta("c1").await.unwrap().unwrap();
    assert_eq!(meta.title, "Fix the flaky test");
    assert_eq!(
        (meta.created_at, meta.last_activity_at),
        (START_MS, START_MS + 1000)
    );
}

#[tokio::test]
async fn derived_titles_are_cut_and_explicit_titles_stay() {
    let f = fixture().await;
    f.store
        .append("long", None, None, &[user("m1", &"word ".repeat(40))])
        .await
        .unwrap();
    let title = f.store.meta("long").await.unwrap().unwrap().title;
    assert_eq!(title.chars().count(), 80);
    assert!(title.ends_with('…'));

    f.store.ensure("named", None).await.unwrap();
    f.store.set_title("named", "  My title ").await.unwrap();
    f.store
        .append("named", None, None, &[user("m1", "not the title")])
        .await
        .unwrap();
    assert_eq!(
        f.store.meta("named").await.unwrap().unwrap().title,
        "My title"
    );
}

#[tokio::test]
async fn a_failed_write_commits_nothing() {
    let f = fixture().await;
    f.storage.fail_next_write();
    let err = f
        .store
        .append("c1", None, None, &[user("m1", "hello")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Storage(_)), "{err:?}");
    assert_eq!(f.store.meta("c1").await.unwrap(), None);
    assert_eq!(all(&f.store, "c1").await, vec![]);
    let stored = f
        .store
        .append("c1", None, None, &[user("m1", "hello")])
        .await
        .unwrap();
    assert_eq!(seqs(&stored), vec![1]);

    f.storage.fail_next_write();
    assert!(f.store.replace_history("c1", &[], None).await.is_err());
    assert_eq!(seqs(&all(&f.store, "c1").await), vec![1]);
    f.store
        .put_workspace("w", WorkspaceUpdate::default())
        .await
        .unwrap();
    f.store.set_workspace("c1", "w").await.unwrap();
    f.storage.fail_next_write();
    assert!(matches!(
        f.store.delete_workspace("w").await,
        Err(StoreError::Storage(_))
    ));
    assert!(f.store.workspace("w").await.unwrap().is_some());
    assert_eq!(f.store.meta("c1").await.unwrap().unwrap().workspace_id, "w");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_to_one_conversation_lose_nothing() {
    let f = fixture_with(ManualClock::ticking()).await;
    f.storage.set_yielding(true);
    let mut tasks = Vec::new();
    for task in 0..20 {
        let store = f.store.clone();
        tasks.push(tokio::spawn(async move {
            let messages = [
                user(&format!("u{task}"), &format!("message {task}")),
                assistant(&format!("a{task}"), vec![text("ok"), text("!")]),
            ];
            store.append("c1", None, None, &messages).await.unwrap()
        }));
    }
    let mut returned = Vec::new();
    for task in tasks {
        let stored = task.await.unwrap();
        let s = seqs(&stored);
        assert_eq!(
            s,
            (s[0]..s[0] + 3).collect::<Vec<_>>(),
            "one append's seqs are contiguous"
        );
        returned.extend(stored);
    }
    returned.sort_by_key(|c| c.seq);
    assert_eq!(seqs(&returned), (1..=60).collect::<Vec<_>>());
    let history = all(&f.store, "c1").await;
    assert_eq!(history, returned);
    let meta = f.store.meta("c1").await.unwrap().unwrap();
    let first_user = match &history[0].chunk {
        Chunk::Text { text } => text.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(meta.title, first_user);
    assert_eq!(meta.last_activity_at, f.clock.current());
    assert!(
        history
            .iter()
            .all(|c| c.created_at <= meta.last_activity_at)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_setting_and_metadata_updates_lose_nothing() {
    let f = fixture().await;
    f.store.ensure("c1", None).await.unwrap();
    f.store
        .put_workspace("w", WorkspaceUpdate::default())
        .await
        .unwrap();
    f.storage.set_yielding(true);
    let store = f.store.clone();
    let tasks = vec![
        tokio::spawn({
            let s = store.clone();
            async move { s.set_cwd("c1", Some("/a")).await }
        }),
        tokio::spawn({
            let s = store.clone();
            async move { s.set_model("c1", Some("m")).await }
        }),
        tokio::spawn({
            let s = store.clone();
            async move {
                s.set_reasoning_effort("c1", Some(ReasoningEffort::Low))
                    .await
            }
        }),
        tokio::spawn({
            let s = store.clone();
            async move { s.set_compact_percent("c1", Some(50)).await }
        }),
        tokio::spawn({
            let s = store.clone();
            async move { s.set_title("c1", "T").await.map(drop) }
        }),
        tokio::spawn({
            let s = store.clone();
            async move {
                s.set_status("c1", ConversationStatus::Active)
                    .await
                    .map(drop)
            }
        }),
        tokio::spawn({
            let s = store.clone();
            async move { s.set_workspace("c1", "w").await.map(drop) }
        }),
        tokio::spawn({
            let s = store.clone();
            async move {
                s.append("c1", None, None, &[user("m", "x")])
                    .await
                    .map(drop)
            }
        }),
    ];
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        f.store.settings("c1").await.unwrap(),
        ConversationSettings {
            cwd: Some("/a".into()),
            model: Some("m".into()),
            reasoning_effort: Some(ReasoningEffort::Low),
            compact_percent: Some(50),
        }
    );
    let meta = f.store.meta("c1").await.unwrap().unwrap();
    assert_eq!(
        (meta.title.as_str(), meta.status, meta.workspace_id.as_str()),
        ("T", ConversationStatus::Active, "w")
    );
}

#[tokio::test]
async fn append_refuses_bad_input() {
    let f = fixture().await;
    let unknown = assistant("m", vec![Chunk::Unknown]);
    assert!(matches!(
        f.store.append("c1", None, None, &[unknown]).await,
        Err(StoreError::Invalid { field: "chunk", .. })
    ));
    assert!(matches!(
        f.store.append("c1", None, None, &[user("", "x")]).await,
        Err(StoreError::Invalid {
            field: "messageId",
            ..
        })
    ));
    assert_eq!(f.store.meta("c1").await.unwrap(), None);
}

// --- load and repair ---

#[tokio::test]
async fn load_repairs_a_broken_chat_without_writing() {
    let f = fixture().await;
    f.store
        .append(
            "c1",
            None,
            None,
            &[
                user("u1", "run it"),
                assistant(
                    "a1",
                    vec![
                        text("running"),
                        call("k1", json!("{\"cmd\": \"ls\"")),
                        call("k2", json!({})),
                    ],
                ),
                tool(
                    "t1",
                    vec![
                        result("k2", "done"),
                        result("k2", "done again"),
                        result("zz", "?"),
                    ],
                ),
                assistant("a2", vec![error_chunk("provider 400")]),
                user("u2", "continue"),
            ],
        )
        .await
        .unwrap();
    let commits = f.storage.commits();
    let before = f.storage.log_entries(keys::SCOPE, &log("c1"));
    let history = f.store.load("c1").await.unwrap();
    assert_eq!(f.storage.commits(), commits);
    assert_eq!(f.storage.log_entries(keys::SCOPE, &log("c1")), before);

    check_provider_valid(&history.messages).unwrap();
    dispatch_test_support::check_history(&history.messages);
    assert_eq!(history.last_seq, 9);
    assert_eq!(
        history.repair,
        RepairReport {
            synthesized_results: 1,
            stripped_error_chunks: 1,
            dropped_empty_messages: 1,
            sanitized_arguments: 1,
            skipped_corrupt_rows: 0,
            dropped_orphan_results: 2,
        }
    );
    let ids: Vec<&str> = history.messages.iter().map(|m| &*m.id).collect();
    assert_eq!(ids, vec!["u1", "a1", "t1", "u2"]);
    assert_eq!(
        history.messages[2].chunks,
        vec![
            Chunk::ToolResult {
                tool_call_id: id("k1"),
                tool_name: "run_shell".into(),
                output: INTERRUPTED_OUTPUT.into(),
                is_error: true,
            },
            result("k2", "done"),
        ]
    );
    assert_eq!(
        history.messages[1].chunks[1],
        call("k1", json!({"_malformed_arguments": "{\"cmd\": \"ls\""}))
    );
    // People still see what happened, error included.
    let page = all(&f.store, "c1").await;
    assert!(page.iter().any(|c| matches!(c.chunk, Chunk::Error { .. })));
}

#[tokio::test]
async fn corrupt_rows_are_skipped_not_fatal() {
    let f = fixture().await;
    f.store
        .append("c1", None, None, &[user("u1", "hello")])
        .await
        .unwrap();
    f.storage.inject_raw(keys::SCOPE, &log("c1"), b"{not json");
    f.storage.inject_raw(keys::SCOPE, &log("c1"), b"\xff\xfe");
    f.storage.inject_raw(
        keys::SCOPE,
        &log("c1"),
        br#"{"messageId":"f","role":"user","createdAt":1,"chunk":{"type":"hologram"}}"#,
    );
    let stored = f
        .store
        .append("c1", None, None, &[assistant("a1", vec![text("hi")])])
        .await
        .unwrap();
    assert_eq!(seqs(&stored), vec![5]);

    let history = f.store.load("c1").await.unwrap();
    assert_eq!(history.repair.skipped_corrupt_rows, 2);
    assert_eq!(history.last_seq, 5);
    assert_eq!(
        history.messages,
        vec![user("u1", "hello"), assistant("a1", vec![text("hi")])]
    );

    let page = f
        .store
        .window("c1", HistoryWindow::default())
        .await
        .unwrap();
    assert_eq!(seqs(&page.chunks), vec![1, 5]);
    assert_eq!((page.last_seq, page.has_more), (5, false));

    // A corrupted committed row too.
    assert!(
        f.storage
            .overwrite_raw(keys::SCOPE, &log("c1"), 1, b"garbage")
    );
    let history = f.store.load("c1").await.unwrap();
    assert_eq!(history.repair.skipped_corrupt_rows, 3);
    assert_eq!(history.messages, vec![assistant("a1", vec![text("hi")])]);
}

#[tokio::test]
async fn an_unknown_conversation_loads_empty() {
    let f = fixture().await;
    let history = f.store.load("nobody").await.unwrap();
    assert_eq!(history, Default::default());
    let page = f
        .store
        .window("nobody", HistoryWindow::default())
        .await
        .unwrap();
    assert_eq!(page, Default::default());
}

// --- window ---

#[tokio::test]
async fn windows_are_exclusive_newest_first_cut_and_ascending() {
    let f = fixture().await;
    let messages: Vec<_> = (0..10).map(|i| user(&format!("m{i}"), "x")).collect();
    f.store.append("c1", None, None, &messages).await.unwrap();
    let page = f
        .store
        .window("c1", window(Some(2), Some(9), Some(3)))
        .await
        .unwrap();
    assert_eq!(
        (seqs(&page.chunks), page.has_more, page.last_seq),
        (vec![6, 7, 8], true, 10)
    );
    let page = f
        .store
        .window("c1", window(Some(8), None, None))
        .await
        .unwrap();
    assert_eq!((seqs(&page.chunks), page.has_more), (vec![9, 10], false));
    let page = f
        .store
        .window("c1", window(None, Some(4), Some(10)))
        .await
        .unwrap();
    assert_eq!((seqs(&page.chunks), page.has_more), (vec![1, 2, 3], false));
    let page = f
        .store
        .window("c1", window(Some(10), None, None))
        .await
        .unwrap();
    assert_eq!((seqs(&page.chunks), page.last_seq), (vec![], 10));
}

#[tokio::test]
async fn window_limits_are_capped() {
    let f = fixture().await;
    let messages: Vec<_> = (0..MAX_WINDOW + 5)
        .map(|i| user(&format!("m{i}"), "x"))
        .collect();
    f.store.append("c1", None, None, &messages).await.unwrap();
    let page = f
        .store
        .window("c1", window(None, None, Some(50_000)))
        .await
        .unwrap();
    assert_eq!(page.chunks.len(), MAX_WINDOW);
    assert_eq!(page.chunks[0].seq, 6);
    assert!(page.has_more);
}

/// Records every log range read through it.
struct SpyStorage {
    inner: MemoryStorage,
    reads: Arc<Mutex<Vec<LogRange>>>,
}

struct SpyScope {
    inner: Arc<dyn Scope>,
    reads: Arc<Mutex<Vec<LogRange>>>,
}

#[async_trait]
impl Storage for SpyStorage {
    async fn scope(
        &self,
        name: &str,
        migrations: &[Migration],
    ) -> Result<Arc<dyn Scope>, StorageError> {
        Ok(Arc::new(SpyScope {
            inner: self.inner.scope(name, migrations).await?,
            reads: self.reads.clone(),
        }))
    }
}

#[async_trait]
impl Scope for SpyScope {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        self.inner.list(prefix).await
    }
    async fn read_log(&self, log: &str, range: LogRange) -> Result<LogPage, StorageError> {
        self.reads.lock().unwrap().push(range);
        self.inner.read_log(log, range).await
    }
    async fn last_seq(&self, log: &str) -> Result<u64, StorageError> {
        self.inner.last_seq(log).await
    }
    async fn write(&self, batch: WriteBatch) -> Result<WriteReceipt, StorageError> {
        self.inner.write(batch).await
    }
}

#[tokio::test]
async fn a_window_reads_only_its_range_from_storage() {
    let reads = Arc::new(Mutex::new(Vec::new()));
    let spy = SpyStorage {
        inner: MemoryStorage::new(),
        reads: reads.clone(),
    };
    let store = Store::open(Arc::new(spy), ManualClock::fixed(), config())
        .await
        .unwrap();
    let messages: Vec<_> = (0..3000).map(|i| user(&format!("m{i}"), "x")).collect();
    store.append("c1", None, None, &messages).await.unwrap();
    reads.lock().unwrap().clear();
    let page = store
        .window("c1", window(Some(100), Some(2000), Some(20)))
        .await
        .unwrap();
    assert_eq!(page.chunks.len(), 20);
    store.window("c1", window(None, None, None)).await.unwrap();
    assert_eq!(
        *reads.lock().unwrap(),
        vec![
            LogRange {
                after: Some(100),
                before: Some(2000),
                limit: Some(20)
            },
            LogRange {
                after: None,
                before: None,
                limit: None
            },
        ]
    );
}

// --- metadata ---

#[tokio::test]
async fn ensure_creates_once_in_the_given_workspace() {
    let f = fixture().await;
    let meta = f.store.ensure("c1", Some("proj")).await.unwrap();
    assert_eq!(
        (meta.workspace_id.as_str(), meta.title.as_str()),
        ("proj", "")
    );
    let workspace = f.store.workspace("proj").await.unwrap().unwrap();
    assert_eq!(
        (workspace.title.as_str(), workspace.created_at),
        ("proj", START_MS)
    );
    f.clock.advance(10);
    let again = f.store.ensure("c1", Some("other")).await.unwrap();
    assert_eq!(again, meta);
    assert!(f.store.workspace("other").await.unwrap().is_some());
    let plain = f.store.ensure("c2", None).await.unwrap();
    assert_eq!(plain.workspace_id, DEFAULT_WORKSPACE_ID);
    assert!(matches!(
        f.store.ensure("c3", Some("Bad Slug")).await,
        Err(StoreError::Invalid {
            field: "workspaceId",
            ..
        })
    ));
}

#[tokio::test]
async fn list_filters_and_orders_by_recent_activity() {
    let f = fixture().await;
    for (i, name) in ["abc-1", "abc-2", "xyz-1"].into_iter().enumerate() {
        f.clock.advance(10);
        f.store
            .ensure(name, Some(if i == 2 { "w" } else { "default" }))
            .await
            .unwrap();
    }
    f.clock.advance(10);
    f.store
        .append("abc-1", None, None, &[user("m", "latest")])
        .await
        .unwrap();
    f.store
        .set_status("abc-2", ConversationStatus::Closed)
        .await
        .unwrap();
    f.store.set_model("xyz-1", Some("gpt-5")).await.unwrap();

    let ids = |metas: Vec<dispatch_wire::ConversationMeta>| -> Vec<String> {
        metas.into_iter().map(|m| m.id.to_string()).collect()
    };
    let everything = f.store.list(&ConversationFilter::default()).await.unwrap();
    assert_eq!(everything[1].model.as_deref(), Some("gpt-5"));
    assert_eq!(ids(everything), vec!["abc-1", "xyz-1", "abc-2"]);
    let filter = ConversationFilter {
        id_prefix: Some("abc".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(f.store.list(&filter).await.unwrap()),
        vec!["abc-1", "abc-2"]
    );
    let filter = ConversationFilter {
        statuses: vec![ConversationStatus::Active, ConversationStatus::Idle],
        ..Default::default()
    };
    assert_eq!(
        ids(f.store.list(&filter).await.unwrap()),
        vec!["abc-1", "xyz-1"]
    );
    let filter = ConversationFilter {
        workspace_id: Some("w".into()),
        ..Default::default()
    };
    assert_eq!(ids(f.store.list(&filter).await.unwrap()), vec!["xyz-1"]);
    let filter = ConversationFilter {
        id_prefix: Some("a/b".into()),
        ..Default::default()
    };
    assert!(matches!(
        f.store.list(&filter).await,
        Err(StoreError::Invalid {
            field: "idPrefix",
            ..
        })
    ));
}

#[tokio::test]
async fn title_status_and_workspace_setters() {
    let f = fixture().await;
    assert_eq!(
        f.store.set_title("c1", "x").await,
        Err(StoreError::NotFound {
            what: "conversation",
            id: "c1".into()
        })
    );
    f.store.ensure("c1", None).await.unwrap();
    assert_eq!(
        f.store.set_title("c1", "  Named \n").await.unwrap().title,
        "Named"
    );
    for bad in ["", "   ", &"t".repeat(201)] {
        assert!(matches!(
            f.store.set_title("c1", bad).await,
            Err(StoreError::Invalid { field: "title", .. })
        ));
    }
    assert_eq!(
        f.store
            .set_status("c1", ConversationStatus::Active)
            .await
            .unwrap()
            .status,
        ConversationStatus::Active
    );
    assert!(matches!(
        f.store.set_status("c1", ConversationStatus::Unknown).await,
        Err(StoreError::Invalid {
            field: "status",
            ..
        })
    ));
    assert_eq!(
        f.store.set_workspace("c1", "missing").await,
        Err(StoreError::NotFound {
            what: "workspace",
            id: "missing".into()
        })
    );
    f.store
        .put_workspace("w", WorkspaceUpdate::default())
        .await
        .unwrap();
    assert_eq!(
        f.store.set_workspace("c1", "w").await.unwrap().workspace_id,
        "w"
    );
    assert_eq!(
        f.store.set_workspace("c9", "w").await,
        Err(StoreError::NotFound {
            what: "conversation",
            id: "c9".into()
        })
    );
    let meta = f.store.meta("c1").await.unwrap().unwrap();
    assert_eq!(
        (meta.title.as_str(), meta.status, meta.workspace_id.as_str()),
        ("Named", ConversationStatus::Active, "w")
    );
}

#[tokio::test]
async fn a_corrupt_metadata_record_reads_as_absent_and_heals_on_append() {
    let f = fixture().await;
    f.store.ensure("c1", None).await.unwrap();
    f.storage.put_raw(keys::SCOPE, "meta/c1", b"{oops");
    assert_eq!(f.store.meta("c1").await.unwrap(), None);
    assert_eq!(
        f.store.list(&ConversationFilter::default()).await.unwrap(),
        vec![]
    );
    f.store
        .append("c1", None, None, &[user("m", "again")])
        .await
        .unwrap();
    assert_eq!(f.store.meta("c1").await.unwrap().unwrap().title, "again");
}

// --- workspaces ---

#[tokio::test]
async fn workspaces_are_created_updated_listed_and_deleted() {
    let f = fixture().await;
    let default = f
        .store
        .workspace(DEFAULT_WORKSPACE_ID)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (default.title.as_str(), default.default_cwd.clone()),
        ("Default", None)
    );
    let created = f
        .store
        .put_workspace("web", WorkspaceUpdate::default())
        .await
        .unwrap();
    assert_eq!(
        (created.title.as_str(), created.created_at),
        ("web", START_MS)
    );
    f.clock.advance(50);
    let updated = f
        .store
        .put_workspace(
            "web",
            WorkspaceUpdate {
                title: Some(" Web app ".into()),
                default_cwd: Some(Some("/home/me/web".into())),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (
            updated.title.as_str(),
            updated.default_cwd.as_deref(),
            updated.created_at
        ),
        ("Web app", Some("/home/me/web"), START_MS)
    );
    let cleared = f
        .store
        .put_workspace(
            "web",
            WorkspaceUpdate {
                title: None,
                default_cwd: Some(None),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (cleared.title.as_str(), cleared.default_cwd),
        ("Web app", None)
    );
    f.store
        .put_workspace("api", WorkspaceUpdate::default())
        .await
        .unwrap();
    let ids: Vec<String> = f
        .store
        .workspaces()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, vec!["default", "api", "web"]);

    for bad in ["", "Web", "-web", "a_b", &"a".repeat(65)] {
        assert!(matches!(
            f.store.put_workspace(bad, WorkspaceUpdate::default()).await,
            Err(StoreError::Invalid {
                field: "workspaceId",
                ..
            })
        ));
    }
    assert!(matches!(
        f.store
            .put_workspace(
                "web",
                WorkspaceUpdate {
                    title: Some(" ".into()),
                    default_cwd: None
                }
            )
            .await,
        Err(StoreError::Invalid { field: "title", .. })
    ));
    assert!(matches!(
        f.store
            .put_workspace(
                "web",
                WorkspaceUpdate {
                    title: None,
                    default_cwd: Some(Some("a\0".into()))
                }
            )
            .await,
        Err(StoreError::Invalid {
            field: "defaultCwd",
            ..
        })
    ));
    assert_eq!(f.store.workspace("nope").await.unwrap(), None);
}

#[tokio::test]
async fn deleting_a_workspace_closes_and_moves_its_conversations_in_one_batch() {
    let f = fixture().await;
    f.store.ensure("a", Some("web")).await.unwrap();
    f.store.ensure("b", Some("web")).await.unwrap();
    f.store.ensure("c", Some("api")).await.unwrap();
    f.store
        .set_status("a", ConversationStatus::Active)
        .await
        .unwrap();
    let commits = f.storage.commits();
    assert_eq!(f.store.delete_workspace("web").await.unwrap(), 2);
    assert_eq!(f.storage.commits(), commits + 1);
    assert_eq!(f.store.workspace("web").await.unwrap(), None);
    for id in ["a", "b"] {
        let meta = f.store.meta(id).await.unwrap().unwrap();
        assert_eq!(
            (meta.status, meta.workspace_id.as_str()),
            (ConversationStatus::Closed, "default")
        );
    }
    let c = f.store.meta("c").await.unwrap().unwrap();
    assert_eq!(
        (c.status, c.workspace_id.as_str()),
        (ConversationStatus::Idle, "api")
    );
    assert_eq!(
        f.store.delete_workspace("web").await,
        Err(StoreError::NotFound {
            what: "workspace",
            id: "web".into()
        })
    );
    assert!(matches!(
        f.store.delete_workspace("default").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(f.store.workspace("default").await.unwrap().is_some());
}

#[tokio::test]
async fn reopening_applies_migrations_once_and_keeps_the_default_workspace() {
    let storage = MemoryStorage::new();
    let clock = ManualClock::fixed();
    Store::open(Arc::new(storage.clone()), clock.clone(), config())
        .await
        .unwrap();
    clock.advance(1000);
    let store = Store::open(Arc::new(storage.clone()), clock, config())
        .await
        .unwrap();
    assert_eq!(storage.version(keys::SCOPE), 1);
    let default = store.workspace("default").await.unwrap().unwrap();
    assert_eq!(default.created_at, START_MS);
}

// --- settings and cwd ---

#[tokio::test]
async fn settings_are_set_validated_and_cleared() {
    let f = fixture().await;
    assert_eq!(
        f.store.settings("c1").await.unwrap(),
        ConversationSettings::default()
    );
    f.store.set_cwd("c1", Some("src/app")).await.unwrap();
    f.store
        .set_model("c1", Some(" claude-opus "))
        .await
        .unwrap();
    f.store
        .set_reasoning_effort("c1", Some(ReasoningEffort::Xhigh))
        .await
        .unwrap();
    f.store.set_compact_percent("c1", Some(0)).await.unwrap();
    assert_eq!(
        f.store.settings("c1").await.unwrap(),
        ConversationSettings {
            cwd: Some("src/app".into()),
            model: Some("claude-opus".into()),
            reasoning_effort: Some(ReasoningEffort::Xhigh),
            compact_percent: Some(0),
        }
    );
    // Settings alone do not create the conversation.
    assert_eq!(f.store.meta("c1").await.unwrap(), None);
    f.store.ensure("c1", None).await.unwrap();
    assert_eq!(
        f.store.meta("c1").await.unwrap().unwrap().model.as_deref(),
        Some("claude-opus")
    );

    let invalid = [
        f.store.set_cwd("c1", Some("")).await,
        f.store.set_cwd("c1", Some("a\0b")).await,
        f.store.set_cwd("c1", Some(&"d".repeat(4097))).await,
        f.store.set_model("c1", Some("  ")).await,
        f.store.set_model("c1", Some(&"m".repeat(201))).await,
        f.store.set_compact_percent("c1", Some(101)).await,
    ];
    let fields: Vec<&str> = invalid
        .into_iter()
        .map(|r| match r {
            Err(StoreError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        fields,
        vec!["cwd", "cwd", "cwd", "model", "model", "compactPercent"]
    );

    f.store.set_cwd("c1", None).await.unwrap();
    f.store.set_model("c1", None).await.unwrap();
    f.store.set_reasoning_effort("c1", None).await.unwrap();
    f.store.set_compact_percent("c1", None).await.unwrap();
    assert_eq!(
        f.store.settings("c1").await.unwrap(),
        ConversationSettings::default()
    );
    assert_eq!(f.store.meta("c1").await.unwrap().unwrap().model, None);
    assert!(
        !f.storage
            .kv(keys::SCOPE)
            .iter()
            .any(|(k, _)| k.starts_with("set/"))
    );
}

#[tokio::test]
async fn an_unknown_stored_reasoning_effort_reads_as_unset() {
    let f = fixture().await;
    f.storage.put_raw(
        keys::SCOPE,
        "set/c1",
        br#"{"cwd":"/x","reasoningEffort":"ultra"}"#,
    );
    let settings = f.store.settings("c1").await.unwrap();
    assert_eq!(
        (settings.cwd.as_deref(), settings.reasoning_effort),
        (Some("/x"), None)
    );
}

#[tokio::test]
async fn effective_cwd_falls_through_and_resolves_relative_paths() {
    let f = fixture().await;
    let cwd = |p: &str| PathBuf::from(p);
    // Unknown conversation: the server default, or the override against it.
    assert_eq!(
        f.store.effective_cwd("new", None).await.unwrap(),
        cwd("/srv/dispatch")
    );
    assert_eq!(
        f.store
            .effective_cwd("new", Some("sub/./x/.."))
            .await
            .unwrap(),
        cwd("/srv/dispatch/sub")
    );

    f.store.ensure("c1", Some("web")).await.unwrap();
    assert_eq!(
        f.store.effective_cwd("c1", None).await.unwrap(),
        cwd("/srv/dispatch")
    );
    f.store
        .put_workspace(
            "web",
            WorkspaceUpdate {
                title: None,
                default_cwd: Some(Some("/home/me/web".into())),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        f.store.effective_cwd("c1", None).await.unwrap(),
        cwd("/home/me/web")
    );
    f.store.set_cwd("c1", Some("frontend")).await.unwrap();
    assert_eq!(
        f.store.effective_cwd("c1", None).await.unwrap(),
        cwd("/home/me/web/frontend")
    );
    assert_eq!(
        f.store.effective_cwd("c1", Some("../api")).await.unwrap(),
        cwd("/home/me/api")
    );
    assert_eq!(
        f.store.effective_cwd("c1", Some("/tmp/x/")).await.unwrap(),
        cwd("/tmp/x")
    );
    f.store.set_cwd("c1", Some("/abs/path")).await.unwrap();
    assert_eq!(
        f.store.effective_cwd("c1", None).await.unwrap(),
        cwd("/abs/path")
    );
    // Cwd set before the conversation exists, in a workspace assigned afterwards.
    f.store.set_cwd("c2", Some("docs")).await.unwrap();
    assert_eq!(
        f.store.effective_cwd("c2", None).await.unwrap(),
        cwd("/srv/dispatch/docs")
    );
    f.store.ensure("c2", Some("web")).await.unwrap();
    assert_eq!(
        f.store.effective_cwd("c2", None).await.unwrap(),
        cwd("/home/me/web/docs")
    );
    assert!(matches!(
        f.store.effective_cwd("c1", Some("")).await,
        Err(StoreError::Invalid { field: "cwd", .. })
    ));
}

#[tokio::test]
async fn a_relative_server_default_is_taken_from_the_working_directory() {
    let store = Store::open(
        Arc::new(MemoryStorage::new()),
        ManualClock::fixed(),
        dispatch_conversation_store::Config {
            server_default_cwd: Some("rel".into()),
        },
    )
    .await
    .unwrap();
    let expected = std::env::current_dir().unwrap().join("rel");
    assert_eq!(store.effective_cwd("c", None).await.unwrap(), expected);
}

// --- fork and replace ---

#[tokio::test]
async fn fork_copies_history_metadata_and_settings_under_a_new_id() {
    let f = fixture().await;
    let turn = id("t1");
    f.store.ensure("src", Some("web")).await.unwrap();
    let original = f
        .store
        .append(
            "src",
            Some(&turn),
            None,
            &[
                user("u1", "hello"),
                assistant("a1", vec![text("hi"), error_chunk("x")]),
            ],
        )
        .await
        .unwrap();
    f.store
        .set_status("src", ConversationStatus::Active)
        .await
        .unwrap();
    f.store.set_model("src", Some("m")).await.unwrap();
    f.store.set_cwd("src", Some("sub")).await.unwrap();
    f.clock.advance(500);

    let fork = f.store.fork("src", "archive-1").await.unwrap();
    assert_eq!(&*fork.id, "archive-1");
    assert_eq!(
        (
            fork.title.as_str(),
            fork.workspace_id.as_str(),
            fork.model.as_deref(),
            fork.status
        ),
        ("hello", "web", Some("m"), ConversationStatus::Idle)
    );
    assert_eq!(
        (fork.created_at, fork.last_activity_at),
        (START_MS + 500, START_MS + 500)
    );
    let copied = all(&f.store, "archive-1").await;
    assert_eq!(copied, original);
    assert_eq!(
        f.store.settings("archive-1").await.unwrap(),
        f.store.settings("src").await.unwrap()
    );
    assert_eq!(all(&f.store, "src").await, original);

    assert!(matches!(
        f.store.fork("src", "archive-1").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        f.store.fork("src", "src").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        f.store.fork("missing", "x").await,
        Err(StoreError::NotFound {
            what: "conversation",
            id: "missing".into()
        })
    );
    assert!(matches!(
        f.store.fork("src", "bad id").await,
        Err(StoreError::Invalid { field: "newId", .. })
    ));
}

#[tokio::test]
async fn replace_history_clears_appends_and_continues_seqs() {
    let f = fixture().await;
    let old: Vec<_> = (0..5).map(|i| user(&format!("m{i}"), "old")).collect();
    f.store.append("c1", None, None, &old).await.unwrap();
    f.store.fork("c1", "c1-archive").await.unwrap();
    let commits = f.storage.commits();
    let summary = [
        user("s1", "Summary of earlier work"),
        assistant("s2", vec![text("ok")]),
    ];
    let stored = f
        .store
        .replace_history("c1", &summary, Some("c1-archive"))
        .await
        .unwrap();
    assert_eq!(f.storage.commits(), commits + 1);
    assert_eq!(seqs(&stored), vec![6, 7]);
    assert_eq!(all(&f.store, "c1").await, stored);
    let history = f.store.load("c1").await.unwrap();
    assert_eq!((history.messages, history.last_seq), (summary.to_vec(), 7));
    let meta = f.store.meta("c1").await.unwrap().unwrap();
    assert_eq!(meta.compacted_from.as_deref(), Some("c1-archive"));
    assert_eq!(meta.title, "old");
    let next = f
        .store
        .append("c1", None, None, &[user("m9", "more")])
        .await
        .unwrap();
    assert_eq!(seqs(&next), vec![8]);
    assert_eq!(all(&f.store, "c1-archive").await.len(), 5);
    assert_eq!(
        f.store.replace_history("nope", &summary, None).await,
        Err(StoreError::NotFound {
            what: "conversation",
            id: "nope".into()
        })
    );
    assert!(matches!(
        f.store
            .replace_history("c1", &summary, Some("bad id"))
            .await,
        Err(StoreError::Invalid {
            field: "compactedFrom",
            ..
        })
    ));
}

// --- metrics ---

fn metrics(turn: &str) -> TurnMetrics {
    TurnMetrics {
        turn_id: id(turn),
        model: "m".into(),
        finish_reason: FinishReason::Stop,
        started_at: START_MS,
        duration_ms: 12,
        usage: Usage::default(),
        cost: None,
        context_size: Some(100),
        steps: vec![],
        system_prompt: vec![],
    }
}

#[tokio::test]
async fn metrics_are_returned_in_append_order_skipping_corrupt_ones() {
    let f = fixture().await;
    assert_eq!(f.store.metrics("c1").await.unwrap(), vec![]);
    f.store.append_metrics("c1", &metrics("t1")).await.unwrap();
    f.storage.inject_raw(keys::SCOPE, "m/c1", b"not metrics");
    f.store.append_metrics("c1", &metrics("t2")).await.unwrap();
    assert_eq!(
        f.store.metrics("c1").await.unwrap(),
        vec![metrics("t1"), metrics("t2")]
    );
}

// --- input validation ---

#[tokio::test]
async fn every_method_refuses_a_bad_conversation_id() {
    let f = fixture().await;
    let s = &f.store;
    for bad in ["", "a b", "a/b", "ü", &"x".repeat(129)] {
        let results: Vec<Result<(), StoreError>> = vec![
            s.append(bad, None, None, &[]).await.map(drop),
            s.load(bad).await.map(drop),
            s.window(bad, HistoryWindow::default()).await.map(drop),
            s.fork(bad, "x").await.map(drop),
            s.replace_history(bad, &[], None).await.map(drop),
            s.ensure(bad, None).await.map(drop),
            s.meta(bad).await.map(drop),
            s.set_title(bad, "t").await.map(drop),
            s.set_status(bad, ConversationStatus::Idle).await.map(drop),
            s.set_workspace(bad, "default").await.map(drop),
            s.settings(bad).await.map(drop),
            s.set_cwd(bad, None).await,
            s.set_model(bad, None).await,
            s.set_reasoning_effort(bad, None).await,
            s.set_compact_percent(bad, None).await,
            s.effective_cwd(bad, None).await.map(drop),
            s.append_metrics(bad, &metrics("t")).await,
            s.metrics(bad).await.map(drop),
        ];
        for (i, result) in results.into_iter().enumerate() {
            assert!(
                matches!(
                    result,
                    Err(StoreError::Invalid {
                        field: "conversationId",
                        ..
                    })
                ),
                "method #{i} with {bad:?}: {result:?}"
            );
        }
    }
    assert_eq!(
        f.storage.commits(),
        1,
        "only the default workspace was written"
    );
}

#[tokio::test]
async fn workspace_methods_refuse_a_bad_slug() {
    let f = fixture().await;
    let results = vec![
        f.store.workspace("Bad").await.map(drop),
        f.store
            .put_workspace("Bad", WorkspaceUpdate::default())
            .await
            .map(drop),
        f.store.delete_workspace("Bad").await.map(drop),
        f.store.set_workspace("c1", "Bad").await.map(drop),
        f.store
            .list(&ConversationFilter {
                workspace_id: Some("Bad".into()),
                ..Default::default()
            })
            .await
            .map(drop),
    ];
    for result in results {
        assert!(
            matches!(
                result,
                Err(StoreError::Invalid {
                    field: "workspaceId",
                    ..
                })
            ),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn an_empty_append_still_touches_the_conversation() {
    let f = fixture().await;
    let stored = f.store.append("c1", None, None, &[]).await.unwrap();
    assert_eq!(stored, vec![]);
    assert!(f.store.meta("c1").await.unwrap().is_some());
}
