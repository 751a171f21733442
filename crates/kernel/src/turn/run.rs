//! The turn loop: `turn-start`, then steps (stream → tools → steering → persist) until the
//! model stops calling tools, then exactly one `done`.
//!
//! Shape: [`run_turn`] splits its input into a read-mostly [`Ctx`] and an accumulating
//! [`State`], runs the steps under `catch_unwind`, and emits `done` afterwards whatever
//! happened. That is the one place the terminal-event invariant is enforced; no branch emits
//! `done` itself. Everything fallible inside a step (provider, tools, sinks) is caught where
//! it happens and becomes an event, so the turn-level `catch_unwind` is only a backstop for
//! a panicking event sink, clock or steering source.
//!
//! Submodules: [`stream`] reads one provider response (retry, idle timeout, abort) and
//! [`tools`] runs a step's tool calls (dedup, scheduling, abort race).
//!
//! Invariant: every `tool-call` event gets exactly one `tool-result` event, and no tool call
//! is persisted without its result. Invariant: the kernel never reads the clock or sleeps
//! except through `env.clock` and `env.sleeper`, and spawns no task.

mod stream;
mod tools;

pub use self::tools::cap_result;

use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use dispatch_wire::{AgentEvent, Chunk, Cost, FinishReason, Id, Role, Usage};
use futures::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::abi::{Message, Provider, ProviderRequest, StepRecord, Tool, ToolSpec};
use crate::turn::{TurnEnv, TurnInput, TurnOptions, TurnOutcome};
use crate::{Cancelled, or_cancel};
use dispatch_stdx::panic_message;

use self::stream::StreamEnd;
use self::tools::{Call, CallResult};

/// Runs one turn: one user message → steps until the model stops calling tools.
///
/// Never panics and always emits `turn-start` first and `done` last, exactly once: faults
/// (provider errors, failing or panicking tools, a failing `on_step_complete`, abort) end the
/// turn as events and a finish reason.
pub async fn run_turn(input: TurnInput) -> TurnOutcome {
    let span = tracing::info_span!(
        "turn",
        conversation_id = %input.conversation_id,
        turn_id = %input.turn_id,
    );
    async move {
        let mut ctx = Ctx::new(input);
        let mut state = State::default();
        let reason = match AssertUnwindSafe(run_steps(&mut ctx, &mut state))
            .catch_unwind()
            .await
        {
            Ok(reason) => reason,
            Err(panic) => recover(&ctx, &mut state, &panic_message(&*panic)),
        };
        finish(ctx, state, reason)
    }
    .instrument(span)
    .await
}

/// What a turn reads. Fixed for the whole turn except `request.messages`, which only grows
/// (by each step's persisted messages) between steps.
struct Ctx {
    conversation_id: Id,
    turn_id: Id,
    provider: Arc<dyn Provider>,
    request: ProviderRequest,
    /// How many messages `request` held before the turn: the rest is the turn's history.
    history_len: usize,
    /// Unique names, sorted by name: the same order as `request.tools`.
    tools: Vec<Arc<dyn Tool>>,
    cwd: Option<PathBuf>,
    workspace_id: Option<Id>,
    computer_id: Option<Id>,
    options: TurnOptions,
    env: TurnEnv,
    cancel: CancellationToken,
    /// `env.clock.monotonic()` when the turn started.
    started: Duration,
}

/// What a turn accumulates.
#[derive(Default)]
struct State {
    /// Steps started.
    steps: u32,
    usage: Usage,
    cost: Option<Cost>,
    context_size: Option<u64>,
    error: Option<String>,
    /// The last `n` used in a message id `turnId:n`; the caller's user message is 0.
    message_seq: u32,
    /// Tool calls announced by a `tool-call` event and not yet answered by a `tool-result`.
    open_calls: Vec<(Id, String)>,
}

