#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unused_imports)]
//! Shared fixtures: a real host (storage-sqlite on a TempDir, conversation-store) with a
//! small fake `Session` standing in for `session-orchestrator` and a fake system-prompt
//! service, plus request helpers for `oneshot` tests.
//!
//! The fake session runs a scripted turn per message: `user-message`, `turn-start`, one
//! `text-delta` per word of "echo: <text>", `done`, `turn-sealed`, persisting the user and
//! assistant messages in the real store and emitting `TURN_SETTLED`. A message starting
//! with `hang` waits for stop/close before finishing.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use dispatch_conversation_store::ConversationStoreExtension;
use dispatch_kernel::abi::{
    Accepted, ActionOutcome, BuiltPrompt, CONVERSATION_STORE, ConversationStore, Enqueued,
    EventFrame, Extension, Manifest, Message, ModelList, PromptContext, PromptTemplate, SESSION,
    SYSTEM_PROMPT, SendRequest, Session, SessionError, Subscriber, Subscription, SystemPromptError,
    SystemPromptService, SystemSection, TURN_SETTLED, TurnSettled,
};
use dispatch_kernel::host::{Bus, Host, HostApi, HostConfig};
use dispatch_kernel::{BoxError, Error};
use dispatch_storage_sqlite::StorageSqliteExtension;
use dispatch_transport_http::{AppParts, AppState, Config, TransportHttpExtension, app};
use dispatch_transport_kit::ROUTES;
use dispatch_wire::{
    AgentEvent, Chunk, ConversationStatus, FinishReason, Id, ModelInfo, ModelPricing,
    QueuedMessage, Role, SectionTier, StepMetrics, SystemPromptVariable, SystemSectionRecord,
    TurnMetrics, Usage,
};
use tempfile::TempDir;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub const MODEL: &str = "echo-model";

// ---------------------------------------------------------------- fake session

#[derive(Default)]
struct Conv {
    subscribers: Vec<Subscriber>,
    /// Frames of the running or latest turn (for re-attaching).
    frames: Vec<Arc<EventFrame>>,
    turn: Option<(Id, Option<String>)>,
    cancel: Option<CancellationToken>,
    active: Option<watch::Sender<bool>>,
}

impl Conv {
    fn active(&mut self) -> &watch::Sender<bool> {
        self.active.get_or_insert_with(|| watch::channel(false).0)
    }
}

pub struct FakeSession {
    store: Arc<dyn ConversationStore>,
    bus: Bus,
    convs: Mutex<HashMap<String, Conv>>,
    counter: AtomicU64,
    /// Every send and enqueue request, in order.
    pub requests: Mutex<Vec<SendRequest>>,
}

impl FakeSession {
    fn next(&self, prefix: &str) -> Id {
        Id::from(format!(
            "{prefix}{}",
            self.counter.fetch_add(1, Ordering::SeqCst) + 1
        ))
    }

    fn deliver(&self, conversation_id: &str, frame: Arc<EventFrame>) {
        let mut convs = self.convs.lock().unwrap();
        let conv = convs.entry(conversation_id.to_owned()).or_default();
        conv.frames.push(frame.clone());
        conv.subscribers
            .retain(|s| s.deliver(frame.clone()).is_ok());
    }

