//! Encoding of outbound messages. `chat.delta` is the hot path: its text frame is built by
//! concatenating a per-subscription prefix around the event JSON the session serialized
//! once ([`EventFrame::json`](dispatch_kernel::abi::EventFrame)), never by serializing the
//! event again. Everything else goes through serde, once per message (a broadcast is
//! encoded once for all clients).

use axum::extract::ws::Utf8Bytes;
use dispatch_wire::WsServerMessage;

/// `{"type":"chat.delta","conversationId":"<id>","event":` for one conversation: the part
/// of every delta frame before the event, computed once per subscription.
pub(crate) fn delta_prefix(conversation_id: &str) -> String {
    // `Value`'s Display is serde_json's string escaping, and cannot fail.
    let id = serde_json::Value::from(conversation_id).to_string();
    let mut prefix = String::with_capacity(48 + id.len());
    prefix.push_str(r#"{"type":"chat.delta","conversationId":"#);
    prefix.push_str(&id);
    prefix.push_str(r#","event":"#);
    prefix
}

/// The `chat.delta` frame of an event already serialized as `event_json`.
pub(crate) fn delta(prefix: &str, event_json: &str) -> Utf8Bytes {
    let mut text = String::with_capacity(prefix.len() + event_json.len() + 1);
    text.push_str(prefix);
    text.push_str(event_json);
    text.push('}');
    Utf8Bytes::from(text)
}

/// A server message as a text frame; `None` (logged) if it cannot be serialized, which
/// the wire types rule out.
pub(crate) fn encode(message: &WsServerMessage) -> Option<Utf8Bytes> {
    match serde_json::to_string(message) {
        Ok(text) => Some(Utf8Bytes::from(text)),
        Err(err) => {
            tracing::error!(error = %err, "Cannot serialize a WebSocket message");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use dispatch_wire::{AgentEvent, FinishReason, Id, Usage};
    use expect_test::{Expect, expect};
    use pretty_assertions::assert_eq;

    use super::*;

    /// Builds the delta frame by concatenation and checks it against `expect`, against the
    /// serde form of the same message byte for byte, and that it parses back to it.
    #[track_caller]
    fn check(conversation_id: &str, event: AgentEvent, expect: Expect) {
        let json = serde_json::to_string(&event).unwrap();
        let frame = delta(&delta_prefix(conversation_id), &json);
        expect.assert_eq(frame.as_str());

        let message = WsServerMessage::ChatDelta {
            conversation_id: Id::from(conversation_id),
            event,
        };
        assert_eq!(frame.as_str(), serde_json::to_string(&message).unwrap());
        let parsed: WsServerMessage = serde_json::from_str(frame.as_str()).unwrap();
        assert_eq!(parsed, message);
    }

    fn id(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn delta_frames_equal_their_serde_form() {
        check(
            "c_1",
            AgentEvent::TextDelta {
                conversation_id: id("c_1"),
                turn_id: id("t_1"),
                step_id: id("t_1#0"),
                delta: "héllo \"world\"\n".to_string(),
            },
            expect![[
                r#"{"type":"chat.delta","conversationId":"c_1","event":{"type":"text-delta","conversationId":"c_1","turnId":"t_1","stepId":"t_1#0","delta":"héllo \"world\"\n"}}"#
            ]],
        );
        check(
            "c_\"odd\"\\id\u{1}",
            AgentEvent::Done {
                conversation_id: id("c_\"odd\"\\id\u{1}"),
                turn_id: id("t_1"),
                finish_reason: FinishReason::Stop,
                usage: Usage::default(),
                cost: None,
                duration_ms: 12,
                context_size: Some(40),
                steps: 1,
            },
            expect![[
                r#"{"type":"chat.delta","conversationId":"c_\"odd\"\\id\u0001","event":{"type":"done","conversationId":"c_\"odd\"\\id\u0001","turnId":"t_1","finishReason":"stop","usage":{"inputTokens":0,"outputTokens":0,"cacheReadTokens":0,"cacheWriteTokens":0,"reasoningTokens":0},"durationMs":12,"contextSize":40,"steps":1}}"#
            ]],
        );
    }

    #[test]
    fn encode_serializes_server_messages() {
        let frame = encode(&WsServerMessage::ChatError {
            conversation_id: None,
            request_id: Some("r1".into()),
            error: "bad".into(),
            code: Some("invalid".into()),
        })
        .unwrap();
        expect![[r#"{"type":"chat.error","requestId":"r1","error":"bad","code":"invalid"}"#]]
            .assert_eq(frame.as_str());
    }
}
