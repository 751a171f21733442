//! OpenAI's Responses API (`POST {base_url}/responses`, instances with `api = "responses"`):
//! the request body with its prompt-prefix record, the streamed answer
//! ([`ResponsesAssembler`]) and a whole answer ([`parse_response`]).
//!
//! Requests are stateless (`store: false`, the whole history in `input`). Reasoning is never
//! sent back: with `store: false` a reasoning item can only be replayed through its
//! `encrypted_content`, which Dispatch does not request, and a summary-only item names a
//! stored item id the server no longer has (a 404). The model re-reasons from the visible
//! history instead, as it does on the chat API.

use std::borrow::Cow;
use std::collections::VecDeque;

use dispatch_kernel::abi::{
    Message, ProviderError, ProviderEvent, ProviderRequest, StopReason, sanitize_arguments,
};
use dispatch_provider_kit::{Assembler, ErrorCtx, SseEvent};
use dispatch_wire::{Chunk, Role, Usage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::decode::{Text, event_data, parse};
use crate::encode::Encoded;

// ---------------------------------------------------------------------------------------
// Request

#[derive(Serialize)]
struct Tool<'a> {
    r#type: &'static str,
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

/// `reasoning`: `{"effort": ...}`.
#[derive(Serialize)]
struct Reasoning<'a> {
    effort: &'a str,
}

#[derive(Serialize)]
struct Part {
    r#type: &'static str,
    text: String,
}

/// One `input` item, in wire key order.
#[derive(Serialize)]
#[serde(untagged)]
enum Item<'a> {
    Message {
        role: &'static str,
        content: [Part; 1],
    },
    Call {
        r#type: &'static str,
        call_id: &'a str,
        name: &'a str,
        arguments: String,
    },
    Output {
        r#type: &'static str,
        call_id: &'a str,
        output: &'a str,
    },
}

impl Item<'_> {
    /// The name of the item's prefix block.
    fn role(&self) -> &'static str {
        match self {
            Item::Message { role, .. } => role,
            Item::Call { .. } => "function_call",
            Item::Output { .. } => "function_call_output",
        }
    }
}

