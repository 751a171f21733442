//! Test parts: a scripted [`FakeSession`] (a tiny hub with in-flight replay whose events
//! the test emits one by one), stand-ins for `transport-http` (provides `ROUTES`) and
//! `session-orchestrator` (provides `SESSION`), a [`Server`] serving the mounted router on
//! a real 127.0.0.1 listener, and a [`Client`] speaking real WebSocket to it.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dispatch_kernel::abi::{
    Accepted, ActionOutcome, Enqueued, EventFrame, Extension, Manifest, ModelList, SESSION,
    SendRequest, Session, SessionError, Subscriber, Subscription,
};
use dispatch_kernel::host::{Bus, Host, HostApi, HostConfig};
use dispatch_kernel::{BoxError, Error};
use dispatch_transport_kit::{ROUTES, RouteRegistry};
use dispatch_transport_ws::TransportWsExtension;
use dispatch_wire::{
    AgentEvent, ConversationMeta, FinishReason, Id, QueuedMessage, Usage, WsServerMessage,
};
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// How long any single wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// The scripted session
// ---------------------------------------------------------------------------------------

/// A session whose turns are driven by the test: `send`/`enqueue` start a turn and emit
/// its `user-message`; the test emits the rest with [`FakeSession::emit`]. Subscribers get
/// the running turn replayed, then live frames, like the real hub.
pub struct FakeSession {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next: u64,
    conversations: HashMap<Id, Conversation>,
    /// Calls of stop/close: a WebSocket must never make any.
    aborts: usize,
}

#[derive(Default)]
struct Conversation {
    subscribers: Vec<Subscriber>,
    turn: Option<Turn>,
}

struct Turn {
    id: Id,
    request_id: Option<String>,
    frames: Vec<Arc<EventFrame>>,
}

impl FakeSession {
    /// `capacity`: each subscription's queue.
    pub fn new(capacity: usize) -> Arc<FakeSession> {
        Arc::new(FakeSession {
            capacity,
            state: Mutex::new(State::default()),
        })
    }

    /// Emits one event of the conversation's running turn to every subscriber.
    pub fn emit(&self, event: AgentEvent) {
        let conversation_id = event.conversation_id().unwrap().clone();
        let mut state = self.state.lock().unwrap();
        let conversation = state
            .conversations
            .entry(conversation_id.clone())
            .or_default();
        let turn = conversation.turn.as_mut().expect("no running turn");
        let frame = Arc::new(EventFrame {
            conversation_id,
            turn_id: turn.id.clone(),
            index: u32::try_from(turn.frames.len()).unwrap(),
            json: Arc::from(serde_json::to_string(&event).unwrap()),
            event,
        });
        turn.frames.push(frame.clone());
        if matches!(frame.event, AgentEvent::TurnSealed { .. }) {
            conversation.turn = None;
        }
        conversation
            .subscribers
            .retain(|s| s.deliver(frame.clone()).is_ok());
    }

    /// Live subscriptions of a conversation (dropped ones are forgotten first).
    pub fn subscribers(&self, conversation_id: &str) -> usize {
        let mut state = self.state.lock().unwrap();
        let Some(conversation) = state.conversations.get_mut(conversation_id) else {
            return 0;
        };
        conversation.subscribers.retain(|s| !s.is_closed());
        conversation.subscribers.len()
    }

    pub fn aborts(&self) -> usize {
        self.state.lock().unwrap().aborts
    }

    fn subscribe_locked(&self, conversation: &mut Conversation, id: &Id) -> Subscription {
        let (subscriber, subscription) = Subscription::channel(id.clone(), self.capacity);
        let mut live = true;
        if let Some(turn) = &conversation.turn {
            live = turn
                .frames
                .iter()
                .all(|frame| subscriber.deliver(frame.clone()).is_ok());
        }
        if live {
            conversation.subscribers.push(subscriber);
        }
        subscription
    }