    async fn start(self: &Arc<Self>, request: SendRequest) -> Result<Accepted, SessionError> {
        let conversation_id = request
            .conversation_id
            .clone()
            .unwrap_or_else(|| self.next("conv-"));
        let (subscriber, subscription) = Subscription::channel(conversation_id.clone(), 1024);
        {
            let mut convs = self.convs.lock().unwrap();
            let conv = convs.entry(conversation_id.to_string()).or_default();
            if let (Some(key), Some((turn_id, Some(last_key)))) = (&request.request_id, &conv.turn)
            {
                if key == last_key {
                    for frame in &conv.frames {
                        subscriber.deliver(frame.clone()).unwrap();
                    }
                    conv.subscribers.push(subscriber);
                    return Ok(Accepted {
                        conversation_id,
                        turn_id: turn_id.clone(),
                        reattached: true,
                        subscription,
                    });
                }
            }
            if *conv.active().borrow() {
                return Err(SessionError::AlreadyActive { conversation_id });
            }
        }
        self.store
            .ensure(&conversation_id, request.workspace_id.as_deref())
            .await?;
        if let Some(model) = &request.model {
            self.store.set_model(&conversation_id, Some(model)).await?;
        }
        let turn_id = self.next("turn-");
        let cancel = CancellationToken::new();
        {
            let mut convs = self.convs.lock().unwrap();
            let conv = convs.entry(conversation_id.to_string()).or_default();
            conv.frames.clear();
            conv.turn = Some((turn_id.clone(), request.request_id.clone()));
            conv.cancel = Some(cancel.clone());
            conv.active().send_replace(true);
            conv.subscribers.push(subscriber);
        }
        self.store
            .set_status(&conversation_id, ConversationStatus::Active)
            .await?;
        let user_id = self.next("msg-");
        self.store
            .append(
                &conversation_id,
                Some(&turn_id),
                None,
                &[Message::user(user_id.clone(), request.text.clone())],
            )
            .await?;
        let this = self.clone();
        let (conv, turn) = (conversation_id.clone(), turn_id.clone());
        tokio::spawn(async move { this.run(conv, turn, user_id, request.text, cancel).await });
        Ok(Accepted {
            conversation_id,
            turn_id,
            reattached: false,
            subscription,
        })
    }

    async fn run(
        self: Arc<Self>,
        conversation_id: Id,
        turn_id: Id,
        message_id: Id,
        text: String,
        cancel: CancellationToken,
    ) {
        let mut index = 0;
        let emit = |event: AgentEvent, index: &mut u32| {
            let frame = Arc::new(EventFrame {
                conversation_id: conversation_id.clone(),
                turn_id: turn_id.clone(),
                index: *index,
                json: serde_json::to_string(&event).unwrap().into(),
                event,
            });
            *index += 1;
            self.deliver(&conversation_id, frame);
        };
        let (c, t) = (conversation_id.clone(), turn_id.clone());
        let step_id = Id::from(format!("{turn_id}#0"));
        emit(
            AgentEvent::UserMessage {
                conversation_id: c.clone(),
                turn_id: t.clone(),
                message_id,
                text: text.clone(),
            },
            &mut index,
        );
        emit(
            AgentEvent::TurnStart {
                conversation_id: c.clone(),
                turn_id: t.clone(),
                model: MODEL.into(),
                started_at: 1_000,
            },
            &mut index,
        );
        let reply = format!("echo: {text}");
        for word in reply.split_inclusive(' ') {
            emit(
                AgentEvent::TextDelta {
                    conversation_id: c.clone(),
                    turn_id: t.clone(),
                    step_id: step_id.clone(),
                    delta: word.to_owned(),
                },
                &mut index,
            );
        }
        let aborted = if text.starts_with("hang") {
            cancel.cancelled().await;
            true
        } else {
            false
        };
        let finish = if aborted {
            FinishReason::Aborted
        } else {
            FinishReason::Stop
        };
        emit(
            AgentEvent::Done {
                conversation_id: c.clone(),
                turn_id: t.clone(),
                finish_reason: finish,
                usage: Usage::default(),
                cost: None,
                duration_ms: 5,
                context_size: None,
                steps: 1,
            },
            &mut index,
        );
        let stored = self
            .store
            .append(
                &c,
                Some(&t),
                Some(&step_id),
                &[Message::new(
                    self.next("msg-"),
                    Role::Assistant,
                    vec![Chunk::Text { text: reply }],
                )],
            )
            .await
            .unwrap();
        let _ = self.store.set_status(&c, ConversationStatus::Idle).await;
        // TURN_SETTLED before the seal frame reaches clients, so a client that saw
        // `turn-sealed` finds the throughput sample (the fake's ordering, for determinism).
        self.bus
            .emit(
                &TURN_SETTLED,
                TurnSettled {
                    conversation_id: c.clone(),
                    workspace_id: "default".into(),
                    provider: "echo".into(),
                    metrics: TurnMetrics {
                        turn_id: t.clone(),
                        model: MODEL.into(),
                        finish_reason: finish,
                        started_at: 1_000,
                        duration_ms: 5,
                        usage: Usage::default(),
                        cost: None,
                        context_size: None,
                        steps: vec![StepMetrics {
                            step_id,
                            step_index: 0,
                            ttft_ms: Some(1),
                            decode_ms: Some(50),
                            gen_total_ms: 51,
                            usage: Usage {
                                output_tokens: 10,
                                ..Usage::default()
                            },
                        }],
                        system_prompt: Vec::new(),
                    },
                },
            )
            .await;
        {
            let mut convs = self.convs.lock().unwrap();
            let conv = convs.entry(c.to_string()).or_default();
            conv.cancel = None;
            conv.active().send_replace(false);
        }
        emit(
            AgentEvent::TurnSealed {
                conversation_id: c.clone(),
                turn_id: t.clone(),
                last_seq: stored.last().map(|s| s.seq),
            },
            &mut index,
        );
    }

