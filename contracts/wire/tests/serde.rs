#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The naming convention pinned on exact compact JSON (kebab-case tags, camelCase fields,
//! dotted WebSocket tags), the `Unknown` fallbacks for input from newer peers, and the
//! strictness of `deny_unknown_fields` request bodies.

use std::fmt::Debug;

use dispatch_wire::{
    AgentEvent, ChatRequest, Chunk, ConversationStatus, FinishReason, Id, OutputStream,
    PutWorkspaceRequest, QueueRequest, ReasoningEffort, SetCompactPercentRequest, SetCwdRequest,
    SetModelRequest, SetReasoningEffortRequest, SetTitleRequest, StoredChunk, SurfaceField,
    SurfaceScope, Usage, WsClientMessage, WsServerMessage,
};
use expect_test::{Expect, expect};
use pretty_assertions::assert_eq;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Serializes `value` compactly and checks the exact JSON, then that it parses back equal.
#[track_caller]
fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: T, expect: Expect) {
    let json = serde_json::to_string(&value).unwrap();
    expect.assert_eq(&json);
    assert_eq!(serde_json::from_str::<T>(&json).unwrap(), value);
}

/// Parses `json` as `T` and checks the error message.
#[track_caller]
fn check_rejects<T: DeserializeOwned + Debug>(json: &str, expect: Expect) {
    match serde_json::from_str::<T>(json) {
        Ok(value) => panic!("{json} parsed as {value:?}"),
        Err(err) => expect.assert_eq(&err.to_string()),
    }
}

fn id(s: &str) -> Id {
    Id::from(s)
}

#[test]
fn agent_event_tags_are_kebab_case_and_fields_camel_case() {
    check(
        AgentEvent::TextDelta {
            conversation_id: id("c"),
            turn_id: id("t"),
            step_id: id("t#0"),
            delta: "hi".to_owned(),
        },
        expect![[
            r#"{"type":"text-delta","conversationId":"c","turnId":"t","stepId":"t#0","delta":"hi"}"#
        ]],
    );
    check(
        AgentEvent::StepComplete {
            conversation_id: id("c"),
            turn_id: id("t"),
            step_id: id("t#0"),
            step_index: 0,
            finish_reason: FinishReason::ToolCalls,
            ttft_ms: None,
            decode_ms: None,
            gen_total_ms: 12,
        },
        expect![[
            r#"{"type":"step-complete","conversationId":"c","turnId":"t","stepId":"t#0","stepIndex":0,"finishReason":"tool-calls","genTotalMs":12}"#
        ]],
    );
    check(
        AgentEvent::Done {
            conversation_id: id("c"),
            turn_id: id("t"),
            finish_reason: FinishReason::MaxSteps,
            usage: Usage {
                input_tokens: 10,
                output_tokens: 2,
                ..Usage::default()
            },
            cost: None,
            duration_ms: 5,
            context_size: Some(12),
            steps: 1,
        },
        expect![[
            r#"{"type":"done","conversationId":"c","turnId":"t","finishReason":"max-steps","usage":{"inputTokens":10,"outputTokens":2,"cacheReadTokens":0,"cacheWriteTokens":0,"reasoningTokens":0},"durationMs":5,"contextSize":12,"steps":1}"#
        ]],
    );
    check(
        AgentEvent::ToolOutput {
            conversation_id: id("c"),
            turn_id: id("t"),
            step_id: id("t#1"),
            tool_call_id: id("call_1"),
            stream: OutputStream::Stderr,
            chunk: "warning\n".to_owned(),
        },
        expect![[
            r#"{"type":"tool-output","conversationId":"c","turnId":"t","stepId":"t#1","toolCallId":"call_1","stream":"stderr","chunk":"warning\n"}"#
        ]],
    );
}

#[test]
fn stored_chunk_nests_a_kebab_tagged_chunk() {
    check(
        StoredChunk {
            seq: 1,
            message_id: id("m"),
            role: dispatch_wire::Role::Tool,
            turn_id: None,
            step_id: None,
            created_at: 0,
            chunk: Chunk::ToolResult {
                tool_call_id: id("call_1"),
                tool_name: "read_file".to_owned(),
                output: "ok".to_owned(),
                is_error: false,
            },
        },
        expect![[
            r#"{"seq":1,"messageId":"m","role":"tool","createdAt":0,"chunk":{"type":"tool-result","toolCallId":"call_1","toolName":"read_file","output":"ok","isError":false}}"#
        ]],
    );
}

