//! A [`ProviderRequest`] as the bytes of an Anthropic Messages request, and its
//! prompt-prefix record, built in one pass.
//!
//! The body is written by hand so its bytes are a function of the request alone: keys in a
//! fixed order (`model`, `max_tokens`, `stream`, `thinking`, `temperature`, `tools`,
//! `system`, `messages`), tools in the kernel's order (sorted by name), JSON values through
//! `serde_json` (whose maps are sorted).
//!
//! Each cacheable block (the tools array, each system section, each message) is first
//! serialized without its cache marker: those are the canonical bytes the prompt cache keys
//! on, fed to the [`PrefixBuilder`]. When the block carries a breakpoint, the marker bytes
//! are spliced in front of its last closing brace while copying it into the body, so a
//! block is serialized once. A message's bytes therefore depend only on the message and on
//! whether it carries a breakpoint: adding messages never changes an earlier one.
//!
//! Breakpoints (at most [`MAX_BREAKPOINTS`], Anthropic's limit): the last tool, the last
//! system block, and the last block of each of the last two `user` messages (tool-result
//! messages included). Two moving message breakpoints mean each request writes the cache up
//! to its newest user message and reads it up to the previous one, which the request before
//! wrote.

use dispatch_kernel::abi::{Message, ProviderRequest, SystemSection, sanitize_arguments};
use dispatch_provider_kit::PrefixBuilder;
use dispatch_wire::{Chunk, ModelInfo, PrefixBlockRef, PromptPrefix, ReasoningEffort, Role};
use serde::Serialize;

/// The bytes that mark a block as a cache breakpoint, spliced before its closing brace.
pub(crate) const MARKER: &[u8] = br#","cache_control":{"type":"ephemeral"}"#;

/// Anthropic refuses a request with more blocks carrying `cache_control`.
pub(crate) const MAX_BREAKPOINTS: usize = 4;

/// Message breakpoints: the last block of each of the last this many user messages.
const MESSAGE_BREAKPOINTS: usize = 2;

/// Anthropic's smallest thinking budget.
const MIN_THINKING_BUDGET: u32 = 1024;

/// Room kept for the answer when the budget is clamped to the model's output limit.
const ANSWER_RESERVE: u32 = 1024;

/// Added to the budget when `max_tokens` had to be raised above it.
const ANSWER_HEADROOM: u32 = 4096;

/// The thinking budget of each reasoning effort, in tokens.
pub fn thinking_budget(effort: ReasoningEffort) -> u32 {
    match effort {
        ReasoningEffort::Low => 4096,
        ReasoningEffort::Medium => 10_240,
        ReasoningEffort::High => 16_384,
        ReasoningEffort::Xhigh => 32_768,
        ReasoningEffort::Max => 65_536,
    }
}

/// `max_tokens` and the thinking budget of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub max_tokens: u32,
    /// `Some` when extended thinking is on.
    pub thinking_budget: Option<u32>,
}

impl Limits {
    /// The rule, with `cap` the catalog's output limit of the model:
    /// - `max_tokens` is the request's `max_output_tokens`, else `cap`;
    /// - thinking is on only when the request sets a reasoning effort and the catalog says
    ///   the model accepts one; its budget is [`thinking_budget`], clamped to at most
    ///   `cap - 1024` (room for the answer) and at least 1024 (Anthropic's minimum);
    /// - when thinking, `max_tokens` must exceed the budget (Anthropic counts thinking in
    ///   `max_tokens`): if it does not, it is raised to `min(budget + 4096, cap)`, and to
    ///   `budget + 1` should even that not exceed the budget (a model whose cap is under
    ///   2048 tokens).
    pub(crate) fn of(request: &ProviderRequest, info: &ModelInfo) -> Limits {
        let cap = u32::try_from(info.max_output).unwrap_or(u32::MAX).max(1);
        let requested = request.max_output_tokens.unwrap_or(cap).max(1);
        let Some(effort) = request.reasoning_effort.filter(|_| info.reasoning) else {
            return Limits {
                max_tokens: requested,
                thinking_budget: None,
            };
        };
        let budget = thinking_budget(effort)
            .min(cap.saturating_sub(ANSWER_RESERVE))
            .max(MIN_THINKING_BUDGET);
        let max_tokens = if requested > budget {
            requested
        } else {
            budget
                .saturating_add(ANSWER_HEADROOM)
                .min(cap)
                .max(budget.saturating_add(1))
        };
        Limits {
            max_tokens,
            thinking_budget: Some(budget),
        }
    }
}