    async fn abort(&self, conversation_id: &str) -> bool {
        let (cancel, mut rx) = {
            let mut convs = self.convs.lock().unwrap();
            let conv = convs.entry(conversation_id.to_owned()).or_default();
            (conv.cancel.clone(), conv.active().subscribe())
        };
        let Some(cancel) = cancel else {
            return false;
        };
        cancel.cancel();
        let _ = rx.wait_for(|active| !*active).await;
        true
    }

    async fn outcome(
        &self,
        conversation_id: &str,
        aborted_turn: bool,
    ) -> Result<ActionOutcome, SessionError> {
        let meta =
            self.store
                .meta(conversation_id)
                .await?
                .ok_or_else(|| SessionError::NotFound {
                    what: "conversation",
                    id: conversation_id.to_owned(),
                })?;
        Ok(ActionOutcome {
            conversation_id: meta.id,
            aborted_turn,
            status: meta.status,
            workspace_id: meta.workspace_id,
        })
    }
}

/// `Arc` wrapper so the trait methods can spawn turn tasks holding the session.
pub struct SharedSession(pub Arc<FakeSession>);

#[async_trait]
impl Session for SharedSession {
    async fn send(&self, request: SendRequest) -> Result<Accepted, SessionError> {
        self.0.requests.lock().unwrap().push(request.clone());
        self.0.start(request).await
    }

    fn subscribe(&self, conversation_id: &str) -> Subscription {
        let (subscriber, subscription) = Subscription::channel(Id::from(conversation_id), 1024);
        let mut convs = self.0.convs.lock().unwrap();
        convs
            .entry(conversation_id.to_owned())
            .or_default()
            .subscribers
            .push(subscriber);
        subscription
    }

    async fn enqueue(&self, request: SendRequest) -> Result<Enqueued, SessionError> {
        self.0.requests.lock().unwrap().push(request.clone());
        let conversation_id = request
            .conversation_id
            .clone()
            .ok_or(SessionError::Invalid {
                field: "conversationId",
                message: "required".into(),
            })?;
        let queued = QueuedMessage {
            id: self.0.next("q-"),
            text: request.text.clone(),
            enqueued_at: 7,
        };
        let started = if self.is_active(&conversation_id) {
            None
        } else {
            Some(self.0.start(request).await?)
        };
        Ok(Enqueued {
            conversation_id,
            queued,
            started,
        })
    }

    async fn stop(&self, conversation_id: &str) -> Result<ActionOutcome, SessionError> {
        let aborted = self.0.abort(conversation_id).await;
        self.0.outcome(conversation_id, aborted).await
    }

    async fn close(&self, conversation_id: &str) -> Result<ActionOutcome, SessionError> {
        let aborted = self.0.abort(conversation_id).await;
        self.0
            .store
            .set_status(conversation_id, ConversationStatus::Closed)
            .await?;
        self.0.outcome(conversation_id, aborted).await
    }

    async fn open(&self, conversation_id: &str) -> Result<ActionOutcome, SessionError> {
        self.0.outcome(conversation_id, false).await
    }

    fn is_active(&self, conversation_id: &str) -> bool {
        let mut convs = self.0.convs.lock().unwrap();
        convs
            .get_mut(conversation_id)
            .is_some_and(|c| *c.active().borrow())
    }

