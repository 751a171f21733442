//! The providers' wire formats: SSE events, JSON bodies and error bodies, shaped after the
//! captures in `shared/fixtures/providers/`. The Responses API lives in [`responses`].

mod responses;

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::cache::{PromptTokens, estimate_tokens};
use crate::script::{
    Fault, Finish, HttpError, Item, Provider, Stream, arguments_text, split_fragments,
};
use responses::Responses;

/// What one request needs to render its answer.
pub(crate) struct Ctx {
    pub provider: Provider,
    pub model: String,
    pub streaming: bool,
    pub include_usage: bool,
    pub prompt: PromptTokens,
    pub seq: u64,
    pub created: u64,
    /// The request body (a JSON object); the Responses API echoes its parameters.
    pub request: Value,
}

/// One step of sending a body.
#[derive(Debug)]
pub(crate) enum Step {
    Send(Bytes),
    Sleep(Duration),
    /// `None`: until the server shuts down.
    Stall(Option<Duration>),
    /// Abort the body and the connection.
    Cut,
}

/// Final usage in Anthropic's terms (see [`crate::Usage`]).
struct Totals {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    reasoning: u64,
}

impl Totals {
    fn new(ctx: &Ctx, stream: &Stream) -> Self {
        let (mut output, mut reasoning) = (0, 0);
        for item in &stream.items {
            match item {
                Item::Text { text, .. } => output += text.len(),
                Item::Reasoning { text, .. } => reasoning += text.len(),
                Item::RedactedReasoning { data, .. } => reasoning += data.len(),
                Item::ToolCall {
                    name, arguments, ..
                } => output += name.len() + arguments_text(arguments).len(),
            }
        }
        let over = stream.usage.unwrap_or_default();
        let reasoning = estimate_tokens(reasoning);
        Self {
            input: over.input_tokens.unwrap_or(ctx.prompt.input_tokens),
            output: over
                .output_tokens
                .unwrap_or((estimate_tokens(output) + reasoning).max(1)),
            cache_read: over
                .cache_read_tokens
                .unwrap_or(ctx.prompt.cache_read_tokens),
            cache_write: over
                .cache_write_tokens
                .unwrap_or(ctx.prompt.cache_write_tokens),
            reasoning: over.reasoning_tokens.unwrap_or(reasoning),
        }
    }

    fn openai(&self) -> Value {
        let prompt = self.input + self.cache_read + self.cache_write;
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": self.output,
            "total_tokens": prompt + self.output,
            "prompt_tokens_details": {"cached_tokens": self.cache_read, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0,
            },
        })
    }

    fn responses(&self) -> Value {
        let input = self.input + self.cache_read + self.cache_write;
        json!({
            "input_tokens": input,
            "input_tokens_details": {"cached_tokens": self.cache_read},
            "output_tokens": self.output,
            "output_tokens_details": {"reasoning_tokens": self.reasoning},
            "total_tokens": input + self.output,
        })
    }

    fn anthropic(&self, output: u64) -> Value {
        json!({
            "input_tokens": self.input,
            "cache_creation_input_tokens": self.cache_write,
            "cache_read_input_tokens": self.cache_read,
            "output_tokens": output,
        })
    }
}

fn finish_of(stream: &Stream) -> Finish {
    let calls = stream
        .items
        .iter()
        .any(|item| matches!(item, Item::ToolCall { .. }));
    stream.finish.unwrap_or(if calls {
        Finish::ToolCalls
    } else {
        Finish::Stop
    })
}

fn finish_name(provider: Provider, finish: Finish) -> &'static str {
    match (provider, finish) {
        (Provider::Openai, Finish::Stop) => "stop",
        (Provider::Openai, Finish::ToolCalls) => "tool_calls",
        (Provider::Openai, Finish::Length) => "length",
        (Provider::Anthropic, Finish::Stop) => "end_turn",
        (Provider::Anthropic, Finish::ToolCalls) => "tool_use",
        (Provider::Anthropic, Finish::Length) => "max_tokens",
        // The Responses API has a status instead.
        (Provider::OpenaiResponses, Finish::Stop | Finish::ToolCalls) => "completed",
        (Provider::OpenaiResponses, Finish::Length) => "incomplete",
    }
}

