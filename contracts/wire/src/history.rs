use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Id;

/// Who a message belongs to. Tool results are their own role; providers map it onto their
/// formats (OpenAI `tool` messages, Anthropic `tool_result` blocks in a user message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    User,
    Assistant,
    Tool,
}

/// One piece of a message. A message is the ordered list of chunks sharing a `messageId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum Chunk {
    Text {
        text: String,
    },
    Reasoning {
        text: String,
        /// Provider signature over the reasoning (Anthropic thinking), sent back verbatim.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
        /// Opaque redacted reasoning (Anthropic `redacted_thinking`), sent back verbatim.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        redacted: Option<String>,
    },
    ToolCall {
        tool_call_id: Id,
        tool_name: String,
        /// The arguments as the model produced them: normally a JSON object; a string
        /// holds arguments that did not parse (repaired on load, never sent raw).
        input: serde_json::Value,
    },
    ToolResult {
        tool_call_id: Id,
        tool_name: String,
        output: String,
        #[serde(default)]
        is_error: bool,
    },
    /// A failure recorded in history: shown to people, left out of what the model sees.
    Error {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
    /// A chunk kind this build does not know (written by a newer server).
    /// Parse-only: never sent by this build, left out of the JSON Schema.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// A chunk as persisted: one row of a conversation's append-only log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredChunk {
    /// 1-based, monotonic and gap-free within a conversation.
    pub seq: u64,
    /// Chunks with the same `messageId` form one message, in `seq` order.
    pub message_id: Id,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<Id>,
    /// `turnId#stepIndex` of the step that produced the chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<Id>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub chunk: Chunk,
}
