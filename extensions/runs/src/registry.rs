//! [`Runs`]: the run registry and scheduler.
//!
//! Every run lives in memory for the life of the process ([`Run`]) and in storage (see
//! [`crate::store`]). A run is queued FIFO, started through `SESSION.send` when its
//! conversation is free (no run of ours and no chat turn on it) and the global limit
//! allows, and then followed by one task that reads its turn's frames off the
//! subscription: each frame is kept in memory for live SSE clients and buffered for
//! storage; the buffer is committed (with the run's `RunInfo`) when a `step-complete` or
//! `done` frame arrives, and together with the final status at `turn-sealed`.
//!
//! Every write goes through one writer task in FIFO order, and every write of a run's
//! record is handed to it while that run's lock is held, so storage never sees a stale
//! record after a newer one. A run reads as ended only once its final commit returned.
//!
//! Lock order: the registry's state, then a run's inner lock. Neither is held across an
//! await.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dispatch_kernel::abi::{
    Clock, ConversationStore, EventFrame, Scope, SendRequest, Session, SessionError, StepCompleted,
    StorageError, Subscription, TurnSettled, WriteBatch,
};
use dispatch_transport_kit::ApiError;
use dispatch_wire::{
    AgentEvent, CancelOutcome, FinishReason, Id, RunAccepted, RunCancelResponse, RunInfo,
    RunRequest, RunStatus, StepArtifact,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::Config;
use crate::request::send_request;
use crate::store::{self, Frame};

pub const CONVERSATION_BUSY: &str = "conversation-busy";
pub const CONCURRENCY_LIMIT: &str = "concurrency-limit";
pub const CANCELLED_WHILE_QUEUED: &str = "cancelled-while-queued";
pub const ABORTED_WHILE_RUNNING: &str = "aborted-while-running";
/// A turn aborted by someone else (a stop through another transport, shutdown).
pub const ABORTED: &str = "aborted";

/// How long a cancel waits for a running run to seal before answering with what it has.
const CANCEL_WAIT: Duration = Duration::from_secs(30);

/// A new id: a UUID v7 in its simple form.
pub fn new_id() -> Id {
    Id::from(uuid::Uuid::now_v7().simple().to_string())
}

pub fn events_url(run_id: &str) -> String {
    format!("/runs/{run_id}/events")
}

pub fn status_url(run_id: &str) -> String {
    format!("/runs/{run_id}")
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One job of the writer task.
pub enum Job {
    Write(
        WriteBatch,
        Option<oneshot::Sender<Result<(), StorageError>>>,
    ),
    Flush(oneshot::Sender<()>),
}

/// Commits jobs one at a time, in the order they were sent, until `token` fires.
pub async fn write_loop(
    scope: Arc<dyn Scope>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    token: CancellationToken,
) {
    loop {
        let job = tokio::select! {
            biased;
            job = jobs.recv() => job,
            () = token.cancelled() => None,
        };
        match job {
            None => return,
            Some(Job::Write(batch, ack)) => {
                let result = scope.write(batch).await.map(|_| ());
                match ack {
                    Some(ack) => {
                        let _ = ack.send(result);
                    }
                    None => {
                        if let Err(err) = result {
                            tracing::error!(error = %err, "Run record not persisted");
                        }
                    }
                }
            }
            Some(Job::Flush(ack)) => {
                let _ = ack.send(());
            }
        }
    }
}

/// Where a run is in its lifecycle (finer than [`RunStatus`]: `Starting` reads `queued`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Queued,
    /// `SESSION.send` is in flight.
    Starting,
    Running,
    /// Its end is being committed.
    Ending,
    Ended,
}

/// One run of this process.
pub struct Run {
    pub id: Id,
    pub conversation_id: Id,
    order: u64,
    inner: Mutex<RunInner>,
    /// Bumped on every new frame and status change.
    changed: watch::Sender<u64>,
}

struct RunInner {
    info: RunInfo,
    request: RunRequest,
    phase: Phase,
    /// Every frame since seq 1 while the run may still get more; dropped once the final
    /// commit stored them all.
    frames: Option<Vec<Frame>>,
    /// Log entries not yet handed to the writer.
    pending: Vec<Vec<u8>>,
    cancel_requested: bool,
    /// The last `error` event's message.
    error: Option<String>,
    /// The index of the last frame taken (re-attaching replays from 0).
    last_index: Option<u32>,
}

/// What an SSE client gets next.
pub enum Snapshot {
    /// Frames after the asked seq, with their seqs.
    Frames(Vec<(u64, Frame)>),
    /// The rest is in storage (the run ended and its frames left memory).
    Stored { event_count: u64 },
    /// Nothing after the asked seq: the run ended as this.
    End(Box<RunInfo>),
    /// Nothing yet: wait for a change.
    Wait,
}

/// Frames sent to an SSE client in one body chunk at most.
pub const SNAPSHOT_FRAMES: usize = 256;

impl Run {
    pub fn info(&self) -> RunInfo {
        lock(&self.inner).info.clone()
    }

    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn snapshot(&self, after: u64) -> Snapshot {
        let inner = lock(&self.inner);
        let ended = inner.phase == Phase::Ended;
        match &inner.frames {
            Some(frames) => {
                let start = usize::try_from(after).unwrap_or(usize::MAX);
                if start < frames.len() {
                    let taken = frames[start..]
                        .iter()
                        .take(SNAPSHOT_FRAMES)
                        .enumerate()
                        .map(|(i, frame)| (after + 1 + i as u64, frame.clone()))
                        .collect();
                    Snapshot::Frames(taken)
                } else if ended {
                    Snapshot::End(Box::new(inner.info.clone()))
                } else {
                    Snapshot::Wait
                }
            }
            None if ended && after < inner.info.event_count => Snapshot::Stored {
                event_count: inner.info.event_count,
            },
            None if ended => Snapshot::End(Box::new(inner.info.clone())),
            None => Snapshot::Wait,
        }
    }
}

#[derive(Default)]
struct State {
    runs: HashMap<Id, Arc<Run>>,
    /// Queued runs by arrival.
    queue: BTreeMap<u64, Id>,
    next_order: u64,
    /// Runs starting or running.
    running: usize,
    /// Conversations with a run starting or running.
    conversations: HashSet<Id>,
    /// Turns of runs, until their `TURN_SETTLED`.
    run_turns: HashMap<Id, Id>,
    idempotency: HashMap<String, Id>,
    /// Conversations whose chat turn a task waits out.
    watching: HashSet<Id>,
}

/// Filters of `GET /runs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub status: Option<RunStatus>,
    pub conversation_id: Option<String>,
    pub limit: usize,
}