impl Ctx {
    fn new(input: TurnInput) -> Ctx {
        let TurnInput {
            conversation_id,
            turn_id,
            provider,
            mut request,
            tools,
            cwd,
            workspace_id,
            computer_id,
            options,
            env,
            cancel,
        } = input;
        let tools = unique_tools(tools);
        let specs: Vec<ToolSpec> = tools.iter().map(|t| t.spec().clone()).collect();
        request.tools = Arc::from(specs);
        request.conversation_id = Some(conversation_id.clone());
        Ctx {
            conversation_id,
            turn_id,
            provider,
            history_len: request.messages.len(),
            request,
            tools,
            cwd,
            workspace_id,
            computer_id,
            options,
            started: env.clock.monotonic(),
            env,
            cancel,
        }
    }

    fn emit(&self, event: AgentEvent) {
        self.env.events.emit(event);
    }

    fn now(&self) -> Duration {
        self.env.clock.monotonic()
    }

    fn tool(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        let found = self
            .tools
            .binary_search_by(|t| t.spec().name.as_str().cmp(name));
        found.ok().map(|i| &self.tools[i])
    }

    fn emit_error(
        &self,
        step_id: Option<&Id>,
        message: &str,
        code: Option<String>,
        retryable: bool,
    ) {
        self.emit(AgentEvent::Error {
            conversation_id: self.conversation_id.clone(),
            turn_id: self.turn_id.clone(),
            step_id: step_id.cloned(),
            message: message.to_owned(),
            code,
            retryable,
        });
    }
}

impl State {
    fn next_message_id(&mut self, turn_id: &Id) -> Id {
        self.message_seq += 1;
        Id::from(format!("{turn_id}:{}", self.message_seq))
    }

    /// Emits the `tool-result` of an announced call and forgets it.
    fn settle(&mut self, ctx: &Ctx, step_id: &Id, call_id: &Id, name: &str, result: &CallResult) {
        if let Some(i) = self.open_calls.iter().position(|(id, _)| id == call_id) {
            self.open_calls.swap_remove(i);
        }
        ctx.emit(AgentEvent::ToolResult {
            conversation_id: ctx.conversation_id.clone(),
            turn_id: ctx.turn_id.clone(),
            step_id: step_id.clone(),
            tool_call_id: call_id.clone(),
            tool_name: name.to_owned(),
            output: result.output.clone(),
            is_error: result.is_error,
            duration_ms: millis(result.duration),
        });
    }

    /// Answers every announced call still open (the step ended before running them).
    fn settle_open_calls(&mut self, ctx: &Ctx, step_id: &Id, output: &str) {
        let result = CallResult::error(output, Duration::ZERO);
        for (id, name) in std::mem::take(&mut self.open_calls) {
            self.settle(ctx, step_id, &id, &name, &result);
        }
    }
}

/// Tools by name: the first of a name wins, sorted so `request.tools` is byte-stable.
fn unique_tools(mut tools: Vec<Arc<dyn Tool>>) -> Vec<Arc<dyn Tool>> {
    // A stable sort keeps the caller's order among equal names, so dedup keeps the first.
    tools.sort_by(|a, b| a.spec().name.cmp(&b.spec().name));
    tools.dedup_by(|later, kept| {
        let duplicate = later.spec().name == kept.spec().name;
        if duplicate {
            tracing::warn!(tool = %later.spec().name, "Duplicate tool name, keeping the first");
        }
        duplicate
    });
    tools
}

async fn run_steps(ctx: &mut Ctx, state: &mut State) -> FinishReason {
    ctx.emit(AgentEvent::TurnStart {
        conversation_id: ctx.conversation_id.clone(),
        turn_id: ctx.turn_id.clone(),
        model: ctx.request.model.clone(),
        started_at: ctx.env.clock.unix_ms(),
    });
    loop {
        if ctx.cancel.is_cancelled() {
            return FinishReason::Aborted;
        }
        let index = state.steps;
        state.steps += 1;
        let step_id = Id::from(format!("{}#{index}", ctx.turn_id));
        let span = tracing::info_span!("step", step_id = %step_id);
        match run_step(ctx, state, index, step_id).instrument(span).await {
            StepEnd::Continue => {}
            StepEnd::Finish(reason) => return reason,
        }
    }
}

