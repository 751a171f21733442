#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The testkit tools: compliance, the config switch, and each tool's behaviour.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dispatch_kernel::abi::{Extension, Tool, ToolCtx, ToolError};
use dispatch_kernel::host::{Host, HostConfig};
use dispatch_tool_testkit::{ToolTestkitExtension, tools};
use dispatch_wire::OutputStream;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn ctx(cancel: CancellationToken, out: Arc<Mutex<Vec<String>>>) -> ToolCtx {
    ToolCtx {
        conversation_id: "c".into(),
        turn_id: "t".into(),
        step_id: "t#0".into(),
        tool_call_id: "call".into(),
        cwd: None,
        workspace_id: None,
        computer_id: None,
        cancel,
        output: Arc::new(move |stream: OutputStream, chunk: &str| {
            assert_eq!(stream, OutputStream::Stdout);
            out.lock().unwrap().push(chunk.to_string());
        }),
    }
}

fn tool(name: &str) -> Arc<dyn Tool> {
    tools().into_iter().find(|t| t.spec().name == name).unwrap()
}

fn enabled() -> HostConfig {
    let mut config = HostConfig::default();
    let mut table = toml::Table::new();
    table.insert("enabled".into(), toml::Value::Boolean(true));
    config.extensions.insert("tool-testkit".into(), table);
    config
}

#[test]
fn is_compliant() {
    dispatch_test_support::assert_extension_compliance(
        Arc::new(ToolTestkitExtension),
        env!("CARGO_MANIFEST_DIR"),
        Vec::new(),
        enabled(),
    );
}

#[tokio::test]
async fn registers_nothing_unless_enabled() {
    let ext: Arc<dyn Extension> = Arc::new(ToolTestkitExtension);
    let mut host = Host::new(vec![ext.clone()], HostConfig::default()).unwrap();
    host.activate().await.unwrap();
    assert!(host.catalog().tools().is_empty());
    host.deactivate().await;
    let mut host = Host::new(vec![ext], enabled()).unwrap();
    host.activate().await.unwrap();
    let mut names: Vec<String> = host
        .catalog()
        .tools()
        .iter()
        .map(|t| t.spec().name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["testkit_echo", "testkit_hang", "testkit_wait"]);
}

#[tokio::test]
async fn echo_returns_its_input() {
    let out = Arc::new(Mutex::new(Vec::new()));
    let result = tool("testkit_echo")
        .call(json!({"a": [1, 2]}), ctx(CancellationToken::new(), out))
        .await
        .unwrap();
    assert_eq!(result.content, r#"{"a":[1,2]}"#);
}

#[tokio::test(start_paused = true)]
async fn wait_streams_ticks_and_stops_on_cancel() {
    let out = Arc::new(Mutex::new(Vec::new()));
    let result = tool("testkit_wait")
        .call(
            json!({"ticks": 3, "interval_ms": 10}),
            ctx(CancellationToken::new(), out.clone()),
        )
        .await
        .unwrap();
    assert_eq!(result.content, "done");
    assert_eq!(*out.lock().unwrap(), ["tick 1\n", "tick 2\n", "tick 3\n"]);

    let cancel = CancellationToken::new();
    let wait = tool("testkit_wait");
    let call = wait.call(
        json!({"ticks": 1000, "interval_ms": 1000}),
        ctx(cancel.clone(), Arc::new(Mutex::new(Vec::new()))),
    );
    let canceller = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cancel.cancel();
    };
    let (result, ()) = tokio::join!(call, canceller);
    assert_eq!(result.unwrap_err(), ToolError::Aborted);
}

#[tokio::test]
async fn wait_rejects_bad_arguments() {
    let err = tool("testkit_wait")
        .call(
            json!({"ticks": "many"}),
            ctx(CancellationToken::new(), Arc::new(Mutex::new(Vec::new()))),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ToolError::Model("`ticks` must be an integer 0..=1000".into())
    );
}

#[tokio::test(start_paused = true)]
async fn hang_never_returns_even_when_cancelled() {
    let cancel = CancellationToken::new();
    cancel.cancel();
    let hang = tool("testkit_hang");
    let call = hang.call(json!({}), ctx(cancel, Arc::new(Mutex::new(Vec::new()))));
    let timed = tokio::time::timeout(Duration::from_secs(3600), call).await;
    assert!(timed.is_err(), "hang returned");
}
