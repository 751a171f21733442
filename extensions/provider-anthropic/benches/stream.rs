//! The provider's hot path without a network: a Messages SSE body decoded in 4 KiB chunks
//! by provider-kit and assembled into provider events by [`AnthropicAssembler`], and a long
//! request serialized into its body and prompt-prefix record.
//!
//! Bodies are shaped like the recorded `text-basic.sse` capture, with its whitespace
//! padding before the data's closing brace and a `ping` after the first block start.
//! `sse_only_text` decodes the text body without assembling it, to tell provider-kit's
//! share of the time and allocations from this crate's. Allocations per delta are the
//! difference between the `200` and `0` rows of a bench, divided by 200.
//!
//! `cargo bench -p dispatch-provider-anthropic --bench stream`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::sync::Arc;

use dispatch_kernel::abi::{Message, ProviderEvent, ProviderRequest, SystemSection, ToolSpec};
use dispatch_provider_anthropic::{AnthropicAssembler, encode_request};
use dispatch_provider_kit::{ErrorCtx, Redactor, assemble, sse};
use dispatch_wire::{Chunk, Id, ModelInfo, ModelPricing, ReasoningEffort, Role};
use divan::Bencher;
use futures::StreamExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

/// The chunk size the body is cut into, like a socket's reads.
const CHUNK: usize = 4096;

/// Text deltas in the text body.
const TEXT_DELTAS: usize = 200;

/// Thinking deltas, tool blocks and JSON fragments per tool in the thinking body.
const THINKING_DELTAS: usize = 100;
const TOOLS: usize = 8;
const FRAGMENTS: usize = 50;

fn main() {
    divan::main();
}

/// One SSE event whose data is `json` padded with `pad` spaces before its closing brace,
/// as Anthropic sends them.
fn event(body: &mut String, name: &str, json: &str, pad: usize) {
    let (open, close) = json.split_at(json.len() - 1);
    write!(body, "event: {name}\ndata: {open}{:pad$}{close}\n\n", "").unwrap();
}

fn message_start(body: &mut String) {
    event(
        body,
        "message_start",
        r#"{"type":"message_start","message":{"model":"claude-sonnet-4-5-20250929","id":"msg_017A4s3HAsrqf5d2WvBmrpLr","type":"message","role":"assistant","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":17,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard","inference_geo":"not_available"}}}"#,
        15,
    );
}

fn message_end(body: &mut String, stop_reason: &str, output_tokens: usize) {
    event(
        body,
        "message_delta",
        &format!(
            r#"{{"type":"message_delta","delta":{{"stop_reason":"{stop_reason}","stop_sequence":null}},"usage":{{"input_tokens":17,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":{output_tokens}}}}}"#
        ),
        8,
    );
    event(body, "message_stop", r#"{"type":"message_stop"}"#, 1);
}

/// A JSON string literal's contents for `text` (quotes and controls escaped).
fn escaped(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap();
    quoted[1..quoted.len() - 1].to_owned()
}

/// One text block of `deltas` deltas (some with escapes, as real text has newlines).
fn text_body(deltas: usize) -> Vec<u8> {
    const WORDS: [&str; 8] = [
        "-", " Captain", "\n- Sc", "oop", " the", " ship's", " \"log\"", " aboard",
    ];
    let mut body = String::new();
    message_start(&mut body);
    event(
        &mut body,
        "content_block_start",
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        3,
    );
    event(&mut body, "ping", r#"{"type": "ping"}"#, 0);
    for i in 0..deltas {
        let text = escaped(WORDS[i % WORDS.len()]);
        event(
            &mut body,
            "content_block_delta",
            &format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{text}"}}}}"#
            ),
            i % 11,
        );
    }
    event(
        &mut body,
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#,
        13,
    );
    message_end(&mut body, "end_turn", deltas);
    body.into_bytes()
}

/// A signed thinking block of [`THINKING_DELTAS`] deltas, then [`TOOLS`] tool calls whose
/// input arrives in [`FRAGMENTS`] fragments each.
fn thinking_body() -> Vec<u8> {
    let mut body = String::new();
    message_start(&mut body);
    event(
        &mut body,
        "content_block_start",
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
        2,
    );
    event(&mut body, "ping", r#"{"type": "ping"}"#, 0);
    for i in 0..THINKING_DELTAS {
        let thinking = escaped(&format!(" step {i}: check the file\n"));
        event(
            &mut body,
            "content_block_delta",
            &format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"thinking_delta","thinking":"{thinking}"}}}}"#
            ),
            i % 11,
        );
    }
    let signature =
        "EoQDCm0IDhgCKkCDzGs2kL2PgnDCZU/nM2wG2P1VIXCRHVnhDDzBQxNF1fl4QBXEKLxRItNJ2MwF".repeat(6);
    event(
        &mut body,
        "content_block_delta",
        &format!(
            r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"signature_delta","signature":"{signature}"}}}}"#
        ),
        15,
    );
    event(
        &mut body,
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#,
        11,
    );
    for tool in 1..=TOOLS {
        event(
            &mut body,
            "content_block_start",
            &format!(
                r#"{{"type":"content_block_start","index":{tool},"content_block":{{"type":"tool_use","id":"toolu_01825dXWLSoJwCst1qTsiW{tool:02}","name":"read_file","input":{{}},"caller":{{"type":"direct"}}}}}}"#
            ),
            13,
        );
        let input = json!({
            "path": format!("src/module_{tool}/file_{tool}.rs"),
            "offset": tool * 100,
            "limit": 200,
            "note": "read the whole function and its callers, then summarize what it does",
        })
        .to_string();
        let chars: Vec<char> = input.chars().collect();
        let per = chars.len().div_ceil(FRAGMENTS);
        for piece in chars.chunks(per) {
            let partial = escaped(&piece.iter().collect::<String>());
            event(
                &mut body,
                "content_block_delta",
                &format!(
                    r#"{{"type":"content_block_delta","index":{tool},"delta":{{"type":"input_json_delta","partial_json":"{partial}"}}}}"#
                ),
                13,
            );
        }
        event(
            &mut body,
            "content_block_stop",
            &format!(r#"{{"type":"content_block_stop","index":{tool}}}"#),
            13,
        );
    }
    message_end(&mut body, "tool_use", 900);
    body.into_bytes()
}