fn items(message: &Message) -> Vec<Item<'_>> {
    // The message's text as one `part` of a `role` message, when it has text.
    let text = |role, part| {
        let text = message.text();
        (!text.is_empty()).then_some(Item::Message {
            role,
            content: [Part { r#type: part, text }],
        })
    };
    let mut out = Vec::new();
    match message.role {
        Role::User => out.extend(text("user", "input_text")),
        Role::Assistant => {
            out.extend(text("assistant", "output_text"));
            out.extend(message.tool_calls().map(|(id, name, input)| Item::Call {
                r#type: "function_call",
                call_id: id,
                name,
                arguments: sanitize_arguments(input.clone()).0.to_string(),
            }));
        }
        Role::Tool => out.extend(message.chunks.iter().filter_map(|chunk| match chunk {
            Chunk::ToolResult {
                tool_call_id,
                output,
                ..
            } => Some(Item::Output {
                r#type: "function_call_output",
                call_id: tool_call_id,
                output,
            }),
            Chunk::Text { .. }
            | Chunk::Reasoning { .. }
            | Chunk::ToolCall { .. }
            | Chunk::Error { .. }
            | Chunk::Unknown => None,
        })),
    }
    out
}

/// Serializes `request` for the Responses API in a fixed key order, feeding the prefix
/// builder the tools, each system section (sent joined as `instructions`) and each input
/// item's exact bytes.
pub fn encode(request: &ProviderRequest, effort: Option<&str>) -> serde_json::Result<Encoded> {
    let mut out = Encoded::open(&request.model)?;
    out.raw(b",\"stream\":true,\"store\":false");
    if let Some(system) = request.system_text() {
        out.field("instructions", &system)?;
    }
    if let Some(max) = request.max_output_tokens {
        out.field("max_output_tokens", &max)?;
    }
    let effort = effort.map(|effort| ("reasoning", Reasoning { effort }));
    out.effort_or_temperature(effort, request.temperature)?;
    out.tools(&request.tools, |spec| Tool {
        r#type: "function",
        name: &spec.name,
        description: &spec.description,
        parameters: &spec.input_schema,
    })?;
    out.system_blocks(&request.system);

    out.open_items("input")?;
    for message in &request.messages {
        for item in items(message) {
            out.item(Some(item.role()), &item)?;
        }
    }
    Ok(out.close())
}

// ---------------------------------------------------------------------------------------
// Response

/// `usage` of a response: `input_tokens` is the whole prompt, cached part included.
fn usage(value: &Value) -> Option<Usage> {
    if !value.is_object() {
        return None;
    }
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    Some(Usage {
        input_tokens: n(&value["input_tokens"]),
        output_tokens: n(&value["output_tokens"]),
        cache_read_tokens: n(&value["input_tokens_details"]["cached_tokens"]),
        cache_write_tokens: 0,
        reasoning_tokens: n(&value["output_tokens_details"]["reasoning_tokens"]),
    })
}

fn text(value: &Value) -> Option<String> {
    value.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Why an `incomplete` response stopped.
fn incomplete_reason(response: &Value) -> StopReason {
    match response["incomplete_details"]["reason"].as_str() {
        Some("max_output_tokens") => StopReason::MaxTokens,
        Some(other) => StopReason::Other(other.to_owned()),
        None => StopReason::Other("incomplete".to_owned()),
    }
}

/// The error of a `response.failed` event or a failed response, in the `{"error": ...}`
/// shape the error classifier reads.
fn failure(ctx: &ErrorCtx, response: &Value) -> ProviderError {
    let error = match &response["error"] {
        Value::Null => {
            serde_json::json!({"message": "the response failed", "code": "response_failed"})
        }
        error => error.clone(),
    };
    ctx.stream_error(&serde_json::json!({ "error": error }).to_string())
}

/// The call an event refers to: its `output_index`, and its `item_id` (else its item's id).
fn refers_to(event: &Value) -> (Option<u64>, Option<&str>) {
    let item_id = event["item_id"]
        .as_str()
        .or_else(|| event["item"]["id"].as_str());
    (event["output_index"].as_u64(), item_id)
}

/// What a per-token event says, however it was read.
struct Delta<'a> {
    kind: &'a str,
    delta: Option<Cow<'a, str>>,
    output_index: Option<u64>,
    item_id: Option<&'a str>,
}

/// The fields of a per-token event, read without building a `Value` (text deltas come once
/// per token) and borrowed from the data where they have no escapes. An event these types
/// do not fit is read as a `Value`, and so is every other event.
#[derive(Deserialize)]
struct WireDelta<'a> {
    #[serde(borrow)]
    r#type: Text<'a>,
    #[serde(borrow)]
    delta: Option<Text<'a>>,
    output_index: Option<u64>,
    #[serde(borrow)]
    item_id: Option<Text<'a>>,
    #[serde(borrow)]
    item: Option<WireItemId<'a>>,
}

#[derive(Deserialize)]
struct WireItemId<'a> {
    #[serde(borrow)]
    id: Option<Text<'a>>,
}

/// A function call being streamed.
struct PendingCall {
    output_index: Option<u64>,
    item_id: Option<String>,
    call_id: String,
    name: String,
    arguments: String,
    emitted: bool,
}

impl PendingCall {
    fn from_item(output_index: Option<u64>, item: &Value) -> PendingCall {
        PendingCall {
            output_index,
            item_id: text(&item["id"]),
            call_id: text(&item["call_id"]).unwrap_or_default(),
            name: text(&item["name"]).unwrap_or_default(),
            arguments: item["arguments"].as_str().unwrap_or_default().to_owned(),
            emitted: false,
        }
    }

    fn event(&mut self) -> ProviderEvent {
        self.emitted = true;
        let arguments = if self.arguments.trim().is_empty() {
            "{}".to_owned()
        } else {
            std::mem::take(&mut self.arguments)
        };
        ProviderEvent::ToolCall {
            id: std::mem::take(&mut self.call_id),
            name: std::mem::take(&mut self.name),
            arguments,
        }
    }
}

/// Assembles a Responses API stream: text and reasoning-summary deltas, function calls
/// (opened by `output_item.added`, arguments by delta, complete at
/// `function_call_arguments.done` or `output_item.done`), then usage and `Finish` at
/// `response.completed` / `response.incomplete`. There is no `[DONE]`: a body that ends
/// before one of those was cut off.
pub struct ResponsesAssembler {
    ctx: ErrorCtx,
    calls: Vec<PendingCall>,
    called: bool,
    done: bool,
}