    /// Starts a turn (the caller checked the conversation is idle) and emits its prompt.
    fn start(&self, id: Id, text: String, request_id: Option<String>) -> Accepted {
        let subscription;
        let turn_id;
        {
            let mut state = self.state.lock().unwrap();
            state.next += 1;
            turn_id = Id::from(format!("t_{}", state.next));
            let conversation = state.conversations.entry(id.clone()).or_default();
            conversation.turn = Some(Turn {
                id: turn_id.clone(),
                request_id,
                frames: Vec::new(),
            });
            subscription = self.subscribe_locked(conversation, &id);
        }
        self.emit(AgentEvent::UserMessage {
            conversation_id: id.clone(),
            turn_id: turn_id.clone(),
            message_id: Id::from(format!("m_{turn_id}")),
            text,
        });
        Accepted {
            conversation_id: id,
            turn_id,
            reattached: false,
            subscription,
        }
    }
}

#[async_trait]
impl Session for FakeSession {
    async fn send(&self, request: SendRequest) -> Result<Accepted, SessionError> {
        if request.text.trim().is_empty() {
            return Err(SessionError::Invalid {
                field: "message",
                message: "must not be empty".into(),
            });
        }
        let id = {
            let mut state = self.state.lock().unwrap();
            let id = match request.conversation_id.clone() {
                Some(id) => id,
                None => {
                    state.next += 1;
                    Id::from(format!("c_{}", state.next))
                }
            };
            let conversation = state.conversations.entry(id.clone()).or_default();
            if let Some(turn) = &conversation.turn {
                if request.request_id.is_some() && turn.request_id == request.request_id {
                    let turn_id = turn.id.clone();
                    let subscription = self.subscribe_locked(conversation, &id);
                    return Ok(Accepted {
                        conversation_id: id,
                        turn_id,
                        reattached: true,
                        subscription,
                    });
                }
                return Err(SessionError::AlreadyActive {
                    conversation_id: id,
                });
            }
            id
        };
        Ok(self.start(id, request.text, request.request_id))
    }

    fn subscribe(&self, conversation_id: &str) -> Subscription {
        let id = Id::from(conversation_id);
        let mut state = self.state.lock().unwrap();
        let conversation = state.conversations.entry(id.clone()).or_default();
        self.subscribe_locked(conversation, &id)
    }

    async fn enqueue(&self, request: SendRequest) -> Result<Enqueued, SessionError> {
        let Some(id) = request.conversation_id.clone() else {
            return Err(SessionError::Invalid {
                field: "conversationId",
                message: "required".into(),
            });
        };
        let queued = QueuedMessage {
            id: Id::from(format!("q_{}", request.text.len())),
            text: request.text.clone(),
            enqueued_at: 0,
        };
        if self.is_active(&id) {
            return Ok(Enqueued {
                conversation_id: id,
                queued,
                started: None,
            });
        }
        let started = self.start(id.clone(), request.text, request.request_id);
        Ok(Enqueued {
            conversation_id: id,
            queued,
            started: Some(started),
        })
    }

    async fn stop(&self, conversation_id: &str) -> Result<ActionOutcome, SessionError> {
        self.state.lock().unwrap().aborts += 1;
        Err(SessionError::Conflict(format!(
            "stop `{conversation_id}` is not scripted"
        )))
    }

    async fn close(&self, conversation_id: &str) -> Result<ActionOutcome, SessionError> {
        self.stop(conversation_id).await
    }

    async fn open(&self, conversation_id: &str) -> Result<ActionOutcome, SessionError> {
        Err(SessionError::Conflict(format!(
            "open `{conversation_id}` is not scripted"
        )))
    }

    fn is_active(&self, conversation_id: &str) -> bool {
        let state = self.state.lock().unwrap();
        state
            .conversations
            .get(conversation_id)
            .is_some_and(|c| c.turn.is_some())
    }

    async fn settled(&self, _conversation_id: &str) {}

    async fn models(&self) -> ModelList {
        ModelList::default()
    }

    async fn effective_cwd(
        &self,
        _conversation_id: &str,
        _override_cwd: Option<&str>,
    ) -> Result<PathBuf, SessionError> {
        Ok(PathBuf::from("/"))
    }

    async fn meta(&self, _conversation_id: &str) -> Result<Option<ConversationMeta>, SessionError> {
        Ok(None)
    }
}

// ---------------------------------------------------------------------------------------
// Stand-in extensions
// ---------------------------------------------------------------------------------------

