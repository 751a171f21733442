//! [`Orchestrator`], the [`Session`] service: claims conversations, prepares and spawns
//! turns, seals them, and carries queued messages into the next turn.
//!
//! A turn's life: `send` claims the conversation (in memory, under its lock; a second
//! claim is `AlreadyActive` or re-attaches by request id), resolves workspace, model,
//! effort, cwd, history, system prompt and tools, persists the user message, marks the
//! conversation `active`, publishes `user-message` and spawns a task running
//! [`run_turn`]. The task owns a child of the extension's shutdown token; stop, close and
//! shutdown cancel that token and never drop the turn's future. When `run_turn` returns,
//! the task waits for its step writes, appends the turn's metrics, sets `idle`, publishes
//! `turn-sealed`, emits [`TURN_SETTLED`], then releases the conversation (or hands it
//! straight to a turn made of the messages still queued).
//!
//! Between `turn-sealed` and the release (the metrics hooks run there) the turn is
//! "sealing": it still holds the conversation, but a stop reports nothing aborted and a
//! send or enqueue waits for the release instead of being refused, so a client answering
//! `turn-sealed` at once is never told `AlreadyActive` by a turn it saw end.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use dispatch_kernel::abi::{
    Accepted, ActionOutcome, BuiltPrompt, CONVERSATION_OPENED, CONVERSATION_STATUS_CHANGED, Clock,
    ConversationFilter, ConversationOpened, ConversationStatusChanged, ConversationStore, Enqueued,
    MODEL_CATALOG, Message, ModelList, Pricing, PromptContext, Provider, ProviderRequest,
    SYSTEM_PROMPT, SendRequest, Session, SessionError, Sleeper, StoreError, Subscription,
    TOOLS_FILTER, TURN_SETTLED, Tool, ToolsFilterCtx, TurnSettled, WorkspaceUpdate,
};
use dispatch_kernel::host::{Bus, Catalog, Filters, Services};
use dispatch_kernel::{BackoffSchedule, TurnEnv, TurnInput, TurnOutcome, run_turn};
use dispatch_wire::{
    AgentEvent, ConversationMeta, ConversationStatus, FinishReason, Id, QueuedMessage,
    SystemSectionRecord, TurnMetrics, Usage,
};
use futures::FutureExt;
use futures::future::{BoxFuture, join_all};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::Config;
use crate::hub::{
    ActiveTurn, Conversation, Conversations, Inner, QueueSteering, ReplayOf, TurnEvents,
};
use crate::models::ModelDirectory;
use crate::persist::StepWriter;
use crate::resolve::{
    ProviderModels, by_listing, default_model, explicit, given_selector, reasoning_effort,
    validate_text,
};

/// Request ids remembered for re-attaching, most recent last.
const REMEMBERED_REQUEST_IDS: usize = 1024;

/// Longest request id accepted, in bytes.
const MAX_REQUEST_ID: usize = 256;

/// The error code of the `error` event emitted when a turn's history or metrics could not
/// be committed.
pub const PERSIST_FAILED: &str = "persist-failed";

/// What the orchestrator takes from the host at activation.
pub(crate) struct Deps {
    pub(crate) config: Config,
    pub(crate) store: Arc<dyn ConversationStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) sleeper: Arc<dyn Sleeper>,
    pub(crate) services: Services,
    pub(crate) catalog: Catalog,
    pub(crate) bus: Bus,
    pub(crate) filters: Filters,
    pub(crate) span: tracing::Span,
    pub(crate) shutdown: CancellationToken,
}

pub(crate) struct Orchestrator {
    me: Weak<Orchestrator>,
    config: Config,
    store: Arc<dyn ConversationStore>,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    services: Services,
    catalog: Catalog,
    bus: Bus,
    filters: Filters,
    span: tracing::Span,
    shutdown: CancellationToken,
    stopping: AtomicBool,
    conversations: Conversations,
    requests: Mutex<RequestIds>,
    /// Finished turns whose replay is kept for re-attaching, oldest first.
    retained: Mutex<VecDeque<(Arc<Conversation>, Id)>>,
    models: ModelDirectory,
}

/// A conversation claimed for a new turn.
struct Claim {
    turn_id: Id,
    request_id: Option<String>,
    cancel: CancellationToken,
}

enum Claimed {
    New(Claim),
    /// The conversation runs the turn this request id started: re-attach to it.
    Running(Id),
    /// The held turn has sealed and is releasing the conversation: wait, then try again.
    Sealing,
}

