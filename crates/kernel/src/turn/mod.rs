//! `run_turn`: one user message → steps until the model stops calling tools.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dispatch_wire::{Cost, FinishReason, Id, Usage};
use tokio_util::sync::CancellationToken;

use crate::abi::{
    Clock, EventSink, Message, Pricing, Provider, ProviderRequest, RetryPolicy, Sleeper,
    SteeringSource, StepSink, Tool,
};

mod retry;

pub use retry::BackoffSchedule;

/// Limits of one turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnOptions {
    /// Steps before the turn ends with `max-steps`; 0 = unlimited.
    pub max_steps: u32,
    /// Concurrency-safe tool calls of one step that may run at once (at least 1).
    pub tool_concurrency: usize,
    /// A provider stream silent for longer than this is treated as a disconnect.
    pub idle_timeout: Duration,
    /// The most bytes of one tool result the model reads; a longer result keeps its head
    /// and tail with a notice of what was cut. 0 = no cap.
    pub max_tool_result_bytes: usize,
    /// The most bytes of live `tool-output` one call may stream to subscribers; past it one
    /// notice is sent and the rest dropped (the result is unaffected). 0 = no limit.
    pub max_tool_output_stream_bytes: usize,
}

impl Default for TurnOptions {
    fn default() -> TurnOptions {
        TurnOptions {
            max_steps: 0,
            tool_concurrency: 8,
            idle_timeout: Duration::from_secs(300),
            max_tool_result_bytes: 64 * 1024,
            max_tool_output_stream_bytes: 4 * 1024 * 1024,
        }
    }
}

/// The injected world of a turn: time, where events go, and the orchestrator's callbacks.
#[derive(Clone)]
pub struct TurnEnv {
    pub clock: Arc<dyn Clock>,
    pub sleeper: Arc<dyn Sleeper>,
    pub events: Arc<dyn EventSink>,
    /// Queued user messages, drained at each tool-result boundary.
    pub steering: Option<Arc<dyn SteeringSource>>,
    /// Persists each step as it completes.
    pub on_step_complete: Option<Arc<dyn StepSink>>,
    /// `None` = never retry.
    pub retry: Option<Arc<dyn RetryPolicy>>,
    pub pricing: Option<Arc<dyn Pricing>>,
}

/// Everything one turn needs. `request.messages` is the model-facing history ending with
/// the new user message; `request.tools` is ignored and rebuilt from `tools`, sorted by name.
pub struct TurnInput {
    pub conversation_id: Id,
    pub turn_id: Id,
    pub provider: Arc<dyn Provider>,
    pub request: ProviderRequest,
    pub tools: Vec<Arc<dyn Tool>>,
    pub cwd: Option<PathBuf>,
    /// The conversation's workspace (tools read its path allowances).
    pub workspace_id: Option<Id>,
    pub computer_id: Option<Id>,
    pub options: TurnOptions,
    pub env: TurnEnv,
    /// Fires on stop, close or shutdown; the turn then ends promptly with `aborted`.
    pub cancel: CancellationToken,
}

/// How a turn ended (the same facts as its `done` event, plus the new history).
#[derive(Debug, Clone, PartialEq)]
pub struct TurnOutcome {
    pub finish_reason: FinishReason,
    pub usage: Usage,
    pub cost: Option<Cost>,
    pub steps: u32,
    pub duration: Duration,
    pub context_size: Option<u64>,
    /// The last error message, when `finish_reason` is `error`.
    pub error: Option<String>,
    /// Every message the turn added to history, as handed to `on_step_complete`.
    pub messages: Vec<Message>,
}

mod run;

pub use run::{cap_result, run_turn};