fn tool_id(ctx: &Ctx, id: Option<&String>, index: usize) -> String {
    match (id, ctx.provider) {
        (Some(id), _) => id.clone(),
        (None, Provider::Openai | Provider::OpenaiResponses) => {
            format!("call_mock_{}_{index}", ctx.seq)
        }
        (None, Provider::Anthropic) => format!("toolu_mock_{}_{index}", ctx.seq),
    }
}

fn message_id(ctx: &Ctx) -> String {
    match ctx.provider {
        Provider::Openai => format!("chatcmpl-mock{}", ctx.seq),
        Provider::Anthropic => format!("msg_mock{}", ctx.seq),
        Provider::OpenaiResponses => format!("resp_mock{}", ctx.seq),
    }
}

/// The body of a `200` answer as steps: SSE events, or one JSON body (`streaming` false).
pub(crate) fn steps(ctx: &Ctx, stream: &Stream) -> Vec<Step> {
    let totals = Totals::new(ctx, stream);
    if !ctx.streaming {
        let body = json_body(ctx, stream, &totals).to_string();
        return match &stream.fault {
            None | Some(Fault::ErrorEvent { .. }) => vec![Step::Send(body.into())],
            Some(Fault::Disconnect { .. }) => vec![Step::Cut],
            Some(Fault::Malformed { .. }) => {
                let half = body.len() / 2;
                vec![Step::Send(Bytes::from(body).slice(..half))]
            }
            Some(Fault::Stall { ms, .. }) => vec![
                Step::Stall(ms.map(Duration::from_millis)),
                Step::Send(body.into()),
            ],
        };
    }
    let mut sse = Sse {
        ctx,
        open: None,
        blocks: 0,
        tools: 0,
        responses: Responses::new(ctx, stream),
    };
    let mut steps = Vec::new();
    let send = |frames: Vec<String>, steps: &mut Vec<Step>| {
        steps.extend(frames.into_iter().map(|f| Step::Send(f.into())))
    };
    send(sse.start(&totals, stream.items.is_empty()), &mut steps);
    let fault_at = stream
        .fault
        .as_ref()
        .map(|fault| fault.after().min(stream.items.len()));
    for index in 0..=stream.items.len() {
        if fault_at == Some(index) {
            match &stream.fault {
                Some(Fault::Disconnect { .. }) => {
                    steps.push(Step::Cut);
                    return steps;
                }
                Some(Fault::Malformed { .. }) => send(vec![sse.malformed()], &mut steps),
                Some(Fault::Stall { ms, .. }) => {
                    steps.push(Step::Stall(ms.map(Duration::from_millis)))
                }
                Some(Fault::ErrorEvent {
                    error_type,
                    message,
                    ..
                }) => {
                    send(vec![sse.error_event(error_type, message)], &mut steps);
                    return steps;
                }
                None => {}
            }
        }
        let Some(item) = stream.items.get(index) else {
            break;
        };
        if item.delay_ms() > 0 {
            steps.push(Step::Sleep(Duration::from_millis(item.delay_ms())));
        }
        send(sse.item(item), &mut steps);
    }
    send(sse.finish(&totals, finish_of(stream)), &mut steps);
    steps
}

/// Which Anthropic content block is open and may take more deltas.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
}

/// The SSE renderer: Anthropic block bookkeeping, OpenAI tool-call indices, the Responses
/// renderer.
struct Sse<'a> {
    ctx: &'a Ctx,
    open: Option<Open>,
    blocks: usize,
    tools: usize,
    responses: Responses<'a>,
}

fn event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

