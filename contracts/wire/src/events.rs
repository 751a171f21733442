use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Cost, Id, Usage};

/// Why a step or a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FinishReason {
    /// The model answered without calling a tool.
    Stop,
    /// The step ended with tool calls (a step only; a turn goes on).
    ToolCalls,
    /// The turn hit its `maxSteps` limit.
    MaxSteps,
    /// The model hit its output token limit.
    Length,
    /// A provider, tool or persistence failure ended the turn; an `error` event precedes.
    Error,
    /// Stopped by a person, a client or shutdown.
    Aborted,
    /// A reason this build does not know (sent by a newer server).
    /// Parse-only: never sent by this build, left out of the JSON Schema.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// Which stream a tool's partial output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OutputStream {
    Stdout,
    Stderr,
    /// A stream this build does not know (sent by a newer server).
    /// Parse-only: never sent by this build, left out of the JSON Schema.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// A user message waiting in a conversation's queue (delivered as steering or as a turn).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueuedMessage {
    pub id: Id,
    pub text: String,
    /// Milliseconds since the Unix epoch.
    pub enqueued_at: i64,
}

/// One event of a turn's live stream. A turn's events, in order: `user-message`,
/// `turn-start`, then per step deltas, tool calls and results, `usage`, `step-complete`,
/// then exactly one `done`, then `turn-sealed` once everything is persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum AgentEvent {
    /// The prompt that started the turn, so late joiners and other clients see it.
    UserMessage {
        conversation_id: Id,
        turn_id: Id,
        message_id: Id,
        text: String,
    },
    TurnStart {
        conversation_id: Id,
        turn_id: Id,
        model: String,
        /// Milliseconds since the Unix epoch.
        started_at: i64,
    },
    TextDelta {
        conversation_id: Id,
        turn_id: Id,
        step_id: Id,
        delta: String,
    },
    ReasoningDelta {
        conversation_id: Id,
        turn_id: Id,
        step_id: Id,
        delta: String,
    },
    ToolCall {
        conversation_id: Id,
        turn_id: Id,
        step_id: Id,
        tool_call_id: Id,
        tool_name: String,
        input: serde_json::Value,
    },
    /// A piece of a running tool's output (e.g. shell stdout), before its result.
    ToolOutput {
        conversation_id: Id,
        turn_id: Id,
        step_id: Id,
        tool_call_id: Id,
        stream: OutputStream,
        chunk: String,
    },
    ToolResult {
        conversation_id: Id,
        turn_id: Id,
        step_id: Id,
        tool_call_id: Id,
        tool_name: String,
        output: String,
        is_error: bool,
        duration_ms: u64,
    },
    /// Usage of one step (one provider request), with its cost when the model is priced.
    Usage {
        conversation_id: Id,
        turn_id: Id,
        step_id: Id,
        usage: Usage,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost: Option<Cost>,
    },
    StepComplete {
        conversation_id: Id,
        turn_id: Id,
        step_id: Id,
        step_index: u32,
        finish_reason: FinishReason,
        /// Request sent → first text or reasoning token; absent when none came.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttft_ms: Option<u64>,
        /// First token → end of the stream; absent when no token came.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decode_ms: Option<u64>,
        /// Request sent → end of the stream.
        gen_total_ms: u64,
    },
    /// A retryable provider failure; the kernel sleeps `delayMs` and tries again.
    /// Transient: never persisted.
    ProviderRetry {
        conversation_id: Id,
        turn_id: Id,
        step_id: Id,
        /// 1 for the first retry.
        attempt: u32,
        delay_ms: u64,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
    /// Queued user messages injected at a tool-result boundary.
    Steering {
        conversation_id: Id,
        turn_id: Id,
        step_id: Id,
        messages: Vec<QueuedMessage>,
    },
    Error {
        conversation_id: Id,
        turn_id: Id,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step_id: Option<Id>,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
        retryable: bool,
    },
    /// The last event `run_turn` emits, exactly once per accepted turn.
    Done {
        conversation_id: Id,
        turn_id: Id,
        finish_reason: FinishReason,
        /// Sum over the turn's steps.
        usage: Usage,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost: Option<Cost>,
        duration_ms: u64,
        /// The final step's `inputTokens + outputTokens`: how full the context is now.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context_size: Option<u64>,
        steps: u32,
    },
    /// Everything the turn produced is committed; `lastSeq` is the last stored seq.
    TurnSealed {
        conversation_id: Id,
        turn_id: Id,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seq: Option<u64>,
    },
    /// An event type this build does not know (sent by a newer server).
    /// Parse-only: never sent by this build, left out of the JSON Schema.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

impl AgentEvent {
    /// The conversation the event belongs to (`None` only for `Unknown`).
    pub fn conversation_id(&self) -> Option<&Id> {
        match self {
            AgentEvent::UserMessage {
                conversation_id, ..
            }
            | AgentEvent::TurnStart {
                conversation_id, ..
            }
            | AgentEvent::TextDelta {
                conversation_id, ..
            }
            | AgentEvent::ReasoningDelta {
                conversation_id, ..
            }
            | AgentEvent::ToolCall {
                conversation_id, ..
            }
            | AgentEvent::ToolOutput {
                conversation_id, ..
            }
            | AgentEvent::ToolResult {
                conversation_id, ..
            }
            | AgentEvent::Usage {
                conversation_id, ..
            }
            | AgentEvent::StepComplete {
                conversation_id, ..
            }
            | AgentEvent::ProviderRetry {
                conversation_id, ..
            }
            | AgentEvent::Steering {
                conversation_id, ..
            }
            | AgentEvent::Error {
                conversation_id, ..
            }
            | AgentEvent::Done {
                conversation_id, ..
            }
            | AgentEvent::TurnSealed {
                conversation_id, ..
            } => Some(conversation_id),
            AgentEvent::Unknown => None,
        }
    }

    /// The wire `type` tag, e.g. `"text-delta"`.
    pub fn type_name(&self) -> &'static str {
        match self {
            AgentEvent::UserMessage { .. } => "user-message",
            AgentEvent::TurnStart { .. } => "turn-start",
            AgentEvent::TextDelta { .. } => "text-delta",
            AgentEvent::ReasoningDelta { .. } => "reasoning-delta",
            AgentEvent::ToolCall { .. } => "tool-call",
            AgentEvent::ToolOutput { .. } => "tool-output",
            AgentEvent::ToolResult { .. } => "tool-result",
            AgentEvent::Usage { .. } => "usage",
            AgentEvent::StepComplete { .. } => "step-complete",
            AgentEvent::ProviderRetry { .. } => "provider-retry",
            AgentEvent::Steering { .. } => "steering",
            AgentEvent::Error { .. } => "error",
            AgentEvent::Done { .. } => "done",
            AgentEvent::TurnSealed { .. } => "turn-sealed",
            AgentEvent::Unknown => "unknown",
        }
    }

    /// Transient events are shown live but never part of persisted history.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AgentEvent::ProviderRetry { .. } | AgentEvent::ToolOutput { .. }
        )
    }
}
