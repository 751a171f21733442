//! The provider's hot path without a network: a chat-completions SSE body decoded in 4 KiB
//! chunks by provider-kit and assembled into provider events by [`ChatAssembler`], and a
//! long request serialized into its body and prompt-prefix record.
//!
//! Bodies are shaped like the recorded `openai/text-with-usage.sse` and
//! `openai/parallel-tool-calls-split-args.sse` captures (every chunk repeats `id`, `model`,
//! `system_fingerprint`, ... and ends with an `obfuscation` pad). `sse_only_text` decodes
//! the text body without assembling it, to tell provider-kit's share of the time and
//! allocations from this crate's. Allocations are per iteration: divide by the deltas
//! (200 text deltas; 8 × 50 argument fragments) for a per-delta figure.
//!
//! `responses_text_deltas` runs a Responses API body of 200 text deltas through
//! [`ResponsesAssembler`] the same way.
//!
//! `cargo bench -p dispatch-provider-openai --bench stream`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::sync::Arc;

use dispatch_kernel::abi::{ProviderEvent, ProviderRequest, SystemSection, ToolSpec};
use dispatch_provider_kit::{Assembler, ErrorCtx, Redactor, assemble, sse};
use dispatch_provider_openai::InstanceConfig;
use dispatch_provider_openai::chat::{self, ChatAssembler};
use dispatch_provider_openai::responses::ResponsesAssembler;
use dispatch_test_support::history::{assistant, call, result, text, tool, user};
use dispatch_wire::Id;
use divan::Bencher;
use futures::StreamExt;
use serde_json::json;
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

/// The chunk size the body is cut into, like a socket's reads.
const CHUNK: usize = 4096;

/// Text deltas in the text body.
const TEXT_DELTAS: usize = 200;

/// Parallel tool calls in the tools body, and argument fragments per call.
const CALLS: usize = 8;
const FRAGMENTS: usize = 50;

fn main() {
    divan::main();
}

/// One `data:` event: a chat-completion chunk with `choices` (JSON) and `usage` (JSON).
fn chunk(body: &mut String, choices: &str, usage: &str) {
    writeln!(
        body,
        r#"data: {{"id":"chatcmpl-Dx0Xq5Xx9rHB2ehcHZCRDsnuymUXc","object":"chat.completion.chunk","created":1782955818,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_d0469e1700","choices":{choices},"usage":{usage},"obfuscation":"auU6fTns"}}"#
    )
    .unwrap();
    body.push('\n');
}