/// Everything resolved for a turn before it runs.
struct Prepared {
    workspace_id: String,
    provider: Arc<dyn Provider>,
    request: ProviderRequest,
    tools: Vec<Arc<dyn Tool>>,
    cwd: PathBuf,
    computer_id: Option<Id>,
    system_prompt: Vec<SystemSectionRecord>,
    user_message_id: Id,
    text: String,
    /// The user message's seq.
    last_seq: u64,
}

/// What sealing a turn needs to know about it.
struct Sealing {
    workspace_id: String,
    provider: String,
    model: String,
    system_prompt: Vec<SystemSectionRecord>,
    started_at: i64,
}

/// Request id → (conversation, turn), bounded, oldest forgotten first.
#[derive(Default)]
struct RequestIds {
    map: HashMap<String, (Id, Id)>,
    order: VecDeque<String>,
}

impl RequestIds {
    fn insert(&mut self, request_id: &str, conversation_id: Id, turn_id: Id) {
        let fresh = self
            .map
            .insert(request_id.to_owned(), (conversation_id, turn_id))
            .is_none();
        if fresh {
            self.order.push_back(request_id.to_owned());
        }
        while self.order.len() > REMEMBERED_REQUEST_IDS {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }

    fn remove(&mut self, request_id: &str) {
        if self.map.remove(request_id).is_some() {
            self.order.retain(|r| r != request_id);
        }
    }

    fn get(&self, request_id: &str) -> Option<(Id, Id)> {
        self.map.get(request_id).cloned()
    }
}

/// A new conversation or turn id: a UUIDv7 as 32 hex digits (sortable by creation time).
pub(crate) fn new_id() -> Id {
    Id::from(uuid::Uuid::now_v7().simple().to_string())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn not_found(conversation_id: &str) -> SessionError {
    SessionError::NotFound {
        what: "conversation",
        id: conversation_id.to_owned(),
    }
}

impl Orchestrator {
    pub(crate) fn new(deps: Deps) -> Arc<Orchestrator> {
        let models = ModelDirectory::new(
            deps.clock.clone(),
            deps.sleeper.clone(),
            deps.config.models_cache(),
            deps.config.models_timeout(),
        );
        Arc::new_cyclic(|me| Orchestrator {
            me: me.clone(),
            config: deps.config,
            store: deps.store,
            clock: deps.clock,
            sleeper: deps.sleeper,
            services: deps.services,
            catalog: deps.catalog,
            bus: deps.bus,
            filters: deps.filters,
            span: deps.span,
            shutdown: deps.shutdown,
            stopping: AtomicBool::new(false),
            conversations: Conversations::default(),
            requests: Mutex::new(RequestIds::default()),
            retained: Mutex::new(VecDeque::new()),
            models,
        })
    }

    // --- lifecycle ---

    /// Sets every conversation a crash left `active` to `idle`; returns how many.
    pub(crate) async fn boot_sweep(&self) -> Result<usize, StoreError> {
        let filter = ConversationFilter {
            statuses: vec![ConversationStatus::Active],
            ..ConversationFilter::default()
        };
        let stuck = self.store.list(&filter).await?;
        let mut repaired = 0;
        for meta in stuck {
            if self.set_status(&meta.id, ConversationStatus::Idle).await {
                repaired += 1;
            }
        }
        Ok(repaired)
    }

    /// Refuses new turns, aborts the running ones and waits (bounded) until they sealed,
    /// so their steps are committed; then ends every subscription.
    pub(crate) async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let conversations = self.conversations.all();
        let mut running = 0;
        for conversation in &conversations {
            let mut inner = conversation.lock();
            inner.queue.clear();
            if let Some(turn) = &inner.turn {
                turn.cancel.cancel();
                running += 1;
            }
        }
        if running > 0 {
            tracing::info!(turns = running, "Aborting running turns for shutdown");
            let grace = self.config.shutdown_grace();
            tokio::select! {
                _ = join_all(conversations.iter().map(|c| c.settled())) => {
                    tracing::info!(turns = running, "Running turns sealed");
                }
                () = self.sleeper.sleep(grace) => {
                    tracing::warn!(grace_secs = grace.as_secs(), "Turns still running after the shutdown grace period");
                }
            }
        }
        self.shutdown.cancel();
        for conversation in &conversations {
            conversation.drop_subscribers();
        }
    }

    fn check_open(&self) -> Result<(), SessionError> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(SessionError::ShuttingDown);
        }
        Ok(())
    }

    fn conversation(&self, id: &Id) -> Arc<Conversation> {
        self.conversations
            .get_or_create(id, self.config.replay_cap, self.config.subscriber_queue)
    }

    fn requests(&self) -> MutexGuard<'_, RequestIds> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // --- claiming ---

    fn claim(
        &self,
        conversation: &Conversation,
        inner: &mut Inner,
        request_id: Option<&str>,
    ) -> Result<Claimed, SessionError> {
        if let Some(turn) = &inner.turn {
            if request_id.is_some() && turn.request_id.as_deref() == request_id {
                return Ok(Claimed::Running(turn.turn_id.clone()));
            }
            if inner.sealing() {
                return Ok(Claimed::Sealing);
            }
            return Err(SessionError::AlreadyActive {
                conversation_id: conversation.id.clone(),
            });
        }
        self.check_open()?;
        let claim = Claim {
            turn_id: new_id(),
            request_id: request_id.map(str::to_owned),
            cancel: self.shutdown.child_token(),
        };
        inner.turn = Some(ActiveTurn {
            turn_id: claim.turn_id.clone(),
            request_id: claim.request_id.clone(),
            cancel: claim.cancel.clone(),
        });
        conversation.set_active(true);
        if let Some(request_id) = request_id {
            self.requests()
                .insert(request_id, conversation.id.clone(), claim.turn_id.clone());
        }
        Ok(Claimed::New(claim))
    }

    /// Undoes a claim whose turn never started.
    fn unclaim(&self, conversation: &Conversation, claim: &Claim) {
        {
            let mut inner = conversation.lock();
            if inner
                .turn
                .as_ref()
                .is_some_and(|t| t.turn_id == claim.turn_id)
            {
                inner.turn = None;
                conversation.set_active(false);
                conversation.mark_released();
            }
        }
        if let Some(request_id) = &claim.request_id {
            self.requests().remove(request_id);
        }
    }

    fn reattach(
        &self,
        conversation: &Conversation,
        inner: &mut Inner,
        turn_id: Id,
    ) -> Result<Accepted, SessionError> {
        let running = inner.turn.as_ref().is_some_and(|t| t.turn_id == turn_id);
        if !running && !Conversation::has_replay_of(inner, &turn_id) {
            return Err(SessionError::Conflict(format!(
                "the request id belongs to turn `{turn_id}` of conversation `{}`, which has \
                 finished; reload its history",
                conversation.id
            )));
        }
        tracing::info!(conversation_id = %conversation.id, turn_id = %turn_id, "Re-attached by request id");
        Ok(Accepted {
            conversation_id: conversation.id.clone(),
            subscription: conversation.subscribe_locked(inner, ReplayOf::Turn(&turn_id)),
            turn_id,
            reattached: true,
        })
    }

    // --- starting a turn ---

    async fn launch(
        &self,
        conversation: Arc<Conversation>,
        claim: Claim,
        request: SendRequest,
    ) -> Result<Accepted, SessionError> {
        match self.prepare(&conversation.id, &claim, request).await {
            Ok(prepared) => Ok(self.start(conversation, claim, prepared).await),
            Err(err) => {
                self.unclaim(&conversation, &claim);
                match &err {
                    SessionError::Internal(message) => tracing::error!(
                        conversation_id = %conversation.id,
                        error = %message,
                        "Turn not started"
                    ),
                    SessionError::Invalid { .. }
                    | SessionError::NotFound { .. }
                    | SessionError::AlreadyActive { .. }
                    | SessionError::Conflict(_)
                    | SessionError::ShuttingDown => tracing::info!(
                        conversation_id = %conversation.id,
                        error = %err,
                        "Turn refused"
                    ),
                }
                Err(err)
            }
        }
    }

    /// Resolves everything the turn needs and persists the user message (last, so a turn
    /// refused for any other reason leaves no message behind).
    async fn prepare(
        &self,
        conversation_id: &Id,
        claim: &Claim,
        request: SendRequest,
    ) -> Result<Prepared, SessionError> {
        let store = &self.store;
        // The model first: an unknown one is refused before anything is written.
        let settings = store.settings(conversation_id).await?;
        let (provider, model) = self
            .select_model(request.model.as_deref(), settings.model.as_deref())
            .await?;
        // Then the workspace: a relative cwd resolves against it (a new conversation's
        // first turn used to resolve against `default`).
        let meta = match store.meta(conversation_id).await? {
            None => {
                store
                    .ensure(conversation_id, request.workspace_id.as_deref())
                    .await?
            }
            Some(meta) => match request.workspace_id.as_deref() {
                Some(workspace_id) if workspace_id != meta.workspace_id => {
                    if store.workspace(workspace_id).await?.is_none() {
                        store
                            .put_workspace(workspace_id, WorkspaceUpdate::default())
                            .await?;
                    }
                    store.set_workspace(conversation_id, workspace_id).await?
                }
                Some(_) | None => meta,
            },
        };
        if let Some(model) = request.model.as_deref().filter(|m| !m.trim().is_empty()) {
            store.set_model(conversation_id, Some(model)).await?;
        }
        let effort = reasoning_effort(request.reasoning_effort, settings.reasoning_effort);
        if let Some(effort) = request.reasoning_effort {
            store
                .set_reasoning_effort(conversation_id, Some(effort))
                .await?;
        }
        let cwd = store
            .effective_cwd(conversation_id, request.cwd.as_deref())
            .await?;
        let history = store.load(conversation_id).await?;
        let prompt = self
            .system_prompt(&PromptContext {
                conversation_id: conversation_id.clone(),
                cwd: cwd.clone(),
                model: model.clone(),
                provider: provider.id().to_owned(),
                workspace_id: meta.workspace_id.clone(),
            })
            .await?;
        let filter_ctx = ToolsFilterCtx {
            conversation_id: conversation_id.clone(),
            cwd: Some(cwd.clone()),
            workspace_id: Some(Id::from(meta.workspace_id.as_str())),
            computer_id: request.computer_id.clone(),
        };
        let tools = self
            .filters
            .apply(&TOOLS_FILTER, self.catalog.tools(), &filter_ctx)
            .await;

        let user_message_id = Id::from(format!("{}:0", claim.turn_id));
        let user = Message::user(user_message_id.clone(), request.text.clone());
        let stored = store
            .append(
                conversation_id,
                Some(&claim.turn_id),
                None,
                std::slice::from_ref(&user),
            )
            .await
            .map_err(|err| {
                SessionError::Internal(format!("could not persist the message: {err}"))
            })?;
        let last_seq = stored.last().map_or(history.last_seq, |c| c.seq);

        let mut messages = history.messages;
        messages.push(user);
        let mut provider_request = ProviderRequest::new(model, messages);
        provider_request.conversation_id = Some(conversation_id.clone());
        provider_request.reasoning_effort = Some(effort);
        let system_prompt = match prompt {
            Some(built) => {
                provider_request.system = built.sections;
                built.records
            }
            None => Vec::new(),
        };
        Ok(Prepared {
            workspace_id: meta.workspace_id,
            provider,
            request: provider_request,
            tools,
            cwd,
            computer_id: request.computer_id,
            system_prompt,
            user_message_id,
            text: request.text,
            last_seq,
        })
    }

    /// The provider and the model id sent to it (see `resolve`).
    async fn select_model(
        &self,
        request: Option<&str>,
        persisted: Option<&str>,
    ) -> Result<(Arc<dyn Provider>, String), SessionError> {
        let providers = self.catalog.providers();
        let ids: Vec<&str> = providers.iter().map(|p| p.id()).collect();
        let mut listings: Option<Vec<ProviderModels>> = None;
        let selector =
            match given_selector(request, persisted, self.config.default_model.as_deref()) {
                Some(selector) => selector.to_owned(),
                None => {
                    let listed = self.models.listings(&providers).await;
                    let selector = default_model(&listed);
                    listings = Some(listed);
                    selector
                }
            };
        let selection = match explicit(&selector, &ids) {
            Some(selection) => selection,
            None => {
                let listed = match listings {
                    Some(listed) => listed,
                    None => self.models.listings(&providers).await,
                };
                by_listing(&selector, &listed)?
            }
        };
        let provider = providers
            .iter()
            .find(|p| p.id() == selection.provider)
            .cloned()
            .ok_or_else(|| {
                SessionError::Internal(format!("provider `{}` vanished", selection.provider))
            })?;
        Ok((provider, selection.model))
    }

    /// The conversation's system prompt when the service runs; its failure fails the send
    /// (a turn silently sent without its prompt would look like a broken model).
    async fn system_prompt(
        &self,
        ctx: &PromptContext,
    ) -> Result<Option<BuiltPrompt>, SessionError> {
        let Ok(service) = self.services.get(&SYSTEM_PROMPT) else {
            return Ok(None);
        };
        service.prompt(ctx).await.map(Some).map_err(|err| {
            SessionError::Internal(format!("could not build the system prompt: {err}"))
        })
    }

    /// Marks the conversation active, publishes `user-message` and spawns the turn.
    async fn start(
        &self,
        conversation: Arc<Conversation>,
        claim: Claim,
        prepared: Prepared,
    ) -> Accepted {
        self.set_status(&conversation.id, ConversationStatus::Active)
            .await;
        conversation.begin_turn(&claim.turn_id);
        conversation.emit(
            &claim.turn_id,
            AgentEvent::UserMessage {
                conversation_id: conversation.id.clone(),
                turn_id: claim.turn_id.clone(),
                message_id: prepared.user_message_id.clone(),
                text: prepared.text.clone(),
            },
        );
        let subscription = conversation.subscribe(ReplayOf::Turn(&claim.turn_id));
        let accepted = Accepted {
            conversation_id: conversation.id.clone(),
            turn_id: claim.turn_id.clone(),
            reattached: false,
            subscription,
        };
        let span = tracing::info_span!(
            parent: &self.span,
            "session.turn",
            conversation_id = %conversation.id,
            turn_id = %claim.turn_id,
            provider = %prepared.provider.id(),
            model = %prepared.request.model,
        );
        match self.me.upgrade() {
            Some(me) => {
                tokio::spawn(me.turn_task(conversation, claim, prepared).instrument(span));
            }
            None => {
                // Only possible while the service is being dropped: nothing can run it.
                claim.cancel.cancel();
                self.unclaim(&conversation, &claim);
            }
        }
        accepted
    }

    // --- running and sealing ---

    /// The turn's task, boxed: a turn may start the next one (queued leftovers), so the
    /// future types would otherwise contain themselves.
    fn turn_task(
        self: Arc<Self>,
        conversation: Arc<Conversation>,
        claim: Claim,
        prepared: Prepared,
    ) -> BoxFuture<'static, ()> {
        Box::pin(self.run(conversation, claim, prepared))
    }

    async fn run(
        self: Arc<Self>,
        conversation: Arc<Conversation>,
        claim: Claim,
        prepared: Prepared,
    ) {
        tracing::info!("Turn started");
        let started_at = self.clock.unix_ms();
        let writer = Arc::new(StepWriter::new(
            self.store.clone(),
            conversation.id.clone(),
            claim.turn_id.clone(),
            prepared.last_seq,
            (self.bus.clone(), prepared.workspace_id.clone()),
        ));
        let pricing = self
            .services
            .get(&MODEL_CATALOG)
            .ok()
            .map(|catalog| -> Arc<dyn Pricing> { catalog });
        let workspace_id = Some(Id::from(prepared.workspace_id.as_str()));
        let sealing = Sealing {
            workspace_id: prepared.workspace_id,
            provider: prepared.provider.id().to_owned(),
            model: prepared.request.model.clone(),
            system_prompt: prepared.system_prompt,
            started_at,
        };
        let input = TurnInput {
            conversation_id: conversation.id.clone(),
            turn_id: claim.turn_id.clone(),
            provider: prepared.provider,
            request: prepared.request,
            tools: prepared.tools,
            cwd: Some(prepared.cwd),
            workspace_id,
            computer_id: prepared.computer_id,
            options: self.config.turn_options(),
            env: TurnEnv {
                clock: self.clock.clone(),
                sleeper: self.sleeper.clone(),
                events: Arc::new(TurnEvents {
                    conversation: conversation.clone(),
                    turn_id: claim.turn_id.clone(),
                }),
                steering: Some(Arc::new(QueueSteering {
                    conversation: conversation.clone(),
                })),
                on_step_complete: Some(writer.clone()),
                retry: Some(Arc::new(BackoffSchedule::default())),
                pricing,
            },
            cancel: claim.cancel.clone(),
        };
        let outcome = match AssertUnwindSafe(run_turn(input)).catch_unwind().await {
            Ok(outcome) => outcome,
            Err(panic) => {
                let message = dispatch_stdx::panic_message(&*panic);
                tracing::error!(panic = %message, "run_turn panicked");
                TurnOutcome {
                    finish_reason: FinishReason::Error,
                    usage: Usage::default(),
                    cost: None,
                    steps: 0,
                    duration: Duration::ZERO,
                    context_size: None,
                    error: Some(message),
                    messages: Vec::new(),
                }
            }
        };
        self.seal(conversation, claim, sealing, &writer, outcome)
            .await;
    }

    /// Commits what is left, publishes `turn-sealed`, emits `TURN_SETTLED`, releases.
    async fn seal(
        &self,
        conversation: Arc<Conversation>,
        claim: Claim,
        sealing: Sealing,
        writer: &StepWriter,
        outcome: TurnOutcome,
    ) {
        let turn_id = claim.turn_id.clone();
        let written = writer.flush().await;
        for message in &written.unreported {
            self.emit_persist_error(&conversation, &turn_id, message.clone());
        }
        let metrics = TurnMetrics {
            turn_id: turn_id.clone(),
            model: sealing.model,
            finish_reason: outcome.finish_reason,
            started_at: sealing.started_at,
            duration_ms: millis(outcome.duration),
            usage: outcome.usage,
            cost: outcome.cost,
            context_size: outcome.context_size,
            steps: written.steps,
            system_prompt: sealing.system_prompt,
        };
        if let Err(err) = self.store.append_metrics(&conversation.id, &metrics).await {
            tracing::error!(error = %err, "Turn metrics not persisted");
            self.emit_persist_error(
                &conversation,
                &turn_id,
                format!("Could not persist the turn's metrics: {err}"),
            );
        }
        let closed = matches!(
            self.store.meta(&conversation.id).await,
            Ok(Some(ConversationMeta {
                status: ConversationStatus::Closed,
                ..
            }))
        );
        if !closed {
            self.set_status(&conversation.id, ConversationStatus::Idle)
                .await;
        }
        conversation.emit(
            &turn_id,
            AgentEvent::TurnSealed {
                conversation_id: conversation.id.clone(),
                turn_id: turn_id.clone(),
                last_seq: Some(written.last_seq),
            },
        );
        tracing::info!(
            finish_reason = ?outcome.finish_reason,
            steps = outcome.steps,
            last_seq = written.last_seq,
            "Turn sealed"
        );
        self.bus
            .emit(
                &TURN_SETTLED,
                TurnSettled {
                    conversation_id: conversation.id.clone(),
                    workspace_id: sealing.workspace_id,
                    provider: sealing.provider,
                    metrics,
                },
            )
            .await;

        let carried = self.release(&conversation, &turn_id, outcome.finish_reason);
        self.retain_replay(&conversation, &turn_id);
        if let Some((claim, queued)) = carried {
            self.carry(conversation, claim, queued).await;
        }
    }

    /// Frees the conversation, or claims it at once for the messages still queued when
    /// the turn ended normally (an aborted turn's queue is discarded, as stop promises).
    fn release(
        &self,
        conversation: &Conversation,
        turn_id: &Id,
        finish_reason: FinishReason,
    ) -> Option<(Claim, Vec<QueuedMessage>)> {
        let mut inner = conversation.lock();
        let held = inner.turn.as_ref().is_some_and(|t| &t.turn_id == turn_id);
        if dispatch_stdx::never!(!held, "a sealed turn no longer held its conversation") {
            return None;
        }
        let aborted = finish_reason == FinishReason::Aborted;
        if aborted {
            inner.queue.clear();
        }
        conversation.mark_released();
        if aborted || inner.queue.is_empty() || self.check_open().is_err() {
            inner.turn = None;
            conversation.set_active(false);
            return None;
        }
        let queued = std::mem::take(&mut inner.queue);
        let claim = Claim {
            turn_id: new_id(),
            request_id: None,
            cancel: self.shutdown.child_token(),
        };
        inner.turn = Some(ActiveTurn {
            turn_id: claim.turn_id.clone(),
            request_id: None,
            cancel: claim.cancel.clone(),
        });
        Some((claim, queued))
    }

    /// Starts the turn made of leftover queued messages (one user message, newline-joined).
    async fn carry(
        &self,
        conversation: Arc<Conversation>,
        claim: Claim,
        queued: Vec<QueuedMessage>,
    ) {
        tracing::info!(
            count = queued.len(),
            "Carrying queued messages into a new turn"
        );
        let text = queued
            .iter()
            .map(|q| q.text.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let request = SendRequest {
            conversation_id: Some(conversation.id.clone()),
            text,
            ..SendRequest::default()
        };
        if let Err(err) = self.launch(conversation.clone(), claim, request).await {
            tracing::error!(error = %err, "Queued messages could not start a turn; kept queued");
            let mut inner = conversation.lock();
            let later = std::mem::replace(&mut inner.queue, queued);
            inner.queue.extend(later);
        }
    }

    /// Keeps `turn_id`'s replay for re-attaching, evicting the oldest beyond the limit.
    fn retain_replay(&self, conversation: &Arc<Conversation>, turn_id: &Id) {
        let evicted = {
            let mut retained = self.retained.lock().unwrap_or_else(PoisonError::into_inner);
            retained.retain(|(c, _)| c.id != conversation.id);
            retained.push_back((conversation.clone(), turn_id.clone()));
            let excess = retained.len().saturating_sub(self.config.retained_replays);
            retained.drain(..excess).collect::<Vec<_>>()
        };
        for (conversation, turn_id) in evicted {
            conversation.evict_replay(&turn_id);
        }
    }

    fn emit_persist_error(&self, conversation: &Conversation, turn_id: &Id, message: String) {
        conversation.emit(
            turn_id,
            AgentEvent::Error {
                conversation_id: conversation.id.clone(),
                turn_id: turn_id.clone(),
                step_id: None,
                message,
                code: Some(PERSIST_FAILED.to_owned()),
                retryable: false,
            },
        );
    }

    /// Persists a status and announces it; a failure is logged (the in-memory state is
    /// the truth for `is_active`). Returns whether it was stored.
    async fn set_status(&self, conversation_id: &Id, status: ConversationStatus) -> bool {
        match self.store.set_status(conversation_id, status).await {
            Ok(meta) => {
                self.bus
                    .emit(
                        &CONVERSATION_STATUS_CHANGED,
                        ConversationStatusChanged {
                            conversation_id: conversation_id.clone(),
                            workspace_id: meta.workspace_id,
                            status,
                        },
                    )
                    .await;
                true
            }
            Err(err) => {
                tracing::warn!(conversation_id = %conversation_id, status = ?status, error = %err, "Status not stored");
                false
            }
        }
    }

    /// Cancels the running turn (discarding the queue) and waits until it sealed.
    async fn abort(&self, conversation_id: &str) -> Result<(bool, ConversationMeta), SessionError> {
        let conversation = self.conversations.get(conversation_id);
        let aborted = conversation.as_ref().is_some_and(|c| {
            let mut inner = c.lock();
            inner.queue.clear();
            let sealing = inner.sealing();
            match &inner.turn {
                Some(turn) => {
                    turn.cancel.cancel();
                    !sealing
                }
                None => false,
            }
        });
        if let Some(conversation) = &conversation {
            conversation.settled().await;
        }
        let meta = self
            .store
            .meta(conversation_id)
            .await?
            .ok_or_else(|| not_found(conversation_id))?;
        Ok((aborted, meta))
    }
}

