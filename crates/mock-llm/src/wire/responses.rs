//! OpenAI's Responses API: the `response.*` SSE events and the response object, shaped after
//! the captures in `shared/fixtures/providers/openai-responses/`. Every event is
//! `event: <type>` + `data: <json>` whose object carries `type` and a `sequence_number`
//! counting from 0; there is no `[DONE]` sentinel.

use serde_json::{Value, json};

use super::{Ctx, Open, Totals, event, finish_name, message_id, tool_id};
use crate::script::{Finish, Item, Stream, arguments_text, split_fragments};

/// The output item that may still take deltas: a `message` (one `output_text` part) or a
/// `reasoning` item (one `summary_text` part).
struct OpenItem {
    kind: Open,
    id: String,
    text: String,
}

/// The renderer: sequence numbers, output indices and the finished output items (which the
/// final response object repeats).
pub(super) struct Responses<'a> {
    ctx: &'a Ctx,
    sequence: u64,
    output: Vec<Value>,
    open: Option<OpenItem>,
    tools: usize,
    /// The `phase` of message items: `commentary` when the answer also calls functions.
    phase: &'static str,
}

impl<'a> Responses<'a> {
    pub(super) fn new(ctx: &'a Ctx, stream: &Stream) -> Self {
        let calls = stream
            .items
            .iter()
            .any(|item| matches!(item, Item::ToolCall { .. }));
        Self {
            ctx,
            sequence: 0,
            output: Vec::new(),
            open: None,
            tools: 0,
            phase: if calls { "commentary" } else { "final_answer" },
        }
    }

    /// One event of type `kind`; `data` gets `type` and the next `sequence_number`.
    fn send(&mut self, kind: &str, mut data: Value) -> String {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        event(kind, &data)
    }

    /// The id an output item opened now gets (`prefix` `msg`, `rs` or `fc`).
    fn item_id(&self, prefix: &str) -> String {
        format!("{prefix}_mock{}_{}", self.ctx.seq, self.output.len())
    }

    pub(super) fn start(&mut self) -> Vec<String> {
        let response = self.response("in_progress", Value::Null, Value::Null);
        vec![
            self.send("response.created", json!({"response": response})),
            self.send("response.in_progress", json!({"response": response})),
        ]
    }

