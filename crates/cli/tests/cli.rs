//! The real `dispatch` binary against a small in-test HTTP server on 127.0.0.1:0 that serves
//! canned answers and records every request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dispatch_wire::{
    AgentEvent, ChatRequest, ConversationActionResponse, ConversationListResponse,
    ConversationMeta, ConversationStatus, Cost, ErrorResponse, FinishReason, Id,
    LastMessageResponse, ModelInfo, ModelPricing, ModelsResponse, QueueRequest, QueueResponse,
    QueuedMessage, Usage,
};
use expect_test::{Expect, expect};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const IDLE: &str = "0199a5c2-aaaa-7000-8000-000000000001";
const ACTIVE: &str = "0199a5c2-bbbb-7000-8000-000000000002";
const CLOSED: &str = "77aa0000-cccc-7000-8000-000000000003";
const NEW: &str = "0123abcd-dddd-7000-8000-000000000004";

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq)]
struct Recorded {
    method: String,
    path: String,
    query: String,
    authorization: Option<String>,
    body: Value,
}

#[derive(Default)]
struct Inner {
    requests: Mutex<Vec<Recorded>>,
    token: Option<String>,
    /// The open stream of a `hang` turn, finished by `/stop`.
    hanging: Mutex<Option<(Id, mpsc::UnboundedSender<Vec<u8>>)>>,
    now_ms: i64,
}

#[derive(Clone)]
struct Server(Arc<Inner>);

impl Server {
    fn requests(&self) -> Vec<Recorded> {
        self.0.requests.lock().unwrap().clone()
    }

