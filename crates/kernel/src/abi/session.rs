//! The session service: who owns running turns. Provided by `session-orchestrator`; used by
//! every transport (HTTP, WebSocket, RPC, runs, the SDK), which only start, watch, steer and
//! stop turns and never hold a turn's only handle.
//!
//! A turn is detached from whoever started it: dropping every [`Subscription`] of a
//! conversation never aborts its turn. Only [`Session::stop`], [`Session::close`] and server
//! shutdown do.
//!
//! Events reach subscribers as [`EventFrame`]s: each [`AgentEvent`] is serialized to JSON
//! once, when it is emitted, and the same bytes are shared by every subscriber (NDJSON lines,
//! WebSocket frames and SSE `data:` lines wrap them without re-serializing).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use dispatch_wire::{
    AgentEvent, ConversationMeta, ConversationStatus, Id, ModelInfo, QueuedMessage,
    ReasoningEffort, TurnMetrics,
};
use tokio::sync::mpsc;

use crate::abi::StoreError;
use crate::host::{HookKey, ServiceKey};

pub const SESSION: ServiceKey<dyn Session> = ServiceKey::new("session");

/// Emitted on the bus whenever a conversation's lifecycle status changes (a turn starts or
/// settles, the conversation is closed, the boot sweep repairs it).
pub const CONVERSATION_STATUS_CHANGED: HookKey<ConversationStatusChanged> =
    HookKey::new("session.conversation-status-changed");

/// Emitted on the bus when a client asks frontends to open (focus) a conversation.
pub const CONVERSATION_OPENED: HookKey<ConversationOpened> =
    HookKey::new("session.conversation-opened");

/// Emitted on the bus after a turn sealed (its history and metrics committed).
pub const TURN_SETTLED: HookKey<TurnSettled> = HookKey::new("session.turn-settled");

#[derive(Debug, Clone, PartialEq)]
pub struct TurnSettled {
    pub conversation_id: Id,
    pub workspace_id: String,
    /// The provider instance that served the turn.
    pub provider: String,
    pub metrics: TurnMetrics,
}

/// Emitted on the bus after each step of a turn was persisted (before the next step starts),
/// with the step's record — its prompt-prefix record included — for observers such as the
/// runs control plane's artifacts.
pub const STEP_COMPLETED: HookKey<StepCompleted> = HookKey::new("session.step-completed");

#[derive(Debug, Clone, PartialEq)]
pub struct StepCompleted {
    pub conversation_id: Id,
    pub workspace_id: String,
    pub record: std::sync::Arc<crate::abi::StepRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationStatusChanged {
    pub conversation_id: Id,
    pub workspace_id: String,
    pub status: ConversationStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationOpened {
    pub conversation_id: Id,
    pub workspace_id: String,
}

/// One event of a conversation's stream, serialized once.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFrame {
    pub conversation_id: Id,
    pub turn_id: Id,
    /// 0-based position of the event in its turn's stream (`user-message` is 0).
    pub index: u32,
    pub event: AgentEvent,
    /// `event` as compact JSON (no trailing newline).
    pub json: Arc<str>,
}

/// What a send or enqueue asks for. Every `Option` falls back, in order, to the
/// conversation's persisted setting, its workspace's default, then the server default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendRequest {
    /// `None` creates a new conversation (send only; enqueue requires one).
    pub conversation_id: Option<Id>,
    pub text: String,
    /// A model id (`provider/model` picks the provider instance explicitly). Persisted as
    /// the conversation's model when given.
    pub model: Option<String>,
    /// Persisted as the conversation's effort when given.
    pub reasoning_effort: Option<ReasoningEffort>,
    /// Per-turn cwd; a relative one resolves against the workspace default. Not persisted.
    pub cwd: Option<String>,
    /// Assigns a new conversation to this workspace (created if missing).
    pub workspace_id: Option<String>,
    /// An SSH host alias to run tools on; `None` = this machine.
    pub computer_id: Option<Id>,
    /// Client idempotency key (`Idempotency-Key` / `requestId`): a send repeating the key of
    /// the conversation's running or most recent turn re-attaches to that turn.
    pub request_id: Option<String>,
}

