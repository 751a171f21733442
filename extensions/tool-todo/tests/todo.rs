#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The extension in a host (compliance first), the tool's replace semantics and failures,
//! persistence across a host restart on a real SQLite file, and the todos route served
//! in-process (`oneshot` on the mounted router).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use dispatch_kernel::abi::{
    CLOCK, Clock, Extension, Manifest, STORAGE, Tool, ToolCtx, ToolError, ToolOutput,
};
use dispatch_kernel::host::{Host, HostApi, HostConfig};
use dispatch_kernel::{BoxError, Error};
use dispatch_storage_sqlite::StorageSqliteExtension;
use dispatch_test_support::{
    MemoryStorage, ToolCompliance, assert_extension_compliance, assert_tool_compliance,
};
use dispatch_tool_todo::{Config, TodoStore, TodoWriteTool, ToolTodoExtension, store};
use dispatch_transport_kit::{ROUTES, RouteRegistry};
use dispatch_wire::Id;
use expect_test::expect;
use http_body_util::BodyExt;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// 2023-11-14 22:13:20 UTC.
const NOW_MS: i64 = 1_700_000_000_000;

fn stub_manifest(id: &str) -> Result<Manifest, Error> {
    Manifest::parse(&format!(
        "id = \"{id}\"\nversion = \"0.1.0\"\nkernel = \"^0.4\"\ntier = \"core\"\n"
    ))
}

/// Stands in for `transport-http`: provides `ROUTES`.
struct RoutesExtension(Arc<RouteRegistry>);

#[async_trait]
impl Extension for RoutesExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        stub_manifest("transport-http")
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        host.provide(&ROUTES, self.0.clone())?;
        Ok(())
    }
}

/// Stands in for `storage-sqlite`: provides `STORAGE` backed by a [`MemoryStorage`].
struct MemoryStorageExtension(MemoryStorage);

#[async_trait]
impl Extension for MemoryStorageExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        stub_manifest("storage-sqlite")
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        host.provide(&STORAGE, Arc::new(self.0.clone()))?;
        Ok(())
    }
}

struct FixedClock;

impl Clock for FixedClock {
    fn monotonic(&self) -> Duration {
        Duration::ZERO
    }

    fn unix_ms(&self) -> i64 {
        NOW_MS
    }
}

/// Stands in for `clock`: a wall clock stopped at [`NOW_MS`].
struct FixedClockExtension;

#[async_trait]
impl Extension for FixedClockExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        stub_manifest("clock")
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let clock: Arc<dyn Clock> = Arc::new(FixedClock);
        host.provide(&CLOCK, clock)?;
        Ok(())
    }
}

fn ctx(conversation_id: &str) -> ToolCtx {
    ToolCtx {
        conversation_id: Id::from(conversation_id),
        turn_id: Id::from("t_1"),
        step_id: Id::from("t_1#0"),
        tool_call_id: Id::from("call_1"),
        cwd: None,
        workspace_id: None,
        computer_id: None,
        cancel: CancellationToken::new(),
        output: Arc::new(|_, _| {}),
    }
}

async fn tool_on(storage: &MemoryStorage) -> Arc<dyn Tool> {
    let clock: Arc<dyn Clock> = Arc::new(FixedClock);
    let store = TodoStore::open(Arc::new(storage.clone()), Some(clock))
        .await
        .unwrap();
    Arc::new(TodoWriteTool::new(store, Config::default()))
}

async fn write(
    tool: &dyn Tool,
    conversation_id: &str,
    todos: Value,
) -> Result<ToolOutput, ToolError> {
    tool.call(json!({ "todos": todos }), ctx(conversation_id))
        .await
}