/// One choice with `delta` (JSON) and `finish_reason` (JSON).
fn choice(delta: &str, finish_reason: &str) -> String {
    format!(r#"[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish_reason}}}]"#)
}

fn role_chunk(body: &mut String) {
    chunk(
        body,
        &choice(
            r#"{"role":"assistant","content":"","refusal":null}"#,
            "null",
        ),
        "null",
    );
}

/// The finish chunk, the usage chunk and `[DONE]`.
fn end(body: &mut String, finish_reason: &str, completion_tokens: usize) {
    chunk(body, &choice("{}", &format!("\"{finish_reason}\"")), "null");
    chunk(
        body,
        "[]",
        &format!(
            r#"{{"prompt_tokens":78,"completion_tokens":{completion_tokens},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}"#,
            78 + completion_tokens
        ),
    );
    body.push_str("data: [DONE]\n\n");
}

/// A JSON string literal for `text`.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// 1 role chunk, `deltas` text deltas (some with escapes, as real text has newlines and
/// quotes), the finish chunk, the usage chunk, `[DONE]`.
fn text_body(deltas: usize) -> Vec<u8> {
    const WORDS: [&str; 8] = [
        "The",
        " capital",
        " of",
        " France",
        " is",
        "\n\n- \"Paris\"",
        ",",
        " of course",
    ];
    let mut body = String::new();
    role_chunk(&mut body);
    for i in 0..deltas {
        let delta = format!(r#"{{"content":{}}}"#, quoted(WORDS[i % WORDS.len()]));
        chunk(&mut body, &choice(&delta, "null"), "null");
    }
    end(&mut body, "stop", deltas);
    body.into_bytes()
}

/// 1 role chunk, `calls` parallel calls, each opened by a chunk with its id and name and
/// then given its arguments in `fragments` fragments, the finish, usage, `[DONE]`.
fn tools_body(calls: usize, fragments: usize) -> Vec<u8> {
    let mut body = String::new();
    role_chunk(&mut body);
    for index in 0..calls {
        let open = format!(
            r#"{{"tool_calls":[{{"index":{index},"id":"call_u0T52evs3Y0byXDiUv5Al8d{index}","type":"function","function":{{"name":"get_current_weather","arguments":""}}}}]}}"#
        );
        chunk(&mut body, &choice(&open, "null"), "null");
        // `{"location":"San Francisco, CA","days":[...]}` cut into `fragments` pieces.
        let days: Vec<String> = (0..fragments).map(|d| d.to_string()).collect();
        let arguments = format!(
            r#"{{"location":"San Francisco, CA","days":[{}]}}"#,
            days.join(",")
        );
        let step = arguments.len().div_ceil(fragments);
        let pieces: Vec<&str> = (0..fragments)
            .map(|f| {
                &arguments[(f * step).min(arguments.len())..((f + 1) * step).min(arguments.len())]
            })
            .collect();
        for piece in pieces {
            let delta = format!(
                r#"{{"tool_calls":[{{"index":{index},"function":{{"arguments":{}}}}}]}}"#,
                quoted(piece)
            );
            chunk(&mut body, &choice(&delta, "null"), "null");
        }
    }
    end(&mut body, "tool_calls", calls * fragments);
    body.into_bytes()
}

fn ctx() -> ErrorCtx {
    ErrorCtx::new(Arc::from("openai"), "gpt-4o-mini", Redactor::default())
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn chunks(body: &[u8]) -> Vec<Vec<u8>> {
    body.chunks(CHUNK).map(<[u8]>::to_vec).collect()
}

/// Decodes and assembles `body` (cut into 4 KiB chunks outside the timing) with the
/// assembler `new` makes into every provider event, checking once that it assembled to
/// `events` events ending in `Finish`.
fn bench_assembly<A: Assembler>(
    bencher: Bencher,
    new: fn(ErrorCtx) -> A,
    body: &[u8],
    events: usize,
) {
    let runtime = runtime();
    let run = |chunks: Vec<Vec<u8>>| {
        runtime.block_on(async {
            let decoded = sse::decode_chunks(chunks, ctx());
            assemble(decoded, new(ctx()), CancellationToken::new())
                .collect::<Vec<_>>()
                .await
        })
    };
    let out = run(chunks(body));
    assert_eq!(out.len(), events, "{:?}", out.last());
    assert!(matches!(out.last(), Some(Ok(ProviderEvent::Finish(_)))));
    bencher.with_inputs(|| chunks(body)).bench_local_values(run);
}

/// 200 text deltas: 200 `TextDelta`s, `Usage`, `Finish`.
#[divan::bench]
fn text_deltas(bencher: Bencher) {
    let body = text_body(TEXT_DELTAS);
    bench_assembly(bencher, ChatAssembler::new, &body, TEXT_DELTAS + 2);
}

/// 8 parallel calls × 50 argument fragments: 8 `ToolCall`s, `Usage`, `Finish`.
#[divan::bench]
fn parallel_tool_calls(bencher: Bencher) {
    let body = tools_body(CALLS, FRAGMENTS);
    bench_assembly(bencher, ChatAssembler::new, &body, CALLS + 2);
}

/// One Responses API event: `event: <type>` and its data, which starts `{"type":"<type>"`.
fn responses_event(body: &mut String, data: &str) {
    let rest = &data[r#"{"type":""#.len()..];
    let kind = &rest[..rest.find('"').unwrap()];
    write!(body, "event: {kind}\ndata: {data}\n\n").unwrap();
}

/// The Responses API's text answer of `deltas` deltas, shaped like the
/// `openai-responses/text-after-function-output.sse` capture (`response.completed` without
/// its echo of the request's settings and tools).
fn responses_text_body(deltas: usize) -> Vec<u8> {
    const ITEM: &str = "msg_0dacb603de1c9e6b0169fab1c2e40081a3857ad788023cb7ea";
    const WORDS: [&str; 8] = [
        "1231",
        " ×",
        " 2331",
        " =",
        " **2,869,461**",
        "\n\n- \"done\"",
        ",",
        " of course",
    ];
    let mut body = String::new();
    responses_event(
        &mut body,
        &format!(
            r#"{{"type":"response.output_item.added","item":{{"id":"{ITEM}","type":"message","status":"in_progress","content":[],"phase":"final_answer","role":"assistant"}},"output_index":0,"sequence_number":2}}"#
        ),
    );
    for i in 0..deltas {
        responses_event(
            &mut body,
            &format!(
                r#"{{"type":"response.output_text.delta","content_index":0,"delta":{},"item_id":"{ITEM}","logprobs":[],"obfuscation":"XM0rK6J7j52uLE","output_index":0,"sequence_number":{}}}"#,
                quoted(WORDS[i % WORDS.len()]),
                i + 3
            ),
        );
    }
    responses_event(
        &mut body,
        &format!(
            r#"{{"type":"response.completed","response":{{"id":"resp_0dacb603de1c9e6b0169fab1c2314081a3b1df3cc5c09e0c60","object":"response","status":"completed","error":null,"incomplete_details":null,"model":"gpt-5.5-2026-04-23","output":[],"usage":{{"input_tokens":94,"input_tokens_details":{{"cached_tokens":0}},"output_tokens":{deltas},"output_tokens_details":{{"reasoning_tokens":0}},"total_tokens":{}}},"user":null,"metadata":{{}}}},"sequence_number":{}}}"#,
            94 + deltas,
            deltas + 3
        ),
    );
    body.into_bytes()
}

/// The Responses API's 200 text deltas: 200 `TextDelta`s, `Usage`, `Finish`.
#[divan::bench]
fn responses_text_deltas(bencher: Bencher) {
    let body = responses_text_body(TEXT_DELTAS);
    bench_assembly(bencher, ResponsesAssembler::new, &body, TEXT_DELTAS + 2);
}

/// The text body through provider-kit's SSE decoder alone (no assembly).
#[divan::bench]
fn sse_only_text(bencher: Bencher) {
    let runtime = runtime();
    let body = text_body(TEXT_DELTAS);
    bencher
        .with_inputs(|| chunks(&body))
        .bench_local_values(|chunks| {
            runtime.block_on(sse::decode_chunks(chunks, ctx()).collect::<Vec<_>>())
        });
}

/// A long conversation: 4 system sections, 20 tools, 200 history messages (user text,
/// assistant text with tool calls, tool results), an output limit and a temperature.
fn long_request() -> ProviderRequest {
    let mut messages = Vec::new();
    for turn in 0..50 {
        let call_id = format!("call_{turn}");
        messages.push(user(
            &format!("m{turn}u"),
            &format!("Please look at src/module_{turn}.rs and tell me what \"run\" does."),
        ));
        messages.push(assistant(
            &format!("m{turn}a"),
            vec![
                text("Reading the file first."),
                call(
                    &call_id,
                    json!({"path": format!("src/module_{turn}.rs"), "limit": 200}),
                ),
            ],
        ));
        messages.push(tool(
            &format!("m{turn}t"),
            vec![result(&call_id, &"fn run() {\n    step();\n}\n".repeat(20))],
        ));
        messages.push(assistant(
            &format!("m{turn}b"),
            vec![text("`run` calls `step` once; nothing else happens there.")],
        ));
    }
    let mut request = ProviderRequest::new("gpt-4o-mini", messages);
    request.conversation_id = Some(Id::from("conv-bench"));
    request.system = Arc::from(
        ["stable", "project", "semi-stable", "volatile"]
            .map(|name| SystemSection::new(name, format!("The {name} section. ").repeat(40)))
            .to_vec(),
    );
    request.tools = Arc::from(
        (0..20)
            .map(|i| ToolSpec {
                name: format!("tool_{i:02}"),
                description: format!("Tool number {i}: does one thing well."),
                input_schema: json!({
                    "type": "object",
                    "required": ["path"],
                    "properties": {
                        "path": {"type": "string", "description": "A path under the root."},
                        "limit": {"type": "integer", "minimum": 1},
                    },
                }),
                concurrency_safe: true,
                capabilities: Vec::new(),
            })
            .collect::<Vec<_>>(),
    );
    request.max_output_tokens = Some(4096);
    request.temperature = Some(0.2);
    request
}

/// The long request's chat-completions body and its prompt-prefix record.
#[divan::bench]
fn encode_request(bencher: Bencher) {
    let instance = InstanceConfig::new("openai", "https://api.openai.com/v1");
    let request = long_request();
    bencher.bench_local(|| {
        let encoded = chat::encode(&instance, &request, None).unwrap();
        (
            encoded.body,
            encoded.prefix.finish("openai", &request.model),
        )
    });
}
