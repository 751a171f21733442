//! [`turn_input`]: a `run_turn` input with test defaults and handles on its sinks.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dispatch_kernel::abi::{
    Message, Pricing, Provider, ProviderRequest, RetryPolicy, StepRecord, SystemSection, Tool,
};
use dispatch_kernel::{TurnEnv, TurnInput, TurnOptions, TurnOutcome, run_turn};
use dispatch_wire::{AgentEvent, Id, ReasoningEffort};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    EventLog, RecordingStepSink, TokioClock, TokioSleeper, VecSteering, check_turn_invariants,
};

/// A turn ready to run, with the handles a test inspects. Fields are public: move
/// `input` into `run_turn` and keep using the rest.
pub struct TestTurn {
    pub input: TurnInput,
    pub events: Arc<EventLog>,
    pub steps: Arc<RecordingStepSink>,
    pub steering: Arc<VecSteering>,
    pub sleeper: Arc<TokioSleeper>,
    /// The turn's token: cancel it to stop the turn.
    pub cancel: CancellationToken,
}

/// What [`TestTurn::run`] returns.
#[derive(Debug)]
pub struct TurnRun {
    pub outcome: TurnOutcome,
    pub events: Vec<AgentEvent>,
    pub steps: Vec<StepRecord>,
    /// Tokio time from the start of the turn until `run_turn` returned.
    pub elapsed: Duration,
}

impl TurnRun {
    /// The `type` tag of every event, in order.
    pub fn types(&self) -> Vec<&'static str> {
        self.events.iter().map(AgentEvent::type_name).collect()
    }

    pub fn of_type(&self, type_name: &str) -> Vec<&AgentEvent> {
        self.events
            .iter()
            .filter(|e| e.type_name() == type_name)
            .collect()
    }

    pub fn count_type(&self, type_name: &str) -> usize {
        self.events
            .iter()
            .filter(|e| e.type_name() == type_name)
            .count()
    }

    /// Every `error` event as `(message, code, retryable)`.
    pub fn errors(&self) -> Vec<(String, Option<String>, bool)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                AgentEvent::Error {
                    message,
                    code,
                    retryable,
                    ..
                } => Some((message.clone(), code.clone(), *retryable)),
                _ => None,
            })
            .collect()
    }

    /// Every `provider-retry` event as `(attempt, delay_ms, code)`.
    pub fn retries(&self) -> Vec<(u32, u64, Option<String>)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                AgentEvent::ProviderRetry {
                    attempt,
                    delay_ms,
                    code,
                    ..
                } => Some((*attempt, *delay_ms, code.clone())),
                _ => None,
            })
            .collect()
    }
}

/// A turn of conversation `conv-1`, turn `turn-1`, model `test-model`, whose history is
/// one user message `hello` (id `turn-1:0`): no tools, default options, no retry, no
/// pricing, a [`VecSteering`] queue, a [`RecordingStepSink`], an [`EventLog`], and time
/// from [`TokioClock`] / [`TokioSleeper`].
pub fn turn_input(provider: Arc<dyn Provider>) -> TestTurn {
    let events = Arc::new(EventLog::new());
    let steps = Arc::new(RecordingStepSink::new());
    let steering = Arc::new(VecSteering::new());
    let sleeper = Arc::new(TokioSleeper::new());
    let cancel = CancellationToken::new();
    let user = Message::user(Id::from("turn-1:0"), "hello");
    let input = TurnInput {
        conversation_id: Id::from("conv-1"),
        turn_id: Id::from("turn-1"),
        provider,
        request: ProviderRequest::new("test-model", vec![user]),
        tools: Vec::new(),
        cwd: None,
        workspace_id: None,
        computer_id: None,
        options: TurnOptions::default(),
        env: TurnEnv {
            clock: Arc::new(TokioClock::new()),
            sleeper: sleeper.clone(),
            events: events.clone(),
            steering: Some(steering.clone()),
            on_step_complete: Some(steps.clone()),
            retry: None,
            pricing: None,
        },
        cancel: cancel.clone(),
    };
    TestTurn {
        input,
        events,
        steps,
        steering,
        sleeper,
        cancel,
    }
}

impl TestTurn {
    pub fn tool(mut self, tool: Arc<dyn Tool>) -> TestTurn {
        self.input.tools.push(tool);
        self
    }

    pub fn max_steps(mut self, max_steps: u32) -> TestTurn {
        self.input.options.max_steps = max_steps;
        self
    }

    pub fn tool_concurrency(mut self, n: usize) -> TestTurn {
        self.input.options.tool_concurrency = n;
        self
    }

    /// Sets both output limits: the result cap and the live `tool-output` limit.
    pub fn output_limits(mut self, result_bytes: usize, stream_bytes: usize) -> TestTurn {
        self.input.options.max_tool_result_bytes = result_bytes;
        self.input.options.max_tool_output_stream_bytes = stream_bytes;
        self
    }

    pub fn idle_timeout(mut self, timeout: Duration) -> TestTurn {
        self.input.options.idle_timeout = timeout;
        self
    }

    pub fn retry(mut self, policy: Arc<dyn RetryPolicy>) -> TestTurn {
        self.input.env.retry = Some(policy);
        self
    }

    pub fn pricing(mut self, pricing: Arc<dyn Pricing>) -> TestTurn {
        self.input.env.pricing = Some(pricing);
        self
    }

    /// Replaces the recording step sink (e.g. with a failing or hanging one).
    pub fn step_sink(mut self, sink: Arc<RecordingStepSink>) -> TestTurn {
        self.input.env.on_step_complete = Some(sink.clone());
        self.steps = sink;
        self
    }

    pub fn without_step_sink(mut self) -> TestTurn {
        self.input.env.on_step_complete = None;
        self
    }

    /// The model the request names.
    pub fn model(mut self, model: &str) -> TestTurn {
        self.input.request.model = model.to_owned();
        self
    }

    /// Conversation and turn ids (defaults `conv-1`, `turn-1`).
    pub fn ids(mut self, conversation_id: &str, turn_id: &str) -> TestTurn {
        self.input.conversation_id = Id::from(conversation_id);
        self.input.turn_id = Id::from(turn_id);
        self
    }

    /// Replaces the model-facing history (which must end with the turn's user message).
    pub fn history(mut self, messages: Vec<Message>) -> TestTurn {
        self.input.request.messages = messages;
        self
    }

    pub fn system(mut self, sections: Vec<SystemSection>) -> TestTurn {
        self.input.request.system = Arc::from(sections);
        self
    }

    pub fn reasoning_effort(mut self, effort: ReasoningEffort) -> TestTurn {
        self.input.request.reasoning_effort = Some(effort);
        self
    }

    pub fn cwd(mut self, cwd: &str) -> TestTurn {
        self.input.cwd = Some(PathBuf::from(cwd));
        self
    }

    /// Runs the turn to its end and checks [`check_turn_invariants`].
    pub async fn run(self) -> TurnRun {
        self.run_with(async {}).await
    }

    /// Runs the turn while `driver` runs alongside it (cancelling, pushing steering, ...),
    /// waits for both, and checks [`check_turn_invariants`].
    pub async fn run_with(self, driver: impl Future<Output = ()>) -> TurnRun {
        let started = Instant::now();
        let turn = async {
            let outcome = run_turn(self.input).await;
            (outcome, started.elapsed())
        };
        let ((outcome, elapsed), ()) = tokio::join!(turn, driver);
        let events = self.events.events();
        check_turn_invariants(&events);
        TurnRun {
            outcome,
            events,
            steps: self.steps.records(),
            elapsed,
        }
    }
}