    async fn settled(&self, conversation_id: &str) {
        let mut rx = {
            let mut convs = self.0.convs.lock().unwrap();
            convs
                .entry(conversation_id.to_owned())
                .or_default()
                .active()
                .subscribe()
        };
        let _ = rx.wait_for(|active| !*active).await;
    }

    async fn models(&self) -> ModelList {
        ModelList {
            models: vec![ModelInfo {
                id: MODEL.into(),
                provider: "echo".into(),
                context_window: 1000,
                max_output: 100,
                pricing: ModelPricing::default(),
                reasoning: false,
                known: true,
                description: None,
            }],
            default_model: Some(MODEL.into()),
        }
    }

    async fn effective_cwd(
        &self,
        conversation_id: &str,
        override_cwd: Option<&str>,
    ) -> Result<PathBuf, SessionError> {
        Ok(self
            .0
            .store
            .effective_cwd(conversation_id, override_cwd)
            .await?)
    }

    async fn meta(
        &self,
        conversation_id: &str,
    ) -> Result<Option<dispatch_wire::ConversationMeta>, SessionError> {
        Ok(self.0.store.meta(conversation_id).await?)
    }
}

/// Stands in for `session-orchestrator`; keeps the session for assertions.
#[derive(Default)]
pub struct FakeSessionExtension {
    pub session: Mutex<Option<Arc<FakeSession>>>,
}

#[async_trait]
impl Extension for FakeSessionExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        Manifest::parse(
            "id = \"session-orchestrator\"\nversion = \"0.1.0\"\nkernel = \"^0.4\"\n\
             tier = \"core\"\n[depends_on]\nconversation-store = \"^0.1\"\n",
        )
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let session = Arc::new(FakeSession {
            store: host.service(&CONVERSATION_STORE)?,
            bus: host.bus(),
            convs: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
            requests: Mutex::new(Vec::new()),
        });
        let service: Arc<dyn Session> = Arc::new(SharedSession(session.clone()));
        host.provide(&SESSION, service)?;
        *self.session.lock().unwrap() = Some(session);
        Ok(())
    }
}

// ---------------------------------------------------------- fake system prompt

pub const DEFAULT_TEMPLATE: &str = "You are Dispatch. [system:date]";
/// The one conversation the fake has a built prompt for.
pub const PROMPTED: &str = "prompted";

pub struct FakeSystemPrompt {
    template: Mutex<Option<String>>,
}

#[async_trait]
impl SystemPromptService for FakeSystemPrompt {
    async fn prompt(&self, _ctx: &PromptContext) -> Result<BuiltPrompt, SystemPromptError> {
        Err(SystemPromptError::Storage("not in this fake".into()))
    }

    async fn stored(
        &self,
        conversation_id: &str,
    ) -> Result<Option<BuiltPrompt>, SystemPromptError> {
        if conversation_id != PROMPTED {
            return Ok(None);
        }
        Ok(Some(BuiltPrompt {
            sections: vec![SystemSection::new("stable", "You are Dispatch.")].into(),
            records: vec![SystemSectionRecord {
                name: "stable".into(),
                tier: SectionTier::Stable,
                bytes: 17,
                hash: "0123456789abcdef".into(),
            }],
            cwd: PathBuf::from("/srv/project"),
            rebuilt: false,
        }))
    }

    async fn invalidate(&self, _conversation_id: &str) -> Result<(), SystemPromptError> {
        Ok(())
    }

    async fn template(&self) -> Result<PromptTemplate, SystemPromptError> {
        let template = self.template.lock().unwrap().clone();
        Ok(PromptTemplate {
            is_default: template.is_none(),
            template: template.unwrap_or_else(|| DEFAULT_TEMPLATE.into()),
        })
    }

    async fn set_template(
        &self,
        template: Option<&str>,
    ) -> Result<PromptTemplate, SystemPromptError> {
        if let Some(text) = template {
            if text.contains("[if") && !text.contains("[/if]") {
                return Err(SystemPromptError::InvalidTemplate(
                    "line 1: unbalanced [if]".into(),
                ));
            }
        }
        *self.template.lock().unwrap() = template.map(str::to_owned);
        self.template().await
    }

    fn variables(&self) -> Vec<SystemPromptVariable> {
        vec![SystemPromptVariable {
            name: "system:date".into(),
            description: "Today's date".into(),
        }]
    }
}

