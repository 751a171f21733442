#![allow(clippy::unwrap_used, clippy::expect_used)]
//! RPC mode's loop over in-memory pipes against a real runtime: the token handshake, a
//! streamed prompt, busy, abort mid-stream, malformed and unknown lines, end of input.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Env, hang, runtime, runtime_with_mock};
use dispatch_sdk::rpc::{RpcOptions, serve};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines};
use tokio::task::JoinHandle;

struct Client {
    input: Option<DuplexStream>,
    output: Lines<BufReader<DuplexStream>>,
    served: JoinHandle<Result<(), dispatch_sdk::SdkError>>,
    env: Arc<Env>,
}

fn connect(env: Env, token: Option<&str>) -> Client {
    let env = Arc::new(env);
    let (input, server_in) = tokio::io::duplex(64 * 1024);
    let (server_out, output) = tokio::io::duplex(64 * 1024);
    let options = RpcOptions {
        token: token.map(str::to_owned),
    };
    let served = tokio::spawn({
        let env = env.clone();
        async move { serve(&env.runtime, BufReader::new(server_in), server_out, options).await }
    });
    Client {
        input: Some(input),
        output: BufReader::new(output).lines(),
        served,
        env,
    }
}

impl Client {
    async fn send_raw(&mut self, line: &str) {
        let input = self.input.as_mut().unwrap();
        input.write_all(line.as_bytes()).await.unwrap();
        input.write_all(b"\n").await.unwrap();
    }

    async fn send(&mut self, command: Value) {
        self.send_raw(&command.to_string()).await;
    }

    /// The next output line; `None` at end of output.
    async fn next(&mut self) -> Option<Value> {
        let line = tokio::time::timeout(Duration::from_secs(20), self.output.next_line())
            .await
            .expect("no output line in time")
            .unwrap()?;
        Some(serde_json::from_str(&line).unwrap())
    }

    /// Lines up to and including the first response; returns (events before it, response).
    async fn response(&mut self) -> (Vec<Value>, Value) {
        let mut events = Vec::new();
        loop {
            let line = self.next().await.expect("output ended");
            if line["type"] == "response" {
                return (events, line);
            }
            events.push(line);
        }
    }

    /// Sends a command and returns its response, asserting no event came before it.
    async fn call(&mut self, command: Value) -> Value {
        self.send(command).await;
        let (events, response) = self.response().await;
        assert_eq!(events, Vec::<Value>::new());
        response
    }