/// A serialized request.
pub(crate) struct Serialized {
    pub body: Vec<u8>,
    /// The prompt-prefix record so far (finish it with the instance and model).
    pub prefix: PrefixBuilder,
    pub breakpoints: usize,
}

/// Serializes `request` for the model described by `info`.
pub(crate) fn serialize(
    request: &ProviderRequest,
    info: &ModelInfo,
) -> serde_json::Result<Serialized> {
    let limits = Limits::of(request, info);
    let mut body = Vec::with_capacity(4096);
    let mut prefix = PrefixBuilder::new();
    let mut breakpoints = 0;

    body.extend_from_slice(b"{\"model\":");
    json(&mut body, &request.model)?;
    body.extend_from_slice(b",\"max_tokens\":");
    body.extend_from_slice(limits.max_tokens.to_string().as_bytes());
    body.extend_from_slice(b",\"stream\":true");
    match (limits.thinking_budget, request.temperature) {
        (Some(budget), _) => {
            body.extend_from_slice(b",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":");
            body.extend_from_slice(budget.to_string().as_bytes());
            body.push(b'}');
        }
        (None, Some(temperature)) => {
            body.extend_from_slice(b",\"temperature\":");
            json(&mut body, &temperature)?;
        }
        (None, None) => {}
    }

    if !request.tools.is_empty() {
        body.extend_from_slice(b",\"tools\":");
        let start = body.len();
        body.push(b'[');
        for (i, tool) in request.tools.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(b"{\"name\":");
            json(&mut body, &tool.name)?;
            body.extend_from_slice(b",\"description\":");
            json(&mut body, &tool.description)?;
            body.extend_from_slice(b",\"input_schema\":");
            json(&mut body, &tool.input_schema)?;
            body.push(b'}');
        }
        body.push(b']');
        let count = u32::try_from(request.tools.len()).unwrap_or(u32::MAX);
        prefix.push(PrefixBlockRef::Tools { count }, &body[start..], true);
        // `[..., {...}]`: the marker goes before the last tool's closing brace.
        let at = body.len() - 2;
        debug_assert_eq!(&body[at..], b"}]");
        body.splice(at..at, MARKER.iter().copied());
        breakpoints += 1;
    }

    let sections: Vec<(usize, &SystemSection)> = request
        .system
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.text.trim().is_empty())
        .collect();
    if !sections.is_empty() {
        body.extend_from_slice(b",\"system\":[");
        let mut block = Vec::new();
        for (n, (index, section)) in sections.iter().enumerate() {
            if n > 0 {
                body.push(b',');
            }
            block.clear();
            block.extend_from_slice(b"{\"type\":\"text\",\"text\":");
            json(&mut block, &*section.text)?;
            block.push(b'}');
            let last = n + 1 == sections.len();
            let at = PrefixBlockRef::System {
                index: u32::try_from(*index).unwrap_or(u32::MAX),
                name: section.name.to_string(),
            };
            prefix.push(at, &block, last);
            if last {
                breakpoints += 1;
            }
            copy_block(&mut body, &block, last, 1);
        }
        body.push(b']');
    }

    let messages = request
        .messages
        .iter()
        .map(message)
        .collect::<serde_json::Result<Vec<_>>>()?;
    let messages: Vec<(&'static str, Vec<u8>)> = messages.into_iter().flatten().collect();
    let marked: Vec<usize> = messages
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, (role, _))| *role == "user")
        .map(|(i, _)| i)
        .take(MESSAGE_BREAKPOINTS)
        .collect();
    body.extend_from_slice(b",\"messages\":[");
    for (i, (role, bytes)) in messages.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        let breakpoint = marked.contains(&i);
        let at = PrefixBlockRef::Message {
            index: u32::try_from(i).unwrap_or(u32::MAX),
            role: (*role).to_owned(),
        };
        prefix.push(at, bytes, breakpoint);
        if breakpoint {
            breakpoints += 1;
        }
        // `{"role":..,"content":[..., {...}]}`: before the last block's closing brace.
        copy_block(&mut body, bytes, breakpoint, 3);
    }
    body.extend_from_slice(b"]}");

    debug_assert!(
        breakpoints <= MAX_BREAKPOINTS,
        "{breakpoints} cache breakpoints in one request"
    );
    debug_assert_eq!(breakpoints, prefix.breakpoints());
    Ok(Serialized {
        body,
        prefix,
        breakpoints,
    })
}