impl ResponsesAssembler {
    pub fn new(ctx: ErrorCtx) -> ResponsesAssembler {
        ResponsesAssembler {
            ctx,
            calls: Vec::new(),
            called: false,
            done: false,
        }
    }

    /// The call an event refers to, by `output_index`, else by `item_id`.
    fn call(
        &mut self,
        output_index: Option<u64>,
        item_id: Option<&str>,
    ) -> Option<&mut PendingCall> {
        self.calls.iter_mut().find(|c| {
            (output_index.is_some() && c.output_index == output_index)
                || (item_id.is_some() && c.item_id.as_deref() == item_id)
        })
    }

    fn emit_call(
        &mut self,
        event: &Value,
        item: Option<&Value>,
        out: &mut VecDeque<ProviderEvent>,
    ) {
        let arguments = event["arguments"]
            .as_str()
            .or_else(|| item.and_then(|i| i["arguments"].as_str()))
            .map(str::to_owned);
        let (output_index, item_id) = refers_to(event);
        let pending = match self.call(output_index, item_id) {
            Some(pending) => pending,
            None => match item {
                Some(item) => {
                    self.calls.push(PendingCall::from_item(output_index, item));
                    let Some(last) = self.calls.last_mut() else {
                        return;
                    };
                    last
                }
                None => return,
            },
        };
        if pending.emitted {
            return;
        }
        if let Some(item) = item {
            if pending.call_id.is_empty() {
                pending.call_id = text(&item["call_id"]).unwrap_or_default();
            }
            if pending.name.is_empty() {
                pending.name = text(&item["name"]).unwrap_or_default();
            }
        }
        if let Some(arguments) = arguments {
            pending.arguments = arguments;
        }
        out.push_back(pending.event());
        self.called = true;
    }

    /// `response.completed`: calls never closed, usage, `Finish`.
    fn complete(&mut self, response: &Value, out: &mut VecDeque<ProviderEvent>) {
        for pending in self.calls.iter_mut().filter(|c| !c.emitted) {
            out.push_back(pending.event());
            self.called = true;
        }
        if let Some(usage) = usage(&response["usage"]) {
            out.push_back(ProviderEvent::Usage(usage));
        }
        let stop = if self.called {
            StopReason::ToolCalls
        } else {
            StopReason::EndTurn
        };
        out.push_back(ProviderEvent::Finish(stop));
        self.done = true;
    }

    /// Handles a per-token event (a text, reasoning or argument delta); `false` for any
    /// other event.
    fn delta(&mut self, event: Delta<'_>, out: &mut VecDeque<ProviderEvent>) -> bool {
        let Delta {
            kind,
            delta,
            output_index,
            item_id,
        } = event;
        let text =
            |delta: Option<Cow<'_, str>>| delta.filter(|d| !d.is_empty()).map(Cow::into_owned);
        match kind {
            "response.output_text.delta" => out.extend(text(delta).map(ProviderEvent::TextDelta)),
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                out.extend(text(delta).map(ProviderEvent::ReasoningDelta));
            }
            "response.function_call_arguments.delta" => {
                if let (Some(pending), Some(delta)) = (self.call(output_index, item_id), delta) {
                    pending.arguments.push_str(&delta);
                }
            }
            _ => return false,
        }
        true
    }

    fn handle(
        &mut self,
        event: &Value,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<(), ProviderError> {
        let (output_index, item_id) = refers_to(event);
        let kind = event["type"].as_str().unwrap_or_default();
        let delta = Delta {
            kind,
            delta: event["delta"].as_str().map(Cow::Borrowed),
            output_index,
            item_id,
        };
        if self.delta(delta, out) {
            return Ok(());
        }
        match kind {
            "response.output_item.added" => {
                let item = &event["item"];
                if item["type"] == "function_call" && self.call(output_index, item_id).is_none() {
                    self.calls.push(PendingCall::from_item(output_index, item));
                }
            }
            "response.function_call_arguments.done" => self.emit_call(event, None, out),
            "response.output_item.done" => {
                let item = &event["item"];
                if item["type"] == "function_call" {
                    self.emit_call(event, Some(item), out);
                }
            }
            "response.completed" => self.complete(&event["response"], out),
            "response.incomplete" => {
                let response = &event["response"];
                if let Some(usage) = usage(&response["usage"]) {
                    out.push_back(ProviderEvent::Usage(usage));
                }
                out.push_back(ProviderEvent::Finish(incomplete_reason(response)));
                self.done = true;
            }
            "response.failed" => return Err(failure(&self.ctx, &event["response"])),
            _ => {}
        }
        Ok(())
    }
}

