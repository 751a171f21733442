//! A real host for the runs tests: clock, SQLite storage in a `TempDir`, the conversation
//! store, the model catalog, a test extension (the `scripted` provider and the tools `gate`,
//! `hang` and `probe`), the session orchestrator, transport-http on `127.0.0.1:0` and the
//! runs extension, driven with reqwest over the real socket.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dispatch_clock::ClockExtension;
use dispatch_conversation_store::ConversationStoreExtension;
use dispatch_kernel::abi::{
    Extension, Manifest, SESSION, Session, Tool, ToolCtx, ToolError, ToolOutput, ToolSpec,
};
use dispatch_kernel::host::{Host, HostApi, HostConfig};
use dispatch_kernel::{BoxError, Error};
use dispatch_model_catalog::ModelCatalogExtension;
use dispatch_runs::RunsExtension;
use dispatch_session_orchestrator::SessionOrchestratorExtension;
use dispatch_storage_sqlite::StorageSqliteExtension;
use dispatch_test_support::{Behaviour, FakeTool, ScriptedProvider};
use dispatch_transport_http::TransportHttpExtension;
use dispatch_transport_kit::LISTENER;
use dispatch_wire::{RunAccepted, RunInfo};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::Semaphore;

/// How long any wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

// --- the gate tool ---

/// A tool that waits until the test opens it (or its call is cancelled).
pub struct GateTool {
    spec: ToolSpec,
    open: Semaphore,
}

impl GateTool {
    pub fn new() -> GateTool {
        GateTool {
            spec: ToolSpec {
                name: "gate".to_owned(),
                description: "Waits for the test".to_owned(),
                input_schema: serde_json::json!({ "type": "object" }),
                concurrency_safe: false,
                capabilities: Vec::new(),
            },
            open: Semaphore::new(0),
        }
    }

    /// Lets one call return.
    pub fn open(&self) {
        self.open.add_permits(1);
    }
}

#[async_trait]
impl Tool for GateTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, _input: Value, ctx: ToolCtx) -> Result<ToolOutput, ToolError> {
        tokio::select! {
            permit = self.open.acquire() => {
                permit.unwrap().forget();
                Ok(ToolOutput::text("opened"))
            }
            () = ctx.cancel.cancelled() => Err(ToolError::Aborted),
        }
    }
}

// --- the test extension ---

struct TestWorldExtension {
    scripted: Arc<ScriptedProvider>,
    tools: Vec<Arc<dyn Tool>>,
}

#[async_trait]
impl Extension for TestWorldExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        Manifest::parse(
            "id = \"test-world\"\nversion = \"0.1.0\"\nkernel = \"^0.4\"\ntier = \"core\"\n",
        )
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        host.register_provider(self.scripted.clone())?;
        for tool in &self.tools {
            host.register_tool(tool.clone())?;
        }
        Ok(())
    }
}

// --- the world ---

/// The host configuration: data in `dir`, transport-http on port 0, `runs` as the runs
/// table.
pub fn host_config(dir: &std::path::Path, runs: &str) -> HostConfig {
    let mut extensions = BTreeMap::new();
    extensions.insert(
        "session-orchestrator".to_owned(),
        toml::from_str("default_model = \"scripted/test-model\"").unwrap(),
    );
    extensions.insert(
        "transport-http".to_owned(),
        toml::from_str("bind = \"127.0.0.1:0\"").unwrap(),
    );
    extensions.insert("runs".to_owned(), toml::from_str(runs).unwrap());
    HostConfig {
        data_dir: dir.to_path_buf(),
        extensions,
        ..HostConfig::default()
    }
}

/// What the runs extension needs, in list order.
pub fn supporting() -> Vec<Arc<dyn Extension>> {
    vec![
        Arc::new(ClockExtension),
        Arc::new(StorageSqliteExtension::default()),
        Arc::new(ConversationStoreExtension),
        Arc::new(ModelCatalogExtension),
        Arc::new(SessionOrchestratorExtension::default()),
        Arc::new(TransportHttpExtension::default()),
    ]
}

pub struct World {
    pub host: Host,
    pub url: String,
    pub http: reqwest::Client,
    pub session: Arc<dyn Session>,
    pub scripted: Arc<ScriptedProvider>,
    pub gate: Arc<GateTool>,
    pub hang: Arc<FakeTool>,
    pub probe: Arc<FakeTool>,
    pub dir: Arc<TempDir>,
}