impl Sse<'_> {
    fn start(&mut self, totals: &Totals, empty: bool) -> Vec<String> {
        match self.ctx.provider {
            Provider::Openai => vec![self.delta(json!({"role": "assistant", "content": ""}), None)],
            Provider::Anthropic => {
                let mut usage = totals.anthropic(1);
                usage["cache_creation"] = json!({"ephemeral_5m_input_tokens": totals.cache_write, "ephemeral_1h_input_tokens": 0});
                usage["service_tier"] = json!("standard");
                let message = json!({
                    "id": message_id(self.ctx), "type": "message", "role": "assistant",
                    "model": self.ctx.model, "content": [], "stop_reason": null,
                    "stop_sequence": null, "usage": usage,
                });
                let mut frames = vec![event(
                    "message_start",
                    &json!({"type": "message_start", "message": message}),
                )];
                if empty {
                    frames.push(ping());
                }
                frames
            }
            Provider::OpenaiResponses => self.responses.start(),
        }
    }

    fn item(&mut self, item: &Item) -> Vec<String> {
        match self.ctx.provider {
            Provider::Openai => self.openai_item(item),
            Provider::Anthropic => self.anthropic_item(item),
            Provider::OpenaiResponses => self.responses.item(item),
        }
    }

    fn openai_item(&mut self, item: &Item) -> Vec<String> {
        match item {
            Item::Text { text, .. } => vec![self.delta(json!({"content": text}), None)],
            Item::Reasoning { text, .. } => {
                vec![self.delta(json!({"content": null, "reasoning_content": text}), None)]
            }
            Item::RedactedReasoning { .. } => Vec::new(),
            Item::ToolCall {
                id,
                name,
                arguments,
                fragments,
                ..
            } => {
                let index = self.tools;
                self.tools += 1;
                let start = json!({"index": index, "id": tool_id(self.ctx, id.as_ref(), index), "type": "function",
                    "function": {"name": name, "arguments": ""}});
                let mut frames = vec![self.delta(json!({"tool_calls": [start]}), None)];
                for piece in split_fragments(&arguments_text(arguments), *fragments) {
                    let delta =
                        json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]});
                    frames.push(self.delta(delta, None));
                }
                frames
            }
        }
    }

    fn anthropic_item(&mut self, item: &Item) -> Vec<String> {
        let mut frames = Vec::new();
        let want = match item {
            Item::Text { .. } => Some(Open::Text),
            Item::Reasoning { .. } => Some(Open::Thinking),
            Item::RedactedReasoning { .. } | Item::ToolCall { .. } => None,
        };
        if self.open.is_some() && self.open != want {
            frames.push(self.close());
        }
        let index = self.blocks;
        let (block, deltas, close) = match item {
            Item::Text { text, .. } => (
                json!({"type": "text", "text": ""}),
                vec![json!({"type": "text_delta", "text": text})],
                false,
            ),
            Item::Reasoning {
                text, signature, ..
            } => {
                let mut deltas = vec![json!({"type": "thinking_delta", "thinking": text})];
                deltas.extend(
                    signature
                        .iter()
                        .map(|s| json!({"type": "signature_delta", "signature": s})),
                );
                (
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                    deltas,
                    signature.is_some(),
                )
            }
            Item::RedactedReasoning { data, .. } => (
                json!({"type": "redacted_thinking", "data": data}),
                Vec::new(),
                true,
            ),
            Item::ToolCall {
                id,
                name,
                arguments,
                fragments,
                ..
            } => {
                let id = tool_id(self.ctx, id.as_ref(), self.tools);
                self.tools += 1;
                let text = arguments_text(arguments);
                let deltas = std::iter::once("")
                    .chain(split_fragments(&text, *fragments))
                    .map(|piece| json!({"type": "input_json_delta", "partial_json": piece}))
                    .collect();
                (
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                    deltas,
                    true,
                )
            }
        };
        if self.open.is_none() {
            let start =
                json!({"type": "content_block_start", "index": index, "content_block": block});
            frames.push(event("content_block_start", &start));
            if index == 0 {
                frames.push(ping());
            }
            self.open = want;
        }
        for delta in deltas {
            frames.push(event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            ));
        }
        if close {
            frames.push(self.close());
        }
        frames
    }

    /// Stops the open Anthropic block.
    fn close(&mut self) -> String {
        let stop = event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": self.blocks}),
        );
        self.open = None;
        self.blocks += 1;
        stop
    }

    fn finish(&mut self, totals: &Totals, finish: Finish) -> Vec<String> {
        let reason = finish_name(self.ctx.provider, finish);
        match self.ctx.provider {
            Provider::Openai => {
                let mut frames = vec![self.delta(json!({}), Some(reason))];
                if self.ctx.include_usage {
                    frames.push(self.chunk(json!([]), totals.openai()));
                }
                frames.push("data: [DONE]\n\n".into());
                frames
            }
            Provider::Anthropic => {
                let mut frames: Vec<String> = self.open.map(|_| self.close()).into_iter().collect();
                let delta = json!({
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": null},
                    "usage": totals.anthropic(totals.output),
                });
                frames.push(event("message_delta", &delta));
                frames.push(event("message_stop", &json!({"type": "message_stop"})));
                frames
            }
            Provider::OpenaiResponses => self.responses.finish(totals, finish),
        }
    }

    fn malformed(&mut self) -> String {
        match self.ctx.provider {
            Provider::Openai => format!(
                "data: {{\"id\":\"{}\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"unterminated\n\n",
                message_id(self.ctx)
            ),
            Provider::Anthropic => format!(
                "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":{},\"delta\":{{\"type\":\"text_delta\",\"text\":\"unterminated\n\n",
                self.blocks
            ),
            Provider::OpenaiResponses => self.responses.malformed(),
        }
    }

    fn error_event(&mut self, error_type: &str, message: &str) -> String {
        match self.ctx.provider {
            Provider::Openai => event(
                "error",
                &json!({"error": {"message": message, "type": error_type, "param": null, "code": null}}),
            ),
            Provider::Anthropic => event(
                "error",
                &json!({"type": "error", "error": {"type": error_type, "message": message}}),
            ),
            Provider::OpenaiResponses => self.responses.error_event(error_type, message),
        }
    }

    fn delta(&self, delta: Value, finish: Option<&str>) -> String {
        self.chunk(
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]),
            Value::Null,
        )
    }

    /// An OpenAI chunk with the fields current OpenAI streams carry (DeepSeek also sends
    /// `"usage": null` on every chunk, OpenAI does with `include_usage`).
    fn chunk(&self, choices: Value, usage: Value) -> String {
        let chunk = json!({
            "id": message_id(self.ctx), "object": "chat.completion.chunk", "created": self.ctx.created,
            "model": self.ctx.model, "service_tier": "default", "system_fingerprint": "fp_mock",
            "choices": choices, "usage": usage, "obfuscation": "mock",
        });
        format!("data: {chunk}\n\n")
    }
}