/// The services a registry works with.
pub struct Services {
    pub session: Arc<dyn Session>,
    pub store: Arc<dyn ConversationStore>,
    pub scope: Arc<dyn Scope>,
    /// Stamps records; the system clock when `None`.
    pub clock: Option<Arc<dyn Clock>>,
}

/// The registry, shared by routes, hooks and run tasks.
pub struct Runs {
    pub session: Arc<dyn Session>,
    pub store: Arc<dyn ConversationStore>,
    pub scope: Arc<dyn Scope>,
    pub clock: Option<Arc<dyn Clock>>,
    pub config: Config,
    /// Cancelled at deactivation: run tasks and SSE streams end.
    pub token: CancellationToken,
    pub tracker: TaskTracker,
    pub span: tracing::Span,
    writer: mpsc::UnboundedSender<Job>,
    state: Mutex<State>,
}

impl Runs {
    pub fn new(
        services: Services,
        config: Config,
        token: CancellationToken,
        span: tracing::Span,
        writer: mpsc::UnboundedSender<Job>,
    ) -> Runs {
        let Services {
            session,
            store,
            scope,
            clock,
        } = services;
        Runs {
            session,
            store,
            scope,
            clock,
            config,
            token,
            tracker: TaskTracker::new(),
            span,
            writer,
            state: Mutex::default(),
        }
    }

