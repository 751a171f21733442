//! A real host for the orchestrator's tests: clock, SQLite storage in a `TempDir`, the
//! conversation store, the model catalog, a test extension registering providers, tools and
//! hook recorders, and the session orchestrator itself.
//!
//! Two providers: `scripted` ([`ScriptedProvider`], whole responses queued up front) and
//! `paced` ([`PacedProvider`], each response fed event by event by the test, so a turn can
//! be held at an exact point without sleeping). Tools: `hang` (never returns, ignores its
//! token), `probe` (replies at once, records its cwd) and `gate` (waits until the test
//! opens it).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dispatch_clock::ClockExtension;
use dispatch_conversation_store::ConversationStoreExtension;
use dispatch_kernel::abi::{
    CONVERSATION_OPENED, CONVERSATION_STATUS_CHANGED, CONVERSATION_STORE, ConversationOpened,
    ConversationStatusChanged, ConversationStore, EventFrame, Extension, Manifest, Provider,
    ProviderError, ProviderEvent, ProviderRequest, ProviderStream, SESSION, Session, StopReason,
    Subscription, TURN_SETTLED, Tool, ToolCtx, ToolError, ToolOutput, ToolSpec, TurnSettled,
};
use dispatch_kernel::host::{Hook, Host, HostApi, HostConfig, hook_fn};
use dispatch_kernel::{BoxError, Error};
use dispatch_model_catalog::ModelCatalogExtension;
use dispatch_session_orchestrator::SessionOrchestratorExtension;
use dispatch_storage_sqlite::StorageSqliteExtension;
use dispatch_test_support::{Behaviour, FakeTool, ScriptedProvider};
use dispatch_wire::{AgentEvent, Id};
use futures::StreamExt;
use tempfile::TempDir;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

/// How long any wait in these tests may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// The orchestrator table every world starts from.
pub const BASE_CONFIG: &str = "default_model = \"scripted/test-model\"\n";

// --- the paced provider ---

/// A provider whose responses the test feeds event by event: [`PacedProvider::script`]
/// queues a response and returns its sender.
#[derive(Default)]
pub struct PacedProvider {
    pending: Mutex<VecDeque<mpsc::UnboundedReceiver<ProviderEvent>>>,
    requests: Mutex<Vec<ProviderRequest>>,
}

impl PacedProvider {
    /// Queues the next response; send its events through the returned sender.
    pub fn script(&self) -> Feed {
        let (tx, rx) = mpsc::unbounded_channel();
        self.pending.lock().unwrap().push_back(rx);
        Feed(tx)
    }

    pub fn requests(&self) -> Vec<ProviderRequest> {
        self.requests.lock().unwrap().clone()
    }
}

/// The test's end of one paced response.
pub struct Feed(mpsc::UnboundedSender<ProviderEvent>);

impl Feed {
    pub fn text(&self, delta: &str) {
        self.send(ProviderEvent::TextDelta(delta.to_owned()));
    }

    pub fn tool_call(&self, id: &str, name: &str) {
        self.send(ProviderEvent::ToolCall {
            id: id.to_owned(),
            name: name.to_owned(),
            arguments: "{}".to_owned(),
        });
    }

    pub fn finish(&self, reason: StopReason) {
        self.send(ProviderEvent::Finish(reason));
    }

    pub fn send(&self, event: ProviderEvent) {
        // A turn that already ended dropped its receiver; nothing to feed then.
        let _ = self.0.send(event);
    }
}

#[async_trait]
impl Provider for PacedProvider {
    fn id(&self) -> &str {
        "paced"
    }

    async fn stream(
        &self,
        request: &ProviderRequest,
        _cancel: CancellationToken,
    ) -> Result<ProviderStream, ProviderError> {
        self.requests.lock().unwrap().push(request.clone());
        let Some(rx) = self.pending.lock().unwrap().pop_front() else {
            return Err(ProviderError::fatal("PacedProvider: no response queued"));
        };
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|event| (Ok(event), rx))
        })
        .boxed())
    }
}

// --- the gate tool ---