pub struct FakeSystemPromptExtension;

#[async_trait]
impl Extension for FakeSystemPromptExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        Manifest::parse(
            "id = \"system-prompt\"\nversion = \"0.1.0\"\nkernel = \"^0.4\"\ntier = \"core\"\n",
        )
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let service: Arc<dyn SystemPromptService> = Arc::new(FakeSystemPrompt {
            template: Mutex::new(None),
        });
        host.provide(&SYSTEM_PROMPT, service)?;
        Ok(())
    }
}

// --------------------------------------------------------------------- harness

/// The supporting extensions (storage, store, fake session, fake system prompt) and the
/// host config for `dir`, with `[extensions.transport-http]` = `http` (TOML).
pub fn host_parts(
    dir: &TempDir,
    http: &str,
) -> (
    Vec<Arc<dyn Extension>>,
    Arc<FakeSessionExtension>,
    HostConfig,
) {
    let session = Arc::new(FakeSessionExtension::default());
    let extensions: Vec<Arc<dyn Extension>> = vec![
        Arc::new(StorageSqliteExtension::default()),
        Arc::new(ConversationStoreExtension),
        session.clone(),
        Arc::new(FakeSystemPromptExtension),
    ];
    let mut tables = BTreeMap::new();
    tables.insert(
        "storage-sqlite".to_owned(),
        toml::from_str(&format!(
            "path = {:?}",
            dir.path().join("dispatch.db").display().to_string()
        ))
        .unwrap(),
    );
    tables.insert(
        "conversation-store".to_owned(),
        toml::from_str("server_default_cwd = \"/srv/default\"").unwrap(),
    );
    tables.insert("transport-http".to_owned(), toml::from_str(http).unwrap());
    let config = HostConfig {
        data_dir: dir.path().to_path_buf(),
        extensions: tables,
        ..HostConfig::default()
    };
    (extensions, session, config)
}

/// A running host with the HTTP extension activated on `127.0.0.1:0`.
pub struct TestServer {
    pub host: Host,
    pub session: Arc<FakeSession>,
    pub config: Config,
    pub dir: TempDir,
}

impl TestServer {
    /// `http` is extra TOML for `[extensions.transport-http]` (the bind is added).
    pub async fn start(http: &str) -> TestServer {
        let dir = TempDir::new().unwrap();
        let table = format!("bind = \"127.0.0.1:0\"\n{http}");
        let (mut extensions, session_ext, host_config) = host_parts(&dir, &table);
        extensions.push(Arc::new(TransportHttpExtension::default()));
        let mut host = Host::new(extensions, host_config).unwrap();
        host.activate().await.unwrap();
        let session = session_ext.session.lock().unwrap().clone().unwrap();
        TestServer {
            host,
            session,
            config: toml::from_str(&table).unwrap(),
            dir,
        }
    }

    /// A fresh in-process app on this host's services (for `oneshot`).
    pub fn app(&self) -> Router {
        let parts = AppParts {
            routes: self.host.services().get(&ROUTES).unwrap(),
            ..AppParts::default()
        };
        app(AppState::new(self.host.services(), &self.config, parts))
    }

    pub fn store(&self) -> Arc<dyn ConversationStore> {
        self.host.services().get(&CONVERSATION_STORE).unwrap()
    }

    pub fn session(&self) -> Arc<dyn Session> {
        self.host.services().get(&SESSION).unwrap()
    }

    pub fn url(&self) -> String {
        self.host
            .services()
            .get(&dispatch_transport_kit::LISTENER)
            .unwrap()
            .url()
    }

    pub async fn stop(mut self) {
        self.host.deactivate().await;
    }
}

/// One in-process request's answer.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!("not JSON ({err}): {}", String::from_utf8_lossy(&self.body))
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request through `app` (JSON content type when there is a body).
pub async fn call(app: &Router, method: &str, uri: &str, body: Option<&str>) -> Reply {
    call_with(app, method, uri, body, &[]).await
}

pub async fn call_with(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

/// The `type` of each NDJSON line.
pub fn ndjson_types(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["type"].as_str().unwrap().to_owned()
        })
        .collect()
}
