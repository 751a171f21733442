//! Every recorded Anthropic capture assembles to exactly its `[expected]` (content blocks,
//! stop reason, usage), whatever the chunking of the body, and every recorded error body
//! classifies as expected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use dispatch_kernel::abi::{ProviderEvent, StopReason};
use dispatch_provider_anthropic::AnthropicAssembler;
use dispatch_provider_kit::{ErrorCtx, Redactor, assemble, sse};
use dispatch_test_support::fixtures::captures;
use dispatch_wire::Usage;
use futures::StreamExt;
use pretty_assertions::assert_eq;
use tokio_util::sync::CancellationToken;

/// An assembled content block, as the captures' `[[expected.content]]` describe them.
#[derive(Debug, Clone, PartialEq)]
enum Block {
    Text(String),
    Thinking {
        thinking: String,
        signature: String,
    },
    Redacted(String),
    /// Id, name, raw arguments, canonical arguments (sorted keys, compact).
    ToolUse(String, String, String, String),
}

#[derive(Debug, PartialEq)]
struct Assembled {
    content: Vec<Block>,
    stop: StopReason,
    usage: Usage,
}

fn ctx() -> ErrorCtx {
    ErrorCtx::new(Arc::from("anthropic"), "capture", Redactor::default())
}

fn canonical(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .unwrap()
        .to_string()
}

async fn assemble_body(body: &[u8], chunk: usize) -> Assembled {
    let chunks: Vec<Vec<u8>> = body.chunks(chunk.max(1)).map(<[u8]>::to_vec).collect();
    let events = Box::pin(sse::decode_chunks(chunks, ctx()));
    let stream = assemble(
        events,
        AnthropicAssembler::new(ctx()),
        CancellationToken::new(),
    );
    let events: Vec<ProviderEvent> = stream.map(Result::unwrap).collect().await;
    let mut content = Vec::new();
    let mut usage = None;
    let mut stop = None;
    for event in events {
        match event {
            ProviderEvent::TextDelta(delta) => match content.last_mut() {
                Some(Block::Text(text)) => text.push_str(&delta),
                _ => content.push(Block::Text(delta)),
            },
            ProviderEvent::ReasoningDelta(delta) => match content.last_mut() {
                Some(Block::Thinking {
                    thinking,
                    signature,
                }) if signature.is_empty() => thinking.push_str(&delta),
                _ => content.push(Block::Thinking {
                    thinking: delta,
                    signature: String::new(),
                }),
            },
            ProviderEvent::ReasoningSignature(sig) => match content.last_mut() {
                Some(Block::Thinking { signature, .. }) if signature.is_empty() => *signature = sig,
                _ => content.push(Block::Thinking {
                    thinking: String::new(),
                    signature: sig,
                }),
            },
            ProviderEvent::RedactedReasoning(data) => content.push(Block::Redacted(data)),
            ProviderEvent::ToolCall {
                id,
                name,
                arguments,
            } => {
                let canonical = canonical(&arguments);
                content.push(Block::ToolUse(id, name, arguments, canonical));
            }
            ProviderEvent::Usage(u) => usage = Some(u),
            ProviderEvent::Prefix(_) => panic!("the assembler makes no prefix record"),
            ProviderEvent::Finish(reason) => {
                assert!(stop.is_none(), "one Finish");
                stop = Some(reason);
            }
        }
    }
    Assembled {
        content,
        stop: stop.expect("the capture finished"),
        usage: usage.expect("usage before Finish"),
    }
}

fn expected(meta: &toml::Table) -> Assembled {
    let expected = meta["expected"].as_table().unwrap();
    let text = |v: &toml::Value, key: &str| v[key].as_str().unwrap().to_owned();
    let content = expected["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|block| match block["type"].as_str().unwrap() {
            "text" => Block::Text(text(block, "text")),
            "thinking" => Block::Thinking {
                thinking: text(block, "thinking"),
                signature: text(block, "signature"),
            },
            "redacted_thinking" => Block::Redacted(text(block, "data")),
            "tool_use" => {
                let raw = text(block, "input_json_raw");
                // An empty input is sent as `{}`.
                let raw = if raw.is_empty() { "{}".to_owned() } else { raw };
                Block::ToolUse(
                    text(block, "id"),
                    text(block, "name"),
                    raw,
                    text(block, "input_canonical"),
                )
            }
            other => panic!("unexpected block type {other}"),
        })
        .collect();
    let stop = match expected["stop_reason"].as_str().unwrap() {
        "end_turn" => StopReason::EndTurn,
        "tool_use" => StopReason::ToolCalls,
        "max_tokens" => StopReason::MaxTokens,
        other => StopReason::Other(other.to_owned()),
    };
    let usage = expected["usage"].as_table().unwrap();
    let n = |key: &str| {
        usage
            .get(key)
            .map_or(0, |v| u64::try_from(v.as_integer().unwrap()).unwrap())
    };
    Assembled {
        content,
        stop,
        usage: Usage {
            input_tokens: n("input_tokens")
                + n("cache_read_input_tokens")
                + n("cache_creation_input_tokens"),
            output_tokens: n("output_tokens"),
            cache_read_tokens: n("cache_read_input_tokens"),
            cache_write_tokens: n("cache_creation_input_tokens"),
            reasoning_tokens: n("thinking_tokens"),
        },
    }
}

#[tokio::test]
async fn every_capture_assembles_to_its_expected_result_at_any_chunking() {
    let all = captures(env!("CARGO_MANIFEST_DIR"), "anthropic", ".sse");
    assert_eq!(all.len(), 9, "the recorded Anthropic streams");
    for capture in &all {
        let want = expected(&capture.meta);
        let final_text: String = want
            .content
            .iter()
            .filter_map(|b| match b {
                Block::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            final_text,
            capture.meta["expected"]["final_text"].as_str().unwrap(),
            "{}: the expectation's own final text",
            capture.name
        );
        for chunk in [1, 2, 7, 64, 512, usize::MAX] {
            let got = assemble_body(&capture.body, chunk.min(capture.body.len())).await;
            assert_eq!(got, want, "{} at chunk size {chunk}", capture.name);
        }
    }
}

#[test]
fn every_recorded_error_body_classifies() {
    let all = captures(env!("CARGO_MANIFEST_DIR"), "anthropic", ".json");
    assert_eq!(all.len(), 3, "the recorded Anthropic error bodies");
    for capture in &all {
        let expected = capture.meta["expected"].as_table().unwrap();
        let status = u16::try_from(expected["http_status"].as_integer().unwrap()).unwrap();
        let body = String::from_utf8(capture.body.clone()).unwrap();
        let err = ctx().status(status, &reqwest::header::HeaderMap::new(), &body);
        let error_type = expected["error_type"].as_str().unwrap();
        let message = expected["message"].as_str().unwrap();
        assert_eq!(
            (err.retryable, err.code.as_deref(), err.status),
            (
                expected["retryable"].as_bool().unwrap(),
                Some(error_type),
                Some(status)
            ),
            "{}",
            capture.name
        );
        assert_eq!(
            err.message,
            format!("anthropic (capture): HTTP {status} {error_type}: {message}"),
            "{}",
            capture.name
        );
    }
}