#[test]
fn ws_tags_are_dotted() {
    check(
        WsServerMessage::ConversationStatusChanged {
            conversation_id: id("c"),
            workspace_id: "default".to_owned(),
            status: ConversationStatus::Idle,
        },
        expect![[
            r#"{"type":"conversation.statusChanged","conversationId":"c","workspaceId":"default","status":"idle"}"#
        ]],
    );
    check(
        WsServerMessage::ChatDelta {
            conversation_id: id("c"),
            event: AgentEvent::TurnSealed {
                conversation_id: id("c"),
                turn_id: id("t"),
                last_seq: None,
            },
        },
        expect![[
            r#"{"type":"chat.delta","conversationId":"c","event":{"type":"turn-sealed","conversationId":"c","turnId":"t"}}"#
        ]],
    );
    check(
        WsClientMessage::ChatSend(ChatRequest {
            conversation_id: None,
            message: "hi".to_owned(),
            model: None,
            reasoning_effort: Some(ReasoningEffort::Xhigh),
            cwd: None,
            workspace_id: None,
            computer_id: None,
            request_id: Some("r".to_owned()),
        }),
        expect![[
            r#"{"type":"chat.send","message":"hi","reasoningEffort":"xhigh","requestId":"r"}"#
        ]],
    );
    check(
        WsClientMessage::ChatQueue {
            conversation_id: "c".to_owned(),
            text: "also".to_owned(),
            request_id: None,
        },
        expect![[r#"{"type":"chat.queue","conversationId":"c","text":"also"}"#]],
    );
}

#[test]
fn surface_fields_are_tagged_by_kind() {
    check(
        SurfaceField::Custom {
            id: "chart".to_owned(),
            renderer_id: "bar-chart".to_owned(),
            data: serde_json::json!({ "bars": [1, 2] }),
        },
        expect![[
            r#"{"kind":"custom","id":"chart","rendererId":"bar-chart","data":{"bars":[1,2]}}"#
        ]],
    );
}

#[test]
fn unknown_tags_from_newer_peers_parse_as_unknown() {
    let event: AgentEvent =
        serde_json::from_str(r#"{"type":"tool-approval","conversationId":"c","turnId":"t"}"#)
            .unwrap();
    assert_eq!(event, AgentEvent::Unknown);
    assert_eq!(event.conversation_id(), None);

    let chunk: Chunk =
        serde_json::from_str(r#"{"type":"image","mediaType":"image/png","data":"iVBO"}"#).unwrap();
    assert_eq!(chunk, Chunk::Unknown);

    let stored: StoredChunk = serde_json::from_str(
        r#"{"seq":9,"messageId":"m","role":"assistant","createdAt":1,"chunk":{"type":"citation","url":"x"}}"#,
    )
    .unwrap();
    assert_eq!(stored.chunk, Chunk::Unknown);

    let client: WsClientMessage =
        serde_json::from_str(r#"{"type":"chat.fork","conversationId":"c"}"#).unwrap();
    assert_eq!(client, WsClientMessage::Unknown);

    let server: WsServerMessage =
        serde_json::from_str(r#"{"type":"conversation.renamed","conversationId":"c"}"#).unwrap();
    assert_eq!(server, WsServerMessage::Unknown);

    let field: SurfaceField =
        serde_json::from_str(r#"{"kind":"slider","id":"s","label":"S"}"#).unwrap();
    assert_eq!(field, SurfaceField::Unknown);

    assert_eq!(
        serde_json::from_str::<FinishReason>(r#""content-filter""#).unwrap(),
        FinishReason::Unknown
    );
    assert_eq!(
        serde_json::from_str::<ConversationStatus>(r#""archived""#).unwrap(),
        ConversationStatus::Unknown
    );
    assert_eq!(
        serde_json::from_str::<OutputStream>(r#""pty""#).unwrap(),
        OutputStream::Unknown
    );
    assert_eq!(
        serde_json::from_str::<SurfaceScope>(r#""workspace""#).unwrap(),
        SurfaceScope::Unknown
    );

    // An unknown value nested in a known message stays local to its field.
    let done: AgentEvent = serde_json::from_str(
        r#"{"type":"done","conversationId":"c","turnId":"t","finishReason":"paused","usage":{},"durationMs":1,"steps":0}"#,
    )
    .unwrap();
    assert!(matches!(
        done,
        AgentEvent::Done {
            finish_reason: FinishReason::Unknown,
            ..
        }
    ));
}

#[test]
fn a_missing_tag_is_an_error_not_unknown() {
    check_rejects::<AgentEvent>(
        r#"{"conversationId":"c"}"#,
        expect![[r#"missing field `type` at line 1 column 22"#]],
    );
}

#[test]
fn reasoning_effort_has_no_fallback() {
    check_rejects::<SetReasoningEffortRequest>(
        r#"{"effort":"ultra"}"#,
        expect![[
            r#"unknown variant `ultra`, expected one of `low`, `medium`, `high`, `xhigh`, `max` at line 1 column 17"#
        ]],
    );
    for effort in ReasoningEffort::ALL {
        assert_eq!(ReasoningEffort::parse(effort.as_str()), Some(effort));
        assert_eq!(
            serde_json::to_string(&effort).unwrap(),
            format!("\"{}\"", effort.as_str())
        );
    }
}

#[test]
fn request_bodies_reject_unknown_fields_by_name() {
    check_rejects::<ChatRequest>(
        r#"{"message":"hi","modle":"gpt-5"}"#,
        expect![
            "unknown field `modle`, expected one of `conversationId`, `message`, `model`, `reasoningEffort`, `cwd`, `workspaceId`, `computerId`, `requestId` at line 1 column 23"
        ],
    );
    check_rejects::<SetCwdRequest>(
        r#"{"cwd":"src","recursive":true}"#,
        expect![[
            r#"unknown field `recursive`, expected `cwd` or `workspaceId` at line 1 column 24"#
        ]],
    );
    check_rejects::<SetModelRequest>(
        r#"{"model":"m","provider":"p"}"#,
        expect!["unknown field `provider`, expected `model` at line 1 column 23"],
    );
    check_rejects::<SetReasoningEffortRequest>(
        r#"{"effort":"low","budget":1}"#,
        expect!["unknown field `budget`, expected `effort` at line 1 column 24"],
    );
    check_rejects::<SetCompactPercentRequest>(
        r#"{"percent":50,"auto":true}"#,
        expect![[r#"unknown field `auto`, expected `percent` at line 1 column 20"#]],
    );
    check_rejects::<SetTitleRequest>(
        r#"{"title":"t","emoji":"x"}"#,
        expect!["unknown field `emoji`, expected `title` at line 1 column 20"],
    );
    check_rejects::<QueueRequest>(
        r#"{"text":"t","priority":1}"#,
        expect!["unknown field `priority`, expected `text` or `requestId` at line 1 column 22"],
    );
    check_rejects::<PutWorkspaceRequest>(
        r#"{"title":"t","default_cwd":"/"}"#,
        expect![
            "unknown field `default_cwd`, expected `title` or `defaultCwd` at line 1 column 26"
        ],
    );
    // The same strictness through the WebSocket envelope.
    check_rejects::<WsClientMessage>(
        r#"{"type":"chat.send","message":"hi","modle":"gpt-5"}"#,
        expect![[
            r#"unknown field `modle`, expected one of `conversationId`, `message`, `model`, `reasoningEffort`, `cwd`, `workspaceId`, `computerId`, `requestId`"#
        ]],
    );
}

#[test]
fn request_bodies_take_only_the_required_fields() {
    check(
        ChatRequest {
            conversation_id: None,
            message: "hi".to_owned(),
            model: None,
            reasoning_effort: None,
            cwd: None,
            workspace_id: None,
            computer_id: None,
            request_id: None,
        },
        expect![[r#"{"message":"hi"}"#]],
    );
    check(
        PutWorkspaceRequest {
            title: None,
            default_cwd: None,
        },
        expect![[r#"{}"#]],
    );
    check_rejects::<SetCompactPercentRequest>(
        r#"{"percent":256}"#,
        expect![[r#"invalid value: integer `256`, expected u8 at line 1 column 14"#]],
    );
}
