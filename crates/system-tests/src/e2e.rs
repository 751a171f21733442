//! End-to-end harness: the real `dispatch-server`, `dispatch-mock-llm` and `dispatch` binaries
//! as child processes on ephemeral 127.0.0.1 ports, with real HTTP (reqwest) and WebSocket
//! (tokio-tungstenite) clients.
//!
//! [`bins`] builds the three binaries once per test process (`cargo build --bins`, a no-op
//! when they are fresh), so `cargo test -p dispatch-system-tests` works on its own. Every
//! server runs with a fresh HOME and data directory, no inherited provider keys, the
//! `openai` instance pointed at the mock, and the diagnostic `tool-testkit` tools enabled.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use dispatch_mock_llm::Response;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The model every e2e server uses by default: the mock behind the `openai` instance.
pub const MODEL: &str = "openai/gpt-4o";

/// Paths of the three binaries.
pub struct Bins {
    pub server: PathBuf,
    pub cli: PathBuf,
    pub mock: PathBuf,
}

/// Builds (once) and locates the binaries next to this test executable.
pub fn bins() -> &'static Bins {
    static BINS: OnceLock<Bins> = OnceLock::new();
    BINS.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let dir = target_dir();
        // Benchmarks run from target/release: build the binaries the same way.
        let release = dir.file_name().is_some_and(|name| name == "release");
        let status = Command::new(cargo)
            .args([
                "build",
                "-q",
                "-p",
                "dispatch-host-bin",
                "-p",
                "dispatch-cli",
                "-p",
                "dispatch-mock-llm",
                "--bins",
            ])
            .args(release.then_some("--release"))
            .current_dir(workspace_root())
            .status()
            .expect("cannot run cargo to build the binaries");
        assert!(status.success(), "building the binaries failed");
        let bins = Bins {
            server: dir.join("dispatch-server"),
            cli: dir.join("dispatch"),
            mock: dir.join("dispatch-mock-llm"),
        };
        for path in [&bins.server, &bins.cli, &bins.mock] {
            assert!(path.is_file(), "missing binary {}", path.display());
        }
        bins
    })
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// `target/<profile>`: this test binary lives in `target/<profile>/deps`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    deps.parent().unwrap().to_path_buf()
}

/// Lines a child wrote to one of its pipes, collected by a thread.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn collect(
        pipe: impl std::io::Read + Send + 'static,
        first: Option<mpsc::Sender<String>>,
    ) -> Lines {
        let lines = Lines::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            let mut first = first;
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(tx) = first.take() {
                    let _ = tx.send(line.clone());
                }
                sink.0.lock().unwrap().push(line);
            }
        });
        lines
    }

    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        self.all().join("\n")
    }
}

fn spawn_with_first_line(mut cmd: Command, what: &str) -> (Child, String, Lines, Lines) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {what}: {err}"));
    let (tx, rx) = mpsc::channel();
    let stdout = Lines::collect(child.stdout.take().unwrap(), Some(tx));
    let stderr = Lines::collect(child.stderr.take().unwrap(), None);
    let first = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            panic!("{what} printed no first line; stderr:\n{}", stderr.text());
        }
    };
    (child, first, stdout, stderr)
}

/// `dispatch-mock-llm` as a child process.
pub struct MockProc {
    child: Child,
    pub url: String,
    http: reqwest::Client,
}

impl MockProc {
    /// Starts the mock in strict mode (an unscripted request gets a 500).
    pub fn start() -> MockProc {
        let mut cmd = Command::new(&bins().mock);
        cmd.args(["--port", "0", "--strict"]);
        let (child, first, _, _) = spawn_with_first_line(cmd, "dispatch-mock-llm");
        let url = first
            .strip_prefix("dispatch-mock-llm listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        MockProc {
            child,
            url,
            http: reqwest::Client::new(),
        }
    }

