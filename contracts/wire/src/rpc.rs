//! RPC mode (`dispatch-server rpc`): newline-delimited JSON on stdin/stdout. Each input line
//! is an [`RpcRequest`]; each output line is an [`RpcResponse`] (`"type": "response"`) or an
//! [`AgentEvent`](crate::AgentEvent) of a running prompt, exactly as on the other transports.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ReasoningEffort, StoredChunk};

/// One command. `id` (any JSON string or number) is echoed in its response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RpcRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<serde_json::Value>,
    #[serde(flatten)]
    pub command: RpcCommand,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum RpcCommand {
    /// Required first when `DISPATCH_RPC_TOKEN` is set.
    Hello {
        token: Option<String>,
    },
    /// Starts a turn in the session's conversation; its events follow on stdout.
    Prompt {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reasoning_effort: Option<ReasoningEffort>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cwd: Option<String>,
    },
    /// Aborts the running prompt at once.
    Abort,
    Compact,
    GetState,
    GetMessages,
    /// Starts a new, empty conversation for the session.
    Clear,
    SetModel {
        model: String,
    },
    GetModels,
    Ping,
    /// A command this build does not know.
    /// Parse-only: never sent by this build, left out of the JSON Schema.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// The answer to one command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RpcResponse {
    /// Always `response` (events carry their own `type`).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<serde_json::Value>,
    /// The command answered (`prompt`, `get_state`, …; `invalid` for a line that did not
    /// parse).
    pub command: String,
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `busy`, `unauthorized`, `invalid`, `not-supported`, `not-found`, `internal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// `get_state` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RpcState {
    pub conversation_id: String,
    pub model: Option<String>,
    pub is_running: bool,
    pub message_count: u64,
}

/// `get_messages` data: the session conversation's stored history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RpcMessages {
    pub conversation_id: String,
    pub chunks: Vec<StoredChunk>,
}