/// How one step ended, from the model's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepReason {
    Stop,
    Length,
    ToolCalls,
    Error,
    Aborted,
}

impl StepReason {
    fn wire(self) -> FinishReason {
        match self {
            StepReason::Stop => FinishReason::Stop,
            StepReason::Length => FinishReason::Length,
            StepReason::ToolCalls => FinishReason::ToolCalls,
            StepReason::Error => FinishReason::Error,
            StepReason::Aborted => FinishReason::Aborted,
        }
    }
}

enum StepEnd {
    Continue,
    Finish(FinishReason),
}

/// A step's new history before message ids are assigned.
struct StepBody {
    reason: StepReason,
    assistant: Vec<Chunk>,
    results: Vec<Chunk>,
    steering: Vec<Message>,
}

impl StepBody {
    /// The history of a step cut short: its text and reasoning, no tool calls, no results.
    fn interrupted(reason: StepReason, chunks: Vec<Chunk>) -> StepBody {
        let assistant = chunks
            .into_iter()
            .filter(|c| !matches!(c, Chunk::ToolCall { .. }))
            .collect();
        StepBody {
            reason,
            assistant,
            results: Vec::new(),
            steering: Vec::new(),
        }
    }
}

async fn run_step(ctx: &mut Ctx, state: &mut State, index: u32, step_id: Id) -> StepEnd {
    let token = ctx.cancel.child_token();
    let (draft, end) = stream::stream_step(ctx, state, &step_id, &token).await;
    let timing = draft.timing();
    let (usage, cost) = account_usage(ctx, state, &step_id, draft.usage);
    let last_step = ctx.options.max_steps > 0 && index + 1 >= ctx.options.max_steps;
    let body = match end {
        StreamEnd::Finished(stop) if draft.calls.is_empty() => StepBody {
            reason: stream::stop_reason(&stop),
            assistant: draft.chunks,
            results: Vec::new(),
            steering: Vec::new(),
        },
        StreamEnd::Finished(_) => {
            tool_step(
                ctx,
                state,
                &step_id,
                &token,
                draft.chunks,
                &draft.calls,
                last_step,
            )
            .await
        }
        StreamEnd::Failed(err) => {
            tracing::warn!(error = %err.message, code = ?err.code, "Provider request failed");
            ctx.emit_error(
                Some(&step_id),
                &err.message,
                err.code.clone(),
                err.retryable,
            );
            state.settle_open_calls(ctx, &step_id, "Not run: the model response failed");
            state.error = Some(err.message.clone());
            let mut body = StepBody::interrupted(StepReason::Error, draft.chunks);
            body.assistant.push(Chunk::Error {
                message: err.message,
                code: err.code,
            });
            body
        }
        StreamEnd::Aborted => StepBody::interrupted(StepReason::Aborted, draft.chunks),
    };
    if body.reason == StepReason::Aborted {
        state.settle_open_calls(ctx, &step_id, "Aborted");
    }
    let reason = body.reason;
    let record = StepRecord {
        conversation_id: ctx.conversation_id.clone(),
        turn_id: ctx.turn_id.clone(),
        step_id: step_id.clone(),
        step_index: index,
        messages: assemble(ctx, state, body),
        finish_reason: reason.wire(),
        usage,
        cost,
        timing,
        prefix: draft.prefix,
    };
    let persisted = if reason == StepReason::Aborted && record.messages.is_empty() {
        Persisted::Stored
    } else {
        persist(ctx, &record).await
    };
    if let Persisted::Failed(message) = &persisted {
        let message = format!("Could not persist the step: {message}");
        tracing::error!(error = %message, "Step not persisted");
        ctx.emit_error(Some(&step_id), &message, Some("persist".to_owned()), false);
        state.error = Some(message);
    }
    ctx.emit(AgentEvent::StepComplete {
        conversation_id: ctx.conversation_id.clone(),
        turn_id: ctx.turn_id.clone(),
        step_id,
        step_index: index,
        finish_reason: reason.wire(),
        ttft_ms: timing.ttft.map(millis),
        decode_ms: timing.decode.map(millis),
        gen_total_ms: millis(timing.total),
    });
    ctx.request.messages.extend(record.messages);
    match (reason, persisted) {
        (_, Persisted::Failed(_)) | (StepReason::Error, _) => StepEnd::Finish(FinishReason::Error),
        (StepReason::Aborted, _) | (_, Persisted::Abandoned) => {
            StepEnd::Finish(FinishReason::Aborted)
        }
        (StepReason::Stop, Persisted::Stored) => StepEnd::Finish(FinishReason::Stop),
        (StepReason::Length, Persisted::Stored) => StepEnd::Finish(FinishReason::Length),
        (StepReason::ToolCalls, Persisted::Stored) if last_step => {
            StepEnd::Finish(FinishReason::MaxSteps)
        }
        (StepReason::ToolCalls, Persisted::Stored) => StepEnd::Continue,
    }
}

