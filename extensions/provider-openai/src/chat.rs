//! Chat completions (`POST {base_url}/chat/completions`): the request body with its
//! prompt-prefix record, the streamed answer ([`ChatAssembler`]) and the whole answer of a
//! server that ignored `stream` ([`parse_completion`]).
//!
//! What is sent back of history: user text, assistant text and tool calls (arguments always
//! a JSON object, see [`sanitize_arguments`]), one `tool` message per tool result. Reasoning
//! is never sent back: DeepSeek answers 400 to a `reasoning_content` in input, OpenAI has
//! no field for it, and the other servers ignore it. Error and unknown chunks are left out.

use std::collections::{BTreeMap, VecDeque};

use dispatch_kernel::abi::{
    Message, ProviderError, ProviderEvent, ProviderRequest, StopReason, sanitize_arguments,
};
use dispatch_provider_kit::{Assembler, ErrorCtx, SseEvent};
use dispatch_wire::{Chunk, Role, Usage};
use serde::{Deserialize, Serialize};

use crate::config::InstanceConfig;
use crate::decode::{Text, event_data, parse};
use crate::encode::Encoded;

// ---------------------------------------------------------------------------------------
// Request

#[derive(Serialize)]
struct Tool<'a> {
    r#type: &'static str,
    function: Function<'a>,
}

#[derive(Serialize)]
struct Function<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a serde_json::Value,
}

/// One entry of `messages`, in wire key order (`role` first).
#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum OutMessage<'a> {
    System {
        content: &'a str,
    },
    User {
        content: String,
    },
    Assistant {
        content: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<OutCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: &'a str,
    },
}

impl OutMessage<'_> {
    fn role(&self) -> &'static str {
        match self {
            OutMessage::System { .. } => "system",
            OutMessage::User { .. } => "user",
            OutMessage::Assistant { .. } => "assistant",
            OutMessage::Tool { .. } => "tool",
        }
    }
}

#[derive(Serialize)]
struct OutCall<'a> {
    id: &'a str,
    r#type: &'static str,
    function: OutCallFunction<'a>,
}

#[derive(Serialize)]
struct OutCallFunction<'a> {
    name: &'a str,
    arguments: String,
}

/// The wire messages of one history message (none when it has nothing to send).
fn out_messages(message: &Message) -> Vec<OutMessage<'_>> {
    match message.role {
        Role::User => {
            let text = message.text();
            if text.is_empty() {
                Vec::new()
            } else {
                vec![OutMessage::User { content: text }]
            }
        }
        Role::Assistant => {
            let text = message.text();
            let tool_calls: Vec<OutCall<'_>> = message
                .tool_calls()
                .map(|(id, name, input)| OutCall {
                    id,
                    r#type: "function",
                    function: OutCallFunction {
                        name,
                        arguments: sanitize_arguments(input.clone()).0.to_string(),
                    },
                })
                .collect();
            if text.is_empty() && tool_calls.is_empty() {
                return Vec::new();
            }
            vec![OutMessage::Assistant {
                content: (!text.is_empty()).then_some(text),
                tool_calls,
            }]
        }
        Role::Tool => message
            .chunks
            .iter()
            .filter_map(|chunk| match chunk {
                Chunk::ToolResult {
                    tool_call_id,
                    output,
                    ..
                } => Some(OutMessage::Tool {
                    tool_call_id,
                    content: output,
                }),
                Chunk::Text { .. }
                | Chunk::Reasoning { .. }
                | Chunk::ToolCall { .. }
                | Chunk::Error { .. }
                | Chunk::Unknown => None,
            })
            .collect(),
    }
}

/// Serializes `request` for `instance`, key by key in a fixed order, feeding the
/// prompt-prefix builder the tools, each system section and each message's exact bytes.
/// `effort` is the `reasoning_effort` to send (already checked against the catalog).
pub fn encode(
    instance: &InstanceConfig,
    request: &ProviderRequest,
    effort: Option<&str>,
) -> serde_json::Result<Encoded> {
    let mut out = Encoded::open(&request.model)?;
    out.raw(b",\"stream\":true");
    if instance.include_usage {
        out.raw(b",\"stream_options\":{\"include_usage\":true}");
    }
    if let Some(max) = request.max_output_tokens {
        out.field(instance.max_tokens_field.as_str(), &max)?;
    }
    let effort = effort.map(|effort| ("reasoning_effort", effort));
    out.effort_or_temperature(effort, request.temperature)?;
    out.tools(&request.tools, |spec| Tool {
        r#type: "function",
        function: Function {
            name: &spec.name,
            description: &spec.description,
            parameters: &spec.input_schema,
        },
    })?;

    out.open_items("messages")?;
    if let Some(system) = request.system_text() {
        out.system_blocks(&request.system);
        out.item(None, &OutMessage::System { content: &system })?;
    }
    for message in &request.messages {
        for message in out_messages(message) {
            out.item(Some(message.role()), &message)?;
        }
    }
    Ok(out.close())
}

