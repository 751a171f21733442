use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dispatch_wire::{AgentEvent, Cost, FinishReason, Id, PromptPrefix, QueuedMessage, Usage};

use crate::abi::{Message, Tool};
use crate::host::FilterKey;

/// Where `run_turn` sends its events. Must not block: the hub behind it fans out through
/// bounded per-subscriber queues.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: AgentEvent);
}

impl<F: Fn(AgentEvent) + Send + Sync> EventSink for F {
    fn emit(&self, event: AgentEvent) {
        self(event)
    }
}

/// Queued user messages to inject at the next tool-result boundary (steering).
#[async_trait]
pub trait SteeringSource: Send + Sync {
    /// Takes every queued message (the queue is empty afterwards).
    async fn drain(&self) -> Vec<QueuedMessage>;
}

/// Timing of one step, from the injected clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StepTiming {
    /// Request sent → first text or reasoning token.
    pub ttft: Option<Duration>,
    /// First token → end of the stream.
    pub decode: Option<Duration>,
    /// Request sent → end of the stream (the successful attempt).
    pub total: Duration,
}

/// A finished step, handed to [`StepSink`] so it is persisted before the next step starts.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub conversation_id: Id,
    pub turn_id: Id,
    /// `turnId#stepIndex`.
    pub step_id: Id,
    pub step_index: u32,
    /// The step's new history, in order: the assistant message, its tool results, then any
    /// steering user messages. On abort the assistant message keeps its text and reasoning
    /// but loses its tool calls, and no tool results are included, so nothing dangling is
    /// ever persisted.
    pub messages: Vec<Message>,
    pub finish_reason: FinishReason,
    pub usage: Option<Usage>,
    pub cost: Option<Cost>,
    pub timing: StepTiming,
    /// The prompt-prefix record of the step's provider request, when the provider made one.
    pub prefix: Option<Arc<PromptPrefix>>,
}

/// Persists each step as it completes (`on_step_complete`). An error ends the turn with
/// an `error` event: history the store did not take must not be built upon.
///
/// After an abort the kernel polls the returned future exactly once more before dropping
/// it, so an implementation must hand its write over on the first poll (e.g. send it to a
/// writer thread, then await the acknowledgement) for an aborted step's text to persist.
#[async_trait]
pub trait StepSink: Send + Sync {
    async fn step_complete(&self, step: &StepRecord) -> Result<(), String>;
}

/// When to retry a retryable provider failure. Pure; the sleeping is the kernel's.
pub trait RetryPolicy: Send + Sync {
    /// The delay before retry number `attempt` (1-based), given the sleep already spent in
    /// this step and the server's `retry-after`; `None` gives up.
    fn delay(
        &self,
        attempt: u32,
        slept: Duration,
        retry_after: Option<Duration>,
    ) -> Option<Duration>;
}

/// Prices usage for a model (implemented by the model catalog).
pub trait Pricing: Send + Sync {
    /// The cost of `usage` on `model` served by provider instance `provider`; `None` when
    /// the model's prices are unknown (an unknown remote model is never priced at zero).
    fn cost(&self, provider: &str, model: &str, usage: &Usage) -> Option<Cost>;
}

/// Context of the per-turn tools filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolsFilterCtx {
    pub conversation_id: Id,
    pub cwd: Option<PathBuf>,
    pub workspace_id: Option<Id>,
    pub computer_id: Option<Id>,
}

/// The per-turn tools filter: each turn's tool set passes through it once, before the turn
/// (e.g. skills rewrite `load_skill`'s description; remote turns drop local-only tools).
pub const TOOLS_FILTER: FilterKey<Vec<Arc<dyn Tool>>, ToolsFilterCtx> =
    FilterKey::new("kernel.tools");