    /// Every request, as `METHOD path`.
    fn calls(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

fn meta(
    id: &str,
    status: ConversationStatus,
    workspace: &str,
    ago_ms: i64,
    title: &str,
    now_ms: i64,
) -> ConversationMeta {
    ConversationMeta {
        id: id.into(),
        title: title.to_owned(),
        created_at: now_ms - ago_ms,
        last_activity_at: now_ms - ago_ms,
        status,
        workspace_id: workspace.to_owned(),
        model: None,
        compacted_from: None,
    }
}

fn catalog(now_ms: i64) -> Vec<ConversationMeta> {
    vec![
        meta(
            IDLE,
            ConversationStatus::Idle,
            "default",
            3 * 60_000,
            "fix the parser",
            now_ms,
        ),
        meta(
            ACTIVE,
            ConversationStatus::Active,
            "default",
            1_000,
            "write the docs",
            now_ms,
        ),
        meta(
            CLOSED,
            ConversationStatus::Closed,
            "web",
            2 * 86_400_000,
            "old chat",
            now_ms,
        ),
    ]
}

fn error(status: StatusCode, message: &str, code: Option<&str>) -> Response {
    let body = ErrorResponse {
        error: message.to_owned(),
        field: None,
        code: code.map(str::to_owned),
    };
    (status, Json(body)).into_response()
}

/// Records every request (its body included) and checks the token when one is required.
async fn record(State(server): State<Server>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let authorization = parts
        .headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    server.0.requests.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        authorization: authorization.clone(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    });
    if let Some(token) = &server.0.token {
        if authorization.as_deref() != Some(&format!("Bearer {token}")) {
            return error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token",
                Some("unauthorized"),
            );
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn events_of_turn(conversation: &str, message: &str) -> Vec<AgentEvent> {
    let c: Id = conversation.into();
    let t: Id = "turn-1".into();
    let s0: Id = "turn-1#0".into();
    let s1: Id = "turn-1#1".into();
    let mut events = vec![
        AgentEvent::UserMessage {
            conversation_id: c.clone(),
            turn_id: t.clone(),
            message_id: "m1".into(),
            text: message.to_owned(),
        },
        AgentEvent::TurnStart {
            conversation_id: c.clone(),
            turn_id: t.clone(),
            model: "echo".to_owned(),
            started_at: 0,
        },
    ];
    let usage = Usage {
        input_tokens: 10,
        output_tokens: 2,
        cache_read_tokens: 4,
        cache_write_tokens: 0,
        reasoning_tokens: 0,
    };
    if message == "fail" {
        events.extend([
            AgentEvent::TextDelta {
                conversation_id: c.clone(),
                turn_id: t.clone(),
                step_id: s0.clone(),
                delta: "Partial".to_owned(),
            },
            AgentEvent::Error {
                conversation_id: c.clone(),
                turn_id: t.clone(),
                step_id: Some(s0.clone()),
                message: "provider exploded".to_owned(),
                code: Some("provider".to_owned()),
                retryable: false,
            },
            AgentEvent::Done {
                conversation_id: c.clone(),
                turn_id: t.clone(),
                finish_reason: FinishReason::Error,
                usage,
                cost: None,
                duration_ms: 500,
                context_size: None,
                steps: 1,
            },
        ]);
    } else {
        events.extend([
            AgentEvent::ReasoningDelta {
                conversation_id: c.clone(),
                turn_id: t.clone(),
                step_id: s0.clone(),
                delta: "Look first.".to_owned(),
            },
            AgentEvent::TextDelta {
                conversation_id: c.clone(),
                turn_id: t.clone(),
                step_id: s0.clone(),
                delta: "Let me look.".to_owned(),
            },
            AgentEvent::ToolCall {
                conversation_id: c.clone(),
                turn_id: t.clone(),
                step_id: s0.clone(),
                tool_call_id: "call-1".into(),
                tool_name: "read_file".to_owned(),
                input: json!({"path": "README.md"}),
            },
            AgentEvent::ToolResult {
                conversation_id: c.clone(),
                turn_id: t.clone(),
                step_id: s0.clone(),
                tool_call_id: "call-1".into(),
                tool_name: "read_file".to_owned(),
                output: "# Dispatch\n\nA backend.\n".to_owned(),
                is_error: false,
                duration_ms: 1,
            },
            AgentEvent::Unknown,
            AgentEvent::TextDelta {
                conversation_id: c.clone(),
                turn_id: t.clone(),
                step_id: s1.clone(),
                delta: "Hello".to_owned(),
            },
            AgentEvent::TextDelta {
                conversation_id: c.clone(),
                turn_id: t.clone(),
                step_id: s1.clone(),
                delta: " world".to_owned(),
            },
            AgentEvent::Done {
                conversation_id: c.clone(),
                turn_id: t.clone(),
                finish_reason: FinishReason::Stop,
                usage,
                cost: Some(Cost {
                    total: 0.00123,
                    ..Cost::default()
                }),
                duration_ms: 500,
                context_size: Some(12),
                steps: 2,
            },
        ]);
    }
    events.push(AgentEvent::TurnSealed {
        conversation_id: c,
        turn_id: t,
        last_seq: Some(6),
    });
    events
}

fn ndjson(event: &AgentEvent) -> String {
    let mut line = serde_json::to_string(event).unwrap();
    if matches!(event, AgentEvent::Unknown) {
        // What a newer server might send: an event type this build does not know.
        line = r#"{"type":"from-the-future","conversationId":"x"}"#.to_owned();
    }
    line.push('\n');
    line
}

async fn chat(State(server): State<Server>, Json(request): Json<ChatRequest>) -> Response {
    let conversation: Id = request.conversation_id.as_deref().unwrap_or(NEW).into();
    if &*conversation == ACTIVE {
        return error(
            StatusCode::CONFLICT,
            "a turn is already running in this conversation",
            Some("already-active"),
        );
    }
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
    if request.message == "hang" {
        let c = conversation.clone();
        for event in &events_of_turn(&c, "fail")[..3] {
            tx.send(ndjson(event).into_bytes()).unwrap();
        }
        *server.0.hanging.lock().unwrap() = Some((conversation.clone(), tx));
    } else {
        // In 7-byte pieces: lines (and UTF-8 characters) split across chunks.
        let body: String = events_of_turn(&conversation, &request.message)
            .iter()
            .map(ndjson)
            .collect();
        for piece in body.as_bytes().chunks(7) {
            tx.send(piece.to_vec()).unwrap();
        }
        drop(tx);
    }
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (Ok::<_, Infallible>(line), rx))
    });
    let mut headers = HeaderMap::new();
    headers.insert("x-conversation-id", conversation.parse().unwrap());
    headers.insert("x-turn-id", "turn-1".parse().unwrap());
    headers.insert("content-type", "application/x-ndjson".parse().unwrap());
    (headers, Body::from_stream(body)).into_response()
}