/// Runs the step's tool calls, then the steering boundary. Steering is skipped on the last
/// step allowed by `max_steps`, like when the model stops, so the orchestrator carries the
/// queue to the next turn instead of leaving unanswered user messages at the end of history.
async fn tool_step(
    ctx: &Ctx,
    state: &mut State,
    step_id: &Id,
    token: &CancellationToken,
    chunks: Vec<Chunk>,
    calls: &[Call],
    last_step: bool,
) -> StepBody {
    let results = tools::dispatch(ctx, state, step_id, token, calls).await;
    if ctx.cancel.is_cancelled() {
        return StepBody::interrupted(StepReason::Aborted, chunks);
    }
    let results = calls
        .iter()
        .zip(results)
        .map(|(call, result)| Chunk::ToolResult {
            tool_call_id: call.id.clone(),
            tool_name: call.name.clone(),
            output: result.output,
            is_error: result.is_error,
        })
        .collect();
    let steering = if last_step {
        Vec::new()
    } else {
        match drain_steering(ctx, step_id).await {
            Ok(steering) => steering,
            Err(Cancelled) => return StepBody::interrupted(StepReason::Aborted, chunks),
        }
    };
    StepBody {
        reason: StepReason::ToolCalls,
        assistant: chunks,
        results,
        steering,
    }
}

/// Drains queued user messages into user messages of history and one `steering` event.
async fn drain_steering(ctx: &Ctx, step_id: &Id) -> Result<Vec<Message>, Cancelled> {
    let Some(source) = &ctx.env.steering else {
        return Ok(Vec::new());
    };
    let queued = or_cancel(&ctx.cancel, source.drain()).await?;
    if queued.is_empty() {
        return Ok(Vec::new());
    }
    tracing::info!(count = queued.len(), "Steering messages injected");
    let messages = queued
        .iter()
        .map(|q| Message::user(q.id.clone(), q.text.clone()))
        .collect();
    ctx.emit(AgentEvent::Steering {
        conversation_id: ctx.conversation_id.clone(),
        turn_id: ctx.turn_id.clone(),
        step_id: step_id.clone(),
        messages: queued,
    });
    Ok(messages)
}

/// Turns a step body into messages with ids; an empty assistant message is left out.
fn assemble(ctx: &Ctx, state: &mut State, body: StepBody) -> Vec<Message> {
    let mut messages = Vec::with_capacity(2 + body.steering.len());
    if !body.assistant.is_empty() {
        let id = state.next_message_id(&ctx.turn_id);
        messages.push(Message::new(id, Role::Assistant, body.assistant));
    }
    if !body.results.is_empty() {
        let id = state.next_message_id(&ctx.turn_id);
        messages.push(Message::new(id, Role::Tool, body.results));
    }
    for message in body.steering {
        state.message_seq += 1;
        messages.push(message);
    }
    messages
}