/// The body of `request` for the model `info` describes, and its prompt-prefix record as
/// instance `provider` makes it before comparing it with the conversation's previous one:
/// what [`AnthropicProvider`](crate::AnthropicProvider) sends. Public for the benchmark.
pub fn encode_request(
    request: &ProviderRequest,
    info: &ModelInfo,
    provider: &str,
) -> serde_json::Result<(Vec<u8>, PromptPrefix)> {
    let Serialized { body, prefix, .. } = serialize(request, info)?;
    Ok((body, prefix.finish(provider, &request.model)))
}

/// Appends `block` to `body`, with the marker spliced `from_end` bytes before its end when
/// it carries a breakpoint.
fn copy_block(body: &mut Vec<u8>, block: &[u8], breakpoint: bool, from_end: usize) {
    if !breakpoint {
        body.extend_from_slice(block);
        return;
    }
    let at = block.len().saturating_sub(from_end);
    debug_assert_eq!(block.get(at), Some(&b'}'));
    body.extend_from_slice(&block[..at]);
    body.extend_from_slice(MARKER);
    body.extend_from_slice(&block[at..]);
}

fn json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> serde_json::Result<()> {
    serde_json::to_writer(&mut *out, value)
}

/// One content block as sent.
enum Block<'a> {
    Text(&'a str),
    Thinking {
        text: &'a str,
        signature: &'a str,
    },
    Redacted(&'a str),
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a serde_json::Value,
    },
    ToolResult {
        id: &'a str,
        content: &'a str,
        is_error: bool,
    },
}

/// What of `chunk` a message of `role` sends, if anything: Anthropic rejects empty text,
/// unsigned thinking, and blocks in the wrong role; failures in history (`Error`) and chunks
/// of a newer build (`Unknown`) are never sent.
fn block(role: Role, chunk: &Chunk) -> Option<Block<'_>> {
    match (role, chunk) {
        (Role::User | Role::Assistant, Chunk::Text { text }) => {
            (!text.trim().is_empty()).then_some(Block::Text(text))
        }
        (
            Role::Assistant,
            Chunk::Reasoning {
                text,
                signature,
                redacted,
            },
        ) => match (redacted, signature) {
            (Some(data), _) => Some(Block::Redacted(data)),
            (None, Some(signature)) if !signature.is_empty() => {
                Some(Block::Thinking { text, signature })
            }
            (None, Some(_) | None) => None,
        },
        (
            Role::Assistant,
            Chunk::ToolCall {
                tool_call_id,
                tool_name,
                input,
            },
        ) => Some(Block::ToolUse {
            id: tool_call_id,
            name: tool_name,
            input,
        }),
        (
            Role::Tool,
            Chunk::ToolResult {
                tool_call_id,
                output,
                is_error,
                ..
            },
        ) => Some(Block::ToolResult {
            id: tool_call_id,
            content: output,
            is_error: *is_error,
        }),
        (Role::Tool, Chunk::Text { .. })
        | (Role::User | Role::Tool, Chunk::Reasoning { .. } | Chunk::ToolCall { .. })
        | (Role::User | Role::Assistant, Chunk::ToolResult { .. })
        | (_, Chunk::Error { .. } | Chunk::Unknown) => None,
    }
}