async fn conversations(
    State(server): State<Server>,
    Query(query): Query<HashMap<String, String>>,
) -> Json<ConversationListResponse> {
    let statuses: Option<Vec<&str>> = query.get("status").map(|s| s.split(',').collect());
    let conversations = catalog(server.0.now_ms)
        .into_iter()
        .filter(|c| query.get("q").is_none_or(|q| c.id.starts_with(q.as_str())))
        .filter(|c| {
            query
                .get("workspaceId")
                .is_none_or(|w| &c.workspace_id == w)
        })
        .filter(|c| {
            let status = serde_json::to_value(c.status).unwrap();
            statuses
                .as_ref()
                .is_none_or(|s| s.contains(&status.as_str().unwrap()))
        })
        .collect();
    Json(ConversationListResponse { conversations })
}

async fn last(Path(id): Path<String>) -> Json<LastMessageResponse> {
    let content = if id == IDLE {
        "The parser is fixed."
    } else {
        ""
    };
    Json(LastMessageResponse {
        conversation_id: id.into(),
        content: content.to_owned(),
    })
}

async fn queue(Path(id): Path<String>, Json(request): Json<QueueRequest>) -> Json<QueueResponse> {
    Json(QueueResponse {
        conversation_id: id.as_str().into(),
        queued: QueuedMessage {
            id: "q1".into(),
            text: request.text,
            enqueued_at: 0,
        },
        started_turn: id != ACTIVE,
    })
}

async fn action(
    State(server): State<Server>,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let mut aborted_turn = id == ACTIVE;
    if action == "stop" {
        if let Some((c, tx)) = server.0.hanging.lock().unwrap().take() {
            aborted_turn = true;
            let t: Id = "turn-1".into();
            let done = AgentEvent::Done {
                conversation_id: c.clone(),
                turn_id: t.clone(),
                finish_reason: FinishReason::Aborted,
                usage: Usage::default(),
                cost: None,
                duration_ms: 10,
                context_size: None,
                steps: 1,
            };
            let sealed = AgentEvent::TurnSealed {
                conversation_id: c,
                turn_id: t,
                last_seq: None,
            };
            tx.send(ndjson(&done).into_bytes()).unwrap();
            tx.send(ndjson(&sealed).into_bytes()).unwrap();
        }
    }
    Json(ConversationActionResponse {
        conversation_id: id.into(),
        aborted_turn,
        status: ConversationStatus::Idle,
    })
    .into_response()
}

async fn models() -> Json<ModelsResponse> {
    Json(ModelsResponse {
        models: vec![
            ModelInfo {
                id: "claude-sonnet-4-5".to_owned(),
                provider: "anthropic".to_owned(),
                context_window: 200_000,
                max_output: 64_000,
                pricing: ModelPricing {
                    input: 3.0,
                    output: 15.0,
                    cache_read: 0.3,
                    cache_write: 3.75,
                },
                reasoning: true,
                known: true,
                description: None,
            },
            ModelInfo {
                id: "echo".to_owned(),
                provider: "echo".to_owned(),
                context_window: 128_000,
                max_output: 8_192,
                pricing: ModelPricing::default(),
                reasoning: false,
                known: true,
                description: Some("Offline echo".to_owned()),
            },
        ],
        default_model: Some("echo".to_owned()),
    })
}