    pub(super) fn item(&mut self, item: &Item) -> Vec<String> {
        let want = match item {
            Item::Text { .. } => Some(Open::Text),
            Item::Reasoning { .. } => Some(Open::Thinking),
            Item::RedactedReasoning { .. } | Item::ToolCall { .. } => None,
        };
        let mut frames = Vec::new();
        if self
            .open
            .as_ref()
            .is_some_and(|open| Some(open.kind) != want)
        {
            frames.extend(self.close("completed", None));
        }
        let index = self.output.len();
        match item {
            Item::Text { text, .. } => {
                if self.open.is_none() {
                    let id = self.item_id("msg");
                    let added = json!({"output_index": index, "item": {
                        "id": id, "type": "message", "status": "in_progress", "content": [],
                        "phase": self.phase, "role": "assistant",
                    }});
                    frames.push(self.send("response.output_item.added", added));
                    let part = json!({"item_id": id, "output_index": index, "content_index": 0,
                        "part": {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}});
                    frames.push(self.send("response.content_part.added", part));
                    self.open = Some(OpenItem {
                        kind: Open::Text,
                        id,
                        text: String::new(),
                    });
                }
                frames.extend(self.delta("response.output_text.delta", text));
            }
            Item::Reasoning {
                text, signature, ..
            } => {
                if self.open.is_none() {
                    let id = self.item_id("rs");
                    let added = json!({"output_index": index,
                        "item": {"id": id, "type": "reasoning", "summary": []}});
                    frames.push(self.send("response.output_item.added", added));
                    let part = json!({"item_id": id, "output_index": index, "summary_index": 0,
                        "part": {"type": "summary_text", "text": ""}});
                    frames.push(self.send("response.reasoning_summary_part.added", part));
                    self.open = Some(OpenItem {
                        kind: Open::Thinking,
                        id,
                        text: String::new(),
                    });
                }
                frames.extend(self.delta("response.reasoning_summary_text.delta", text));
                if signature.is_some() {
                    frames.extend(self.close("completed", signature.as_deref()));
                }
            }
            Item::RedactedReasoning { data, .. } => {
                let id = self.item_id("rs");
                let added = json!({"output_index": index,
                    "item": {"id": id, "type": "reasoning", "summary": []}});
                frames.push(self.send("response.output_item.added", added));
                let item = json!({"id": id, "type": "reasoning", "summary": [], "encrypted_content": data});
                frames.push(self.send(
                    "response.output_item.done",
                    json!({"output_index": index, "item": item}),
                ));
                self.output.push(item);
            }
            Item::ToolCall {
                id,
                name,
                arguments,
                fragments,
                ..
            } => {
                let item_id = self.item_id("fc");
                let call_id = tool_id(self.ctx, id.as_ref(), self.tools);
                self.tools += 1;
                let text = arguments_text(arguments);
                let mut item = json!({"id": item_id, "type": "function_call", "status": "in_progress",
                    "arguments": "", "call_id": call_id, "name": name});
                frames.push(self.send(
                    "response.output_item.added",
                    json!({"output_index": index, "item": item}),
                ));
                for piece in split_fragments(&text, *fragments) {
                    let delta = json!({"item_id": item_id, "output_index": index, "delta": piece,
                        "obfuscation": "mock"});
                    frames.push(self.send("response.function_call_arguments.delta", delta));
                }
                let done = json!({"item_id": item_id, "output_index": index, "arguments": text});
                frames.push(self.send("response.function_call_arguments.done", done));
                item["status"] = json!("completed");
                item["arguments"] = json!(text);
                frames.push(self.send(
                    "response.output_item.done",
                    json!({"output_index": index, "item": item}),
                ));
                self.output.push(item);
            }
        }
        frames
    }

    /// A text delta into the open item (a no-op when none is open, which `item` prevents).
    fn delta(&mut self, kind: &str, text: &str) -> Option<String> {
        let index = self.output.len();
        let open = self.open.as_mut()?;
        open.text += text;
        let mut data = json!({"item_id": open.id, "output_index": index, "delta": text,
            "obfuscation": "mock"});
        match open.kind {
            Open::Text => {
                data["content_index"] = json!(0);
                data["logprobs"] = json!([]);
            }
            Open::Thinking => data["summary_index"] = json!(0),
        }
        Some(self.send(kind, data))
    }

    /// Finishes the open item with `status` (messages only; reasoning items carry none) and
    /// `encrypted_content` (reasoning only).
    fn close(&mut self, status: &str, encrypted: Option<&str>) -> Vec<String> {
        let Some(open) = self.open.take() else {
            return Vec::new();
        };
        let index = self.output.len();
        let (id, text) = (open.id, open.text);
        let mut frames = Vec::new();
        let item = match open.kind {
            Open::Text => {
                let part =
                    json!({"type": "output_text", "annotations": [], "logprobs": [], "text": text});
                let done = json!({"item_id": id, "output_index": index, "content_index": 0,
                    "text": text, "logprobs": []});
                frames.push(self.send("response.output_text.done", done));
                let done =
                    json!({"item_id": id, "output_index": index, "content_index": 0, "part": part});
                frames.push(self.send("response.content_part.done", done));
                json!({"id": id, "type": "message", "status": status, "content": [part],
                    "phase": self.phase, "role": "assistant"})
            }
            Open::Thinking => {
                let part = json!({"type": "summary_text", "text": text});
                let done =
                    json!({"item_id": id, "output_index": index, "summary_index": 0, "text": text});
                frames.push(self.send("response.reasoning_summary_text.done", done));
                let done =
                    json!({"item_id": id, "output_index": index, "summary_index": 0, "part": part});
                frames.push(self.send("response.reasoning_summary_part.done", done));
                let mut item = json!({"id": id, "type": "reasoning", "summary": [part]});
                if let Some(encrypted) = encrypted {
                    item["encrypted_content"] = json!(encrypted);
                }
                item
            }
        };
        frames.push(self.send(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        ));
        self.output.push(item);
        frames
    }