// ---------------------------------------------------------------------------------------
// Response

/// A chat completion chunk, or a whole completion (`message` instead of `delta`). Only the
/// fields Dispatch reads; everything else is ignored, and any field may be missing (an
/// absent `Option` is `None`). Strings that only feed other strings (tool-call ids, names,
/// argument fragments) borrow from the event's data.
///
/// `choices` stays a `Vec`: holding its one choice inline saves an allocation per chunk but
/// makes the chunk a few hundred bytes to move, which measured 10% slower
/// (`benches/stream.rs`).
#[derive(Deserialize)]
struct WireChunk<'a> {
    #[serde(borrow)]
    choices: Option<Vec<WireChoice<'a>>>,
    usage: Option<WireUsage>,
    error: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct WireChoice<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    delta: Option<WireDelta<'a>>,
    #[serde(borrow)]
    message: Option<WireDelta<'a>>,
    finish_reason: Option<String>,
}

/// A `delta` (streamed) or a `message` (whole). Text and reasoning are owned: each becomes
/// a provider event's string as it is.
#[derive(Deserialize)]
struct WireDelta<'a> {
    content: Option<String>,
    /// DeepSeek.
    reasoning_content: Option<String>,
    /// OpenRouter, Groq. (`reasoning_details`, which repeats it, is ignored.)
    reasoning: Option<String>,
    #[serde(borrow)]
    tool_calls: Option<Vec<WireCall<'a>>>,
}

impl WireDelta<'_> {
    fn reasoning(&mut self) -> Option<String> {
        self.reasoning_content
            .take()
            .filter(|r| !r.is_empty())
            .or_else(|| self.reasoning.take())
            .filter(|r| !r.is_empty())
    }
}

#[derive(Deserialize)]
struct WireCall<'a> {
    index: Option<u64>,
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    function: Option<WireCallFunction<'a>>,
}

#[derive(Deserialize)]
struct WireCallFunction<'a> {
    #[serde(borrow)]
    name: Option<Text<'a>>,
    #[serde(borrow)]
    arguments: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
    /// DeepSeek's name for the cached part of the prompt.
    prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    reasoning_tokens: Option<u64>,
}

impl WireUsage {
    /// OpenAI counts cached tokens inside `prompt_tokens`, as Dispatch's `inputTokens` does.
    fn to_usage(&self) -> Usage {
        let cached = self
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .or(self.prompt_cache_hit_tokens)
            .unwrap_or(0);
        Usage {
            input_tokens: self.prompt_tokens.unwrap_or(0),
            output_tokens: self.completion_tokens.unwrap_or(0),
            cache_read_tokens: cached,
            cache_write_tokens: 0,
            reasoning_tokens: self
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "stop" => StopReason::EndTurn,
        "tool_calls" | "function_call" => StopReason::ToolCalls,
        "length" => StopReason::MaxTokens,
        other => StopReason::Other(other.to_owned()),
    }
}

/// A tool call being assembled from its fragments.
#[derive(Default)]
struct PendingCall {
    id: String,
    name: String,
    arguments: String,
}

impl PendingCall {
    fn into_event(self) -> ProviderEvent {
        let arguments = if self.arguments.trim().is_empty() {
            "{}".to_owned()
        } else {
            self.arguments
        };
        ProviderEvent::ToolCall {
            id: self.id,
            name: self.name,
            arguments,
        }
    }
}

/// Assembles a chat-completions SSE stream: text and reasoning deltas as they come, tool
/// calls accumulated by index, the last usage, and `Finish` at `[DONE]` or the end of the
/// body (usage comes after `finish_reason` when `include_usage` is on).
pub struct ChatAssembler {
    ctx: ErrorCtx,
    calls: BTreeMap<u64, PendingCall>,
    /// The index of the call the last fragment went to, for servers that omit `index`.
    last_index: Option<u64>,
    usage: Option<Usage>,
    finish: Option<String>,
    done: bool,
}

impl ChatAssembler {
    pub fn new(ctx: ErrorCtx) -> ChatAssembler {
        ChatAssembler {
            ctx,
            calls: BTreeMap::new(),
            last_index: None,
            usage: None,
            finish: None,
            done: false,
        }
    }