/// Starts the canned server on 127.0.0.1:0; returns its handle and base URL.
async fn start(token: Option<&str>) -> (Server, String) {
    let now_ms = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let server = Server(Arc::new(Inner {
        token: token.map(str::to_owned),
        now_ms,
        ..Inner::default()
    }));
    let app = Router::new()
        .route("/chat", post(chat))
        .route("/conversations", get(conversations))
        .route("/conversations/{id}/last", get(last))
        .route("/conversations/{id}/queue", post(queue))
        .route("/conversations/{id}/{action}", post(action))
        .route("/models", get(models))
        .layer(middleware::from_fn_with_state(server.clone(), record))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (server, url)
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn command(url: &str, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_dispatch"));
    command
        .args(args)
        .env("DISPATCH_URL", url)
        .env_remove("DISPATCH_TOKEN")
        .env("NO_COLOR", "1")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

async fn run_with_stdin(url: &str, args: &[&str], stdin: &str) -> Run {
    let mut child = command(url, args).spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let output = child.wait_with_output().await.unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

async fn run(url: &str, args: &[&str]) -> Run {
    run_with_stdin(url, args, "").await
}

#[track_caller]
fn check(run: &Run, code: i32, stdout: Expect, stderr: Expect) {
    assert_eq!(
        run.code,
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    stdout.assert_eq(&run.stdout);
    stderr.assert_eq(&run.stderr);
}

#[tokio::test]
async fn chat_streams_the_turn_and_prints_the_usage_line() {
    let (server, url) = start(None).await;
    let out = run(
        &url,
        &[
            "chat", "-m", "echo", "-e", "high", "--cwd", "src", "-w", "web", "hello", "there",
        ],
    )
    .await;
    check(
        &out,
        0,
        expect![[r#"
            ┆ Look first.

            Let me look.

            ⏺ read_file(README.md)
              ⎿ # Dispatch (2 lines)

            Hello world
        "#]],
        expect![[r#"
            conversation 0123abcd · echo · in 10 (cached 4) · out 2 · $0.0012 · 0.5s
        "#]],
    );
    let cwd = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let requests = server.requests();
    assert_eq!(server.calls(), ["POST /chat", "GET /conversations"]);
    // The usage line's id is checked for uniqueness.
    assert_eq!(requests[1].query, "q=0123abcd");
    assert_eq!(
        requests[0].body,
        json!({
            "message": "hello there",
            "model": "echo",
            "reasoningEffort": "high",
            "cwd": cwd.to_str().unwrap(),
            "workspaceId": "web",
        })
    );
    assert_eq!(requests[0].authorization, None);
}

#[tokio::test]
async fn chat_continues_a_conversation_by_prefix_and_reads_stdin() {
    let (server, url) = start(None).await;
    let out = run_with_stdin(&url, &["chat", "-c", "77aa"], "from stdin\n").await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.starts_with("conversation 77aa0000 · echo"),
        "{}",
        out.stderr
    );
    let requests = server.requests();
    assert_eq!(
        server.calls(),
        ["GET /conversations", "POST /chat", "GET /conversations"]
    );
    assert_eq!(requests[0].query, "q=77aa");
    assert_eq!(
        requests[1].body,
        json!({"conversationId": CLOSED, "message": "from stdin"})
    );
}

#[tokio::test]
async fn the_usage_line_names_the_conversation_by_a_unique_prefix() {
    let (_server, url) = start(None).await;
    // 0199a5c2 is shared by two conversations: the line shows one character more.
    let out = run(&url, &["chat", "-c", IDLE, "again"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    expect![[r#"
        conversation 0199a5c2-a · echo · in 10 (cached 4) · out 2 · $0.0012 · 0.5s
    "#]]
    .assert_eq(&out.stderr);
}

#[tokio::test]
async fn a_failed_turn_exits_non_zero() {
    let (_server, url) = start(None).await;
    let out = run(&url, &["chat", "fail"]).await;
    check(
        &out,
        1,
        expect![[r#"
            Partial
        "#]],
        expect![[r#"
            error: provider exploded
            conversation 0123abcd · echo · in 10 (cached 4) · out 2 · 0.5s
        "#]],
    );
}

#[tokio::test]
async fn an_empty_message_is_refused_before_any_request() {
    let (server, url) = start(None).await;
    let out = run_with_stdin(&url, &["chat"], "  \n").await;
    check(
        &out,
        1,
        expect![""],
        expect![[r#"
        error: the message is empty
    "#]],
    );
    assert_eq!(server.calls(), Vec::<String>::new());
}

#[tokio::test]
async fn list_shows_rows_with_unique_short_ids() {
    let (server, url) = start(None).await;
    let out = run(&url, &["list"]).await;
    check(
        &out,
        0,
        expect![[r#"
            ID          STATUS  WORKSPACE  ACTIVE    TITLE
            0199a5c2-b  active  default    just now  write the docs
            0199a5c2-a  idle    default    3m ago    fix the parser
            77aa0000    closed  web        2d ago    old chat
        "#]],
        expect![""],
    );
    let filtered = run(&url, &["list", "--status", "active,idle", "-w", "default"]).await;
    check(
        &filtered,
        0,
        expect![[r#"
            ID          STATUS  WORKSPACE  ACTIVE    TITLE
            0199a5c2-b  active  default    just now  write the docs
            0199a5c2-a  idle    default    3m ago    fix the parser
        "#]],
        expect![""],
    );
    let queries: Vec<String> = server.requests().iter().map(|r| r.query.clone()).collect();
    assert_eq!(
        queries,
        ["", "status=active%2Cidle&workspaceId=default", ""]
    );
}

#[tokio::test]
async fn read_prints_the_last_message() {
    let (server, url) = start(None).await;
    let out = run(&url, &["read", "0199a5c2-a"]).await;
    check(
        &out,
        0,
        expect![[r#"
        The parser is fixed.
    "#]],
        expect![""],
    );
    assert_eq!(
        server.calls(),
        [
            "GET /conversations",
            &format!("GET /conversations/{IDLE}/last")
        ]
    );
}

#[tokio::test]
async fn an_ambiguous_prefix_lists_the_candidates() {
    let (_server, url) = start(None).await;
    let out = run(&url, &["read", "0199"]).await;
    check(
        &out,
        1,
        expect![""],
        expect![[r#"
            error: `0199` matches 2 conversations; give more characters:
              0199a5c2-aaaa-7000-8000-000000000001  fix the parser
              0199a5c2-bbbb-7000-8000-000000000002  write the docs
        "#]],
    );
    let short = run(&url, &["stop", "019"]).await;
    check(
        &short,
        1,
        expect![""],
        expect![[r#"
            error: `019` is too short: give a conversation id or at least 4 of its first characters
        "#]],
    );
    let none = run(&url, &["read", "ffff"]).await;
    check(
        &none,
        1,
        expect![""],
        expect![[r#"
            error: no conversation starts with `ffff` (see `dispatch list`)
        "#]],
    );
}

#[tokio::test]
async fn send_prints_only_the_final_answer() {
    let (server, url) = start(None).await;
    let out = run(&url, &["send", "77aa", "do", "it"]).await;
    check(
        &out,
        0,
        expect![[r#"
            Hello world
        "#]],
        expect![[r#"
            conversation 77aa0000 · echo · in 10 (cached 4) · out 2 · $0.0012 · 0.5s
        "#]],
    );
    assert_eq!(
        server.requests()[1].body,
        json!({"conversationId": CLOSED, "message": "do it"})
    );
}

#[tokio::test]
async fn send_queue_and_open() {
    let (server, url) = start(None).await;
    let out = run(
        &url,
        &["send", "0199a5c2-b", "--queue", "--open", "also", "this"],
    )
    .await;
    check(
        &out,
        0,
        expect![[r#"
            queued in 0199a5c2; a turn is running: the message steers it at its next tool result
        "#]],
        expect![""],
    );
    assert_eq!(
        server.calls(),
        [
            "GET /conversations".to_owned(),
            format!("POST /conversations/{ACTIVE}/open"),
            format!("POST /conversations/{ACTIVE}/queue"),
        ]
    );
    assert_eq!(server.requests()[2].body, json!({"text": "also this"}));
}

#[tokio::test]
async fn a_busy_conversation_suggests_queue_or_stop() {
    let (_server, url) = start(None).await;
    let out = run(&url, &["send", "0199a5c2-b", "hi"]).await;
    check(
        &out,
        1,
        expect![""],
        expect![[r#"
            error: a turn is already running in this conversation
              queue the message instead: dispatch send 0199a5c2-bbbb-7000-8000-000000000002 --queue …
              or stop the turn:          dispatch stop 0199a5c2-bbbb-7000-8000-000000000002
        "#]],
    );
}

#[tokio::test]
async fn models_and_stop() {
    let (_server, url) = start(None).await;
    let out = run(&url, &["models"]).await;
    check(
        &out,
        0,
        expect![[r#"
            ID                 PROVIDER   CONTEXT  MAX OUT  $/M IN  $/M OUT  DESCRIPTION
            claude-sonnet-4-5  anthropic  200k     64k      $3.00   $15.00
            echo               echo       128k     8.2k     -       -        Offline echo

            default model: echo
        "#]],
        expect![""],
    );
    let out = run(&url, &["stop", "0199a5c2-b"]).await;
    check(
        &out,
        0,
        expect![[r#"
        stopped the running turn of 0199a5c2
    "#]],
        expect![""],
    );
}

#[tokio::test]
async fn a_token_is_asked_for_sent_and_checked() {
    let (server, url) = start(Some("secret")).await;
    let missing = run(&url, &["models"]).await;
    check(
        &missing,
        1,
        expect![""],
        expect![[r#"
            error: the server requires a token: set DISPATCH_TOKEN (or pass --token)
        "#]],
    );
    let wrong = run(&url, &["models", "--token", "nope"]).await;
    check(
        &wrong,
        1,
        expect![""],
        expect![[r#"
            error: the server rejected the token: check DISPATCH_TOKEN (or --token)
        "#]],
    );
    let right = command(&url, &["models"])
        .env("DISPATCH_TOKEN", "secret")
        .output()
        .await
        .unwrap();
    assert_eq!(right.status.code(), Some(0));
    let auth: Vec<Option<String>> = server
        .requests()
        .into_iter()
        .map(|r| r.authorization)
        .collect();
    assert_eq!(
        auth,
        [
            None,
            Some("Bearer nope".to_owned()),
            Some("Bearer secret".to_owned())
        ]
    );
}

#[tokio::test]
async fn an_unreachable_server_is_named() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let out = run(&url, &["list"]).await;
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stderr,
        format!(
            "error: cannot reach dispatch-server at {url} (is it running? `dispatch-server`)\n"
        )
    );
}

#[tokio::test]
async fn other_server_errors_are_shown_as_sent() {
    let (_server, url) = start(None).await;
    // No such route: the canned server answers 404 with an empty body.
    let out = run(&format!("{url}/nowhere"), &["models"]).await;
    check(
        &out,
        1,
        expect![""],
        expect![[r#"
            error: the server answered 404 Not Found
        "#]],
    );
}

/// Ctrl-C asks the server to stop the turn, reads on until it is sealed, and exits 130.
#[cfg(unix)]
#[tokio::test]
async fn ctrl_c_stops_the_turn() {
    let (server, url) = start(None).await;
    let mut child = command(&url, &["chat", "hang"]).spawn().unwrap();
    drop(child.stdin.take());
    let mut stdout = child.stdout.take().unwrap();
    // Wait until the turn streams (the handler is installed before the request is sent).
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("Partial") {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(std::time::Duration::from_secs(30), stdout.read(&mut buf))
            .await
            .expect("the turn's first text within 30s")
            .unwrap();
        assert!(n > 0, "stdout closed early");
        seen.extend_from_slice(&buf[..n]);
    }
    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    stdout.read_to_end(&mut seen).await.unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert_eq!(String::from_utf8(seen).unwrap(), "Partial\n");
    expect![[r#"
        stopping the turn… (Ctrl-C again to quit)
        stopped: the turn was aborted
        conversation 0123abcd · echo · in 0 (cached 0) · out 0 · 0.0s
    "#]]
    .assert_eq(&stderr);
    assert_eq!(
        server.calls(),
        [
            "POST /chat".to_owned(),
            format!("POST /conversations/{NEW}/stop"),
            "GET /conversations".to_owned(),
        ]
    );
}