/// A message's role on the wire and its bytes without markers; `None` when it has nothing
/// to send.
fn message(message: &Message) -> serde_json::Result<Option<(&'static str, Vec<u8>)>> {
    let role = match message.role {
        Role::User | Role::Tool => "user",
        Role::Assistant => "assistant",
    };
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"role\":\"");
    out.extend_from_slice(role.as_bytes());
    out.extend_from_slice(b"\",\"content\":[");
    let mut blocks = 0;
    for chunk in &message.chunks {
        let Some(block) = block(message.role, chunk) else {
            continue;
        };
        if blocks > 0 {
            out.push(b',');
        }
        blocks += 1;
        match block {
            Block::Text(text) => {
                out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
                json(&mut out, text)?;
            }
            Block::Thinking { text, signature } => {
                out.extend_from_slice(b"{\"type\":\"thinking\",\"thinking\":");
                json(&mut out, text)?;
                out.extend_from_slice(b",\"signature\":");
                json(&mut out, signature)?;
            }
            Block::Redacted(data) => {
                out.extend_from_slice(b"{\"type\":\"redacted_thinking\",\"data\":");
                json(&mut out, data)?;
            }
            Block::ToolUse { id, name, input } => {
                out.extend_from_slice(b"{\"type\":\"tool_use\",\"id\":");
                json(&mut out, id)?;
                out.extend_from_slice(b",\"name\":");
                json(&mut out, name)?;
                out.extend_from_slice(b",\"input\":");
                // Stored arguments that never parsed must not make the request a 400.
                if input.is_object() {
                    json(&mut out, input)?;
                } else {
                    json(&mut out, &sanitize_arguments(input.clone()).0)?;
                }
            }
            Block::ToolResult {
                id,
                content,
                is_error,
            } => {
                out.extend_from_slice(b"{\"type\":\"tool_result\",\"tool_use_id\":");
                json(&mut out, id)?;
                // An empty result is sent without `content` (Anthropic refuses empty text).
                if !content.is_empty() {
                    out.extend_from_slice(b",\"content\":");
                    json(&mut out, content)?;
                }
                if is_error {
                    out.extend_from_slice(b",\"is_error\":true");
                }
            }
        }
        out.push(b'}');
    }
    if blocks == 0 {
        return Ok(None);
    }
    out.extend_from_slice(b"]}");
    Ok(Some((role, out)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use dispatch_kernel::abi::ToolSpec;
    use dispatch_wire::{Id, ModelPricing};
    use pretty_assertions::assert_eq;
    use serde_json::{Value, json};

    use super::*;

    fn info(max_output: u64, reasoning: bool) -> ModelInfo {
        ModelInfo {
            description: None,
            id: "claude-test".to_owned(),
            provider: "anthropic".to_owned(),
            context_window: 200_000,
            max_output,
            pricing: ModelPricing::default(),
            reasoning,
            known: true,
        }
    }

    fn tool(name: &str) -> ToolSpec {
        ToolSpec {
            name: name.to_owned(),
            description: format!("The {name} tool"),
            input_schema: json!({"type": "object", "properties": {"b": {"type": "string"}, "a": {"type": "integer"}}}),
            concurrency_safe: false,
            capabilities: Vec::new(),
        }
    }

    fn user(n: usize, text: &str) -> Message {
        Message::user(Id::from(format!("m{n}")), text)
    }

    fn assistant(n: usize, chunks: Vec<Chunk>) -> Message {
        Message::new(Id::from(format!("m{n}")), Role::Assistant, chunks)
    }

    fn call(id: &str, input: Value) -> Chunk {
        Chunk::ToolCall {
            tool_call_id: Id::from(id),
            tool_name: "read".to_owned(),
            input,
        }
    }

    fn result(n: usize, id: &str, output: &str, is_error: bool) -> Message {
        Message::new(
            Id::from(format!("m{n}")),
            Role::Tool,
            vec![Chunk::ToolResult {
                tool_call_id: Id::from(id),
                tool_name: "read".to_owned(),
                output: output.to_owned(),
                is_error,
            }],
        )
    }

    fn request(tools: &[&str], system: &[&str], messages: Vec<Message>) -> ProviderRequest {
        let mut request = ProviderRequest::new("claude-test", messages);
        request.tools = Arc::from(tools.iter().map(|t| tool(t)).collect::<Vec<_>>());
        request.system = Arc::from(
            system
                .iter()
                .enumerate()
                .map(|(i, text)| SystemSection::new(format!("s{i}"), *text))
                .collect::<Vec<_>>(),
        );
        request
    }

    fn body(request: &ProviderRequest) -> String {
        let serialized = serialize(request, &info(8192, true)).unwrap();
        String::from_utf8(serialized.body).unwrap()
    }

    /// Every block carrying `cache_control`, as `(where, index)`, counted like Anthropic.
    fn markers(body: &Value) -> Vec<String> {
        let mut out = Vec::new();
        for (i, tool) in body["tools"].as_array().into_iter().flatten().enumerate() {
            if tool.get("cache_control").is_some() {
                out.push(format!("tool {i}"));
            }
        }
        for (i, block) in body["system"].as_array().into_iter().flatten().enumerate() {
            if block.get("cache_control").is_some() {
                out.push(format!("system {i}"));
            }
        }
        for (m, message) in body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            for (b, block) in message["content"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                if block.get("cache_control").is_some() {
                    out.push(format!("message {m} block {b}"));
                }
            }
        }
        out
    }

    #[track_caller]
    fn check(request: &ProviderRequest, expect: expect_test::Expect) {
        expect.assert_eq(&body(request));
    }

    #[test]
    fn a_request_with_everything() {
        let mut request = request(
            &["grep", "read"],
            &["You are terse.", "Today is Monday."],
            vec![
                user(0, "Read a.rs"),
                assistant(
                    1,
                    vec![
                        Chunk::Reasoning {
                            text: "Plan.".to_owned(),
                            signature: Some("c2ln".to_owned()),
                            redacted: None,
                        },
                        Chunk::Reasoning {
                            text: String::new(),
                            signature: None,
                            redacted: Some("ZGF0YQ==".to_owned()),
                        },
                        Chunk::Reasoning {
                            text: "unsigned".to_owned(),
                            signature: None,
                            redacted: None,
                        },
                        Chunk::Text {
                            text: "Reading.".to_owned(),
                        },
                        Chunk::Text {
                            text: String::new(),
                        },
                        call("toolu_1", json!({"path": "a.rs"})),
                        call("toolu_2", json!("{not json")),
                    ],
                ),
                Message::new(
                    Id::from("m2"),
                    Role::Tool,
                    vec![
                        Chunk::ToolResult {
                            tool_call_id: Id::from("toolu_1"),
                            tool_name: "read".to_owned(),
                            output: "fn main() {}".to_owned(),
                            is_error: false,
                        },
                        Chunk::ToolResult {
                            tool_call_id: Id::from("toolu_2"),
                            tool_name: "read".to_owned(),
                            output: "bad arguments".to_owned(),
                            is_error: true,
                        },
                    ],
                ),
                assistant(
                    3,
                    vec![
                        Chunk::Text {
                            text: "Done.".to_owned(),
                        },
                        Chunk::Error {
                            message: "x".to_owned(),
                            code: None,
                        },
                    ],
                ),
                user(4, "Thanks"),
            ],
        );
        request.temperature = Some(0.7);
        check(
            &request,
            expect_test::expect![[
                r#"{"model":"claude-test","max_tokens":8192,"stream":true,"temperature":0.7,"tools":[{"name":"grep","description":"The grep tool","input_schema":{"properties":{"a":{"type":"integer"},"b":{"type":"string"}},"type":"object"}},{"name":"read","description":"The read tool","input_schema":{"properties":{"a":{"type":"integer"},"b":{"type":"string"}},"type":"object"},"cache_control":{"type":"ephemeral"}}],"system":[{"type":"text","text":"You are terse."},{"type":"text","text":"Today is Monday.","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":[{"type":"text","text":"Read a.rs"}]},{"role":"assistant","content":[{"type":"thinking","thinking":"Plan.","signature":"c2ln"},{"type":"redacted_thinking","data":"ZGF0YQ=="},{"type":"text","text":"Reading."},{"type":"tool_use","id":"toolu_1","name":"read","input":{"path":"a.rs"}},{"type":"tool_use","id":"toolu_2","name":"read","input":{"_malformed_arguments":"{not json"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"fn main() {}"},{"type":"tool_result","tool_use_id":"toolu_2","content":"bad arguments","is_error":true,"cache_control":{"type":"ephemeral"}}]},{"role":"assistant","content":[{"type":"text","text":"Done."}]},{"role":"user","content":[{"type":"text","text":"Thanks","cache_control":{"type":"ephemeral"}}]}]}"#
            ]],
        );
    }

    #[test]
    fn thinking_replaces_temperature_and_a_minimal_request_has_no_tools_or_system() {
        let mut request = request(&[], &[], vec![user(0, "hi")]);
        request.temperature = Some(0.5);
        request.reasoning_effort = Some(ReasoningEffort::Low);
        request.max_output_tokens = Some(2000);
        check(
            &request,
            expect_test::expect![[
                r#"{"model":"claude-test","max_tokens":8192,"stream":true,"thinking":{"type":"enabled","budget_tokens":4096},"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}]}"#
            ]],
        );
    }

    #[test]
    fn the_thinking_budget_rule() {
        use ReasoningEffort::{High, Low, Max, Medium, Xhigh};
        // Catalog cap, model takes an effort, effort, requested max → max_tokens, budget.
        let cases = [
            // No effort, or a model that takes none: no thinking.
            (64_000, true, None, None, 64_000, None),
            (64_000, false, Some(High), None, 64_000, None),
            (64_000, false, None, Some(100), 100, None),
            // The ladder under a large cap.
            (128_000, true, Some(Low), None, 128_000, Some(4096)),
            (128_000, true, Some(Medium), None, 128_000, Some(10_240)),
            (128_000, true, Some(High), None, 128_000, Some(16_384)),
            (128_000, true, Some(Xhigh), None, 128_000, Some(32_768)),
            (128_000, true, Some(Max), None, 128_000, Some(65_536)),
            // Clamped to cap - 1024.
            (64_000, true, Some(Max), None, 64_000, Some(62_976)),
            (32_000, true, Some(Xhigh), None, 32_000, Some(30_976)),
            // A small requested max_tokens is raised above the budget.
            (64_000, true, Some(High), Some(1000), 20_480, Some(16_384)),
            (20_000, true, Some(High), Some(1000), 20_000, Some(16_384)),
            // A larger requested max_tokens stays.
            (64_000, true, Some(Low), Some(30_000), 30_000, Some(4096)),
            // A tiny cap: the minimum budget, max_tokens just above it.
            (1500, true, Some(High), None, 1500, Some(1024)),
            (1024, true, Some(High), None, 1025, Some(1024)),
        ];
        for (cap, reasoning, effort, max, max_tokens, budget) in cases {
            let mut request = ProviderRequest::new("m", Vec::new());
            request.reasoning_effort = effort;
            request.max_output_tokens = max;
            let l = Limits::of(&request, &info(cap, reasoning));
            if let Some(budget) = l.thinking_budget {
                assert!(l.max_tokens > budget, "{l:?}");
                assert!(budget >= MIN_THINKING_BUDGET, "{l:?}");
            }
            assert_eq!(
                (l.max_tokens, l.thinking_budget),
                (max_tokens, budget),
                "cap {cap}, reasoning {reasoning}, effort {effort:?}, max {max:?}"
            );
        }
    }

    #[test]
    fn never_more_than_four_breakpoints_over_many_shapes() {
        // Message kinds: user text, blank user text (left out), assistant text, assistant
        // with only unsigned reasoning (left out), tool results.
        let kinds = 5usize;
        let mut shapes = 0;
        for tools in 0..3usize {
            for sections in 0..3usize {
                for len in 0..=5u32 {
                    for code in 0..kinds.pow(len) {
                        let mut messages = Vec::new();
                        let mut c = code;
                        for n in 0..len as usize {
                            let kind = c % kinds;
                            c /= kinds;
                            messages.push(match kind {
                                0 => user(n, "q"),
                                1 => user(n, "  "),
                                2 => assistant(
                                    n,
                                    vec![
                                        Chunk::Text {
                                            text: "a".to_owned(),
                                        },
                                        call(&format!("t{n}"), json!({})),
                                    ],
                                ),
                                3 => assistant(
                                    n,
                                    vec![Chunk::Reasoning {
                                        text: "r".to_owned(),
                                        signature: None,
                                        redacted: None,
                                    }],
                                ),
                                _ => result(n, &format!("t{n}"), "out", false),
                            });
                        }
                        let names: Vec<String> = (0..tools).map(|i| format!("t{i}")).collect();
                        let names: Vec<&str> = names.iter().map(String::as_str).collect();
                        let texts = vec!["sys"; sections];
                        let request = request(&names, &texts, messages);
                        let serialized = serialize(&request, &info(8192, false)).unwrap();
                        let parsed: Value = serde_json::from_slice(&serialized.body).unwrap();
                        let found = markers(&parsed);
                        let users = parsed["messages"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .filter(|m| m["role"] == "user")
                            .count();
                        let expected = usize::from(tools > 0)
                            + usize::from(sections > 0)
                            + users.min(MESSAGE_BREAKPOINTS);
                        assert_eq!(found.len(), expected, "{found:?}");
                        assert!(found.len() <= MAX_BREAKPOINTS, "{found:?}");
                        assert_eq!(serialized.breakpoints, found.len());
                        let raw = String::from_utf8(serialized.body).unwrap();
                        assert_eq!(raw.matches("cache_control").count(), found.len());
                        shapes += 1;
                    }
                }
            }
        }
        assert!(shapes > 20_000, "{shapes}");
    }

    #[test]
    fn markers_sit_on_the_last_tool_system_block_and_last_two_user_messages() {
        let request = request(
            &["a", "b", "c"],
            &["one", "", "three"],
            vec![
                user(0, "q1"),
                assistant(1, vec![call("t1", json!({}))]),
                result(2, "t1", "r1", false),
                assistant(3, vec![call("t2", json!({}))]),
                result(4, "t2", "", false),
                user(5, "steer"),
            ],
        );
        let parsed: Value = serde_json::from_str(&body(&request)).unwrap();
        assert_eq!(
            markers(&parsed),
            [
                "tool 2",
                "system 1",
                "message 4 block 0",
                "message 5 block 0"
            ]
        );
        assert_eq!(
            parsed["messages"][4]["content"][0],
            json!({"type": "tool_result", "tool_use_id": "t2", "cache_control": {"type": "ephemeral"}}),
            "an empty result has no content"
        );
    }

    #[test]
    fn the_same_request_gives_the_same_bytes_and_earlier_messages_never_change() {
        let history = vec![
            user(0, "q1"),
            assistant(1, vec![call("t1", json!({"z": 1, "a": [1, 2]}))]),
            result(2, "t1", "r1", false),
            assistant(
                3,
                vec![Chunk::Text {
                    text: "a1".to_owned(),
                }],
            ),
            user(4, "q2"),
        ];
        let first = request(&["x"], &["sys"], history.clone());
        assert_eq!(body(&first), body(&first.clone()));
        let mut longer = history.clone();
        longer.push(assistant(5, vec![call("t2", json!({}))]));
        longer.push(result(6, "t2", "r2", true));
        let second = request(&["x"], &["sys"], longer);
        // Markers removed, the first request is a prefix of the second up to its last
        // message's last block.
        let strip = |s: String| s.replace(std::str::from_utf8(MARKER).unwrap(), "");
        let (a, b) = (strip(body(&first)), strip(body(&second)));
        let cut = a.len() - "}]}]}".len();
        assert_eq!(&b[..cut], &a[..cut]);
        // Message by message: the record's hashes of shared messages are equal.
        let pa = serialize(&first, &info(8192, false))
            .unwrap()
            .prefix
            .finish("p", "m");
        let pb = serialize(&second, &info(8192, false))
            .unwrap()
            .prefix
            .finish("p", "m");
        for (x, y) in pa.blocks.iter().zip(&pb.blocks) {
            assert_eq!(
                (&x.at, &x.hash, &x.prefix_hash),
                (&y.at, &y.hash, &y.prefix_hash)
            );
        }
        assert_eq!(pb.blocks.len(), pa.blocks.len() + 2);
    }

    #[test]
    fn the_prefix_record_has_one_block_per_tool_list_section_and_message() {
        let request = request(
            &["a", "b"],
            &["one", "two"],
            vec![
                user(0, "q"),
                assistant(1, vec![call("t", json!({}))]),
                result(2, "t", "r", false),
            ],
        );
        let record = serialize(&request, &info(8192, false))
            .unwrap()
            .prefix
            .finish("anthropic", "claude-test");
        let summary: Vec<(PrefixBlockRef, bool)> = record
            .blocks
            .iter()
            .map(|b| (b.at.clone(), b.breakpoint))
            .collect();
        let message = |index, role: &str| PrefixBlockRef::Message {
            index,
            role: role.to_owned(),
        };
        assert_eq!(
            summary,
            [
                (PrefixBlockRef::Tools { count: 2 }, true),
                (
                    PrefixBlockRef::System {
                        index: 0,
                        name: "s0".to_owned()
                    },
                    false
                ),
                (
                    PrefixBlockRef::System {
                        index: 1,
                        name: "s1".to_owned()
                    },
                    true
                ),
                (message(0, "user"), true),
                (message(1, "assistant"), false),
                (message(2, "user"), true),
            ]
        );
        // The blocks' bytes are the body's without markers.
        let body = body(&request);
        let stripped = body.replace(std::str::from_utf8(MARKER).unwrap(), "");
        let block_bytes: u64 = record.blocks.iter().map(|b| b.bytes).sum();
        assert_eq!(record.total_bytes, block_bytes);
        assert!((stripped.len() as u64) > block_bytes);
    }
}