    /// Queues responses, answered in order.
    pub async fn push(&self, responses: &[Response]) {
        let response = self
            .http
            .post(format!("{}/_mock/responses", self.url))
            .json(&responses)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{:?}",
            response.text().await
        );
    }

    /// Every request received, as recorded JSON.
    pub async fn requests(&self) -> Vec<Value> {
        let value: Value = self
            .http
            .get(format!("{}/_mock/requests", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        match value {
            Value::Array(items) => items,
            Value::Object(mut map) => match map.remove("requests") {
                Some(Value::Array(items)) => items,
                other => panic!("unexpected /_mock/requests body {other:?}"),
            },
            other => panic!("unexpected /_mock/requests body {other:?}"),
        }
    }

    /// Provider requests only (chat completions), in arrival order.
    pub async fn chat_requests(&self) -> Vec<Value> {
        self.requests()
            .await
            .into_iter()
            .filter(|r| {
                r["path"]
                    .as_str()
                    .is_some_and(|p| p.contains("chat/completions"))
            })
            .collect()
    }
}

impl Drop for MockProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Options of one server start.
#[derive(Clone)]
pub struct ServerOptions {
    pub bind: String,
    pub token: Option<String>,
    /// Extra `dispatch.toml` text.
    pub config: String,
    pub env: Vec<(String, String)>,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            bind: "127.0.0.1:0".into(),
            token: None,
            config: String::new(),
            env: Vec::new(),
        }
    }
}

/// A home directory (config, data) that outlives server restarts.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path().join("data")
    }
}

impl Default for Home {
    fn default() -> Home {
        Home::new()
    }
}