fn ping() -> String {
    event("ping", &json!({"type": "ping"}))
}

/// The non-streaming answer (`chat.completion` / Anthropic `message`).
fn json_body(ctx: &Ctx, stream: &Stream, totals: &Totals) -> Value {
    let reason = finish_name(ctx.provider, finish_of(stream));
    let mut tools = 0;
    let mut next_tool = |id: Option<&String>| {
        tools += 1;
        tool_id(ctx, id, tools - 1)
    };
    match ctx.provider {
        Provider::Openai => {
            let (mut content, mut reasoning, mut calls) = (Vec::new(), Vec::new(), Vec::new());
            for item in &stream.items {
                match item {
                    Item::Text { text, .. } => content.push(text.as_str()),
                    Item::Reasoning { text, .. } => reasoning.push(text.as_str()),
                    Item::RedactedReasoning { .. } => {}
                    Item::ToolCall {
                        id,
                        name,
                        arguments,
                        ..
                    } => calls.push(json!({
                        "id": next_tool(id.as_ref()), "type": "function",
                        "function": {"name": name, "arguments": arguments_text(arguments)},
                    })),
                }
            }
            let content = (!content.is_empty()).then(|| content.concat());
            let mut message = json!({"role": "assistant", "content": content, "refusal": null, "annotations": []});
            if !reasoning.is_empty() {
                message["reasoning_content"] = json!(reasoning.concat());
            }
            if !calls.is_empty() {
                message["tool_calls"] = json!(calls);
            }
            json!({
                "id": message_id(ctx), "object": "chat.completion", "created": ctx.created, "model": ctx.model,
                "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": reason}],
                "usage": totals.openai(), "service_tier": "default", "system_fingerprint": "fp_mock",
            })
        }
        Provider::Anthropic => {
            let mut content: Vec<Value> = Vec::new();
            for item in &stream.items {
                let last = content.last_mut();
                match item {
                    Item::Text { text, .. } => match last {
                        Some(block) if block["type"] == "text" => {
                            block["text"] = json!(format!("{}{text}", block["text"].as_str().unwrap_or_default()));
                        }
                        _ => content.push(json!({"type": "text", "text": text})),
                    },
                    Item::Reasoning { text, signature, .. } => match last {
                        Some(block) if block["type"] == "thinking" && block["signature"] == "" => {
                            block["thinking"] = json!(format!("{}{text}", block["thinking"].as_str().unwrap_or_default()));
                            block["signature"] = json!(signature.clone().unwrap_or_default());
                        }
                        _ => content.push(json!({"type": "thinking", "thinking": text, "signature": signature.clone().unwrap_or_default()})),
                    },
                    Item::RedactedReasoning { data, .. } => content.push(json!({"type": "redacted_thinking", "data": data})),
                    Item::ToolCall { id, name, arguments, .. } => {
                        let text = arguments_text(arguments);
                        let input = serde_json::from_str(&text).unwrap_or(Value::String(text));
                        content.push(json!({"type": "tool_use", "id": next_tool(id.as_ref()), "name": name, "input": input}));
                    }
                }
            }
            json!({
                "id": message_id(ctx), "type": "message", "role": "assistant", "model": ctx.model,
                "content": content, "stop_reason": reason, "stop_sequence": null,
                "usage": totals.anthropic(totals.output),
            })
        }
        Provider::OpenaiResponses => responses::json_body(ctx, stream, totals),
    }
}