    /// Closes the open item and returns the frames with the final response object.
    fn end(&mut self, totals: &Totals, finish: Finish) -> (Vec<String>, Value) {
        let status = finish_name(self.ctx.provider, finish);
        let frames = self.close(status, None);
        let incomplete = match finish {
            Finish::Length => json!({"reason": "max_output_tokens"}),
            Finish::Stop | Finish::ToolCalls => Value::Null,
        };
        let response = self.response(status, incomplete, totals.responses());
        (frames, response)
    }

    pub(super) fn finish(&mut self, totals: &Totals, finish: Finish) -> Vec<String> {
        let (mut frames, response) = self.end(totals, finish);
        let kind = match finish {
            Finish::Length => "response.incomplete",
            Finish::Stop | Finish::ToolCalls => "response.completed",
        };
        frames.push(self.send(kind, json!({"response": response})));
        frames
    }

    /// An `output_text.delta` event cut inside its JSON; it takes a sequence number.
    pub(super) fn malformed(&mut self) -> String {
        let sequence = self.sequence;
        self.sequence += 1;
        format!(
            "event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"sequence_number\":{sequence},\"output_index\":{},\"content_index\":0,\"delta\":\"unterminated\n\n",
            self.output.len()
        )
    }

    /// OpenAI's documented in-stream error event (`code`, `message`, `param`).
    pub(super) fn error_event(&mut self, code: &str, message: &str) -> String {
        self.send(
            "error",
            json!({"code": code, "message": message, "param": null}),
        )
    }

    /// The response object with the fields of the captures; request parameters are echoed.
    fn response(&self, status: &str, incomplete: Value, usage: Value) -> Value {
        let request = &self.ctx.request;
        let echo = |key: &str, default: Value| match &request[key] {
            Value::Null => default,
            value => value.clone(),
        };
        let completed_at = match status {
            "in_progress" => Value::Null,
            _ => json!(self.ctx.created),
        };
        json!({
            "id": message_id(self.ctx), "object": "response", "created_at": self.ctx.created,
            "status": status, "background": false, "completed_at": completed_at, "error": null,
            "frequency_penalty": 0.0, "incomplete_details": incomplete,
            "instructions": echo("instructions", Value::Null),
            "max_output_tokens": echo("max_output_tokens", Value::Null),
            "max_tool_calls": echo("max_tool_calls", Value::Null),
            "model": self.ctx.model, "moderation": null, "output": self.output,
            "parallel_tool_calls": echo("parallel_tool_calls", json!(true)),
            "presence_penalty": 0.0,
            "previous_response_id": echo("previous_response_id", Value::Null),
            "prompt_cache_key": echo("prompt_cache_key", Value::Null),
            "prompt_cache_retention": echo("prompt_cache_retention", Value::Null),
            "reasoning": {"effort": request["reasoning"]["effort"], "summary": request["reasoning"]["summary"]},
            "safety_identifier": echo("safety_identifier", Value::Null),
            "service_tier": "default", "store": echo("store", json!(true)),
            "temperature": echo("temperature", json!(1.0)),
            "text": echo("text", json!({"format": {"type": "text"}, "verbosity": "medium"})),
            "tool_choice": echo("tool_choice", json!("auto")),
            "tools": echo("tools", json!([])),
            "top_logprobs": echo("top_logprobs", json!(0)),
            "top_p": echo("top_p", json!(1.0)),
            "truncation": echo("truncation", json!("disabled")),
            "usage": usage, "user": echo("user", Value::Null),
            "metadata": echo("metadata", json!({})),
        })
    }
}

/// The non-streaming answer: the final response object.
pub(super) fn json_body(ctx: &Ctx, stream: &Stream, totals: &Totals) -> Value {
    let mut responses = Responses::new(ctx, stream);
    for item in &stream.items {
        responses.item(item);
    }
    responses.end(totals, super::finish_of(stream)).1
}