#[async_trait]
impl Session for Orchestrator {
    async fn send(&self, request: SendRequest) -> Result<Accepted, SessionError> {
        self.check_open()?;
        validate_text(&request.text)?;
        if let Some(request_id) = &request.request_id {
            if request_id.is_empty() || request_id.len() > MAX_REQUEST_ID {
                return Err(SessionError::Invalid {
                    field: "requestId",
                    message: format!("must be 1 to {MAX_REQUEST_ID} bytes"),
                });
            }
        }
        let conversation_id = match &request.conversation_id {
            Some(id) => {
                // Validates the id before anything is held for it.
                self.store.meta(id).await?;
                id.clone()
            }
            None => new_id(),
        };
        if let Some(request_id) = request.request_id.as_deref() {
            let known = self.requests().get(request_id);
            if let Some((known_conversation, turn_id)) = known {
                if known_conversation != conversation_id && request.conversation_id.is_some() {
                    return Err(SessionError::Conflict(format!(
                        "request id `{request_id}` was used in conversation `{known_conversation}`"
                    )));
                }
                let conversation = self.conversation(&known_conversation);
                let mut inner = conversation.lock();
                return self.reattach(&conversation, &mut inner, turn_id);
            }
        }
        let conversation = self.conversation(&conversation_id);
        let claim = loop {
            let mut released = {
                let mut inner = conversation.lock();
                match self.claim(&conversation, &mut inner, request.request_id.as_deref())? {
                    Claimed::New(claim) => break claim,
                    Claimed::Running(turn_id) => {
                        return self.reattach(&conversation, &mut inner, turn_id);
                    }
                    Claimed::Sealing => conversation.next_release(),
                }
            };
            // A client answering `turn-sealed` at once must not get `AlreadyActive`: wait
            // for the release and claim again (a turn of queued messages may take over,
            // which is then a real `AlreadyActive`).
            let _ = released.changed().await;
        };
        self.launch(conversation, claim, request).await
    }