impl World {
    pub async fn start() -> World {
        World::in_dir(Arc::new(TempDir::new().unwrap()), "").await
    }

    /// A world whose runs table is `runs` (TOML).
    pub async fn with_runs_config(runs: &str) -> World {
        World::in_dir(Arc::new(TempDir::new().unwrap()), runs).await
    }

    /// A world on the database of `dir` (e.g. left behind by an earlier host).
    pub async fn in_dir(dir: Arc<TempDir>, runs: &str) -> World {
        let scripted = Arc::new(ScriptedProvider::default());
        let gate = Arc::new(GateTool::new());
        let hang = FakeTool::new("hang", Behaviour::Hang).arc();
        let probe = FakeTool::reply("probe", "probed").arc();
        let mut extensions = supporting();
        extensions.insert(
            4,
            Arc::new(TestWorldExtension {
                scripted: scripted.clone(),
                tools: vec![gate.clone(), hang.clone(), probe.clone()],
            }),
        );
        extensions.push(Arc::new(RunsExtension::default()));
        let mut host = Host::new(extensions, host_config(dir.path(), runs)).unwrap();
        host.activate().await.unwrap();
        let url = host.services().get(&LISTENER).unwrap().url();
        let session = host.services().get(&SESSION).unwrap();
        World {
            host,
            url,
            http: reqwest::Client::new(),
            session,
            scripted,
            gate,
            hang,
            probe,
            dir,
        }
    }

    pub async fn stop(mut self) {
        self.host.deactivate().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// `POST /runs` with a JSON body; the status and the body.
    pub async fn post_run(&self, body: Value, key: Option<&str>) -> (u16, Value) {
        let mut request = self.http.post(self.url("/runs")).json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Submits a run that must be accepted.
    pub async fn submit(&self, body: Value) -> RunAccepted {
        let (status, body) = self.post_run(body, None).await;
        assert_eq!(status, 202, "{body}");
        serde_json::from_value(body).unwrap()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    pub async fn info(&self, run_id: &str) -> RunInfo {
        let (status, body) = self.get(&format!("/runs/{run_id}")).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_value(body).unwrap()
    }

    pub async fn cancel(&self, run_id: &str) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(&format!("/runs/{run_id}/cancel")))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Opens the run's event stream, optionally resuming after `last_event_id`.
    pub async fn events(&self, run_id: &str, last_event_id: Option<u64>) -> Sse {
        let mut request = self.http.get(self.url(&format!("/runs/{run_id}/events")));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Sse {
            response,
            buffer: String::new(),
        }
    }

    /// Every event of a run until its `run-end` (a fresh client).
    pub async fn all_events(&self, run_id: &str) -> Vec<SseEvent> {
        self.events(run_id, None).await.until_end().await
    }
}

// --- SSE ---

/// One SSE event as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: u64,
    pub event: String,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

pub struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    /// The next event (comments skipped); `None` when the stream closed.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    id: 0,
                    event: String::new(),
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(id) = line.strip_prefix("id: ") {
                        event.id = id.parse().unwrap();
                        any = true;
                    } else if let Some(kind) = line.strip_prefix("event: ") {
                        event.event = kind.to_owned();
                    } else if let Some(data) = line.strip_prefix("data: ") {
                        event.data = data.to_owned();
                    }
                }
                if any {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout(WAIT, self.response.chunk())
                .await
                .expect("no SSE data in time")
                .unwrap();
            match chunk {
                Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                None => return None,
            }
        }
    }

    /// Events up to and including the first of type `kind`.
    pub async fn until(&mut self, kind: &str) -> Vec<SseEvent> {
        let mut events = Vec::new();
        loop {
            let event = self.next().await.expect("the stream closed early");
            let done = event.event == kind;
            events.push(event);
            if done {
                return events;
            }
        }
    }

    /// Events up to `run-end`; asserts the stream then closes.
    pub async fn until_end(mut self) -> Vec<SseEvent> {
        let events = self.until("run-end").await;
        assert_eq!(
            self.next().await,
            None,
            "the stream must close after run-end"
        );
        events
    }
}

pub fn kinds(events: &[SseEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

/// The ids are 1.. in order, without a gap.
#[track_caller]
pub fn assert_contiguous(events: &[SseEvent], first: u64) {
    let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
    let expected: Vec<u64> = (first..first + events.len() as u64).collect();
    assert_eq!(ids, expected);
}