    pub fn now_ms(&self) -> i64 {
        match &self.clock {
            Some(clock) => clock.unix_ms(),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        }
    }

    fn write(&self, batch: WriteBatch) {
        if self.writer.send(Job::Write(batch, None)).is_err() {
            tracing::error!("Run record not persisted: the writer has stopped");
        }
    }

    fn commit(&self, batch: WriteBatch) -> oneshot::Receiver<Result<(), StorageError>> {
        let (tx, rx) = oneshot::channel();
        // A stopped writer drops `tx`: the receiver then reads as an error.
        let _ = self.writer.send(Job::Write(batch, Some(tx)));
        rx
    }

    /// Persists `info` (called with the run's lock held, after changing it).
    fn persist(&self, info: &RunInfo) {
        match store::put_info(WriteBatch::new(), info) {
            Ok(batch) => self.write(batch),
            Err(err) => {
                tracing::error!(run_id = %info.run_id, error = %err, "Run record not encoded")
            }
        }
    }

    /// Waits until every write handed over so far has committed.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.writer.send(Job::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    fn spawn<F>(&self, future: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(future.instrument(self.span.clone()));
    }

    pub fn run(&self, run_id: &str) -> Option<Arc<Run>> {
        lock(&self.state).runs.get(run_id).cloned()
    }

    /// A run's record: this process's, else the stored one.
    pub async fn info(&self, run_id: &str) -> Result<Option<RunInfo>, ApiError> {
        if let Some(run) = self.run(run_id) {
            return Ok(Some(run.info()));
        }
        store::get_info(&*self.scope, run_id)
            .await
            .map_err(ApiError::internal)
    }

    /// `GET /runs`: newest first.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<RunInfo>, ApiError> {
        let mut infos: HashMap<Id, RunInfo> = store::list_infos(&*self.scope)
            .await
            .map_err(ApiError::internal)?
            .into_iter()
            .map(|info| (info.run_id.clone(), info))
            .collect();
        let live: Vec<Arc<Run>> = lock(&self.state).runs.values().cloned().collect();
        for run in live {
            infos.insert(run.id.clone(), run.info());
        }
        let mut runs: Vec<RunInfo> = infos
            .into_values()
            .filter(|info| filter.status.is_none_or(|status| info.status == status))
            .filter(|info| {
                filter
                    .conversation_id
                    .as_deref()
                    .is_none_or(|id| &*info.conversation_id == id)
            })
            .collect();
        runs.sort_by(|a, b| (b.created_at, &b.run_id).cmp(&(a.created_at, &a.run_id)));
        runs.truncate(filter.limit);
        Ok(runs)
    }

    fn accepted(info: &RunInfo) -> RunAccepted {
        RunAccepted {
            run_id: info.run_id.clone(),
            conversation_id: info.conversation_id.clone(),
            status: info.status,
            events_url: info.events_url.clone(),
            status_url: info.status_url.clone(),
        }
    }

    /// `POST /runs`: records the run (durably, with its idempotency key), then starts it
    /// or queues it. Returns once it is running or queued, before the model answers.
    pub async fn submit(
        self: &Arc<Self>,
        mut request: RunRequest,
        key: Option<String>,
    ) -> Result<RunAccepted, ApiError> {
        if let Some(key) = &key {
            let known = lock(&self.state).idempotency.get(key).cloned();
            let known = match known {
                Some(id) => Some(id.to_string()),
                None => store::idempotent_run(&*self.scope, key)
                    .await
                    .map_err(ApiError::internal)?,
            };
            if let Some(run_id) = known {
                if let Some(info) = self.info(&run_id).await? {
                    return Ok(Runs::accepted(&info));
                }
            }
        }
        let run_id = new_id();
        let conversation_id = match &request.conversation_id {
            Some(id) => Id::from(id.as_str()),
            None => new_id(),
        };
        request.conversation_id = Some(conversation_id.to_string());
        let info = RunInfo {
            run_id: run_id.clone(),
            conversation_id: conversation_id.clone(),
            status: RunStatus::Queued,
            created_at: self.now_ms(),
            started_at: None,
            ended_at: None,
            queued_reason: None,
            reason: None,
            turn_id: None,
            finish_reason: None,
            usage: None,
            event_count: 0,
            events_url: events_url(&run_id),
            status_url: status_url(&run_id),
        };
        let mut batch = store::put_info(WriteBatch::new(), &info).map_err(ApiError::internal)?;
        if let Some(key) = &key {
            batch = batch.put(store::idempotency_key(key), run_id.as_bytes().to_vec());
        }
        let run = {
            let mut state = lock(&self.state);
            if let Some(key) = &key {
                if let Some(existing) = state.idempotency.get(key).and_then(|id| state.runs.get(id))
                {
                    return Ok(Runs::accepted(&existing.info()));
                }
                state.idempotency.insert(key.clone(), run_id.clone());
            }
            let order = state.next_order;
            state.next_order += 1;
            let run = Arc::new(Run {
                id: run_id.clone(),
                conversation_id,
                order,
                inner: Mutex::new(RunInner {
                    info,
                    request,
                    phase: Phase::Queued,
                    frames: Some(Vec::new()),
                    pending: Vec::new(),
                    cancel_requested: false,
                    error: None,
                    last_index: None,
                }),
                changed: watch::Sender::new(0),
            });
            state.runs.insert(run_id.clone(), run.clone());
            run
        };
        let committed = matches!(self.commit(batch).await, Ok(Ok(())));
        if !committed {
            let mut state = lock(&self.state);
            state.runs.remove(&run_id);
            if let Some(key) = &key {
                state.idempotency.remove(key);
            }
            return Err(ApiError::internal("the run could not be recorded"));
        }
        lock(&self.state).queue.insert(run.order, run_id.clone());
        tracing::info!(run_id = %run_id, conversation_id = %run.conversation_id, "Run accepted");
        self.pump().await;
        Ok(Runs::accepted(&run.info()))
    }

    /// Starts every queued run that may start now, FIFO; records why the others wait.
    pub async fn pump(self: &Arc<Self>) {
        // Each round either starts runs or stops; a start that gives its slot back (a
        // failed or refused send) makes another round worth it. Bounded for safety.
        for _ in 0..16 {
            if self.token.is_cancelled() {
                return;
            }
            let (starting, watch) = self.select();
            for conversation_id in watch {
                let runs = self.clone();
                self.spawn(async move {
                    tokio::select! {
                        () = runs.session.settled(&conversation_id) => {}
                        () = runs.token.cancelled() => return,
                    }
                    lock(&runs.state).watching.remove(&conversation_id);
                    runs.pump_boxed().await;
                });
            }
            if starting.is_empty() {
                return;
            }
            let released =
                futures::future::join_all(starting.into_iter().map(|run| self.start(run)))
                    .await
                    .into_iter()
                    .any(|released| released);
            if !released {
                return;
            }
        }
    }

    /// Under the lock: the runs to start now (their slots taken) and the conversations
    /// whose chat turn to wait out.
    fn select(&self) -> (Vec<Arc<Run>>, Vec<Id>) {
        let mut state = lock(&self.state);
        let state = &mut *state;
        let mut blocked: HashSet<Id> = state.conversations.clone();
        let mut starting = Vec::new();
        let mut watch = Vec::new();
        let queued: Vec<(u64, Id)> = state.queue.iter().map(|(o, id)| (*o, id.clone())).collect();
        for (order, run_id) in queued {
            let Some(run) = state.runs.get(&run_id).cloned() else {
                state.queue.remove(&order);
                continue;
            };
            let conversation_id = run.conversation_id.clone();
            let reason = if blocked.contains(&conversation_id) {
                Some(CONVERSATION_BUSY)
            } else if self.session.is_active(&conversation_id) {
                if state.watching.insert(conversation_id.clone()) {
                    watch.push(conversation_id.clone());
                }
                Some(CONVERSATION_BUSY)
            } else if state.running >= self.config.max_concurrent {
                Some(CONCURRENCY_LIMIT)
            } else {
                None
            };
            blocked.insert(conversation_id.clone());
            let mut inner = lock(&run.inner);
            match reason {
                Some(reason) => {
                    if inner.info.queued_reason.as_deref() != Some(reason) {
                        inner.info.queued_reason = Some(reason.to_owned());
                        self.persist(&inner.info);
                        drop(inner);
                        run.bump();
                    }
                }
                None => {
                    state.queue.remove(&order);
                    state.running += 1;
                    state.conversations.insert(conversation_id);
                    inner.phase = Phase::Starting;
                    drop(inner);
                    starting.push(run);
                }
            }
        }
        (starting, watch)
    }

    /// Gives a run's slot back.
    fn release(&self, run: &Run) {
        let mut state = lock(&self.state);
        state.running = state.running.saturating_sub(1);
        state.conversations.remove(&run.conversation_id);
    }

    /// Sends a run's turn. Returns whether its slot was given back (not started).
    async fn start(self: &Arc<Self>, run: Arc<Run>) -> bool {
        let request = lock(&run.inner).request.clone();
        let send: SendRequest = send_request(request, Some(run.id.to_string()));
        match self.session.send(send).await {
            Ok(accepted) => {
                let turn_id = accepted.turn_id.clone();
                lock(&self.state)
                    .run_turns
                    .insert(turn_id.clone(), run.id.clone());
                let cancel = {
                    let mut inner = lock(&run.inner);
                    inner.phase = Phase::Running;
                    inner.info.status = RunStatus::Running;
                    inner.info.started_at = Some(self.now_ms());
                    inner.info.turn_id = Some(turn_id.clone());
                    self.persist(&inner.info);
                    inner.cancel_requested
                };
                run.bump();
                tracing::info!(run_id = %run.id, turn_id = %turn_id, "Run started");
                let runs = self.clone();
                let followed = run.clone();
                self.spawn(async move {
                    runs.follow(followed, accepted.subscription, turn_id).await;
                });
                if cancel {
                    let runs = self.clone();
                    let conversation_id = run.conversation_id.clone();
                    self.spawn(async move {
                        if let Err(err) = runs.session.stop(&conversation_id).await {
                            tracing::warn!(error = %err, "Stopping a cancelled run failed");
                        }
                    });
                }
                false
            }
            Err(SessionError::AlreadyActive { .. }) if !lock(&run.inner).cancel_requested => {
                // A chat turn took the conversation first: back to the queue, in place.
                let mut state = lock(&self.state);
                state.running = state.running.saturating_sub(1);
                state.conversations.remove(&run.conversation_id);
                state.queue.insert(run.order, run.id.clone());
                let watch = state.watching.insert(run.conversation_id.clone());
                let mut inner = lock(&run.inner);
                inner.phase = Phase::Queued;
                inner.info.queued_reason = Some(CONVERSATION_BUSY.to_owned());
                self.persist(&inner.info);
                drop(inner);
                drop(state);
                run.bump();
                if watch {
                    let runs = self.clone();
                    let conversation_id = run.conversation_id.clone();
                    self.spawn(async move {
                        tokio::select! {
                            () = runs.session.settled(&conversation_id) => {}
                            () = runs.token.cancelled() => return,
                        }
                        lock(&runs.state).watching.remove(&conversation_id);
                        runs.pump_boxed().await;
                    });
                }
                true
            }
            Err(err) => {
                self.release(&run);
                let (status, reason) = if matches!(err, SessionError::AlreadyActive { .. }) {
                    (RunStatus::Cancelled, CANCELLED_WHILE_QUEUED.to_owned())
                } else {
                    tracing::warn!(run_id = %run.id, error = %err, "Run could not start");
                    (RunStatus::Failed, err.to_string())
                };
                self.end(&run, status, Some(reason)).await;
                true
            }
        }
    }

    /// Follows a running run's turn until `turn-sealed` (or deactivation).
    async fn follow(self: Arc<Self>, run: Arc<Run>, mut subscription: Subscription, turn_id: Id) {
        loop {
            let frame = tokio::select! {
                biased;
                () = self.token.cancelled() => return,
                frame = subscription.recv() => frame,
            };
            let Some(frame) = frame else {
                if self.token.is_cancelled() {
                    return;
                }
                match self.reattach(&run, &turn_id, subscription.lagged()).await {
                    Some(again) => {
                        subscription = again;
                        continue;
                    }
                    None => {
                        lock(&run.inner).error = Some("the run's event stream was lost".to_owned());
                        self.finish(&run, None).await;
                        return;
                    }
                }
            };
            if frame.turn_id != turn_id {
                continue;
            }
            if let Some(sealed) = self.record(&run, &frame) {
                self.finish(&run, sealed).await;
                return;
            }
        }
    }

    /// A new subscription replaying the run's turn (when the hub dropped the old one),
    /// while the turn still runs.
    async fn reattach(&self, run: &Run, turn_id: &Id, lagged: bool) -> Option<Subscription> {
        if !self.session.is_active(&run.conversation_id) {
            return None;
        }
        tracing::warn!(run_id = %run.id, lagged, "Run subscription dropped; re-attaching");
        let request = lock(&run.inner).request.clone();
        match self
            .session
            .send(send_request(request, Some(run.id.to_string())))
            .await
        {
            Ok(accepted) if accepted.reattached && &accepted.turn_id == turn_id => {
                Some(accepted.subscription)
            }
            Ok(_) => None,
            Err(err) => {
                tracing::warn!(run_id = %run.id, error = %err, "Re-attaching failed");
                None
            }
        }
    }

    /// Takes one frame of the run's turn. At a step boundary the buffered frames are
    /// committed. Returns `Some(finish reason of the done event)` at `turn-sealed`.
    fn record(&self, run: &Run, frame: &EventFrame) -> Option<Option<FinishReason>> {
        let mut inner = lock(&run.inner);
        if inner.last_index.is_some_and(|last| frame.index <= last) {
            return None;
        }
        inner.last_index = Some(frame.index);
        let taken = Frame {
            kind: std::borrow::Cow::Borrowed(frame.event.type_name()),
            json: frame.json.clone(),
        };
        inner.pending.push(taken.encode());
        if let Some(frames) = &mut inner.frames {
            frames.push(taken);
        }
        inner.info.event_count += 1;
        let mut boundary = false;
        let mut sealed = false;
        match &frame.event {
            AgentEvent::Done {
                finish_reason,
                usage,
                ..
            } => {
                inner.info.finish_reason = Some(*finish_reason);
                inner.info.usage = Some(*usage);
                boundary = true;
            }
            AgentEvent::StepComplete { .. } => boundary = true,
            AgentEvent::Error { message, .. } => inner.error = Some(message.clone()),
            AgentEvent::TurnSealed { .. } => sealed = true,
            AgentEvent::UserMessage { .. }
            | AgentEvent::TurnStart { .. }
            | AgentEvent::TextDelta { .. }
            | AgentEvent::ReasoningDelta { .. }
            | AgentEvent::ToolCall { .. }
            | AgentEvent::ToolOutput { .. }
            | AgentEvent::ToolResult { .. }
            | AgentEvent::Usage { .. }
            | AgentEvent::ProviderRetry { .. }
            | AgentEvent::Steering { .. }
            | AgentEvent::Unknown => {}
        }
        if boundary {
            let entries = std::mem::take(&mut inner.pending);
            let batch = WriteBatch::new().append(store::events_log(&run.id), entries);
            match store::put_info(batch, &inner.info) {
                Ok(batch) => self.write(batch),
                Err(err) => {
                    tracing::error!(run_id = %run.id, error = %err, "Run events not encoded")
                }
            }
        }
        let finish = inner.info.finish_reason;
        drop(inner);
        run.bump();
        sealed.then_some(finish)
    }

    /// Ends a running run after its turn sealed, by the turn's finish reason.
    async fn finish(self: &Arc<Self>, run: &Arc<Run>, finish: Option<FinishReason>) {
        let (cancel_requested, error) = {
            let inner = lock(&run.inner);
            (inner.cancel_requested, inner.error.clone())
        };
        let (status, reason) = match finish {
            Some(
                FinishReason::Stop
                | FinishReason::ToolCalls
                | FinishReason::MaxSteps
                | FinishReason::Length,
            ) => (RunStatus::Completed, None),
            Some(FinishReason::Error) => (
                RunStatus::Failed,
                Some(error.unwrap_or_else(|| "the turn failed".to_owned())),
            ),
            Some(FinishReason::Aborted) if cancel_requested => {
                (RunStatus::Cancelled, Some(ABORTED_WHILE_RUNNING.to_owned()))
            }
            Some(FinishReason::Aborted) => (RunStatus::Cancelled, Some(ABORTED.to_owned())),
            Some(FinishReason::Unknown) => (
                RunStatus::Failed,
                Some("the turn ended with an unknown finish reason".to_owned()),
            ),
            None => (
                RunStatus::Failed,
                Some(error.unwrap_or_else(|| "the turn ended without a done event".to_owned())),
            ),
        };
        self.release(run);
        self.end(run, status, reason).await;
    }

    /// Records a run's end durably (with any buffered frames), then lets waiters see it
    /// and starts what may start now.
    async fn end(self: &Arc<Self>, run: &Arc<Run>, status: RunStatus, reason: Option<String>) {
        let (ack, info) = {
            let mut inner = lock(&run.inner);
            inner.phase = Phase::Ending;
            let mut info = inner.info.clone();
            info.status = status;
            info.reason = reason;
            info.ended_at = Some(self.now_ms());
            let entries = std::mem::take(&mut inner.pending);
            let mut batch = WriteBatch::new();
            if !entries.is_empty() {
                batch = batch.append(store::events_log(&run.id), entries);
            }
            let ack = match store::put_info(batch, &info) {
                Ok(batch) => Some(self.commit(batch)),
                Err(err) => {
                    tracing::error!(run_id = %run.id, error = %err, "Run end not encoded");
                    None
                }
            };
            (ack, info)
        };
        let committed = match ack {
            Some(ack) => match ack.await {
                Ok(Ok(())) => true,
                Ok(Err(err)) => {
                    tracing::error!(run_id = %run.id, error = %err, "Run end not persisted");
                    false
                }
                Err(_) => false,
            },
            None => false,
        };
        {
            let mut inner = lock(&run.inner);
            tracing::info!(run_id = %run.id, status = ?info.status, reason = ?info.reason, "Run ended");
            inner.info = info;
            inner.phase = Phase::Ended;
            if committed {
                // Storage has every frame now; SSE clients read it from there.
                inner.frames = None;
            }
        }
        run.bump();
        self.pump_boxed().await;
    }

    /// [`Runs::pump`] as a `Send` trait object (it is reached again from [`Runs::end`]).
    fn pump_boxed(
        self: &Arc<Self>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(self.pump())
    }

    /// `POST /runs/:id/cancel`.
    pub async fn cancel(self: &Arc<Self>, run_id: &str) -> Result<RunCancelResponse, ApiError> {
        let Some(run) = self.run(run_id) else {
            // Runs of an earlier process have ended (the activation sweep saw to that).
            return match self.info(run_id).await? {
                Some(run) => Ok(RunCancelResponse {
                    outcome: CancelOutcome::AlreadyEnded,
                    run,
                }),
                None => Err(ApiError::not_found("run", run_id)),
            };
        };
        let phase = {
            let mut state = lock(&self.state);
            let mut inner = lock(&run.inner);
            let phase = inner.phase;
            match phase {
                Phase::Queued => {
                    state.queue.remove(&run.order);
                    // So no pump and no second cancel picks it up again.
                    inner.phase = Phase::Ending;
                }
                Phase::Starting | Phase::Running => inner.cancel_requested = true,
                Phase::Ending | Phase::Ended => {}
            }
            phase
        };
        match phase {
            Phase::Queued => {
                self.end(
                    &run,
                    RunStatus::Cancelled,
                    Some(CANCELLED_WHILE_QUEUED.to_owned()),
                )
                .await;
                tracing::info!(run_id, "Queued run cancelled");
                Ok(RunCancelResponse {
                    outcome: CancelOutcome::CancelledQueued,
                    run: run.info(),
                })
            }
            Phase::Starting | Phase::Running | Phase::Ending => {
                let still_running = lock(&run.inner).phase == Phase::Running;
                if still_running {
                    self.session
                        .stop(&run.conversation_id)
                        .await
                        .map_err(ApiError::from)?;
                }
                let mut watch = run.watch();
                let ended = tokio::time::timeout(CANCEL_WAIT, async {
                    loop {
                        if lock(&run.inner).phase == Phase::Ended {
                            return;
                        }
                        if watch.changed().await.is_err() {
                            return;
                        }
                    }
                })
                .await;
                if ended.is_err() {
                    tracing::warn!(run_id, "Cancelled run did not seal in time");
                }
                let info = run.info();
                let outcome = match (info.status, info.reason.as_deref()) {
                    (RunStatus::Cancelled, Some(CANCELLED_WHILE_QUEUED)) => {
                        CancelOutcome::CancelledQueued
                    }
                    (RunStatus::Cancelled, _) | (RunStatus::Running | RunStatus::Queued, _) => {
                        CancelOutcome::AbortedRunning
                    }
                    (RunStatus::Completed | RunStatus::Failed | RunStatus::Unknown, _) => {
                        CancelOutcome::AlreadyEnded
                    }
                };
                tracing::info!(run_id, outcome = ?outcome, "Running run cancelled");
                Ok(RunCancelResponse { outcome, run: info })
            }
            Phase::Ended => Ok(RunCancelResponse {
                outcome: CancelOutcome::AlreadyEnded,
                run: run.info(),
            }),
        }
    }

    /// `STEP_COMPLETED`: records the step of a run's turn (fast: hands the write over).
    pub fn on_step(&self, completed: &StepCompleted) {
        let record = &completed.record;
        let ours = {
            let state = lock(&self.state);
            state.run_turns.contains_key(&record.turn_id)
                || state.conversations.contains(&completed.conversation_id)
        };
        if !ours {
            return;
        }
        let artifact = StepArtifact {
            step_id: record.step_id.clone(),
            step_index: record.step_index,
            prefix: record.prefix.as_deref().cloned(),
        };
        match store::encode(&artifact) {
            Ok(json) => {
                self.write(WriteBatch::new().append(store::steps_log(&record.turn_id), vec![json]))
            }
            Err(err) => tracing::error!(error = %err, "Step artifact not encoded"),
        }
    }

    /// `TURN_SETTLED`: records the system prompt of a run's turn.
    pub fn on_settled(&self, settled: &TurnSettled) {
        let turn_id = &settled.metrics.turn_id;
        if lock(&self.state).run_turns.remove(turn_id).is_none()
            || settled.metrics.system_prompt.is_empty()
        {
            return;
        }
        match store::encode(&settled.metrics.system_prompt) {
            Ok(json) => self.write(WriteBatch::new().put(store::prompt_key(turn_id), json)),
            Err(err) => tracing::error!(error = %err, "System prompt record not encoded"),
        }
    }
}
