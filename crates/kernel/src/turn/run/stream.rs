//! One step's provider response: open the stream, turn each provider event into one
//! `AgentEvent` and the step's chunks, and retry retryable failures with backoff while the
//! step has emitted no content.
//!
//! Content is what a person has already seen or what history would hold: a non-empty text
//! or reasoning delta, a reasoning signature or redacted block, a tool call. Usage is not
//! content (it is reported only after the stream), so a failed attempt's usage is dropped.
//!
//! Every wait for the provider (the `stream()` call and each `next()`) is raced against the
//! turn's token and an idle timer; a silent provider becomes a retryable `idle-timeout`.
//! The hot path allocates nothing per delta beyond the event: the idle timer is re-armed
//! only when it fires, from the time of the last event.

use std::future::{Future, poll_fn};
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use dispatch_wire::{AgentEvent, Chunk, Id, PromptPrefix, Usage};
use futures::future::{BoxFuture, Either, select};
use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::tools::Call;
use super::{Ctx, State, StepReason, panic_message};
use crate::abi::{
    Clock, ProviderError, ProviderEvent, ProviderStream, Sleeper, StepTiming, StopReason,
};
use crate::{Cancelled, or_cancel};

/// How a provider response ended.
pub(super) enum StreamEnd {
    Finished(StopReason),
    /// Not retried (fatal, after content, or out of retries).
    Failed(ProviderError),
    Aborted,
}

/// What one attempt produced.
#[derive(Default)]
pub(super) struct Draft {
    pub chunks: Vec<Chunk>,
    pub calls: Vec<Call>,
    /// The latest usage the provider reported; a later report replaces an earlier one.
    pub usage: Option<Usage>,
    /// The attempt's prompt-prefix record.
    pub prefix: Option<Arc<PromptPrefix>>,
    has_content: bool,
    sent: Duration,
    first_token: Option<Duration>,
    ended: Duration,
}

impl Draft {
    pub fn timing(&self) -> StepTiming {
        StepTiming {
            ttft: self.first_token.map(|t| t.saturating_sub(self.sent)),
            decode: self.first_token.map(|t| self.ended.saturating_sub(t)),
            total: self.ended.saturating_sub(self.sent),
        }
    }

    fn token(&mut self, clock: &dyn Clock) {
        self.has_content = true;
        if self.first_token.is_none() {
            self.first_token = Some(clock.monotonic());
        }
    }

    fn push_text(&mut self, delta: &str) {
        if let Some(Chunk::Text { text }) = self.chunks.last_mut() {
            text.push_str(delta);
        } else {
            self.chunks.push(Chunk::Text {
                text: delta.to_owned(),
            });
        }
    }

    /// Extends the last reasoning block unless it is closed (signed or redacted).
    fn push_reasoning(&mut self, delta: &str) {
        if let Some(Chunk::Reasoning {
            text,
            signature: None,
            redacted: None,
        }) = self.chunks.last_mut()
        {
            text.push_str(delta);
        } else {
            let text = delta.to_owned();
            self.chunks.push(Chunk::Reasoning {
                text,
                signature: None,
                redacted: None,
            });
        }
    }

    /// Signs the last unsigned reasoning block, or keeps the signature on an empty one.
    fn sign_reasoning(&mut self, sig: String) {
        let open = self.chunks.iter_mut().rev().find_map(|c| {
            if let Chunk::Reasoning {
                signature: signature @ None,
                redacted: None,
                ..
            } = c
            {
                Some(signature)
            } else {
                None
            }
        });
        match open {
            Some(signature) => *signature = Some(sig),
            None => self.chunks.push(Chunk::Reasoning {
                text: String::new(),
                signature: Some(sig),
                redacted: None,
            }),
        }
    }
}

/// The turn's finish reason for a step whose model asked for no tools.
pub(super) fn stop_reason(stop: &StopReason) -> StepReason {
    match stop {
        StopReason::MaxTokens => StepReason::Length,
        StopReason::EndTurn | StopReason::ToolCalls | StopReason::Other(_) => StepReason::Stop,
    }
}

/// Streams the step's response, retrying from scratch while no content was emitted.
pub(super) async fn stream_step(
    ctx: &Ctx,
    state: &mut State,
    step_id: &Id,
    token: &CancellationToken,
) -> (Draft, StreamEnd) {
    let mut attempt = 0;
    let mut slept = Duration::ZERO;
    loop {
        let mut draft = Draft::default();
        let span = tracing::info_span!(
            "provider.request",
            provider = ctx.provider.id(),
            model = %ctx.request.model,
            attempt,
        );
        let end = stream_once(ctx, state, step_id, token, &mut draft)
            .instrument(span)
            .await;
        let err = match end {
            StreamEnd::Failed(err) if err.retryable && !draft.has_content => err,
            StreamEnd::Finished(_) | StreamEnd::Failed(_) | StreamEnd::Aborted => {
                return (draft, end);
            }
        };
        attempt += 1;
        let policy = ctx.env.retry.as_ref();
        let Some(delay) = policy.and_then(|p| p.delay(attempt, slept, err.retry_after)) else {
            return (draft, StreamEnd::Failed(err));
        };
        tracing::warn!(attempt, delay_ms = super::millis(delay), error = %err.message, "Retrying the provider request");
        ctx.emit(AgentEvent::ProviderRetry {
            conversation_id: ctx.conversation_id.clone(),
            turn_id: ctx.turn_id.clone(),
            step_id: step_id.clone(),
            attempt,
            delay_ms: super::millis(delay),
            message: err.message,
            code: err.code,
        });
        if let Err(Cancelled) = or_cancel(&ctx.cancel, ctx.env.sleeper.sleep(delay)).await {
            return (draft, StreamEnd::Aborted);
        }
        slept += delay;
    }
}