/// `GET uri` on the mounted routes: status and body.
async fn get(routes: &RouteRegistry, uri: &str) -> (StatusCode, String) {
    let response = routes
        .router()
        .expect("nothing mounted")
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[test]
fn is_compliant() {
    assert_extension_compliance(
        Arc::new(ToolTodoExtension::default()),
        env!("CARGO_MANIFEST_DIR"),
        vec![
            Arc::new(MemoryStorageExtension(MemoryStorage::new())),
            Arc::new(RoutesExtension(dispatch_transport_kit::registry())),
        ],
        HostConfig::default(),
    );
}

#[tokio::test]
async fn the_tool_is_compliant() {
    let tool = tool_on(&MemoryStorage::new()).await;
    assert_eq!(tool.spec().name, "todo_write");
    assert!(!tool.spec().concurrency_safe);
    assert!(tool.spec().capabilities.is_empty());
    assert_tool_compliance(
        tool,
        ToolCompliance {
            input: json!({"todos": [{"id": "1", "content": "Plan", "status": "pending"}]}),
            cwd: None,
            output_cap: Some(200 * 1024),
        },
    )
    .await;
}

#[tokio::test]
async fn a_write_replaces_the_whole_list_of_its_conversation_only() {
    let storage = MemoryStorage::new();
    let tool = tool_on(&storage).await;
    let first = write(
        &*tool,
        "c1",
        json!([
            {"id": "1", "content": "Add flag", "status": "in_progress"},
            {"id": "2", "content": "Test it", "status": "pending"},
        ]),
    )
    .await
    .unwrap();
    expect![[r#"
        Todo list updated: 2 items (1 in progress, 1 pending).
        [>] 1 Add flag
        [ ] 2 Test it"#]]
    .assert_eq(&first.content);
    write(
        &*tool,
        "c2",
        json!([{"id": "x", "content": "Other", "status": "pending"}]),
    )
    .await
    .unwrap();

    // Item 2 is left out of the second call: it is gone, not kept.
    let second = write(
        &*tool,
        "c1",
        json!([
            {"id": "1", "content": "Add flag", "status": "completed"},
            {"id": "3", "content": "Docs", "status": "pending", "priority": "low"},
        ]),
    )
    .await
    .unwrap();
    expect![[r#"
        Todo list updated: 2 items (1 completed, 1 pending).
        [x] 1 Add flag
        [ ] 3 Docs (low)"#]]
    .assert_eq(&second.content);

    let kv = storage.kv(store::SCOPE);
    let shown: Vec<String> = kv
        .iter()
        .map(|(key, value)| format!("{key} = {}", String::from_utf8_lossy(value)))
        .collect();
    expect![[r#"
        layout = {"layout":1}
        todos/c1 = {"todos":[{"id":"1","content":"Add flag","status":"completed"},{"id":"3","content":"Docs","status":"pending","priority":"low"}],"updatedAt":1700000000000}
        todos/c2 = {"todos":[{"id":"x","content":"Other","status":"pending"}],"updatedAt":1700000000000}"#]]
    .assert_eq(&shown.join("\n"));

    // An empty list clears it.
    let cleared = write(&*tool, "c1", json!([])).await.unwrap();
    assert_eq!(cleared.content, "Todo list cleared (0 items).");
}

#[tokio::test]
async fn a_rejected_list_leaves_the_stored_one_alone() {
    let storage = MemoryStorage::new();
    let tool = tool_on(&storage).await;
    write(
        &*tool,
        "c1",
        json!([{"id": "1", "content": "Keep", "status": "pending"}]),
    )
    .await
    .unwrap();
    let commits = storage.commits();
    let err = write(
        &*tool,
        "c1",
        json!([
            {"id": "1", "content": "a", "status": "pending"},
            {"id": "1", "content": "b", "status": "pending"},
        ]),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        ToolError::Model("todos[1].id `1` repeats todos[0].id; ids must be unique".into())
    );
    assert_eq!(storage.commits(), commits);
}

#[tokio::test]
async fn a_failed_write_is_fatal() {
    let storage = MemoryStorage::new();
    let tool = tool_on(&storage).await;
    storage.fail_next_write();
    let err = write(
        &*tool,
        "c1",
        json!([{"id": "1", "content": "a", "status": "pending"}]),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ToolError::Fatal(message) if message.starts_with("the todo list was not saved")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unreadable_record_reads_as_an_empty_list() {
    let storage = MemoryStorage::new();
    let routes = dispatch_transport_kit::registry();
    let mut host = Host::new(
        vec![
            Arc::new(ToolTodoExtension::default()),
            Arc::new(MemoryStorageExtension(storage.clone())),
            Arc::new(RoutesExtension(routes.clone())),
        ],
        HostConfig::default(),
    )
    .unwrap();
    host.activate().await.unwrap();
    storage.put_raw(store::SCOPE, "todos/c1", b"{not json");
    let (status, body) = get(&routes, "/conversations/c1/todos").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"conversationId":"c1","todos":[]}"#);
    host.deactivate().await;
}

#[tokio::test]
async fn the_route_serves_lists_and_validates_the_id() {
    let routes = dispatch_transport_kit::registry();
    let mut host = Host::new(
        vec![
            Arc::new(ToolTodoExtension::default()),
            Arc::new(MemoryStorageExtension(MemoryStorage::new())),
            Arc::new(RoutesExtension(routes.clone())),
            Arc::new(FixedClockExtension),
        ],
        HostConfig::default(),
    )
    .unwrap();
    host.activate().await.unwrap();
    assert_eq!(routes.owners(), vec!["tool-todo".to_string()]);
    let tool = host
        .catalog()
        .tools()
        .into_iter()
        .find(|t| t.spec().name == "todo_write")
        .unwrap();
    write(
        &*tool,
        "c_1.a:b-c",
        json!([{"id": "1", "content": "Ship", "status": "in_progress", "priority": "high"}]),
    )
    .await
    .unwrap();

    let (status, body) = get(&routes, "/conversations/c_1.a:b-c/todos").await;
    assert_eq!(status, StatusCode::OK);
    expect![[r#"{"conversationId":"c_1.a:b-c","todos":[{"id":"1","content":"Ship","status":"in_progress","priority":"high"}],"updatedAt":1700000000000}"#]]
    .assert_eq(&body);

    let (status, body) = get(&routes, "/conversations/never-written/todos").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"conversationId":"never-written","todos":[]}"#);

    let long = "x".repeat(129);
    for bad in ["a%20b", "a%2Fb", "%FF", long.as_str()] {
        let (status, body) = get(&routes, &format!("/conversations/{bad}/todos")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["field"], "id", "{bad}: {body}");
        assert_eq!(body["code"], "invalid", "{bad}: {body}");
    }
    let (status, _) = get(
        &routes,
        &format!("/conversations/{}/todos", "x".repeat(128)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    host.deactivate().await;
    assert!(routes.owners().is_empty());
    assert!(routes.router().is_none());
}

/// Boots storage-sqlite (its database in `data_dir`), the routes stand-in and the extension.
async fn boot_on_sqlite(data_dir: &std::path::Path, routes: Arc<RouteRegistry>) -> Host {
    let mut host = Host::new(
        vec![
            Arc::new(ToolTodoExtension::default()),
            Arc::new(StorageSqliteExtension::default()),
            Arc::new(RoutesExtension(routes)),
        ],
        HostConfig {
            data_dir: data_dir.to_path_buf(),
            ..HostConfig::default()
        },
    )
    .unwrap();
    host.activate().await.unwrap();
    host
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_survive_a_host_restart_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let routes = dispatch_transport_kit::registry();
    let mut host = boot_on_sqlite(dir.path(), routes.clone()).await;
    let tool = host
        .catalog()
        .tools()
        .into_iter()
        .find(|t| t.spec().name == "todo_write")
        .unwrap();
    write(
        &*tool,
        "c1",
        json!([
            {"id": "1", "content": "Persist", "status": "completed"},
            {"id": "2", "content": "Restart", "status": "pending"},
        ]),
    )
    .await
    .unwrap();
    drop(tool);
    host.deactivate().await;
    drop(host);
    assert!(dir.path().join("dispatch.db").exists());

    let routes = dispatch_transport_kit::registry();
    let mut host = boot_on_sqlite(dir.path(), routes.clone()).await;
    let (status, body) = get(&routes, "/conversations/c1/todos").await;
    assert_eq!(status, StatusCode::OK);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["todos"],
        json!([
            {"id": "1", "content": "Persist", "status": "completed"},
            {"id": "2", "content": "Restart", "status": "pending"},
        ])
    );
    // Stamped by the system clock (no clock service in this host).
    assert!(body["updatedAt"].as_i64().unwrap() > NOW_MS);
    host.deactivate().await;
}