/// The error body for a scripted HTTP error: `(body, content type)`.
pub(crate) fn error_body(
    provider: Provider,
    error: &HttpError,
    model: &str,
    request_id: &str,
) -> (String, &'static str) {
    const JSON: &str = "application/json";
    match &error.body {
        Some(Value::String(text)) => return (text.clone(), "text/plain; charset=utf-8"),
        Some(other) => return (other.to_string(), JSON),
        None => {}
    }
    let (anthropic_type, anthropic_message, openai_type, openai_code, openai_message) = match error
        .status
    {
        400 => (
            "invalid_request_error",
            "Invalid request".to_owned(),
            "invalid_request_error",
            None,
            "Invalid request".to_owned(),
        ),
        401 => (
            "authentication_error",
            "invalid x-api-key".to_owned(),
            "invalid_request_error",
            Some("invalid_api_key"),
            "Incorrect API key provided.".to_owned(),
        ),
        403 => (
            "permission_error",
            "Your API key does not have permission to use the specified resource.".to_owned(),
            "invalid_request_error",
            Some("permission_denied"),
            "You are not allowed to use this resource.".to_owned(),
        ),
        404 => (
            "not_found_error",
            format!("model: {model}"),
            "invalid_request_error",
            Some("model_not_found"),
            format!("The model `{model}` does not exist or you do not have access to it."),
        ),
        413 => (
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.".to_owned(),
            "invalid_request_error",
            None,
            "Request too large.".to_owned(),
        ),
        429 => (
            "rate_limit_error",
            "This request would exceed your account's rate limit. Please try again later."
                .to_owned(),
            "requests",
            Some("rate_limit_exceeded"),
            "Rate limit reached for requests. Please try again later.".to_owned(),
        ),
        529 => (
            "overloaded_error",
            "Overloaded".to_owned(),
            "server_error",
            Some("overloaded"),
            "The server is overloaded.".to_owned(),
        ),
        status if status >= 500 => (
            "api_error",
            "Internal server error".to_owned(),
            "server_error",
            None,
            "The server had an error while processing your request. Sorry about that!".to_owned(),
        ),
        _ => (
            "invalid_request_error",
            "Invalid request".to_owned(),
            "invalid_request_error",
            None,
            "Invalid request".to_owned(),
        ),
    };
    let body = match provider {
        Provider::Anthropic => json!({
            "type": "error",
            "error": {
                "type": error.error_type.as_deref().unwrap_or(anthropic_type),
                "message": error.message.clone().unwrap_or(anthropic_message),
            },
            "request_id": request_id,
        }),
        Provider::Openai | Provider::OpenaiResponses => json!({"error": {
            "message": error.message.clone().unwrap_or(openai_message),
            "type": error.error_type.as_deref().unwrap_or(openai_type),
            "param": null,
            "code": openai_code,
        }}),
    };
    (body.to_string(), JSON)
}