fn manifest(id: &str) -> Result<Manifest, Error> {
    Manifest::parse(&format!(
        "id = \"{id}\"\nversion = \"0.1.0\"\nkernel = \"^0.4\"\ntier = \"core\"\n"
    ))
}

/// Stands in for `transport-http`: provides the route registry.
pub struct FakeHttp;

#[async_trait]
impl Extension for FakeHttp {
    fn manifest(&self) -> Result<Manifest, Error> {
        manifest("transport-http")
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        host.provide(&ROUTES, dispatch_transport_kit::registry())?;
        Ok(())
    }
}

/// Stands in for `session-orchestrator`: provides a session.
pub struct FakeOrchestrator(pub Arc<dyn Session>);

#[async_trait]
impl Extension for FakeOrchestrator {
    fn manifest(&self) -> Result<Manifest, Error> {
        manifest("session-orchestrator")
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        host.provide(&SESSION, self.0.clone())?;
        Ok(())
    }
}

/// The extensions `transport-ws` needs, providing `ROUTES` and `SESSION`.
pub fn supporting(session: Arc<dyn Session>) -> Vec<Arc<dyn Extension>> {
    vec![Arc::new(FakeHttp), Arc::new(FakeOrchestrator(session))]
}

// ---------------------------------------------------------------------------------------
// Server and client
// ---------------------------------------------------------------------------------------

/// A host with `transport-ws` active, its router served on 127.0.0.1.
pub struct Server {
    pub host: Host,
    pub session: Arc<FakeSession>,
    pub routes: Arc<RouteRegistry>,
    pub addr: SocketAddr,
    serving: tokio::task::JoinHandle<()>,
}

/// How the test server is set up.
pub struct Setup {
    /// The `[extensions.transport-ws]` table, as TOML.
    pub config: &'static str,
    /// Each fake-session subscription's queue.
    pub session_capacity: usize,
    /// SO_SNDBUF of the listening socket (inherited by accepted sockets), to make a
    /// client that stops reading back up quickly.
    pub send_buffer: Option<u32>,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            config: "",
            session_capacity: 1024,
            send_buffer: None,
        }
    }
}

impl Server {
    pub async fn start(setup: Setup) -> Server {
        let session = FakeSession::new(setup.session_capacity);
        let mut config = HostConfig::default();
        config.extensions.insert(
            "transport-ws".to_string(),
            toml::from_str(setup.config).unwrap(),
        );
        let mut extensions = supporting(session.clone());
        extensions.push(Arc::new(TransportWsExtension::default()));
        let mut host = Host::new(extensions, config).unwrap();
        host.activate().await.unwrap();
        let routes = host.services().get(&ROUTES).unwrap();
        let router = routes.router().expect("transport-ws mounted nothing");

        let (addr, serving) = serve(router, setup.send_buffer).await;
        Server {
            host,
            session,
            routes,
            addr,
            serving,
        }
    }

    pub fn bus(&self) -> Bus {
        self.host.bus()
    }

    pub async fn connect(&self) -> Client {
        Client::connect(self.addr, None).await
    }