/// A tool that waits until the test opens it (or its call is cancelled).
pub struct GateTool {
    spec: ToolSpec,
    entered: Semaphore,
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
            entered: Semaphore::new(0),
            open: Semaphore::new(0),
        }
    }

    /// Waits until a call is running.
    pub async fn entered(&self) {
        let permit = tokio::time::timeout(WAIT, self.entered.acquire())
            .await
            .expect("the gate tool was never called")
            .unwrap();
        permit.forget();
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

    async fn call(&self, _input: serde_json::Value, ctx: ToolCtx) -> Result<ToolOutput, ToolError> {
        self.entered.add_permits(1);
        tokio::select! {
            permit = self.open.acquire() => {
                permit.unwrap().forget();
                Ok(ToolOutput::text("opened"))
            }
            () = ctx.cancel.cancelled() => Err(ToolError::Aborted),
        }
    }
}

// --- hooks ---

/// A bus event the test extension saw.
#[derive(Debug, Clone, PartialEq)]
pub enum HookEvent {
    Status(ConversationStatusChanged),
    Opened(ConversationOpened),
    Settled(Box<TurnSettled>),
}

pub struct HookLog {
    events: Mutex<Vec<HookEvent>>,
    notify: Notify,
    /// While true, `TURN_SETTLED` handlers wait.
    hold_settled: watch::Sender<bool>,
}

impl Default for HookLog {
    fn default() -> HookLog {
        HookLog {
            events: Mutex::default(),
            notify: Notify::new(),
            hold_settled: watch::Sender::new(false),
        }
    }
}

impl HookLog {
    /// Makes every later `TURN_SETTLED` handler wait until [`HookLog::release_settled`].
    pub fn hold_settled(&self) {
        self.hold_settled.send_replace(true);
    }

    pub fn release_settled(&self) {
        self.hold_settled.send_replace(false);
    }

    fn push(&self, event: HookEvent) {
        self.events.lock().unwrap().push(event);
        self.notify.notify_waiters();
    }

    pub fn events(&self) -> Vec<HookEvent> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until an event matching `predicate` was seen and returns it.
    pub async fn wait_for(&self, predicate: impl Fn(&HookEvent) -> bool) -> HookEvent {
        let wait = async {
            loop {
                let notified = self.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(found) = self.events.lock().unwrap().iter().find(|e| predicate(e)) {
                    return found.clone();
                }
                notified.await;
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .expect("hook event never seen")
    }
}

/// Records `TURN_SETTLED`, waiting first while the log holds settlements.
struct SettledHook(Arc<HookLog>);

#[async_trait]
impl Hook<TurnSettled> for SettledHook {
    async fn handle(&self, payload: &TurnSettled) -> Result<(), BoxError> {
        self.0.push(HookEvent::Settled(Box::new(payload.clone())));
        let mut held = self.0.hold_settled.subscribe();
        held.wait_for(|held| !*held).await?;
        Ok(())
    }
}

// --- the test extension ---

struct TestWorldExtension {
    scripted: Arc<ScriptedProvider>,
    paced: Arc<PacedProvider>,
    tools: Vec<Arc<dyn Tool>>,
    hooks: Arc<HookLog>,
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
        host.register_provider(self.paced.clone())?;
        for tool in &self.tools {
            host.register_tool(tool.clone())?;
        }
        let hooks = self.hooks.clone();
        host.on(
            &CONVERSATION_STATUS_CHANGED,
            Arc::new(hook_fn(move |e: &ConversationStatusChanged| {
                hooks.push(HookEvent::Status(e.clone()));
                Ok(())
            })),
        );
        let hooks = self.hooks.clone();
        host.on(
            &CONVERSATION_OPENED,
            Arc::new(hook_fn(move |e: &ConversationOpened| {
                hooks.push(HookEvent::Opened(e.clone()));
                Ok(())
            })),
        );
        host.on(&TURN_SETTLED, Arc::new(SettledHook(self.hooks.clone())));
        Ok(())
    }
}

// --- the world ---

pub struct World {
    pub host: Host,
    pub session: Arc<dyn Session>,
    pub store: Arc<dyn ConversationStore>,
    pub scripted: Arc<ScriptedProvider>,
    pub paced: Arc<PacedProvider>,
    pub hang: Arc<FakeTool>,
    pub probe: Arc<FakeTool>,
    pub gate: Arc<GateTool>,
    pub hooks: Arc<HookLog>,
    pub dir: Arc<TempDir>,
}

/// The host configuration: data in `dir`, `orchestrator` as the orchestrator's table.
pub fn host_config(dir: &Path, orchestrator: &str) -> HostConfig {
    let mut extensions = BTreeMap::new();
    extensions.insert(
        "session-orchestrator".to_owned(),
        toml::from_str(orchestrator).unwrap(),
    );
    HostConfig {
        data_dir: dir.to_path_buf(),
        extensions,
        ..HostConfig::default()
    }
}

/// The extensions the orchestrator depends on, in list order.
pub fn supporting() -> Vec<Arc<dyn Extension>> {
    vec![
        Arc::new(ClockExtension),
        Arc::new(StorageSqliteExtension::default()),
        Arc::new(ConversationStoreExtension),
        Arc::new(ModelCatalogExtension),
    ]
}

impl World {
    /// A world with the base configuration.
    pub async fn start() -> World {
        World::with_config("").await
    }