fn chunks(body: &[u8]) -> Vec<Vec<u8>> {
    body.chunks(CHUNK).map(<[u8]>::to_vec).collect()
}

fn ctx() -> ErrorCtx {
    ErrorCtx::new(Arc::from("anthropic"), "claude-bench", Redactor::default())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Decodes and assembles `chunks`, collecting every provider event.
async fn provider_events(chunks: Vec<Vec<u8>>) -> Vec<ProviderEvent> {
    let events = sse::decode_chunks(chunks, ctx());
    assemble(
        events,
        AnthropicAssembler::new(ctx()),
        CancellationToken::new(),
    )
    .map(Result::unwrap)
    .collect()
    .await
}

/// Asserts the body assembles into `deltas` deltas of the kind `is_delta` picks and
/// `calls` tool calls, then benchmarks it.
fn bench_body(
    bencher: Bencher,
    body: &[u8],
    is_delta: fn(&ProviderEvent) -> bool,
    deltas: usize,
    calls: usize,
) {
    let rt = runtime();
    let events = rt.block_on(provider_events(chunks(body)));
    let count = |f: &dyn Fn(&ProviderEvent) -> bool| events.iter().filter(|e| f(e)).count();
    assert_eq!(count(&is_delta), deltas);
    assert_eq!(
        count(&|e| matches!(e, ProviderEvent::ToolCall { .. })),
        calls
    );
    for event in &events {
        if let ProviderEvent::ToolCall { arguments, .. } = event {
            let input: serde_json::Value = serde_json::from_str(arguments).unwrap();
            assert!(input.is_object(), "{arguments}");
        }
    }
    assert!(matches!(events.last(), Some(ProviderEvent::Finish(_))));
    bencher
        .counter(divan::counter::BytesCount::new(body.len()))
        .with_inputs(|| chunks(body))
        .bench_local_values(|chunks| rt.block_on(provider_events(chunks)));
}

/// `message_start`, one text block of `n` text deltas, `message_delta`, `message_stop`.
#[divan::bench(args = [0, TEXT_DELTAS])]
fn text(bencher: Bencher, n: usize) {
    let body = text_body(n);
    bench_body(
        bencher,
        &body,
        |e| matches!(e, ProviderEvent::TextDelta(_)),
        n,
        0,
    );
}

/// A signed thinking block of 100 deltas and 8 tool calls of 50 JSON fragments each.
#[divan::bench]
fn thinking_and_tools(bencher: Bencher) {
    let body = thinking_body();
    bench_body(
        bencher,
        &body,
        |e| matches!(e, ProviderEvent::ReasoningDelta(_)),
        THINKING_DELTAS,
        TOOLS,
    );
}

/// The text body through provider-kit's SSE decoder alone (no assembler).
#[divan::bench(args = [0, TEXT_DELTAS])]
fn sse_only_text(bencher: Bencher, n: usize) {
    let rt = runtime();
    let body = text_body(n);
    bencher
        .counter(divan::counter::BytesCount::new(body.len()))
        .with_inputs(|| chunks(&body))
        .bench_local_values(|chunks| {
            rt.block_on(
                sse::decode_chunks(chunks, ctx())
                    .map(Result::unwrap)
                    .collect::<Vec<_>>(),
            )
        });
}

/// A request of 4 system sections, 20 tools and 200 messages: user questions, assistant
/// turns with signed thinking, text and a tool call, and tool results.
fn long_request() -> ProviderRequest {
    let mut messages = Vec::new();
    for n in 0..200 {
        let id = Id::from(format!("turn-{}:{}", n / 4, n % 4));
        messages.push(match n % 4 {
            0 => Message::user(id, format!("Question {n}: where is the retry policy applied?")),
            1 => Message::new(
                id,
                Role::Assistant,
                vec![
                    Chunk::Reasoning {
                        text: format!("The user asks about retries ({n}). Look at the kernel.\n"),
                        signature: Some("EqQBCkYIARgCIkCepoF8CXqdCGI7O1AAkEcx/vta5WeUn1g3".repeat(4)),
                        redacted: None,
                    },
                    Chunk::Text {
                        text: "Let me read the file.".to_owned(),
                    },
                    Chunk::ToolCall {
                        tool_call_id: Id::from(format!("toolu_{n:04}")),
                        tool_name: "read_file".to_owned(),
                        input: json!({"path": format!("crates/kernel/src/turn_{n}.rs"), "limit": 200}),
                    },
                ],
            ),
            2 => Message::new(
                id,
                Role::Tool,
                vec![Chunk::ToolResult {
                    tool_call_id: Id::from(format!("toolu_{:04}", n - 1)),
                    tool_name: "read_file".to_owned(),
                    output: "fn retry(policy: &dyn RetryPolicy) -> Option<Duration> {\n    policy.delay(attempt, slept, retry_after)\n}\n".repeat(8),
                    is_error: n % 40 == 2,
                }],
            ),
            _ => Message::new(
                id,
                Role::Assistant,
                vec![Chunk::Text {
                    text: format!("Answer {n}: the kernel applies it in `run_turn`, between attempts."),
                }],
            ),
        });
    }
    let mut request = ProviderRequest::new("claude-sonnet-4-5", messages);
    request.reasoning_effort = Some(ReasoningEffort::High);
    request.system = Arc::from(
        ["identity", "tools", "project", "date"]
            .iter()
            .map(|name| {
                SystemSection::new(
                    *name,
                    format!(
                        "The {name} section. {}",
                        "Be careful and precise. ".repeat(30)
                    ),
                )
            })
            .collect::<Vec<_>>(),
    );
    request.tools = Arc::from(
        (0..20)
            .map(|i| ToolSpec {
                name: format!("tool_{i:02}"),
                description: format!(
                    "Tool {i}: {}",
                    "It reads, searches or edits files in the workspace. ".repeat(4)
                ),
                input_schema: json!({
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": "A path inside the workspace."},
                        "limit": {"type": "integer", "minimum": 1},
                        "pattern": {"type": "string"},
                    },
                    "required": ["path"],
                }),
                concurrency_safe: i % 2 == 0,
                capabilities: Vec::new(),
            })
            .collect::<Vec<_>>(),
    );
    request
}

/// [`long_request`] → body bytes and prompt-prefix record.
#[divan::bench]
fn request(bencher: Bencher) {
    let request = long_request();
    let info = ModelInfo {
        description: None,
        id: "claude-sonnet-4-5".to_owned(),
        provider: "anthropic".to_owned(),
        context_window: 200_000,
        max_output: 64_000,
        pricing: ModelPricing::default(),
        reasoning: true,
        known: true,
    };
    let (body, prefix) = encode_request(&request, &info, "anthropic").unwrap();
    assert_eq!(prefix.blocks.len(), 1 + 4 + 200);
    bencher
        .counter(divan::counter::BytesCount::new(body.len()))
        .bench_local(|| encode_request(&request, &info, "anthropic").unwrap());
}