/// One attempt. Its token is cancelled unless the response finished, so the provider drops
/// a request the kernel gave up on.
async fn stream_once(
    ctx: &Ctx,
    state: &mut State,
    step_id: &Id,
    step_token: &CancellationToken,
    draft: &mut Draft,
) -> StreamEnd {
    let token = step_token.child_token();
    draft.sent = ctx.now();
    let end = match open(ctx, &token).await {
        Ok(stream) => read(ctx, state, step_id, stream, draft).await,
        Err(end) => end,
    };
    draft.ended = ctx.now();
    if !matches!(end, StreamEnd::Finished(_)) {
        token.cancel();
    }
    end
}

/// Calls `provider.stream()`, raced against abort and the idle timeout.
async fn open(ctx: &Ctx, token: &CancellationToken) -> Result<ProviderStream, StreamEnd> {
    let request =
        AssertUnwindSafe(async { ctx.provider.stream(&ctx.request, token.clone()).await })
            .catch_unwind();
    let idle = ctx.env.sleeper.sleep(ctx.options.idle_timeout);
    let request = pin!(request);
    let opened = or_cancel(&ctx.cancel, select(request, idle)).await;
    // A provider honouring its token may fail the request just as the turn is cancelled:
    // that is an abort, not a provider error.
    if ctx.cancel.is_cancelled() {
        return Err(StreamEnd::Aborted);
    }
    match opened {
        Err(Cancelled) => Err(StreamEnd::Aborted),
        Ok(Either::Left((Ok(Ok(stream)), _))) => Ok(stream),
        Ok(Either::Left((Ok(Err(err)), _))) => Err(StreamEnd::Failed(err)),
        Ok(Either::Left((Err(panic), _))) => Err(StreamEnd::Failed(panicked(&*panic))),
        Ok(Either::Right(((), _))) => Err(StreamEnd::Failed(idle_error(ctx.options.idle_timeout))),
    }
}

enum Next {
    Item(Option<Result<ProviderEvent, ProviderError>>),
    Idle,
    Cancelled,
    Panicked(String),
}

/// Reads the stream until `Finish`, an error, silence or abort.
async fn read(
    ctx: &Ctx,
    state: &mut State,
    step_id: &Id,
    mut stream: ProviderStream,
    draft: &mut Draft,
) -> StreamEnd {
    let mut idle = IdleTimer::new(&*ctx.env.sleeper, &*ctx.env.clock, ctx.options.idle_timeout);
    let mut cancelled = pin!(ctx.cancel.cancelled());
    loop {
        let next = poll_fn(|cx| {
            if ctx.cancel.is_cancelled() {
                return Poll::Ready(Next::Cancelled);
            }
            match std::panic::catch_unwind(AssertUnwindSafe(|| stream.poll_next_unpin(cx))) {
                Ok(Poll::Ready(item)) => return Poll::Ready(Next::Item(item)),
                Ok(Poll::Pending) => {}
                Err(panic) => return Poll::Ready(Next::Panicked(panic_message(&*panic))),
            }
            // Pending: register for cancellation and silence before yielding.
            if cancelled.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Next::Cancelled);
            }
            idle.poll_expired(cx).map(|()| Next::Idle)
        })
        .await;
        match next {
            Next::Item(Some(Ok(event))) => {
                idle.touch();
                if let Some(stop) = apply(ctx, state, step_id, draft, event) {
                    return StreamEnd::Finished(stop);
                }
            }
            Next::Item(Some(Err(_))) if ctx.cancel.is_cancelled() => return StreamEnd::Aborted,
            Next::Item(Some(Err(err))) => return StreamEnd::Failed(err),
            Next::Item(None) => {
                let err = ProviderError::retryable(
                    "The provider stream ended before the response was complete",
                )
                .with_code("disconnect");
                return StreamEnd::Failed(err);
            }
            Next::Idle => return StreamEnd::Failed(idle_error(ctx.options.idle_timeout)),
            Next::Cancelled => return StreamEnd::Aborted,
            Next::Panicked(message) => {
                return StreamEnd::Failed(panicked_with(&message));
            }
        }
    }
}