    fn subscribe(&self, conversation_id: &str) -> Subscription {
        if self.check_open().is_err() {
            // Ends at once: the server is going away.
            let (_, subscription) = Subscription::channel(Id::from(conversation_id), 1);
            return subscription;
        }
        self.conversation(&Id::from(conversation_id))
            .subscribe(ReplayOf::Running)
    }

    async fn enqueue(&self, request: SendRequest) -> Result<Enqueued, SessionError> {
        self.check_open()?;
        let Some(conversation_id) = request.conversation_id.clone() else {
            return Err(SessionError::Invalid {
                field: "conversationId",
                message: "is required to queue a message".to_owned(),
            });
        };
        validate_text(&request.text)?;
        self.store.meta(&conversation_id).await?;
        let queued = QueuedMessage {
            id: new_id(),
            text: request.text.clone(),
            enqueued_at: self.clock.unix_ms(),
        };
        let conversation = self.conversation(&conversation_id);
        let claim = loop {
            let mut released = {
                let mut inner = conversation.lock();
                if inner.turn.is_some() && !inner.sealing() {
                    inner.queue.push(queued.clone());
                    tracing::info!(conversation_id = %conversation_id, queued = inner.queue.len(), "Message queued");
                    return Ok(Enqueued {
                        conversation_id,
                        queued,
                        started: None,
                    });
                }
                match self.claim(&conversation, &mut inner, None)? {
                    Claimed::New(claim) => break claim,
                    // Only a sealing turn is left here: it cannot take the message; the
                    // next holder (or nobody) will.
                    Claimed::Running(_) | Claimed::Sealing => conversation.next_release(),
                }
            };
            let _ = released.changed().await;
        };
        let accepted = self.launch(conversation, claim, request).await?;
        Ok(Enqueued {
            conversation_id,
            queued,
            started: Some(accepted),
        })
    }