    /// One chunk (streamed or whole): content events out at once, the rest remembered.
    fn chunk(&mut self, chunk: WireChunk<'_>, out: &mut VecDeque<ProviderEvent>) {
        if let Some(usage) = &chunk.usage {
            self.usage = Some(usage.to_usage());
        }
        let Some(choice) = chunk
            .choices
            .into_iter()
            .flatten()
            .find(|c| c.index.unwrap_or(0) == 0)
        else {
            return;
        };
        if let Some(mut delta) = choice.delta.or(choice.message) {
            if let Some(reasoning) = delta.reasoning() {
                out.push_back(ProviderEvent::ReasoningDelta(reasoning));
            }
            if let Some(text) = delta.content.take().filter(|t| !t.is_empty()) {
                out.push_back(ProviderEvent::TextDelta(text));
            }
            for call in delta.tool_calls.take().unwrap_or_default() {
                self.fragment(call);
            }
        }
        if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
            self.finish = Some(reason);
        }
    }

    fn fragment(&mut self, call: WireCall<'_>) {
        let id = call.id.map(|id| id.0).filter(|id| !id.is_empty());
        let index = call.index.unwrap_or_else(|| {
            // No index: a new id starts a new call, anything else continues the last one.
            let known = id
                .as_deref()
                .and_then(|id| self.calls.iter().find(|(_, c)| c.id == id).map(|(i, _)| *i));
            match (known, &id, self.last_index) {
                (Some(index), _, _) => index,
                (None, None, Some(last)) => last,
                (None, Some(_), _) | (None, None, None) => {
                    self.calls.keys().next_back().map_or(0, |last| last + 1)
                }
            }
        });
        self.last_index = Some(index);
        let pending = self.calls.entry(index).or_default();
        if let Some(id) = id {
            if pending.id.is_empty() {
                pending.id = id.into_owned();
            }
        }
        if let Some(function) = call.function {
            if let Some(name) = function.name.map(|n| n.0).filter(|n| !n.is_empty()) {
                if pending.name.is_empty() {
                    pending.name = name.into_owned();
                }
            }
            if let Some(arguments) = function.arguments {
                pending.arguments.push_str(&arguments.0);
            }
        }
    }

    /// Tool calls in index order, the last usage, then `Finish`.
    fn complete(&mut self, out: &mut VecDeque<ProviderEvent>) {
        let calls = std::mem::take(&mut self.calls);
        let called = !calls.is_empty();
        out.extend(calls.into_values().map(PendingCall::into_event));
        if let Some(usage) = self.usage.take() {
            out.push_back(ProviderEvent::Usage(usage));
        }
        let stop = match self.finish.take() {
            Some(reason) => stop_reason(&reason),
            // `[DONE]` without a finish reason: the server says the answer is complete.
            None if called => StopReason::ToolCalls,
            None => StopReason::EndTurn,
        };
        out.push_back(ProviderEvent::Finish(stop));
        self.done = true;
    }
}

impl Assembler for ChatAssembler {
    fn event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<(), ProviderError> {
        let Some(data) = event_data(&event, &self.ctx)? else {
            return Ok(());
        };
        if data == "[DONE]" {
            self.complete(out);
            return Ok(());
        }
        let chunk: WireChunk<'_> = parse(data, &self.ctx)?;
        if chunk.error.is_some() {
            return Err(self.ctx.stream_error(data));
        }
        self.chunk(chunk, out);
        Ok(())
    }

    fn end(&mut self, out: &mut VecDeque<ProviderEvent>) -> Result<(), ProviderError> {
        if self.done {
            return Ok(());
        }
        if self.finish.is_none() {
            return Err(self.ctx.disconnected());
        }
        self.complete(out);
        Ok(())
    }

    fn finished(&self) -> bool {
        self.done
    }
}