/// Applies one provider event: at most one `AgentEvent`, and the step's chunks. Returns the
/// stop reason at `Finish`.
fn apply(
    ctx: &Ctx,
    state: &mut State,
    step_id: &Id,
    draft: &mut Draft,
    event: ProviderEvent,
) -> Option<StopReason> {
    match event {
        ProviderEvent::TextDelta(delta) => {
            if !delta.is_empty() {
                draft.token(&*ctx.env.clock);
                draft.push_text(&delta);
                ctx.emit(AgentEvent::TextDelta {
                    conversation_id: ctx.conversation_id.clone(),
                    turn_id: ctx.turn_id.clone(),
                    step_id: step_id.clone(),
                    delta,
                });
            }
        }
        ProviderEvent::ReasoningDelta(delta) => {
            if !delta.is_empty() {
                draft.token(&*ctx.env.clock);
                draft.push_reasoning(&delta);
                ctx.emit(AgentEvent::ReasoningDelta {
                    conversation_id: ctx.conversation_id.clone(),
                    turn_id: ctx.turn_id.clone(),
                    step_id: step_id.clone(),
                    delta,
                });
            }
        }
        ProviderEvent::ReasoningSignature(signature) => {
            draft.has_content = true;
            draft.sign_reasoning(signature);
        }
        ProviderEvent::RedactedReasoning(data) => {
            draft.has_content = true;
            draft.chunks.push(Chunk::Reasoning {
                text: String::new(),
                signature: None,
                redacted: Some(data),
            });
        }
        ProviderEvent::ToolCall {
            id,
            name,
            arguments,
        } => {
            draft.has_content = true;
            let call = Call::parse(unique_call_id(step_id, draft, id), name, &arguments);
            draft.chunks.push(Chunk::ToolCall {
                tool_call_id: call.id.clone(),
                tool_name: call.name.clone(),
                input: call.input.clone(),
            });
            state.open_calls.push((call.id.clone(), call.name.clone()));
            ctx.emit(AgentEvent::ToolCall {
                conversation_id: ctx.conversation_id.clone(),
                turn_id: ctx.turn_id.clone(),
                step_id: step_id.clone(),
                tool_call_id: call.id.clone(),
                tool_name: call.name.clone(),
                input: call.input.clone(),
            });
            draft.calls.push(call);
        }
        ProviderEvent::Usage(usage) => draft.usage = Some(usage),
        ProviderEvent::Prefix(prefix) => draft.prefix = Some(prefix),
        ProviderEvent::Finish(stop) => return Some(stop),
    }
    None
}

/// The provider's call id, unless it is empty or already used in the step: each call must
/// be answered by exactly one result, so a clash gets a fresh id.
fn unique_call_id(step_id: &Id, draft: &Draft, id: String) -> Id {
    if !id.is_empty() && draft.calls.iter().all(|c| *c.id != *id) {
        return Id::from(id);
    }
    let fresh = format!("{step_id}:call{}", draft.calls.len());
    tracing::warn!(tool_call_id = %id, replacement = %fresh, "Empty or duplicate tool call id replaced");
    Id::from(fresh)
}

fn idle_error(timeout: Duration) -> ProviderError {
    ProviderError::retryable(format!(
        "The provider sent nothing for {}s",
        timeout.as_secs_f64()
    ))
    .with_code("idle-timeout")
}

fn panicked(panic: &(dyn std::any::Any + Send)) -> ProviderError {
    panicked_with(&panic_message(panic))
}

fn panicked_with(message: &str) -> ProviderError {
    tracing::error!(panic = %message, "Provider panicked");
    ProviderError::fatal(format!("The provider panicked: {message}")).with_code("panic")
}

/// Fires when the provider has been silent for `timeout` since the last event.
///
/// One sleep per idle window instead of one per event: when the sleep fires after activity,
/// it is re-armed for what is left of the window since the last event.
struct IdleTimer<'a> {
    sleeper: &'a dyn Sleeper,
    clock: &'a dyn Clock,
    timeout: Duration,
    sleep: BoxFuture<'a, ()>,
    /// When the last event came, if one came since `sleep` was armed.
    last_event: Option<Duration>,
}

impl<'a> IdleTimer<'a> {
    fn new(sleeper: &'a dyn Sleeper, clock: &'a dyn Clock, timeout: Duration) -> IdleTimer<'a> {
        IdleTimer {
            sleeper,
            clock,
            timeout,
            sleep: sleeper.sleep(timeout),
            last_event: None,
        }
    }

    fn touch(&mut self) {
        self.last_event = Some(self.clock.monotonic());
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let Some(last) = self.last_event.take() else {
                return Poll::Ready(());
            };
            let silent = self.clock.monotonic().saturating_sub(last);
            if silent >= self.timeout {
                return Poll::Ready(());
            }
            self.sleep = self.sleeper.sleep(self.timeout - silent);
        }
    }
}