/// A turn that was started (or re-attached to).
#[derive(Debug)]
pub struct Accepted {
    pub conversation_id: Id,
    pub turn_id: Id,
    /// True when `request_id` matched a turn already started: nothing new was started.
    pub reattached: bool,
    /// The turn's events from `user-message` on (replayed when re-attaching), then the
    /// conversation's later turns while it is held.
    pub subscription: Subscription,
}

/// What an enqueue did.
#[derive(Debug)]
pub struct Enqueued {
    pub conversation_id: Id,
    pub queued: QueuedMessage,
    /// Set when the conversation was idle and the message started a turn.
    pub started: Option<Accepted>,
}

/// What stop, close and open did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionOutcome {
    pub conversation_id: Id,
    /// Whether a running turn was aborted (it has sealed by the time this returns).
    pub aborted_turn: bool,
    pub status: ConversationStatus,
    pub workspace_id: String,
}

/// Every model the server can run now, and the one a turn gets when none is chosen.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelList {
    pub models: Vec<ModelInfo>,
    pub default_model: Option<String>,
}

/// Session failures; transports map them to 400 / 404 / 409 / 500 (`code` in the body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Bad input, naming the field. A 400, code `invalid`.
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// No such conversation. A 404, code `not-found`.
    #[error("{what} `{id}` not found")]
    NotFound { what: &'static str, id: String },
    /// A turn is already running in the conversation. A 409, code `already-active`.
    #[error("conversation `{conversation_id}` already has an active turn (stop it or queue)")]
    AlreadyActive { conversation_id: Id },
    /// The request contradicts the state. A 409, code `conflict`.
    #[error("{0}")]
    Conflict(String),
    /// The server is shutting down. A 503, code `shutting-down`.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Storage or another internal part failed; nothing was started. A 500, logged.
    #[error("internal error: {0}")]
    Internal(String),
}

impl SessionError {
    /// The stable machine-readable code transports put in error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            SessionError::Invalid { .. } => "invalid",
            SessionError::NotFound { .. } => "not-found",
            SessionError::AlreadyActive { .. } => "already-active",
            SessionError::Conflict(_) => "conflict",
            SessionError::ShuttingDown => "shutting-down",
            SessionError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for SessionError {
    fn from(err: StoreError) -> SessionError {
        match err {
            StoreError::NotFound { what, id } => SessionError::NotFound { what, id },
            StoreError::Invalid { field, message } => SessionError::Invalid { field, message },
            StoreError::Conflict(message) => SessionError::Conflict(message),
            StoreError::Storage(message) => SessionError::Internal(message),
        }
    }
}

/// Owns turn lifetimes: one task per running turn, keyed by conversation.
#[async_trait]
pub trait Session: Send + Sync {
    /// Starts a turn: resolves model, effort, cwd and workspace (persisting what was given),
    /// persists the user message, marks the conversation `active`, and returns once the
    /// turn runs, before the model answers. A conversation with a running turn refuses with
    /// [`SessionError::AlreadyActive`] unless `request_id` matches that turn.
    async fn send(&self, request: SendRequest) -> Result<Accepted, SessionError>;

    /// Watches a conversation (which need not exist yet): a running turn is replayed from
    /// its `user-message`, then live events follow, for this and every later turn, until
    /// the subscription is dropped.
    fn subscribe(&self, conversation_id: &str) -> Subscription;

    /// Queues a message: delivered as steering at the running turn's next tool-result
    /// boundary, or carried into a new turn when that turn ends without consuming it; on an
    /// idle conversation it starts a turn at once.
    async fn enqueue(&self, request: SendRequest) -> Result<Enqueued, SessionError>;

