//! HTTP request and response bodies (`*Params`/`*Request` in, `*Response` out).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    ConversationMeta, ConversationStatus, Id, ModelInfo, QueuedMessage, ReasoningEffort,
    StoredChunk, SystemSectionRecord, TurnMetrics, Workspace,
};

/// Every 4xx/5xx body: `error` says what is wrong, `field` names the offending input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResponse {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A stable machine-readable code, e.g. `already-active`, `not-found`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// `POST /chat` body and the WebSocket `chat.send` payload: start a turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChatRequest {
    /// Omitted: a new conversation is created and its id returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<ReasoningEffort>,
    /// Per-turn working directory; relative paths resolve against the workspace default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    /// An SSH host alias to run tools on; absent = this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer_id: Option<String>,
    /// Client idempotency key: a repeated send re-attaches to the turn it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthResponse {
    /// Always `ok` when the server answers.
    pub status: String,
    pub version: String,
    pub wire_version: String,
    pub uptime_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelsResponse {
    pub models: Vec<ModelInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_model: Option<String>,
}

/// `GET /conversations?q=&status=&workspaceId=`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationListResponse {
    pub conversations: Vec<ConversationMeta>,
}

/// `GET /conversations/:id?sinceSeq=&beforeSeq=&limit=`: chunks with
/// `sinceSeq < seq < beforeSeq`, the newest `limit` of them, ascending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryResponse {
    pub conversation_id: Id,
    pub chunks: Vec<StoredChunk>,
    /// The conversation's last committed seq (0 when empty).
    pub last_seq: u64,
    /// Whether older chunks exist below the first one returned.
    pub has_more: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsResponse {
    pub conversation_id: Id,
    pub turns: Vec<TurnMetrics>,
}

/// `GET /conversations/:id/last`: the last assistant text, after any running turn settles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastMessageResponse {
    pub conversation_id: Id,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CwdResponse {
    pub conversation_id: Id,
    /// The explicitly set cwd, as given (may be relative); null when inheriting.
    pub cwd: Option<String>,
    /// What a turn would run in now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_cwd: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetCwdRequest {
    pub cwd: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelResponse {
    pub conversation_id: Id,
    pub model: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetModelRequest {
    pub model: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningEffortResponse {
    pub conversation_id: Id,
    pub effort: ReasoningEffort,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetReasoningEffortRequest {
    pub effort: ReasoningEffort,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompactPercentResponse {
    pub conversation_id: Id,
    /// 0 = manual only; null = the server default.
    pub percent: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetCompactPercentRequest {
    /// 0..=100 (0 = manual compaction only); null or absent resets to the server default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TitleResponse {
    pub conversation_id: Id,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetTitleRequest {
    pub title: String,
}

/// `POST /conversations/:id/queue` and WebSocket `chat.queue`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueueRequest {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueResponse {
    pub conversation_id: Id,
    pub queued: QueuedMessage,
    /// True when the conversation was idle and the message started a turn.
    pub started_turn: bool,
}

/// Answer of `stop`, `close` and `open`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationActionResponse {
    pub conversation_id: Id,
    /// Whether a running turn was aborted.
    pub aborted_turn: bool,
    pub status: ConversationStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    pub conversation_id: Id,
    /// The orchestrator's in-memory truth: a turn is running now.
    pub is_active: bool,
    pub status: ConversationStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompactResponse {
    pub conversation_id: Id,
    /// The archive holding the pre-compaction history.
    pub new_conversation_id: Id,
    pub messages_summarized: u32,
    pub messages_kept: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceListResponse {
    pub workspaces: Vec<Workspace>,
}

/// `PUT /workspaces/:id`: create on miss, update what is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutWorkspaceRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_cwd: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteWorkspaceResponse {
    pub workspace_id: String,
    /// Conversations closed and moved to `default`.
    pub closed_count: u32,
}

/// `GET /system-prompt`: the template new conversations' prompts are built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemPromptResponse {
    pub template: String,
    /// True when no template was set and the built-in default is in use.
    pub is_default: bool,
}

/// `PUT /system-prompt`: a new template (checked before it is stored); null restores the
/// built-in default. Conversations keep the prompt they were built with until their cwd
/// changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetSystemPromptRequest {
    /// Null or absent restores the built-in default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// One variable a template may use, e.g. `[system:date]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemPromptVariable {
    /// As written in a template, without brackets: `system:date`, `file:<path>`.
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemPromptVariablesResponse {
    pub variables: Vec<SystemPromptVariable>,
}

/// `GET /conversations/:id/system-prompt`: the prompt the conversation's turns send, by
/// section, as last built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationSystemPromptResponse {
    pub conversation_id: Id,
    /// The cwd the prompt was built for; null when it was never built.
    pub cwd: Option<String>,
    pub sections: Vec<SystemSectionRecord>,
    /// The rendered text of each section, in the same order.
    pub texts: Vec<String>,
}

/// One decode-speed sample: a step of a finished turn that produced output tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThroughputSample {
    pub model: String,
    pub conversation_id: Id,
    pub step_id: Id,
    /// When the turn ended, milliseconds since the Unix epoch.
    pub at: i64,
    pub output_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    pub decode_ms: u64,
    /// `outputTokens / decodeMs * 1000`.
    pub tokens_per_second: f64,
}

/// `GET /metrics/throughput?model=&limit=`: recent samples since the server started, newest
/// last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThroughputResponse {
    pub samples: Vec<ThroughputSample>,
}

/// Where a todo stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TodoStatus {
    Pending,
    InProgress,
    Completed,
    Cancelled,
    /// A status this build does not know (sent by a newer peer).
    /// Parse-only: never sent by this build, left out of the JSON Schema.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// One item of a conversation's todo list (`todo_write` replaces the whole list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TodoItem {
    pub id: String,
    pub content: String,
    pub status: TodoStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
}

/// `GET /conversations/:id/todos`: the conversation's current todo list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TodoListResponse {
    pub conversation_id: Id,
    pub todos: Vec<TodoItem>,
    /// Milliseconds since the Unix epoch of the last `todo_write`; absent when never written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
}