    async fn stop(&self, conversation_id: &str) -> Result<ActionOutcome, SessionError> {
        let (aborted_turn, meta) = self.abort(conversation_id).await?;
        Ok(ActionOutcome {
            conversation_id: meta.id,
            aborted_turn,
            status: meta.status,
            workspace_id: meta.workspace_id,
        })
    }

    async fn close(&self, conversation_id: &str) -> Result<ActionOutcome, SessionError> {
        let (aborted_turn, meta) = self.abort(conversation_id).await?;
        let status = if self.set_status(&meta.id, ConversationStatus::Closed).await {
            ConversationStatus::Closed
        } else {
            return Err(SessionError::Internal(format!(
                "could not close conversation `{conversation_id}`"
            )));
        };
        Ok(ActionOutcome {
            conversation_id: meta.id,
            aborted_turn,
            status,
            workspace_id: meta.workspace_id,
        })
    }

    async fn open(&self, conversation_id: &str) -> Result<ActionOutcome, SessionError> {
        let meta = self
            .store
            .meta(conversation_id)
            .await?
            .ok_or_else(|| not_found(conversation_id))?;
        self.bus
            .emit(
                &CONVERSATION_OPENED,
                ConversationOpened {
                    conversation_id: meta.id.clone(),
                    workspace_id: meta.workspace_id.clone(),
                },
            )
            .await;
        Ok(ActionOutcome {
            conversation_id: meta.id,
            aborted_turn: false,
            status: meta.status,
            workspace_id: meta.workspace_id,
        })
    }

