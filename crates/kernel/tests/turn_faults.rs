#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `run_turn` under faults: abort at every stage, retry with backoff, idle timeout,
//! disconnects, panics. Every test runs in paused tokio time, so "promptly" is exact.

use std::sync::Arc;
use std::time::Duration;

use dispatch_kernel::abi::{EventSink, ProviderError, ProviderEvent, RetryPolicy, StopReason};
use dispatch_kernel::{BackoffSchedule, run_turn};
use dispatch_test_support::{
    Behaviour, EventLog, FakeTool, RecordingStepSink, Script, ScriptedProvider, TurnRun,
    check_history, check_turn_invariants, is_type, turn_input,
};
use dispatch_wire::{AgentEvent, Chunk, FinishReason, Id, PromptPrefix, Role};
use pretty_assertions::assert_eq;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn provider(scripts: impl IntoIterator<Item = Script>) -> Arc<ScriptedProvider> {
    Arc::new(ScriptedProvider::new(scripts))
}

fn text(s: &str) -> Chunk {
    Chunk::Text { text: s.to_owned() }
}

/// One-second retries with a one-hour budget.
fn quick_retry() -> Arc<dyn RetryPolicy> {
    Arc::new(BackoffSchedule {
        delays: vec![secs(1)],
        budget: secs(3600),
    })
}

fn overloaded() -> ProviderError {
    ProviderError::retryable("overloaded")
        .with_code("overloaded_error")
        .with_status(529)
}

/// `(message, code, retryable)` of the only `error` event.
fn the_error(run: &TurnRun) -> (String, Option<String>, bool) {
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{:?}", run.types());
    errors.into_iter().next().unwrap()
}

// ---- abort ----

#[tokio::test(start_paused = true)]
async fn a_hanging_tool_is_abandoned_on_abort() {
    let tool = FakeTool::new("hang", Behaviour::Hang).arc();
    let p = provider([Script::new()
        .text("Let me look.")
        .tool_call("c1", "hang", "{}")
        .finish(StopReason::ToolCalls)]);
    let t = turn_input(p).tool(tool.clone());
    let (events, cancel) = (t.events.clone(), t.cancel.clone());
    let run = t
        .run_with(async move {
            events
                .wait_for(is_type("tool-call"), secs(60))
                .await
                .unwrap();
            tokio::time::sleep(secs(5)).await;
            cancel.cancel();
        })
        .await;

    assert_eq!(run.outcome.finish_reason, FinishReason::Aborted);
    assert_eq!(run.elapsed, secs(5), "done the moment the token fired");
    let AgentEvent::ToolResult {
        output, is_error, ..
    } = run.of_type("tool-result")[0]
    else {
        panic!()
    };
    assert_eq!((output.as_str(), *is_error), ("Aborted", true));
    assert_eq!(run.count_type("error"), 0, "a plain abort is not an error");
    let call = &tool.calls()[0];
    assert!(
        call.ended.is_none() && call.token_fired,
        "dropped, with its token fired"
    );

    // History keeps the text but no dangling tool call, and no tool message.
    let assistant = dispatch_kernel::abi::Message::new(
        Id::from("turn-1:1"),
        Role::Assistant,
        vec![text("Let me look.")],
    );
    assert_eq!(run.outcome.messages, vec![assistant.clone()]);
    assert_eq!(run.steps.len(), 1);
    assert_eq!(
        (run.steps[0].finish_reason, run.steps[0].messages.clone()),
        (FinishReason::Aborted, vec![assistant])
    );
}

#[tokio::test(start_paused = true)]
async fn abort_mid_stream_keeps_the_partial_text() {
    let p = provider([Script::new().reasoning("hmm").text("partial").hang()]);
    let t = turn_input(p.clone());
    let (events, cancel) = (t.events.clone(), t.cancel.clone());
    let run = t
        .run_with(async move {
            events
                .wait_for(is_type("text-delta"), secs(60))
                .await
                .unwrap();
            tokio::time::sleep(secs(2)).await;
            cancel.cancel();
        })
        .await;

    assert_eq!(
        (run.outcome.finish_reason, run.elapsed),
        (FinishReason::Aborted, secs(2))
    );
    assert_eq!(run.count_type("error"), 0);
    let chunks = &run.outcome.messages[0].chunks;
    assert_eq!(chunks[1], text("partial"));
    assert_eq!(p.cancelled(), [true], "the provider's token fired");
    assert_eq!(run.steps.len(), 1);
    assert_eq!(
        run.types()[run.events.len() - 2..],
        ["step-complete", "done"]
    );
}