    /// Events up to and including the first of type `kind`.
    async fn events_until(&mut self, kind: &str) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let line = self.next().await.expect("output ended");
            let hit = line["type"] == kind;
            events.push(line);
            if hit {
                return events;
            }
        }
    }
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_must_come_first_in_hello_and_the_connection_stays_open() {
    let mut client = connect(runtime().await, Some("s3cret"));
    assert_eq!(
        client.call(json!({"type": "ping", "id": 1})).await,
        json!({"type": "response", "id": 1, "command": "ping", "success": false,
               "error": "send `hello` with the token first", "code": "unauthorized"})
    );
    assert_eq!(
        client
            .call(json!({"type": "hello", "id": "h1", "token": "wrong"}))
            .await,
        json!({"type": "response", "id": "h1", "command": "hello", "success": false,
               "error": "invalid token", "code": "unauthorized"})
    );
    let hello = client
        .call(json!({"type": "hello", "id": "h2", "token": "s3cret"}))
        .await;
    assert_eq!(hello["success"], true, "{hello}");
    assert!(hello["data"]["conversationId"].is_string());
    assert_eq!(
        client.call(json!({"type": "ping", "id": 2})).await,
        json!({"type": "response", "id": 2, "command": "ping", "success": true,
               "data": {"pong": true}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_answers_at_once_then_streams_its_events_and_state_follows() {
    let mut client = connect(runtime().await, None);
    client
        .send(json!({"type": "prompt", "id": 1, "message": "hi there"}))
        .await;
    let (before, response) = client.response().await;
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(response["command"], "prompt");
    assert_eq!(response["success"], true, "{response}");
    let conversation = response["data"]["conversationId"].clone();
    let turn = response["data"]["turnId"].clone();
    let events = client.events_until("turn-sealed").await;
    assert_eq!(
        kinds(&events),
        [
            "user-message",
            "turn-start",
            "text-delta",
            "text-delta",
            "text-delta",
            "usage",
            "step-complete",
            "done",
            "turn-sealed"
        ]
    );
    assert!(events.iter().all(|e| e["turnId"] == turn));
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "text-delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "echo: hi there");
    assert_eq!(events[7]["finishReason"], "stop");

    assert_eq!(
        client.call(json!({"type": "get_state", "id": 2})).await["data"],
        json!({"conversationId": conversation, "model": "echo", "isRunning": false,
               "messageCount": 2})
    );
    let messages = client.call(json!({"type": "get_messages", "id": 3})).await;
    assert_eq!(messages["data"]["conversationId"], conversation);
    assert_eq!(messages["data"]["chunks"].as_array().unwrap().len(), 2);

    let models = client.call(json!({"type": "get_models", "id": 4})).await;
    assert_eq!(models["data"]["defaultModel"], "echo");
    let set = client
        .call(json!({"type": "set_model", "id": 5, "model": "echo/echo"}))
        .await;
    assert_eq!(set["data"]["model"], "echo/echo", "{set}");
    assert_eq!(
        client.call(json!({"type": "get_state", "id": 6})).await["data"]["model"],
        "echo/echo"
    );
    assert_eq!(
        client.call(json!({"type": "compact", "id": 7})).await,
        json!({"type": "response", "id": 7, "command": "compact", "success": false,
               "error": "compaction is not available yet", "code": "not-supported"})
    );

    let cleared = client.call(json!({"type": "clear", "id": 8})).await;
    let fresh = cleared["data"]["conversationId"].clone();
    assert_ne!(fresh, conversation);
    assert_eq!(
        client.call(json!({"type": "get_state", "id": 9})).await["data"],
        json!({"conversationId": fresh, "model": "echo", "isRunning": false,
               "messageCount": 0})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_then_abort_mid_stream_answers_after_the_seal() {
    let env = runtime_with_mock().await;
    env.mock.as_ref().unwrap().push(hang());
    let mut client = connect(env, None);
    let started = client
        .call(json!({"type": "prompt", "id": 1, "message": "hang"}))
        .await;
    assert_eq!(started["success"], true, "{started}");
    client.events_until("tool-call").await;

    client
        .send(json!({"type": "prompt", "id": 2, "message": "again"}))
        .await;
    let (_, busy) = client.response().await;
    assert_eq!(busy["id"], 2);
    assert_eq!(busy["code"], "busy", "{busy}");
    assert_eq!(busy["success"], false);
    let (_, clear) = {
        client.send(json!({"type": "clear", "id": 3})).await;
        client.response().await
    };
    assert_eq!(clear["code"], "busy", "{clear}");

    client.send(json!({"type": "abort", "id": 4})).await;
    let (events, response) = client.response().await;
    let done = events.iter().find(|e| e["type"] == "done").unwrap();
    assert_eq!(done["finishReason"], "aborted");
    assert_eq!(events.last().unwrap()["type"], "turn-sealed", "{events:?}");
    assert_eq!(
        response,
        json!({"type": "response", "id": 4, "command": "abort", "success": true,
               "data": {"abortedTurn": true}})
    );
    // The session is free again.
    let next = client
        .call(json!({"type": "prompt", "id": 5, "message": "after", "model": "echo"}))
        .await;
    assert_eq!(next["success"], true, "{next}");
    let events = client.events_until("turn-sealed").await;
    assert_eq!(events[events.len() - 2]["finishReason"], "stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_unknown_lines_get_invalid_and_the_loop_goes_on() {
    let mut client = connect(runtime().await, None);
    client.send_raw("this is not json").await;
    let (_, response) = client.response().await;
    assert_eq!(response["command"], "invalid");
    assert_eq!(response["code"], "invalid");
    assert_eq!(response["success"], false);
    assert!(response.get("id").is_none());
    assert!(
        response["error"].as_str().unwrap().contains("expected"),
        "{response}"
    );

    assert_eq!(
        client.call(json!({"type": "fly", "id": 7})).await,
        json!({"type": "response", "id": 7, "command": "invalid", "success": false,
               "error": "unknown command type `fly`", "code": "invalid"})
    );
    let missing = client.call(json!({"type": "prompt", "id": 8})).await;
    assert_eq!(missing["id"], 8);
    assert_eq!(missing["command"], "invalid");
    assert!(
        missing["error"]
            .as_str()
            .unwrap()
            .contains("missing field `message`"),
        "{missing}"
    );
    client.send_raw("").await;
    assert_eq!(
        client.call(json!({"type": "ping"})).await,
        json!({"type": "response", "command": "ping", "success": true, "data": {"pong": true}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_of_input_aborts_the_running_prompt_and_returns_ok() {
    let env = runtime_with_mock().await;
    env.mock.as_ref().unwrap().push(hang());
    let mut client = connect(env, None);
    client
        .call(json!({"type": "prompt", "id": 1, "message": "hang"}))
        .await;
    client.events_until("tool-call").await;
    drop(client.input.take());

    let events = client.events_until("turn-sealed").await;
    let done = events.iter().find(|e| e["type"] == "done").unwrap();
    assert_eq!(done["finishReason"], "aborted");
    assert!(
        client.next().await.is_none(),
        "output closes after the seal"
    );
    let served = tokio::time::timeout(Duration::from_secs(10), client.served)
        .await
        .unwrap()
        .unwrap();
    assert!(served.is_ok(), "{served:?}");
    assert!(
        !client
            .env
            .runtime
            .is_running(done["conversationId"].as_str().unwrap())
    );
}