    /// Aborts the running turn (provider request and tools cancelled) and waits until it
    /// has sealed; the conversation stays `idle`. Queued messages are discarded.
    async fn stop(&self, conversation_id: &str) -> Result<ActionOutcome, SessionError>;

    /// Like stop, then marks the conversation `closed`.
    async fn close(&self, conversation_id: &str) -> Result<ActionOutcome, SessionError>;

    /// Asks frontends to open the conversation ([`CONVERSATION_OPENED`]).
    async fn open(&self, conversation_id: &str) -> Result<ActionOutcome, SessionError>;

    /// Whether a turn is running now (in-memory truth, not the persisted status).
    fn is_active(&self, conversation_id: &str) -> bool;

    /// Resolves once no turn is running in the conversation (at once when idle).
    async fn settled(&self, conversation_id: &str);

    /// Models of every registered provider (cached briefly) and the default model.
    async fn models(&self) -> ModelList;

    /// The cwd a turn of the conversation would run in now, with `override_cwd` applied.
    async fn effective_cwd(
        &self,
        conversation_id: &str,
        override_cwd: Option<&str>,
    ) -> Result<PathBuf, SessionError>;

    /// Metadata of a conversation, for transports answering status requests.
    async fn meta(&self, conversation_id: &str) -> Result<Option<ConversationMeta>, SessionError>;
}

/// A live view of one conversation. Dropping it unsubscribes; it never affects a turn.
///
/// Each subscription has a bounded queue. A subscriber that falls so far behind that its
/// queue is full is dropped by the hub (the turn never waits for it): [`Subscription::recv`]
/// then returns `None` and [`Subscription::lagged`] is true, and the client should reload
/// history (`sinceSeq`) and subscribe again.
#[derive(Debug)]
pub struct Subscription {
    conversation_id: Id,
    rx: mpsc::Receiver<Arc<EventFrame>>,
    lagged: Arc<AtomicBool>,
}

/// The hub's end of a [`Subscription`].
#[derive(Debug, Clone)]
pub struct Subscriber {
    tx: mpsc::Sender<Arc<EventFrame>>,
    lagged: Arc<AtomicBool>,
}

/// Why [`Subscriber::deliver`] refused a frame; the hub forgets the subscriber either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undeliverable {
    /// The subscription was dropped.
    Gone,
    /// Its queue was full: it is now marked lagged and its queue closed.
    Lagged,
}

impl Subscription {
    /// A subscription with a queue of `capacity` frames, and the hub's end of it.
    pub fn channel(conversation_id: Id, capacity: usize) -> (Subscriber, Subscription) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let lagged = Arc::new(AtomicBool::new(false));
        (
            Subscriber {
                tx,
                lagged: lagged.clone(),
            },
            Subscription {
                conversation_id,
                rx,
                lagged,
            },
        )
    }

    pub fn conversation_id(&self) -> &Id {
        &self.conversation_id
    }

    /// The next frame; `None` when the hub dropped this subscription (see
    /// [`Subscription::lagged`]) or the server is shutting down.
    pub async fn recv(&mut self) -> Option<Arc<EventFrame>> {
        self.rx.recv().await
    }

    /// A frame if one is queued now, without waiting.
    pub fn try_recv(&mut self) -> Option<Arc<EventFrame>> {
        self.rx.try_recv().ok()
    }

    /// True when the hub dropped this subscription because it fell behind.
    pub fn lagged(&self) -> bool {
        self.lagged.load(Ordering::Acquire)
    }
}

impl Subscriber {
    /// Queues a frame without waiting. On a full queue the subscriber is marked lagged and
    /// must be forgotten by the caller (dropping the last `Subscriber` ends the
    /// subscription's stream).
    pub fn deliver(&self, frame: Arc<EventFrame>) -> Result<(), Undeliverable> {
        match self.tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Undeliverable::Gone),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lagged.store(true, Ordering::Release);
                Err(Undeliverable::Lagged)
            }
        }
    }

    /// Whether the subscription was dropped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}