/// A whole (non-streamed) chat completion, as the events its stream would have given:
/// reasoning, text, tool calls, usage, `Finish`. An `{"error": ...}` body is a stream error.
pub fn parse_completion(body: &str, ctx: &ErrorCtx) -> Result<Vec<ProviderEvent>, ProviderError> {
    let completion: WireChunk<'_> = parse(body, ctx)?;
    if completion.error.is_some() {
        return Err(ctx.stream_error(body));
    }
    if completion.choices.as_ref().is_none_or(Vec::is_empty) {
        return Err(ctx.malformed("the completion has no choices"));
    }
    let mut assembler = ChatAssembler::new(ctx.clone());
    let mut out = VecDeque::new();
    assembler.chunk(completion, &mut out);
    assembler.complete(&mut out);
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use expect_test::{Expect, expect};

    use super::*;
    use crate::decode::replay;

    /// Replays `events` (`event:` name, `data:`) through a chat assembler.
    #[track_caller]
    fn check(events: &[(&str, &str)], expect: Expect) {
        expect.assert_eq(&replay(ChatAssembler::new, events));
    }

    const M: &str = "message";

    #[test]
    fn tool_calls_assemble_by_index_and_flush_before_usage_and_finish() {
        check(
            &[
                (
                    M,
                    r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"g","arguments":""}}]}}]}"#,
                ),
                (
                    M,
                    r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{\"x\""}}]}}]}"#,
                ),
                (
                    M,
                    r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}},{"index":1,"function":{"name":"g"}}]}}]}"#,
                ),
                (
                    M,
                    r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":null}"#,
                ),
                (
                    M,
                    r#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}}"#,
                ),
                (M, "[DONE]"),
                (M, r#"{"choices":[{"delta":{"content":"after done"}}]}"#),
            ],
            expect![[r#"
                ToolCall { id: "a", name: "f", arguments: "{\"x\":1}" }
                ToolCall { id: "b", name: "g", arguments: "{}" }
                Usage(Usage { input_tokens: 10, output_tokens: 2, cache_read_tokens: 4, cache_write_tokens: 0, reasoning_tokens: 0 })
                Finish(ToolCalls)"#]],
        );
    }

    #[test]
    fn calls_without_an_index_are_told_apart_by_id() {
        check(
            &[
                (
                    M,
                    r#"{"choices":[{"delta":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{\"p\":"}}]}}]}"#,
                ),
                (
                    M,
                    r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"1}"}}]}}]}"#,
                ),
                (
                    M,
                    r#"{"choices":[{"delta":{"tool_calls":[{"id":"b","function":{"name":"f","arguments":"{}"}}]}}]}"#,
                ),
                (M, r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#),
            ],
            expect![[r#"
                ToolCall { id: "a", name: "f", arguments: "{\"p\":1}" }
                ToolCall { id: "b", name: "f", arguments: "{}" }
                Finish(EndTurn)"#]],
        );
    }

    #[test]
    fn reasoning_prefers_reasoning_content_and_skips_empty_deltas() {
        check(
            &[
                (
                    M,
                    r#"{"choices":[{"delta":{"role":"assistant","content":"","reasoning":null,"reasoning_details":[]}}]}"#,
                ),
                (
                    M,
                    r#"{"choices":[{"delta":{"reasoning_content":"deep","reasoning":"dup"}}]}"#,
                ),
                (
                    M,
                    r#"{"choices":[{"delta":{"reasoning":"router","reasoning_details":[{"text":"router"}]}}]}"#,
                ),
                (
                    M,
                    r#"{"choices":[{"delta":{"content":"hi"},"finish_reason":"length"}]}"#,
                ),
            ],
            expect![[r#"
                ReasoningDelta("deep")
                ReasoningDelta("router")
                TextDelta("hi")
                Finish(MaxTokens)"#]],
        );
    }

    #[test]
    fn endings() {
        // Finish reason, then the body ends without `[DONE]` (DeepSeek).
        check(
            &[(
                M,
                r#"{"choices":[{"delta":{"content":"x"},"finish_reason":"content_filter"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"prompt_cache_hit_tokens":2}}"#,
            )],
            expect![[r#"
                TextDelta("x")
                Usage(Usage { input_tokens: 3, output_tokens: 1, cache_read_tokens: 2, cache_write_tokens: 0, reasoning_tokens: 0 })
                Finish(Other("content_filter"))"#]],
        );
        // No finish reason and no `[DONE]`: cut off.
        check(
            &[(M, r#"{"choices":[{"delta":{"content":"x"}}]}"#)],
            expect![[r#"
                TextDelta("x")
                Err(inst (m): the stream ended before the response was complete, retryable=true, Some("disconnect"))"#]],
        );
        // `[DONE]` without a finish reason: complete.
        check(&[(M, "[DONE]")], expect!["Finish(EndTurn)"]);
    }

    #[test]
    fn errors() {
        check(
            &[(
                M,
                r#"{"error":{"message":"Overloaded","type":"overloaded_error"}}"#,
            )],
            expect![[
                r#"Err(inst (m): stream error overloaded_error: Overloaded, retryable=true, Some("overloaded_error"))"#
            ]],
        );
        check(
            &[(
                "error",
                r#"{"error":{"message":"bad","type":"invalid_request_error","code":"tool_use_failed"}}"#,
            )],
            expect![[
                r#"Err(inst (m): stream error tool_use_failed: bad, retryable=false, Some("tool_use_failed"))"#
            ]],
        );
        check(
            &[(M, r#"{"choices":[{"delta":{"content":"unterminated"#)],
            expect![[
                r#"Err(inst (m): malformed stream event: EOF while parsing a string at line 1 column 45 in `{"choices":[{"delta":{"content":"unterminated`, retryable=false, Some("malformed_event"))"#
            ]],
        );
    }
}