/// Emits the step's `usage` event and adds it to the turn totals.
fn account_usage(
    ctx: &Ctx,
    state: &mut State,
    step_id: &Id,
    usage: Option<Usage>,
) -> (Option<Usage>, Option<Cost>) {
    let Some(usage) = usage else {
        return (None, None);
    };
    let cost = ctx
        .env
        .pricing
        .as_ref()
        .and_then(|p| p.cost(ctx.provider.id(), &ctx.request.model, &usage));
    state.usage.add(&usage);
    if let Some(cost) = &cost {
        state.cost.get_or_insert_with(Cost::default).add(cost);
    }
    state.context_size = Some(usage.input_tokens + usage.output_tokens);
    ctx.emit(AgentEvent::Usage {
        conversation_id: ctx.conversation_id.clone(),
        turn_id: ctx.turn_id.clone(),
        step_id: step_id.clone(),
        usage,
        cost,
    });
    (Some(usage), cost)
}

enum Persisted {
    Stored,
    Failed(String),
    /// The turn was cancelled while `on_step_complete` was pending; it was dropped.
    Abandoned,
}

/// Hands the step to `on_step_complete`, raced against the turn's token.
///
/// The sink is polled before the token, so after cancellation it still gets one poll: a
/// sink that enqueues its write synchronously (a channel send) persists the aborted step,
/// one that would block is dropped instead of holding up the abort.
async fn persist(ctx: &Ctx, record: &StepRecord) -> Persisted {
    let Some(sink) = &ctx.env.on_step_complete else {
        return Persisted::Stored;
    };
    let mut store = pin!(AssertUnwindSafe(sink.step_complete(record)).catch_unwind());
    let mut cancelled = pin!(ctx.cancel.cancelled());
    poll_fn(|cx| {
        if let Poll::Ready(result) = store.as_mut().poll(cx) {
            return Poll::Ready(match result {
                Ok(Ok(())) => Persisted::Stored,
                Ok(Err(message)) => Persisted::Failed(message),
                Err(panic) => Persisted::Failed(format!("panicked: {}", panic_message(&*panic))),
            });
        }
        match cancelled.as_mut().poll(cx) {
            Poll::Ready(()) => {
                tracing::warn!("Turn aborted while on_step_complete was pending; step dropped");
                Poll::Ready(Persisted::Abandoned)
            }
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// The backstop of `run_turn`'s `catch_unwind`: answers open tool calls and reports the
/// panic. Guarded itself, since the event sink may be what panicked.
fn recover(ctx: &Ctx, state: &mut State, message: &str) -> FinishReason {
    tracing::error!(panic = %message, "Turn panicked");
    let message = format!("Internal error: {message}");
    let report = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let step_id = Id::from(format!("{}#{}", ctx.turn_id, state.steps.saturating_sub(1)));
        state.settle_open_calls(ctx, &step_id, "Aborted");
        ctx.emit_error(None, &message, Some("panic".to_owned()), false);
    }));
    if report.is_err() {
        tracing::error!("The event sink panicked while reporting a panic");
    }
    state.error = Some(message);
    FinishReason::Error
}

/// Emits `done` (the only place that does) and returns the outcome.
fn finish(mut ctx: Ctx, state: State, reason: FinishReason) -> TurnOutcome {
    let duration = ctx.now().saturating_sub(ctx.started);
    let messages = ctx
        .request
        .messages
        .split_off(ctx.history_len.min(ctx.request.messages.len()));
    let done = AgentEvent::Done {
        conversation_id: ctx.conversation_id.clone(),
        turn_id: ctx.turn_id.clone(),
        finish_reason: reason,
        usage: state.usage,
        cost: state.cost,
        duration_ms: millis(duration),
        context_size: state.context_size,
        steps: state.steps,
    };
    if std::panic::catch_unwind(AssertUnwindSafe(|| ctx.emit(done))).is_err() {
        tracing::error!("The event sink panicked on done");
    }
    tracing::info!(finish_reason = ?reason, steps = state.steps, duration_ms = millis(duration), "Turn finished");
    TurnOutcome {
        finish_reason: reason,
        usage: state.usage,
        cost: state.cost,
        steps: state.steps,
        duration,
        context_size: state.context_size,
        error: state.error,
        messages,
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