    /// A world whose orchestrator table is the base plus `extra` (TOML lines).
    pub async fn with_config(extra: &str) -> World {
        World::in_dir(Arc::new(TempDir::new().unwrap()), extra).await
    }

    /// A world on the database of `dir` (e.g. left behind by an earlier host).
    pub async fn in_dir(dir: Arc<TempDir>, extra: &str) -> World {
        let scripted = Arc::new(ScriptedProvider::default());
        let paced = Arc::new(PacedProvider::default());
        let hang = FakeTool::new("hang", Behaviour::Hang).arc();
        let probe = FakeTool::reply("probe", "probed").arc();
        let gate = Arc::new(GateTool::new());
        let hooks = Arc::new(HookLog::default());
        let mut extensions = supporting();
        extensions.push(Arc::new(TestWorldExtension {
            scripted: scripted.clone(),
            paced: paced.clone(),
            tools: vec![hang.clone(), probe.clone(), gate.clone()],
            hooks: hooks.clone(),
        }));
        extensions.push(Arc::new(SessionOrchestratorExtension::default()));
        let config = host_config(dir.path(), &format!("{BASE_CONFIG}{extra}"));
        let mut host = Host::new(extensions, config).unwrap();
        host.activate().await.unwrap();
        let session = host.services().get(&SESSION).unwrap();
        let store = host.services().get(&CONVERSATION_STORE).unwrap();
        World {
            host,
            session,
            store,
            scripted,
            paced,
            hang,
            probe,
            gate,
            hooks,
            dir,
        }
    }

    pub async fn stop(mut self) {
        self.host.deactivate().await;
    }
}

// --- subscriptions ---

/// The next frame, failing the test after [`WAIT`] or when the subscription ended.
pub async fn next(subscription: &mut Subscription) -> Arc<EventFrame> {
    tokio::time::timeout(WAIT, subscription.recv())
        .await
        .expect("no frame arrived in time")
        .expect("the subscription ended")
}

/// Frames up to and including the first of type `type_name`.
pub async fn until(subscription: &mut Subscription, type_name: &str) -> Vec<Arc<EventFrame>> {
    let mut frames = Vec::new();
    loop {
        let frame = next(subscription).await;
        let done = frame.event.type_name() == type_name;
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

/// Frames up to and including `turn-sealed`.
pub async fn until_sealed(subscription: &mut Subscription) -> Vec<Arc<EventFrame>> {
    until(subscription, "turn-sealed").await
}

/// Every frame queued now.
pub fn drain(subscription: &mut Subscription) -> Vec<Arc<EventFrame>> {
    std::iter::from_fn(|| subscription.try_recv()).collect()
}

pub fn types(frames: &[Arc<EventFrame>]) -> Vec<&'static str> {
    frames.iter().map(|f| f.event.type_name()).collect()
}

/// `(turn, index, json)` of each frame: what a client sees, for whole comparisons.
pub fn seen(frames: &[Arc<EventFrame>]) -> Vec<(Id, u32, String)> {
    frames
        .iter()
        .map(|f| (f.turn_id.clone(), f.index, f.json.to_string()))
        .collect()
}

/// The `done` event's finish reason among `frames`.
pub fn finish_reason(frames: &[Arc<EventFrame>]) -> dispatch_wire::FinishReason {
    frames
        .iter()
        .find_map(|f| match &f.event {
            AgentEvent::Done { finish_reason, .. } => Some(*finish_reason),
            _ => None,
        })
        .expect("no done event")
}

pub fn send_request(conversation_id: &str, text: &str) -> dispatch_kernel::abi::SendRequest {
    dispatch_kernel::abi::SendRequest {
        conversation_id: Some(Id::from(conversation_id)),
        text: text.to_owned(),
        ..Default::default()
    }
}