/// The command a server starts with; [`ServerProc::start`] uses it, tests that expect a
/// failed start run it themselves.
pub fn server_command(home: &Home, mock_url: Option<&str>, options: &ServerOptions) -> Command {
    let config_path = home.path().join("dispatch.toml");
    let mut config = String::from(
        "[extensions.tool-testkit]\nenabled = true\n\n[extensions.session-orchestrator]\n",
    );
    if mock_url.is_some() {
        config.push_str(&format!("default_model = \"{MODEL}\"\n"));
    }
    config.push('\n');
    config.push_str(&options.config);
    std::fs::write(&config_path, config).unwrap();
    let mut cmd = Command::new(&bins().server);
    for var in [
        "DISPATCH_LOG",
        "DISPATCH_CONFIG",
        "DISPATCH_DATA_DIR",
        "DISPATCH_CREDENTIALS",
        "DISPATCH_TOKEN",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "OLLAMA_HOST",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("share"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("NO_COLOR", "1")
        // Nothing listens there: Ollama detection finds nothing.
        .env("OLLAMA_HOST", "127.0.0.1:9")
        .current_dir(home.path())
        .arg("--config")
        .arg(&config_path)
        .arg("--data-dir")
        .arg(home.data_dir())
        .arg("--bind")
        .arg(&options.bind);
    if let Some(url) = mock_url {
        cmd.env("OPENAI_BASE_URL", format!("{url}/v1"))
            .env("OPENAI_API_KEY", "sk-test-e2e");
    }
    if let Some(token) = &options.token {
        cmd.env("DISPATCH_TOKEN", token);
    }
    for (key, value) in &options.env {
        cmd.env(key, value);
    }
    cmd
}

/// `dispatch-server` as a child process.
pub struct ServerProc {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub stderr: Lines,
    pub token: Option<String>,
}

impl ServerProc {
    /// Starts a server on `home` and waits for its "listening on" line.
    pub fn start(home: &Home, mock_url: Option<&str>, options: &ServerOptions) -> ServerProc {
        let cmd = server_command(home, mock_url, options);
        let (child, first, _, stderr) = spawn_with_first_line(cmd, "dispatch-server");
        let url = first
            .strip_prefix("dispatch-server listening on ")
            .unwrap_or_else(|| panic!("unexpected first stdout line {first:?}"))
            .to_string();
        ServerProc {
            child,
            url,
            stderr,
            token: options.token.clone(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kill -9: no shutdown code runs.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "server exited with {status}; stderr:\n{}",
                    self.stderr.text()
                );
                return;
            }
            assert!(Instant::now() < deadline, "server did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn api(&self) -> Api {
        Api {
            // A hung request fails the test instead of hanging it.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            base: self.url.clone(),
            token: self.token.clone(),
        }
    }

    /// `ws://127.0.0.1:PORT/ws`.
    pub fn ws_url(&self) -> String {
        let base = self.url.replacen("http://", "ws://", 1);
        match &self.token {
            Some(token) => format!("{base}/ws?token={token}"),
            None => format!("{base}/ws"),
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client bound to one server.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Api {
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// (status, JSON body or `Value::Null`).
    pub async fn json(&self, builder: reqwest::RequestBuilder) -> (u16, Value) {
        let response = builder.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.json(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.json(self.request(reqwest::Method::POST, path).json(&body))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.json(self.request(reqwest::Method::PUT, path).json(&body))
            .await
    }

    /// `POST /chat` and every NDJSON event until the stream ends; panics unless 200.
    pub async fn chat(&self, body: Value) -> ChatStream {
        let response = self
            .request(reqwest::Method::POST, "/chat")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let conversation_id = response
            .headers()
            .get("x-conversation-id")
            .map(|v| v.to_str().unwrap().to_string());
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "POST /chat answered {status}: {text}");
        let events = text
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("bad NDJSON line {line:?}: {e}"))
            })
            .collect();
        ChatStream {
            conversation_id: conversation_id.expect("no X-Conversation-Id header"),
            events,
        }
    }

    /// Waits until the conversation has no running turn (`GET /status`).
    pub async fn wait_idle(&self, conversation_id: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self
                .get(&format!("/conversations/{conversation_id}/status"))
                .await;
            if status == 200 && body["isActive"] == json!(false) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "conversation stayed active: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A finished `POST /chat` stream.
pub struct ChatStream {
    pub conversation_id: String,
    pub events: Vec<Value>,
}

impl ChatStream {
    pub fn types(&self) -> Vec<String> {
        types(&self.events)
    }

    pub fn text(&self) -> String {
        self.events
            .iter()
            .filter(|e| e["type"] == "text-delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect()
    }

    pub fn done(&self) -> &Value {
        self.events
            .iter()
            .find(|e| e["type"] == "done")
            .expect("no done event")
    }
}

pub fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// A WebSocket client.
pub struct WsClient {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl WsClient {
    pub async fn connect(url: &str) -> WsClient {
        let (stream, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        WsClient { stream }
    }

    pub async fn send(&mut self, message: Value) {
        self.stream
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    /// The next JSON text message; `None` when the socket closed.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), self.stream.next())
                .await
                .expect("no WebSocket message within 30s")?;
            match message.ok()? {
                Message::Text(text) => return Some(serde_json::from_str(&text).unwrap()),
                Message::Close(_) => return None,
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                Message::Binary(_) => panic!("unexpected binary frame"),
            }
        }
    }

    /// Messages until (and including) the first one `stop` accepts.
    pub async fn until(&mut self, stop: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let message = self.next().await.unwrap_or_else(|| {
                panic!("socket closed before the expected message; got {seen:#?}")
            });
            let done = stop(&message);
            seen.push(message);
            if done {
                return seen;
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// The `event` of each `chat.delta` message for `conversation_id`.
pub fn deltas(messages: &[Value], conversation_id: &str) -> Vec<Value> {
    messages
        .iter()
        .filter(|m| m["type"] == "chat.delta" && m["conversationId"] == conversation_id)
        .map(|m| m["event"].clone())
        .collect()
}

pub fn is_delta_of(message: &Value, event_type: &str) -> bool {
    message["type"] == "chat.delta" && message["event"]["type"] == event_type
}
