#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue 5 acceptance, end to end: the real `dispatch-server` and `dispatch-mock-llm` binaries
//! on ephemeral 127.0.0.1 ports, driven by real HTTP and WebSocket clients (and the real
//! `dispatch` CLI). Tools come from the `tool-testkit` extension (enabled by the harness):
//! `testkit_echo` answers at once, `testkit_hang` never returns and ignores cancellation.

use std::process::Stdio;
use std::time::Duration;

use dispatch_mock_llm::{Item, Response};
use dispatch_system_tests::e2e::{
    Home, MockProc, ServerOptions, ServerProc, WsClient, bins, deltas, is_delta_of, server_command,
    types,
};
use serde_json::{Value, json};

fn slow_text(parts: &[&str], delay_ms: u64) -> Response {
    Response::stream(
        parts
            .iter()
            .map(|p| Item::text(p).delayed(delay_ms))
            .collect(),
    )
}

fn tool_call(id: &str, name: &str, args: &str) -> Response {
    Response::stream(vec![
        Item::text("Let me check."),
        Item::tool_call(id, name, args, 3),
    ])
}

fn roles(request: &Value) -> Vec<String> {
    request["body"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap().to_string())
        .collect()
}

fn violations(request: &Value) -> Vec<Value> {
    request["violations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_turn_conversation_with_tool_calls_reloads_identically_after_a_restart() {
    let mock = MockProc::start();
    let home = Home::new();
    let server = ServerProc::start(&home, Some(&mock.url), &ServerOptions::default());
    let api = server.api();

    mock.push(&[
        tool_call("call_1", "testkit_echo", r#"{"path":"a.txt"}"#),
        Response::text("The echo said a.txt."),
    ])
    .await;
    let first = api.chat(json!({"message": "Echo a.txt please"})).await;
    let id = first.conversation_id.clone();
    let kinds = first.types();
    assert_eq!(kinds.first().map(String::as_str), Some("user-message"));
    assert_eq!(kinds.last().map(String::as_str), Some("turn-sealed"));
    assert!(kinds.contains(&"tool-call".to_string()), "{kinds:?}");
    let result = first
        .events
        .iter()
        .find(|e| e["type"] == "tool-result")
        .unwrap();
    assert_eq!(result["output"], r#"{"path":"a.txt"}"#);
    assert_eq!(result["isError"], false);
    assert_eq!(first.done()["finishReason"], "stop");
    assert_eq!(first.done()["steps"], 2);

    mock.push(&[Response::text("Second answer.")]).await;
    let second = api
        .chat(json!({"conversationId": id, "message": "And again"}))
        .await;
    assert_eq!(second.text(), "Second answer.");

    let (status, before) = api.get(&format!("/conversations/{id}")).await;
    assert_eq!(status, 200, "{before}");
    let chunk_types: Vec<&str> = before["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["chunk"]["type"].as_str().unwrap_or("?"))
        .collect();
    assert!(chunk_types.contains(&"tool-call"), "{before}");
    assert!(chunk_types.contains(&"tool-result"), "{before}");
    let (_, metrics_before) = api.get(&format!("/conversations/{id}/metrics")).await;
    assert_eq!(metrics_before["turns"].as_array().unwrap().len(), 2);
    let (_, list_before) = api.get("/conversations").await;

    server.stop();
    let server = ServerProc::start(&home, Some(&mock.url), &ServerOptions::default());
    let api = server.api();
    let (status, after) = api.get(&format!("/conversations/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(before, after, "history changed across the restart");
    let (_, metrics_after) = api.get(&format!("/conversations/{id}/metrics")).await;
    assert_eq!(metrics_before, metrics_after);
    let (_, list_after) = api.get("/conversations").await;
    assert_eq!(list_before, list_after);

    // The reloaded history is what the provider gets next, and it accepts it.
    mock.push(&[Response::text("Third answer.")]).await;
    let third = api
        .chat(json!({"conversationId": id, "message": "Once more"}))
        .await;
    assert_eq!(third.text(), "Third answer.");
    let requests = mock.chat_requests().await;
    let last = requests.last().unwrap();
    assert_eq!(
        roles(last),
        [
            "system",
            "user",
            "assistant",
            "tool",
            "assistant",
            "user",
            "assistant",
            "user"
        ]
    );
    assert!(violations(last).is_empty(), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_clients_watch_one_turn_the_sender_leaves_and_a_late_joiner_gets_the_replay() {
    let mock = MockProc::start();
    let home = Home::new();
    let server = ServerProc::start(&home, Some(&mock.url), &ServerOptions::default());
    let parts: Vec<String> = (0..12).map(|i| format!("part{i} ")).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    mock.push(&[slow_text(&parts, 120)]).await;

    let mut sender = WsClient::connect(&server.ws_url()).await;
    sender
        .send(json!({"type": "chat.send", "message": "Count slowly", "requestId": "r-1"}))
        .await;
    let accepted = sender.until(|m| m["type"] == "chat.accepted").await;
    let id = accepted.last().unwrap()["conversationId"]
        .as_str()
        .unwrap()
        .to_string();

    let mut watcher = WsClient::connect(&server.ws_url()).await;
    watcher
        .send(json!({"type": "chat.subscribe", "conversationId": id}))
        .await;

    // The sender leaves after the first text delta: the turn must go on.
    sender.until(|m| is_delta_of(m, "text-delta")).await;
    sender.close().await;

    // A third client joins mid-turn.
    let mut early = watcher.until(|m| is_delta_of(m, "text-delta")).await;
    let mut late = WsClient::connect(&server.ws_url()).await;
    late.send(json!({"type": "chat.subscribe", "conversationId": id}))
        .await;

    early.extend(watcher.until(|m| is_delta_of(m, "turn-sealed")).await);
    let watched = deltas(&early, &id);
    let late_seen = late.until(|m| is_delta_of(m, "turn-sealed")).await;
    let subscribed = late_seen
        .iter()
        .find(|m| m["type"] == "chat.subscribed")
        .unwrap();
    assert_eq!(
        subscribed["isActive"], true,
        "the late joiner came mid-turn"
    );
    let replayed = deltas(&late_seen, &id);

    let kinds = types(&watched);
    assert_eq!(kinds.first().map(String::as_str), Some("user-message"));
    assert_eq!(
        &kinds[kinds.len() - 2..],
        ["done".to_string(), "turn-sealed".to_string()]
    );
    let text: String = watched
        .iter()
        .filter(|e| e["type"] == "text-delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, parts.concat());
    assert_eq!(
        replayed, watched,
        "the late joiner must see the whole turn, no gap, no duplicate"
    );

    // Persisted, though the sender left.
    let api = server.api();
    api.wait_idle(&id).await;
    let (_, history) = api.get(&format!("/conversations/{id}")).await;
    let stored: String = history["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["chunk"]["type"] == "text" && c["role"] == "assistant")
        .map(|c| c["chunk"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(stored, parts.concat());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_during_a_tool_that_never_returns_seals_aborted_and_the_next_message_is_accepted() {
    let mock = MockProc::start();
    let home = Home::new();
    let server = ServerProc::start(&home, Some(&mock.url), &ServerOptions::default());
    let api = server.api();
    let id = "e2e-stop-1";
    mock.push(&[tool_call("call_h", "testkit_hang", "{}")])
        .await;

    let mut watcher = WsClient::connect(&server.ws_url()).await;
    watcher
        .send(json!({"type": "chat.subscribe", "conversationId": id}))
        .await;
    watcher.until(|m| m["type"] == "chat.subscribed").await;
    let chat = {
        let api = api.clone();
        tokio::spawn(async move {
            api.chat(json!({"conversationId": id, "message": "Hang, please"}))
                .await
        })
    };
    watcher.until(|m| is_delta_of(m, "tool-call")).await;

    let (status, stopped) = api
        .post(&format!("/conversations/{id}/stop"), json!({}))
        .await;
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["abortedTurn"], true);
    assert_eq!(stopped["status"], "idle");

    let stream = tokio::time::timeout(Duration::from_secs(20), chat)
        .await
        .expect("the turn never sealed")
        .unwrap();
    assert_eq!(stream.done()["finishReason"], "aborted");
    assert_eq!(
        stream.types().last().map(String::as_str),
        Some("turn-sealed")
    );
    let result = stream
        .events
        .iter()
        .find(|e| e["type"] == "tool-result")
        .unwrap();
    assert_eq!(result["isError"], true);

    mock.push(&[Response::text("Back again.")]).await;
    let next = api
        .chat(json!({"conversationId": id, "message": "Still there?"}))
        .await;
    assert_eq!(next.text(), "Back again.");
    let requests = mock.chat_requests().await;
    assert!(violations(requests.last().unwrap()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_turn_then_restart_leaves_the_conversation_idle_and_usable() {
    let mock = MockProc::start();
    let home = Home::new();
    let server = ServerProc::start(&home, Some(&mock.url), &ServerOptions::default());
    let api = server.api();
    let id = "e2e-kill-1";
    let parts: Vec<String> = (0..50).map(|i| format!("w{i} ")).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    mock.push(&[
        tool_call("call_e", "testkit_echo", r#"{"n":1}"#),
        slow_text(&parts, 200),
    ])
    .await;

    let mut watcher = WsClient::connect(&server.ws_url()).await;
    watcher
        .send(json!({"type": "chat.subscribe", "conversationId": id}))
        .await;
    watcher.until(|m| m["type"] == "chat.subscribed").await;
    let request = api
        .request(reqwest::Method::POST, "/chat")
        .json(&json!({"conversationId": id, "message": "Echo then talk"}));
    let chat = tokio::spawn(async move { request.send().await.map(|r| r.status()) });
    watcher.until(|m| is_delta_of(m, "step-complete")).await;
    watcher.until(|m| is_delta_of(m, "text-delta")).await;
    server.kill9();
    let _ = chat.await;

    let server = ServerProc::start(&home, Some(&mock.url), &ServerOptions::default());
    let api = server.api();
    let (status, state) = api.get(&format!("/conversations/{id}/status")).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["isActive"], false);
    assert_eq!(state["status"], "idle", "the boot sweep repairs `active`");
    let (_, history) = api.get(&format!("/conversations/{id}")).await;
    let chunk_types: Vec<&str> = history["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["chunk"]["type"].as_str().unwrap())
        .collect();
    assert!(
        chunk_types.contains(&"tool-result"),
        "step 0 was committed: {history}"
    );

    mock.push(&[Response::text("Recovered.")]).await;
    let next = api
        .chat(json!({"conversationId": id, "message": "Are you back?"}))
        .await;
    assert_eq!(next.text(), "Recovered.");
    let requests = mock.chat_requests().await;
    let last = requests.last().unwrap();
    assert!(violations(last).is_empty(), "{last}");
    assert_eq!(roles(last), ["system", "user", "assistant", "tool", "user"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_bind_without_a_token_refuses_to_start() {
    let home = Home::new();
    let options = ServerOptions {
        bind: "0.0.0.0:0".into(),
        ..ServerOptions::default()
    };
    let output = server_command(&home, None, &options)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DISPATCH_TOKEN"), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("listening on"),
        "it must not listen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_requests_without_it_get_401() {
    let home = Home::new();
    let options = ServerOptions {
        token: Some("s3cret-token".into()),
        ..ServerOptions::default()
    };
    let server = ServerProc::start(&home, None, &options);
    let anonymous = reqwest::Client::new();
    for path in ["/health", "/conversations", "/models", "/openapi.json"] {
        let response = anonymous
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let wrong = anonymous
        .get(format!("{}/health", server.url))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let (status, _) = server.api().get("/health").await;
    assert_eq!(status, 200);
    let no_token_ws = server.url.replacen("http://", "ws://", 1) + "/ws";
    assert!(
        tokio_tungstenite::connect_async(no_token_ws).await.is_err(),
        "a WebSocket without the token must be refused"
    );
    let mut ws = WsClient::connect(&server.ws_url()).await;
    ws.send(json!({"type": "chat.subscribe", "conversationId": "c-token"}))
        .await;
    ws.until(|m| m["type"] == "chat.subscribed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_the_echo_model_answers_a_first_chat() {
    let home = Home::new();
    let server = ServerProc::start(&home, None, &ServerOptions::default());
    let api = server.api();
    let (_, models) = api.get("/models").await;
    let ids: Vec<&str> = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"echo"), "{models}");
    let chat = api.chat(json!({"message": "hello offline world"})).await;
    assert!(
        chat.text().contains("hello offline world"),
        "{}",
        chat.text()
    );
    assert_eq!(chat.done()["finishReason"], "stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_chats_lists_and_reads_against_the_running_server() {
    let mock = MockProc::start();
    let home = Home::new();
    let server = ServerProc::start(&home, Some(&mock.url), &ServerOptions::default());
    mock.push(&[Response::text("General Kenobi.")]).await;
    let cli = |args: &[&str]| {
        let output = std::process::Command::new(&bins().cli)
            .args(args)
            .env("DISPATCH_URL", &server.url)
            .env_remove("DISPATCH_TOKEN")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(
            output.status.success(),
            "dispatch {args:?} failed:\n{stdout}\n{stderr}"
        );
        (stdout, stderr)
    };
    let (out, err) = cli(&["chat", "Hello", "there"]);
    assert!(out.contains("General Kenobi."), "{out}\n{err}");

    let (_, list) = server.api().get("/conversations").await;
    let id = list["conversations"][0]["id"].as_str().unwrap().to_string();
    let (out, _) = cli(&["list"]);
    assert!(out.contains(&id[..8]), "{out}");
    assert!(out.contains("Hello there"), "the title: {out}");
    let (out, _) = cli(&["read", &id[..8]]);
    assert_eq!(out.trim(), "General Kenobi.");
}
