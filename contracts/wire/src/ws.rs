//! WebSocket messages, tagged by a dotted `type` (`chat.send`, `chat.delta`, ...).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{AgentEvent, ChatRequest, ConversationStatus, Id, SurfaceSpec};

/// Close code of a socket whose client fell too far behind the live stream: its queue was
/// full, so it was dropped rather than stall the turn or other clients. Reconnect, reload
/// history (`GET /conversations/:id?sinceSeq=`) and subscribe again.
pub const WS_CLOSE_LAGGED: u16 = 4008;

/// Close code of a socket that broke the protocol (e.g. a binary frame).
pub const WS_CLOSE_POLICY: u16 = 1008;

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum WsClientMessage {
    /// Start a turn; its events arrive as `chat.delta`.
    #[serde(rename = "chat.send")]
    ChatSend(ChatRequest),
    /// Watch a conversation: a running turn is replayed from its start, then live.
    #[serde(rename = "chat.subscribe", rename_all = "camelCase")]
    ChatSubscribe { conversation_id: String },
    #[serde(rename = "chat.unsubscribe", rename_all = "camelCase")]
    ChatUnsubscribe { conversation_id: String },
    /// Enqueue a message: steering for a running turn, or a new turn when idle.
    #[serde(rename = "chat.queue", rename_all = "camelCase")]
    ChatQueue {
        conversation_id: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    #[serde(rename = "surface.subscribe", rename_all = "camelCase")]
    SurfaceSubscribe {
        surface_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation_id: Option<String>,
    },
    #[serde(rename = "surface.unsubscribe", rename_all = "camelCase")]
    SurfaceUnsubscribe {
        surface_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation_id: Option<String>,
    },
    /// Trigger a surface field's action (a toggle, a button, a number change).
    #[serde(rename = "surface.invoke", rename_all = "camelCase")]
    SurfaceInvoke {
        surface_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation_id: Option<String>,
        action: String,
        #[serde(default)]
        value: serde_json::Value,
    },
    /// A message type this build does not know (sent by a newer client).
    /// Parse-only: never sent by this build, left out of the JSON Schema.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum WsServerMessage {
    /// A `chat.send` was accepted (or re-attached by its `requestId`).
    #[serde(rename = "chat.accepted", rename_all = "camelCase")]
    ChatAccepted {
        conversation_id: Id,
        turn_id: Id,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    /// Answer to `chat.subscribe`: whether a turn is running (its events follow, replayed
    /// from its start).
    #[serde(rename = "chat.subscribed", rename_all = "camelCase")]
    ChatSubscribed {
        conversation_id: Id,
        is_active: bool,
    },
    /// Answer to `chat.queue`.
    #[serde(rename = "chat.queued", rename_all = "camelCase")]
    ChatQueued {
        conversation_id: Id,
        queued: crate::QueuedMessage,
        /// True when the conversation was idle and the message started a turn.
        started_turn: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
    },
    #[serde(rename = "chat.delta", rename_all = "camelCase")]
    ChatDelta {
        conversation_id: Id,
        event: AgentEvent,
    },
    #[serde(rename = "chat.error", rename_all = "camelCase")]
    ChatError {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation_id: Option<Id>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
    #[serde(rename = "conversation.open", rename_all = "camelCase")]
    ConversationOpen {
        conversation_id: Id,
        workspace_id: String,
    },
    #[serde(rename = "conversation.statusChanged", rename_all = "camelCase")]
    ConversationStatusChanged {
        conversation_id: Id,
        workspace_id: String,
        status: ConversationStatus,
    },
    #[serde(rename = "conversation.compacted", rename_all = "camelCase")]
    ConversationCompacted {
        conversation_id: Id,
        new_conversation_id: Id,
        messages_summarized: u32,
        messages_kept: u32,
    },
    #[serde(rename = "surface.update", rename_all = "camelCase")]
    SurfaceUpdate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation_id: Option<Id>,
        surface: SurfaceSpec,
    },
    /// A message type this build does not know (sent by a newer server).
    /// Parse-only: never sent by this build, left out of the JSON Schema.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}