impl Assembler for ResponsesAssembler {
    fn event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<(), ProviderError> {
        let Some(data) = event_data(&event, &self.ctx)? else {
            return Ok(());
        };
        // Per-token events without building a `Value`.
        if let Ok(wire) = serde_json::from_str::<WireDelta<'_>>(data) {
            let item_id = wire.item_id.or_else(|| wire.item.and_then(|item| item.id));
            let delta = Delta {
                kind: &wire.r#type.0,
                delta: wire.delta.map(|delta| delta.0),
                output_index: wire.output_index,
                item_id: item_id.as_ref().map(|id| &*id.0),
            };
            if self.delta(delta, out) {
                return Ok(());
            }
        }
        let value: Value = parse(data, &self.ctx)?;
        if value["type"] == "error" {
            return Err(self.ctx.stream_error(data));
        }
        self.handle(&value, out)
    }

    fn end(&mut self, _out: &mut VecDeque<ProviderEvent>) -> Result<(), ProviderError> {
        if self.done {
            Ok(())
        } else {
            Err(self.ctx.disconnected())
        }
    }

    fn finished(&self) -> bool {
        self.done
    }
}

/// A whole (non-streamed) response object, as the events its stream would have given.
pub fn parse_response(body: &str, ctx: &ErrorCtx) -> Result<Vec<ProviderEvent>, ProviderError> {
    let response: Value = parse(body, ctx)?;
    if response["error"].is_object() && response["output"].is_null() {
        return Err(ctx.stream_error(body));
    }
    let Some(output) = response["output"].as_array() else {
        return Err(ctx.malformed("the response has no `output`"));
    };
    let mut out = VecDeque::new();
    let mut assembler = ResponsesAssembler::new(ctx.clone());
    for item in output {
        match item["type"].as_str().unwrap_or_default() {
            "message" => {
                let text: String = item["content"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|part| part["type"] == "output_text")
                    .filter_map(|part| part["text"].as_str())
                    .collect();
                if !text.is_empty() {
                    out.push_back(ProviderEvent::TextDelta(text));
                }
            }
            "reasoning" => {
                let text: String = ["summary", "content"]
                    .iter()
                    .flat_map(|key| item[*key].as_array().into_iter().flatten())
                    .filter_map(|part| part["text"].as_str())
                    .collect();
                if !text.is_empty() {
                    out.push_back(ProviderEvent::ReasoningDelta(text));
                }
            }
            "function_call" => {
                assembler.calls.push(PendingCall::from_item(None, item));
                if let Some(pending) = assembler.calls.last_mut() {
                    out.push_back(pending.event());
                    assembler.called = true;
                }
            }
            _ => {}
        }
    }
    match response["status"].as_str() {
        Some("failed") => return Err(failure(ctx, &response)),
        Some("incomplete") => {
            if let Some(usage) = usage(&response["usage"]) {
                out.push_back(ProviderEvent::Usage(usage));
            }
            out.push_back(ProviderEvent::Finish(incomplete_reason(&response)));
        }
        _ => assembler.complete(&response, &mut out),
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use expect_test::{Expect, expect};

    use super::*;
    use crate::decode::replay;

    /// Replays `events` (the data of `message` events) through a Responses assembler.
    #[track_caller]
    fn check(events: &[&str], expect: Expect) {
        let events: Vec<(&str, &str)> = events.iter().map(|data| ("message", *data)).collect();
        expect.assert_eq(&replay(ResponsesAssembler::new, &events));
    }

    #[test]
    fn calls_complete_at_arguments_done_or_item_done_once() {
        check(
            &[
                r#"{"type":"response.output_item.added","output_index":0,"item":{"type":"function_call","id":"fc_1","call_id":"c1","name":"f","arguments":""}}"#,
                r#"{"type":"response.output_item.added","output_index":1,"item":{"type":"function_call","id":"fc_2","call_id":"c2","name":"g","arguments":""}}"#,
                r#"{"type":"response.function_call_arguments.delta","output_index":1,"item_id":"fc_2","delta":"{\"b\":"}"#,
                r#"{"type":"response.function_call_arguments.delta","item_id":"fc_1","delta":"{\"a\":1}"}"#,
                r#"{"type":"response.function_call_arguments.delta","output_index":1,"delta":"2}"}"#,
                r#"{"type":"response.output_item.done","output_index":1,"item":{"type":"function_call","id":"fc_2","call_id":"c2","name":"g","arguments":"{\"b\":2}"}}"#,
                r#"{"type":"response.function_call_arguments.done","output_index":1,"arguments":"{\"b\":2}"}"#,
                r#"{"type":"response.completed","response":{"status":"completed","usage":{"input_tokens":9,"input_tokens_details":{"cached_tokens":8},"output_tokens":3,"output_tokens_details":{"reasoning_tokens":1}}}}"#,
            ],
            expect![[r#"
                ToolCall { id: "c2", name: "g", arguments: "{\"b\":2}" }
                ToolCall { id: "c1", name: "f", arguments: "{\"a\":1}" }
                Usage(Usage { input_tokens: 9, output_tokens: 3, cache_read_tokens: 8, cache_write_tokens: 0, reasoning_tokens: 1 })
                Finish(ToolCalls)"#]],
        );
    }

    #[test]
    fn text_reasoning_and_incomplete() {
        check(
            &[
                r#"{"type":"response.reasoning_summary_text.delta","delta":"hm"}"#,
                r#"{"type":"response.reasoning_text.delta","delta":"raw"}"#,
                r#"{"type":"response.output_text.delta","delta":"hi"}"#,
                r#"{"type":"response.output_text.delta","delta":""}"#,
                r#"{"type":"response.incomplete","response":{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"usage":{"input_tokens":1,"output_tokens":2}}}"#,
            ],
            expect![[r#"
                ReasoningDelta("hm")
                ReasoningDelta("raw")
                TextDelta("hi")
                Usage(Usage { input_tokens: 1, output_tokens: 2, cache_read_tokens: 0, cache_write_tokens: 0, reasoning_tokens: 0 })
                Finish(MaxTokens)"#]],
        );
        check(
            &[
                r#"{"type":"response.incomplete","response":{"incomplete_details":{"reason":"content_filter"}}}"#,
            ],
            expect![[r#"Finish(Other("content_filter"))"#]],
        );
    }

    #[test]
    fn deltas_whose_fields_do_not_fit_are_read_as_values() {
        check(
            &[
                r#"{"type":"response.output_text.delta","delta":"say \"hi\"","output_index":0}"#,
                r#"{"type":"response.output_text.delta","delta":"!","output_index":"0"}"#,
                r#"{"type":"response.output_text.delta","delta":{"text":"not a string"}}"#,
                r#"{"type":"response.output_item.added","output_index":0,"item":{"type":"function_call","id":"fc_1","call_id":"c1","name":"f","arguments":""}}"#,
                r#"{"type":"response.function_call_arguments.delta","output_index":-1,"item":{"id":"fc_1"},"delta":"{\"a\":1}"}"#,
                r#"{"type":"response.completed","response":{}}"#,
            ],
            expect![[r#"
                TextDelta("say \"hi\"")
                TextDelta("!")
                ToolCall { id: "c1", name: "f", arguments: "{\"a\":1}" }
                Finish(ToolCalls)"#]],
        );
    }

    #[test]
    fn failures() {
        check(
            &[r#"{"type":"response.output_text.delta","delta":"x"}"#],
            expect![[r#"
                TextDelta("x")
                Err(inst (m): the stream ended before the response was complete, retryable=true, Some("disconnect"))"#]],
        );
        check(
            &[
                r#"{"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"boom"}}}"#,
            ],
            expect![[
                r#"Err(inst (m): stream error server_error: boom, retryable=true, Some("server_error"))"#
            ]],
        );
        check(
            &[
                r#"{"type":"error","code":"rate_limit_exceeded","message":"slow down, try again in 20ms","param":null}"#,
            ],
            expect![[
                r#"Err(inst (m): stream error rate_limit_exceeded: slow down, try again in 20ms, retryable=true, Some("rate_limit_exceeded"))"#
            ]],
        );
    }
}
