#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `dispatch-server rpc` as a child process driven through its pipes: the token handshake,
//! a streamed prompt, busy, abort mid-stream (a mock model calling a tool that hangs),
//! malformed lines, and a prompt exit at end of stdin.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dispatch_mock_llm::{Item, MockLlm, Response};
use serde_json::{Value, json};

struct Rpc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    _home: tempfile::TempDir,
}

/// Starts `dispatch-server rpc` in a hermetic environment (as tests/server.rs does), with
/// `config` and extra environment variables.
fn start(config: &str, env: &[(&str, &str)]) -> Rpc {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("dispatch.toml");
    std::fs::write(
        &path,
        format!("[extensions.tool-testkit]\nenabled = true\n\n{config}"),
    )
    .unwrap();
    let stderr = std::fs::File::create(home.path().join("stderr.log")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dispatch-server"));
    for var in [
        "DISPATCH_LOG",
        "DISPATCH_CONFIG",
        "DISPATCH_DATA_DIR",
        "DISPATCH_CREDENTIALS",
        "DISPATCH_TOKEN",
        "DISPATCH_RPC_TOKEN",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("share"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("NO_COLOR", "1")
        // Nothing listens there: Ollama detection finds nothing.
        .env("OLLAMA_HOST", "127.0.0.1:9")
        .envs(env.iter().copied())
        .current_dir(home.path())
        .arg("rpc")
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(home.path().join("data"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    Rpc {
        stdin: child.stdin.take(),
        child,
        lines,
        _home: home,
    }
}

impl Rpc {
    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next stdout line as JSON; `None` once stdout closed.
    fn next(&mut self) -> Option<Value> {
        match self.lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("no stdout line in time"),
        }
    }

    /// Events before the next response, and the response.
    fn response(&mut self) -> (Vec<Value>, Value) {
        let mut events = Vec::new();
        loop {
            let line = self.next().expect("stdout closed");
            if line["type"] == "response" {
                return (events, line);
            }
            events.push(line);
        }
    }

    fn call(&mut self, command: Value) -> Value {
        self.send(&command.to_string());
        let (events, response) = self.response();
        assert!(events.is_empty(), "{events:?}");
        response
    }

    fn events_until(&mut self, kind: &str) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let line = self.next().expect("stdout closed");
            let hit = line["type"] == kind;
            events.push(line);
            if hit {
                return events;
            }
        }
    }

    /// Closes stdin and waits for the exit (at most 15 s); returns status and elapsed time.
    fn close(mut self) -> (std::process::ExitStatus, Duration, Vec<Value>) {
        drop(self.stdin.take());
        let start = Instant::now();
        let mut rest = Vec::new();
        while let Some(line) = self.next() {
            rest.push(line);
        }
        let mut child = self.child;
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait().unwrap());
        });
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(status) => (status, start.elapsed(), rest),
            Err(_) => {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
                panic!("dispatch-server rpc did not exit at end of stdin");
            }
        }
    }
}

fn text(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "text-delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect()
}

#[test]
fn the_rpc_token_must_be_sent_in_hello_first() {
    let mut rpc = start("", &[("DISPATCH_RPC_TOKEN", "t0ken")]);
    let refused = rpc.call(json!({"type": "get_state", "id": 1}));
    assert_eq!(refused["code"], "unauthorized", "{refused}");
    assert_eq!(refused["id"], 1);
    let wrong = rpc.call(json!({"type": "hello", "id": 2, "token": "nope"}));
    assert_eq!(wrong["code"], "unauthorized", "{wrong}");
    let hello = rpc.call(json!({"type": "hello", "id": 3, "token": "t0ken"}));
    assert_eq!(hello["success"], true, "{hello}");
    assert_eq!(
        rpc.call(json!({"type": "ping", "id": 4})),
        json!({"type": "response", "id": 4, "command": "ping", "success": true,
               "data": {"pong": true}})
    );
    let (status, _, rest) = rpc.close();
    assert!(status.success(), "{status:?}");
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn a_prompt_streams_the_echo_answer_malformed_lines_are_answered_and_eof_exits_0() {
    let mut rpc = start("", &[]);
    rpc.send(r#"{"type":"prompt","id":"p1","message":"hello rpc"}"#);
    let (before, response) = rpc.response();
    assert!(before.is_empty());
    assert_eq!(response["success"], true, "{response}");
    let events = rpc.events_until("turn-sealed");
    assert_eq!(events[0]["type"], "user-message");
    assert_eq!(text(&events), "echo: hello rpc");
    let done = &events[events.len() - 2];
    assert_eq!(done["type"], "done");
    assert_eq!(done["finishReason"], "stop");

    rpc.send("{not json");
    let (_, invalid) = rpc.response();
    assert_eq!(invalid["command"], "invalid");
    assert_eq!(invalid["code"], "invalid");
    let unknown = rpc.call(json!({"type": "teleport", "id": 9}));
    assert_eq!(unknown["id"], 9);
    assert_eq!(unknown["code"], "invalid");
    let state = rpc.call(json!({"type": "get_state", "id": 10}));
    assert_eq!(state["data"]["messageCount"], 2, "{state}");

    let (status, elapsed, rest) = rpc.close();
    assert!(status.success(), "{status:?}");
    assert!(rest.is_empty(), "{rest:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

fn hang() -> Response {
    Response::stream(vec![Item::tool_call("call_1", "testkit_hang", "{}", 1)])
}

async fn mock_rpc() -> (MockLlm, Rpc) {
    let mock = MockLlm::start(dispatch_mock_llm::Config::default())
        .await
        .unwrap();
    mock.push(hang());
    let base = mock.openai_base_url();
    let rpc = start(
        "[extensions.session-orchestrator]\ndefault_model = \"openai/gpt-4o\"\n",
        &[
            ("OPENAI_BASE_URL", &base),
            ("OPENAI_API_KEY", "sk-test-rpc"),
        ],
    );
    (mock, rpc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_and_abort_mid_stream() {
    let (_mock, mut rpc) = mock_rpc().await;
    let started = rpc.call(json!({"type": "prompt", "id": 1, "message": "hang"}));
    assert_eq!(started["success"], true, "{started}");
    let events = rpc.events_until("tool-call");
    assert_eq!(events.last().unwrap()["toolName"], "testkit_hang");

    rpc.send(&json!({"type": "prompt", "id": 2, "message": "again"}).to_string());
    let (_, busy) = rpc.response();
    assert_eq!(busy["code"], "busy", "{busy}");
    assert_eq!(busy["id"], 2);

    rpc.send(&json!({"type": "abort", "id": 3}).to_string());
    let (events, aborted) = rpc.response();
    assert_eq!(
        aborted,
        json!({"type": "response", "id": 3, "command": "abort", "success": true,
               "data": {"abortedTurn": true}})
    );
    let done = events.iter().find(|e| e["type"] == "done").unwrap();
    assert_eq!(done["finishReason"], "aborted");
    assert_eq!(events.last().unwrap()["type"], "turn-sealed");

    let (status, _, _) = rpc.close();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_of_stdin_aborts_a_running_prompt_and_exits_0_promptly() {
    let (_mock, mut rpc) = mock_rpc().await;
    rpc.call(json!({"type": "prompt", "id": 1, "message": "hang"}));
    rpc.events_until("tool-call");
    let (status, elapsed, rest) = rpc.close();
    assert!(status.success(), "{status:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let done = rest.iter().find(|e| e["type"] == "done").unwrap();
    assert_eq!(done["finishReason"], "aborted");
    assert_eq!(rest.last().unwrap()["type"], "turn-sealed");
}
