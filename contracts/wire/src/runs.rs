//! The runs control plane: a task-shaped way to start a turn (`POST /runs` → 202), watch it
//! (`GET /runs/:id/events`, Server-Sent Events with replay and `Last-Event-ID`), check it,
//! cancel it and fetch its artifacts. A run is a chat turn with a durable handle.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    FinishReason, Id, PromptPrefix, ReasoningEffort, StoredChunk, SystemSectionRecord, Usage,
};

/// `POST /runs`: exactly the options of a chat turn (the same fields as `ChatRequest` minus
/// `requestId`: the `Idempotency-Key` header carries it). Unknown fields are refused by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunRequest {
    /// Omitted: a new conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<ReasoningEffort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer_id: Option<String>,
}

/// A run's lifecycle: `queued → running → completed | failed | cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
    /// A status this build does not know (sent by a newer server).
    /// Parse-only: never sent by this build, left out of the JSON Schema.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// A run as `GET /runs/:id` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunInfo {
    pub run_id: Id,
    pub conversation_id: Id,
    pub status: RunStatus,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    /// Why it waited (e.g. `conversation-busy`, `concurrency-limit`), recorded when queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_reason: Option<String>,
    /// Why it failed or was cancelled (`interrupted` after a server restart, the error, or
    /// `cancelled-while-queued` / `aborted-while-running`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The turn it ran as, once running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Events so far (the SSE `id` of the last one).
    pub event_count: u64,
    pub events_url: String,
    pub status_url: String,
}

/// `202 Accepted` answer of `POST /runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunAccepted {
    pub run_id: Id,
    pub conversation_id: Id,
    pub status: RunStatus,
    pub events_url: String,
    pub status_url: String,
}

/// `GET /runs?status=&conversationId=&limit=`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunListResponse {
    pub runs: Vec<RunInfo>,
}

/// What `POST /runs/:id/cancel` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CancelOutcome {
    /// It had not started: removed from the queue.
    CancelledQueued,
    /// It was running: its provider request and tools were aborted and the turn sealed.
    AbortedRunning,
    /// It had already ended; nothing changed.
    AlreadyEnded,
    /// An outcome this build does not know (sent by a newer server).
    /// Parse-only: never sent by this build, left out of the JSON Schema.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunCancelResponse {
    pub outcome: CancelOutcome,
    pub run: RunInfo,
}

/// One step's record among a run's artifacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepArtifact {
    pub step_id: Id,
    pub step_index: u32,
    /// The prompt-prefix record of the step's provider request (block sizes and hashes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<PromptPrefix>,
}

/// `GET /runs/:id/artifacts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunArtifacts {
    pub run_id: Id,
    pub conversation_id: Id,
    /// The chunks the run's turn committed, in seq order.
    pub transcript: Vec<StoredChunk>,
    pub steps: Vec<StepArtifact>,
    /// The system prompt's sections as the turn sent them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system_prompt: Vec<SystemSectionRecord>,
}

/// The data of the final SSE event (`event: run-end`) of a run's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunEnd {
    pub run: RunInfo,
}