    fn is_active(&self, conversation_id: &str) -> bool {
        self.conversations
            .get(conversation_id)
            .is_some_and(|c| c.is_active())
    }

    async fn settled(&self, conversation_id: &str) {
        if let Some(conversation) = self.conversations.get(conversation_id) {
            conversation.settled().await;
        }
    }

    async fn models(&self) -> ModelList {
        let providers = self.catalog.providers();
        let listed = self.models.list(&providers).await;
        let default_model = match &self.config.default_model {
            Some(model) => Some(model.clone()),
            None if providers.is_empty() => None,
            None => {
                let lists: Vec<ProviderModels> = listed
                    .iter()
                    .map(|(provider, models)| ProviderModels {
                        provider: provider.clone(),
                        models: models.iter().map(|m| m.id.clone()).collect(),
                    })
                    .collect();
                Some(default_model(&lists))
            }
        };
        ModelList {
            models: listed
                .iter()
                .flat_map(|(_, models)| models.iter().cloned())
                .collect(),
            default_model,
        }
    }

    async fn effective_cwd(
        &self,
        conversation_id: &str,
        override_cwd: Option<&str>,
    ) -> Result<PathBuf, SessionError> {
        Ok(self
            .store
            .effective_cwd(conversation_id, override_cwd)
            .await?)
    }

    async fn meta(&self, conversation_id: &str) -> Result<Option<ConversationMeta>, SessionError> {
        Ok(self.store.meta(conversation_id).await?)
    }
}