#[tokio::test(start_paused = true)]
async fn abort_after_an_announced_tool_call_answers_it() {
    let p = provider([Script::new().tool_call("c1", "t", "{}").hang()]);
    let t = turn_input(p).tool(FakeTool::reply("t", "never").arc());
    let (events, cancel) = (t.events.clone(), t.cancel.clone());
    let run = t
        .run_with(async move {
            events
                .wait_for(is_type("tool-call"), secs(60))
                .await
                .unwrap();
            cancel.cancel();
        })
        .await;

    assert_eq!(run.outcome.finish_reason, FinishReason::Aborted);
    let AgentEvent::ToolResult { output, .. } = run.of_type("tool-result")[0] else {
        panic!()
    };
    assert_eq!(output, "Aborted");
    assert_eq!(run.outcome.messages, vec![], "nothing left to persist");
    assert_eq!(
        run.steps.len(),
        0,
        "on_step_complete is not called with nothing to persist"
    );
}

#[tokio::test(start_paused = true)]
async fn abort_during_the_retry_sleep() {
    let p = provider([
        Script::fail(overloaded().with_retry_after(secs(60))),
        Script::reply("never"),
    ]);
    let t = turn_input(p.clone()).retry(quick_retry());
    let (events, cancel) = (t.events.clone(), t.cancel.clone());
    let run = t
        .run_with(async move {
            events
                .wait_for(is_type("provider-retry"), secs(60))
                .await
                .unwrap();
            tokio::time::sleep(secs(3)).await;
            cancel.cancel();
        })
        .await;

    assert_eq!(
        (run.outcome.finish_reason, run.elapsed),
        (FinishReason::Aborted, secs(3))
    );
    assert_eq!(p.request_count(), 1);
    assert_eq!(run.count_type("error"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_turn_cancelled_before_it_starts_ends_at_once() {
    let p = provider([Script::reply("never")]);
    let t = turn_input(p.clone());
    t.cancel.cancel();
    let run = t.run().await;
    assert_eq!(run.types(), ["turn-start", "done"]);
    assert_eq!(
        (run.outcome.finish_reason, run.outcome.steps),
        (FinishReason::Aborted, 0)
    );
    assert_eq!(p.request_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_on_step_complete_does_not_block_abort() {
    let p = provider([Script::reply("hello")]);
    let t = turn_input(p).step_sink(Arc::new(RecordingStepSink::hanging_at(0)));
    let (steps, cancel) = (t.steps.clone(), t.cancel.clone());
    let run = t
        .run_with(async move {
            tokio::time::sleep(secs(1)).await;
            assert_eq!(steps.records().len(), 1, "the sink got the step");
            cancel.cancel();
        })
        .await;
    assert_eq!(
        (run.outcome.finish_reason, run.elapsed),
        (FinishReason::Aborted, secs(1))
    );
}

#[tokio::test(start_paused = true)]
async fn abort_while_tools_run_strips_the_whole_step() {
    let fast = FakeTool::reply("fast", "done").safe(true).arc();
    let slow = FakeTool::sleeping("slow", secs(100), "late")
        .safe(true)
        .arc();
    let p = provider([Script::new()
        .text("both")
        .tool_call("c1", "fast", "{}")
        .tool_call("c2", "slow", "{}")
        .finish(StopReason::ToolCalls)]);
    let t = turn_input(p).tool(fast).tool(slow);
    let (events, cancel) = (t.events.clone(), t.cancel.clone());
    let run = t
        .run_with(async move {
            events
                .wait_for(is_type("tool-result"), secs(60))
                .await
                .unwrap();
            tokio::time::sleep(secs(10)).await;
            cancel.cancel();
        })
        .await;

    let outputs: Vec<String> = run
        .of_type("tool-result")
        .iter()
        .map(|e| match e {
            AgentEvent::ToolResult { output, .. } => output.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(outputs, ["done", "Aborted"]);
    assert_eq!(run.outcome.messages.len(), 1);
    assert_eq!(run.outcome.messages[0].chunks, vec![text("both")]);
    check_history(&run.outcome.messages);
}

// ---- provider errors and retry ----

#[tokio::test(start_paused = true)]
async fn a_stream_failing_after_content_is_not_retried() {
    let p = provider([
        Script::new().text("abc").error(overloaded()),
        Script::reply("never"),
    ]);
    let run = turn_input(p.clone()).retry(quick_retry()).run().await;

    assert_eq!(run.count_type("provider-retry"), 0);
    assert_eq!(p.request_count(), 1);
    assert_eq!(
        the_error(&run),
        (
            "overloaded".to_owned(),
            Some("overloaded_error".to_owned()),
            true
        )
    );
    assert_eq!(run.outcome.finish_reason, FinishReason::Error);
    assert_eq!(run.outcome.error.as_deref(), Some("overloaded"));
    let error_chunk = Chunk::Error {
        message: "overloaded".to_owned(),
        code: Some("overloaded_error".to_owned()),
    };
    assert_eq!(
        run.outcome.messages[0].chunks,
        vec![text("abc"), error_chunk]
    );
    assert_eq!(
        run.steps[0].finish_reason,
        FinishReason::Error,
        "the failed step is persisted"
    );
}

#[tokio::test(start_paused = true)]
async fn a_tool_call_before_the_failure_is_answered_and_stripped() {
    let p = provider([Script::new()
        .text("x")
        .tool_call("c1", "t", "{}")
        .error(overloaded())]);
    let run = turn_input(p)
        .tool(FakeTool::reply("t", "never").arc())
        .retry(quick_retry())
        .run()
        .await;
    assert_eq!(run.count_type("tool-result"), 1);
    assert_eq!(run.outcome.messages[0].tool_calls().count(), 0);
    assert_eq!(run.outcome.finish_reason, FinishReason::Error);
}

#[tokio::test(start_paused = true)]
async fn rate_limited_then_success_retries_once_after_retry_after() {
    let rate_limited = ProviderError::retryable("rate limited")
        .with_code("rate_limit_error")
        .with_status(429)
        .with_retry_after(secs(7));
    let p = provider([
        Script::new().usage(5, 0).error(rate_limited),
        Script::new()
            .text("hi")
            .usage(10, 1)
            .finish(StopReason::EndTurn),
    ]);
    let run = turn_input(p.clone())
        .retry(Arc::new(BackoffSchedule::default()))
        .run()
        .await;

    assert_eq!(
        run.retries(),
        [(1, 7000, Some("rate_limit_error".to_owned()))]
    );
    assert_eq!(
        run.types(),
        [
            "turn-start",
            "provider-retry",
            "text-delta",
            "usage",
            "step-complete",
            "done"
        ]
    );
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    assert_eq!(
        run.outcome.usage.input_tokens, 10,
        "the failed attempt's usage is dropped"
    );
    assert_eq!(run.elapsed, secs(7));
    assert_eq!(p.request_count(), 2);
    assert_eq!(
        p.requests()[0],
        p.requests()[1],
        "the step is retried from scratch"
    );
    assert_eq!(p.cancelled(), [true, false]);
}

#[tokio::test(start_paused = true)]
async fn retries_follow_the_default_schedule_until_the_8h_budget() {
    let schedule = BackoffSchedule::default();
    let p = provider((0..40).map(|_| Script::fail(overloaded())));
    let run = turn_input(p.clone())
        .retry(Arc::new(schedule.clone()))
        .run()
        .await;

    // The schedule, replayed: 5s, 10s, 30s, 60s, 5m, 10m, 15m, 30m, then 30m up to 8h.
    let mut expected = Vec::new();
    let mut slept = Duration::ZERO;
    while let Some(delay) = schedule.delay(expected.len() as u32 + 1, slept, None) {
        slept += delay;
        expected.push(delay);
    }
    assert_eq!(expected.len(), 21);
    let got: Vec<Duration> = run
        .retries()
        .iter()
        .map(|(_, ms, _)| Duration::from_millis(*ms))
        .collect();
    assert_eq!(got, expected);
    let attempts: Vec<u32> = run.retries().iter().map(|(a, _, _)| *a).collect();
    assert_eq!(attempts, (1..=21).collect::<Vec<u32>>());
    assert_eq!(p.request_count(), 22);
    assert_eq!(run.elapsed, slept);
    assert_eq!(run.outcome.finish_reason, FinishReason::Error);
    assert_eq!(the_error(&run).1, Some("overloaded_error".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn a_fatal_error_is_not_retried() {
    let fatal = ProviderError::fatal("invalid api key")
        .with_code("authentication_error")
        .with_status(401);
    let p = provider([Script::fail(fatal), Script::reply("never")]);
    let run = turn_input(p.clone()).retry(quick_retry()).run().await;
    assert_eq!(run.count_type("provider-retry"), 0);
    assert_eq!(p.request_count(), 1);
    assert_eq!(
        the_error(&run),
        (
            "invalid api key".to_owned(),
            Some("authentication_error".to_owned()),
            false
        )
    );
    assert_eq!(run.outcome.finish_reason, FinishReason::Error);
    let error_chunk = Chunk::Error {
        message: "invalid api key".to_owned(),
        code: Some("authentication_error".to_owned()),
    };
    assert_eq!(run.outcome.messages[0].chunks, vec![error_chunk]);
}

#[tokio::test(start_paused = true)]
async fn without_a_retry_policy_a_retryable_error_ends_the_turn() {
    let p = provider([Script::fail(overloaded()), Script::reply("never")]);
    let run = turn_input(p.clone()).run().await;
    assert_eq!(
        (run.count_type("provider-retry"), p.request_count()),
        (0, 1)
    );
    assert_eq!(run.outcome.finish_reason, FinishReason::Error);
}

#[tokio::test(start_paused = true)]
async fn idle_before_content_is_retried() {
    let p = provider([
        Script::hang_on_stream(),
        Script::new().hang(),
        Script::reply("hi"),
    ]);
    let run = turn_input(p.clone())
        .idle_timeout(secs(30))
        .retry(quick_retry())
        .run()
        .await;

    let idle = Some("idle-timeout".to_owned());
    assert_eq!(run.retries(), [(1, 1000, idle.clone()), (2, 1000, idle)]);
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    assert_eq!(run.elapsed, secs(30 + 1 + 30 + 1));
    assert_eq!(
        p.cancelled(),
        [true, true, false],
        "stalled requests are cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn idle_after_content_is_an_error() {
    let p = provider([
        Script::new().text("a").delay(secs(20)).text("b").hang(),
        Script::reply("never"),
    ]);
    let run = turn_input(p.clone())
        .idle_timeout(secs(30))
        .retry(quick_retry())
        .run()
        .await;

    assert_eq!(run.count_type("provider-retry"), 0);
    let (_, code, retryable) = the_error(&run);
    assert_eq!((code.as_deref(), retryable), (Some("idle-timeout"), true));
    assert_eq!(
        run.elapsed,
        secs(50),
        "silence is measured from the last event"
    );
    assert_eq!(run.outcome.messages[0].chunks[0], text("ab"));
}

#[tokio::test(start_paused = true)]
async fn a_slow_but_steady_stream_is_not_idle() {
    let mut script = Script::new();
    for _ in 0..10 {
        script = script.delay(secs(20)).text(".");
    }
    let p = provider([script.finish(StopReason::EndTurn)]);
    let run = turn_input(p).idle_timeout(secs(30)).run().await;
    assert_eq!(
        (run.outcome.finish_reason, run.elapsed),
        (FinishReason::Stop, secs(200))
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_ending_without_finish_is_a_disconnect() {
    let p = provider([Script::new().end()]);
    let run = turn_input(p).run().await;
    let (_, code, retryable) = the_error(&run);
    assert_eq!((code.as_deref(), retryable), (Some("disconnect"), true));
    assert_eq!(run.outcome.finish_reason, FinishReason::Error);

    let p = provider([Script::new().usage(1, 1), Script::reply("hi")]);
    let run = turn_input(p).retry(quick_retry()).run().await;
    assert_eq!(run.retries(), [(1, 1000, Some("disconnect".to_owned()))]);
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
}

// ---- panics ----

#[tokio::test(start_paused = true)]
async fn a_panicking_provider_stream_ends_with_error() {
    let p = provider([
        Script::new().text("so far").panic("stream exploded"),
        Script::reply("never"),
    ]);
    let run = turn_input(p.clone()).retry(quick_retry()).run().await;
    let (message, code, retryable) = the_error(&run);
    assert_eq!(
        (message.as_str(), code.as_deref(), retryable),
        (
            "The provider panicked: stream exploded",
            Some("panic"),
            false
        )
    );
    assert_eq!(run.outcome.finish_reason, FinishReason::Error);
    assert_eq!(p.request_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_tool_does_not_end_the_turn() {
    let tool = FakeTool::new("boom", Behaviour::Panic("kaboom".into())).arc();
    let p = provider([
        Script::calls(&[("c1", "boom", "{}")]),
        Script::reply("recovered"),
    ]);
    let run = turn_input(p).tool(tool).run().await;
    let AgentEvent::ToolResult {
        output, is_error, ..
    } = run.of_type("tool-result")[0]
    else {
        panic!()
    };
    assert_eq!(
        (output.as_str(), *is_error),
        ("Tool panicked: kaboom", true)
    );
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
}

/// An event sink that panics on the first `text-delta`, then records like [`EventLog`].
struct PanickyLog {
    inner: EventLog,
    panicked: std::sync::atomic::AtomicBool,
}

impl EventSink for PanickyLog {
    fn emit(&self, event: AgentEvent) {
        if matches!(event, AgentEvent::TextDelta { .. })
            && !self
                .panicked
                .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("sink broke");
        }
        self.inner.emit(event);
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_event_sink_still_gets_error_and_done() {
    let p = provider([Script::new()
        .tool_call("c1", "t", "{}")
        .text("x")
        .finish(StopReason::ToolCalls)]);
    let log = Arc::new(PanickyLog {
        inner: EventLog::new(),
        panicked: Default::default(),
    });
    let mut t = turn_input(p).tool(FakeTool::reply("t", "ok").arc());
    t.input.env.events = log.clone();
    let outcome = run_turn(t.input).await;

    let events = log.inner.events();
    check_turn_invariants(&events);
    assert_eq!(outcome.finish_reason, FinishReason::Error);
    assert_eq!(outcome.error.as_deref(), Some("Internal error: sink broke"));
    assert_eq!(
        log.inner.types(),
        ["turn-start", "tool-call", "tool-result", "error", "done"]
    );
}

fn prefix_record(model: &str) -> Arc<PromptPrefix> {
    Arc::new(PromptPrefix {
        provider: "scripted".to_owned(),
        model: model.to_owned(),
        blocks: Vec::new(),
        total_bytes: 0,
        first_difference: None,
    })
}

#[tokio::test(start_paused = true)]
async fn a_prefix_record_is_not_content_and_the_successful_attempts_record_is_kept() {
    let p = provider([
        Script::new()
            .event(ProviderEvent::Prefix(prefix_record("first")))
            .error(overloaded()),
        Script::new()
            .event(ProviderEvent::Prefix(prefix_record("second")))
            .text("hi")
            .finish(StopReason::EndTurn),
    ]);
    let run = turn_input(p.clone()).retry(quick_retry()).run().await;

    assert_eq!(
        p.request_count(),
        2,
        "a prefix record does not block a retry"
    );
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    assert_eq!(run.steps.len(), 1);
    assert_eq!(run.steps[0].prefix, Some(prefix_record("second")));
    assert_eq!(
        p.requests()[0].conversation_id.as_deref(),
        Some("conv-1"),
        "run_turn names the conversation in the request"
    );
}

/// Fails its request as soon as its token fires, like a real HTTP provider does.
struct FailsOnCancel;

#[async_trait::async_trait]
impl dispatch_kernel::abi::Provider for FailsOnCancel {
    fn id(&self) -> &str {
        "fails-on-cancel"
    }

    async fn stream(
        &self,
        _request: &dispatch_kernel::abi::ProviderRequest,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<dispatch_kernel::abi::ProviderStream, ProviderError> {
        cancel.cancelled().await;
        Err(ProviderError::fatal("request cancelled"))
    }
}

#[tokio::test(start_paused = true)]
async fn a_provider_failing_because_of_the_abort_ends_the_turn_aborted() {
    let t = turn_input(Arc::new(FailsOnCancel));
    let cancel = t.cancel.clone();
    let run = t
        .run_with(async move {
            tokio::time::sleep(secs(1)).await;
            cancel.cancel();
        })
        .await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Aborted);
    assert_eq!(
        run.count_type("error"),
        0,
        "an abort is not a provider error"
    );
}