    /// A client whose socket has a small receive buffer.
    pub async fn connect_small(&self, receive_buffer: u32) -> Client {
        Client::connect(self.addr, Some(receive_buffer)).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

/// Serves `router` on a fresh 127.0.0.1 port; `send_buffer` is the listening socket's
/// SO_SNDBUF (inherited by accepted sockets), to make a client that stops reading back up
/// quickly.
pub async fn serve(
    router: axum::Router,
    send_buffer: Option<u32>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(size) = send_buffer {
        socket.set_send_buffer_size(size).unwrap();
    }
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(64).unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (addr, serving)
}

/// What a client read.
#[derive(Debug)]
pub enum Read {
    Message(WsServerMessage),
    Close(Option<CloseFrame>),
}

pub struct Client {
    ws: WebSocketStream<TcpStream>,
}

impl Client {
    pub async fn connect(addr: SocketAddr, receive_buffer: Option<u32>) -> Client {
        let socket = TcpSocket::new_v4().unwrap();
        if let Some(size) = receive_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let stream = socket.connect(addr).await.unwrap();
        let (ws, response) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream)
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 101);
        Client { ws }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn send_json(&mut self, value: serde_json::Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.unwrap();
    }

    /// The next text message or close; pings and pongs are skipped.
    pub async fn read(&mut self) -> Read {
        loop {
            let next = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("timed out waiting for a WebSocket message");
            match next {
                Some(Ok(Message::Text(text))) => {
                    let message: WsServerMessage = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|err| panic!("unparsable server message {text}: {err}"));
                    assert_ne!(message, WsServerMessage::Unknown, "{text}");
                    return Read::Message(message);
                }
                Some(Ok(Message::Close(frame))) => return Read::Close(frame),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(other)) => panic!("unexpected frame {other:?}"),
                Some(Err(err)) => panic!("read failed: {err}"),
                None => return Read::Close(None),
            }
        }
    }

    /// The next message, which must not be a close.
    pub async fn next(&mut self) -> WsServerMessage {
        match self.read().await {
            Read::Message(message) => message,
            Read::Close(frame) => panic!("closed unexpectedly: {frame:?}"),
        }
    }

    /// The next message, which must be a `chat.delta`; returns its event.
    pub async fn next_event(&mut self) -> AgentEvent {
        match self.next().await {
            WsServerMessage::ChatDelta { event, .. } => event,
            other => panic!("expected chat.delta, got {other:?}"),
        }
    }

    /// Reads until the socket closes; returns the messages before and the close frame.
    pub async fn until_close(&mut self) -> (Vec<WsServerMessage>, Option<CloseFrame>) {
        let mut before = Vec::new();
        loop {
            match self.read().await {
                Read::Message(message) => before.push(message),
                Read::Close(frame) => return (before, frame),
            }
        }
    }

    /// Raw access, for ping and for closing.
    pub fn ws(&mut self) -> &mut WebSocketStream<TcpStream> {
        &mut self.ws
    }
}

/// Waits (yielding, never sleeping) until `condition` holds.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !condition() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

// ---------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------

/// Builds a turn's events.
pub struct Script {
    pub conversation_id: Id,
    pub turn_id: Id,
}

impl Script {
    pub fn new(conversation_id: &str, turn_id: &str) -> Script {
        Script {
            conversation_id: Id::from(conversation_id),
            turn_id: Id::from(turn_id),
        }
    }

    pub fn user_message(&self, text: &str) -> AgentEvent {
        AgentEvent::UserMessage {
            conversation_id: self.conversation_id.clone(),
            turn_id: self.turn_id.clone(),
            message_id: Id::from(format!("m_{}", self.turn_id)),
            text: text.to_string(),
        }
    }

    pub fn turn_start(&self) -> AgentEvent {
        AgentEvent::TurnStart {
            conversation_id: self.conversation_id.clone(),
            turn_id: self.turn_id.clone(),
            model: "echo".into(),
            started_at: 1,
        }
    }

    pub fn text(&self, delta: &str) -> AgentEvent {
        AgentEvent::TextDelta {
            conversation_id: self.conversation_id.clone(),
            turn_id: self.turn_id.clone(),
            step_id: Id::from(format!("{}#0", self.turn_id)),
            delta: delta.to_string(),
        }
    }

    pub fn error(&self, message: &str) -> AgentEvent {
        AgentEvent::Error {
            conversation_id: self.conversation_id.clone(),
            turn_id: self.turn_id.clone(),
            step_id: None,
            message: message.to_string(),
            code: Some("provider".into()),
            retryable: false,
        }
    }

    pub fn done(&self, finish_reason: FinishReason) -> AgentEvent {
        AgentEvent::Done {
            conversation_id: self.conversation_id.clone(),
            turn_id: self.turn_id.clone(),
            finish_reason,
            usage: Usage::default(),
            cost: None,
            duration_ms: 3,
            context_size: None,
            steps: 1,
        }
    }

    pub fn sealed(&self) -> AgentEvent {
        AgentEvent::TurnSealed {
            conversation_id: self.conversation_id.clone(),
            turn_id: self.turn_id.clone(),
            last_seq: Some(2),
        }
    }
}
