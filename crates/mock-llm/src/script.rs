//! Scripted responses: the serde data a test (or `--script` file, or `POST /_mock/responses`)
//! queues, and the constructors that make writing them from Rust short.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// A provider wire format, chosen by the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// `POST /v1/chat/completions` (and `/chat/completions`).
    Openai,
    /// `POST /v1/messages`.
    Anthropic,
    /// `POST /v1/responses` (and `/responses`): OpenAI's Responses API.
    OpenaiResponses,
}

/// One queued answer to one provider request.
///
/// JSON: `{"provider"?: "openai"|"anthropic"|"openai_responses", "latency_ms"?: N, "stream": Stream}` or
/// `{... "error": HttpError}` (exactly one of `stream` / `error`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawResponse", into = "RawResponse")]
pub struct Response {
    /// Only a request in this format may take this response; `None` = any request.
    pub provider: Option<Provider>,
    /// Delay before the response headers are sent.
    pub latency_ms: u64,
    pub reply: Reply,
}

/// What a [`Response`] sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A `200` answer: SSE when the request asked for `stream: true`, else a JSON body.
    Stream(Stream),
    /// A non-`200` status with a provider-shaped error body.
    Error(HttpError),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider: Option<Provider>,
    #[serde(default, skip_serializing_if = "is_zero")]
    latency_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stream: Option<Stream>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<HttpError>,
}

impl TryFrom<RawResponse> for Response {
    type Error = String;

    fn try_from(raw: RawResponse) -> std::result::Result<Self, String> {
        let reply = match (raw.stream, raw.error) {
            (Some(stream), None) => Reply::Stream(stream),
            (None, Some(error)) => Reply::Error(error),
            (Some(_), Some(_)) => {
                return Err("a response has either `stream` or `error`, not both".into());
            }
            (None, None) => return Err("a response needs `stream` or `error`".into()),
        };
        Ok(Self {
            provider: raw.provider,
            latency_ms: raw.latency_ms,
            reply,
        })
    }
}

impl From<Response> for RawResponse {
    fn from(response: Response) -> Self {
        let (stream, error) = match response.reply {
            Reply::Stream(stream) => (Some(stream), None),
            Reply::Error(error) => (None, Some(error)),
        };
        Self {
            provider: response.provider,
            latency_ms: response.latency_ms,
            stream,
            error,
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A successful answer: content items in order, optional overrides and an optional fault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stream {
    #[serde(default)]
    pub items: Vec<Item>,
    /// Per-field override of the computed usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Default: `tool_calls` when the items hold a tool call, else `stop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish: Option<Finish>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
}

/// One piece of streamed content. Consecutive `text` (or `reasoning`) items share one block
/// (Responses: one output item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Item {
    /// OpenAI `delta.content`; Anthropic `text_delta`; Responses `response.output_text.delta`
    /// in a `message` item.
    Text {
        text: String,
        #[serde(default, skip_serializing_if = "is_zero")]
        delay_ms: u64,
    },
    /// OpenAI `delta.reasoning_content` (DeepSeek style); Anthropic `thinking_delta`, then a
    /// `signature_delta` closing the block when `signature` is set; Responses
    /// `response.reasoning_summary_text.delta` in a `reasoning` item with one `summary_text`
    /// part, `signature` becoming the item's `encrypted_content` (and closing the item).
    Reasoning {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
        #[serde(default, skip_serializing_if = "is_zero")]
        delay_ms: u64,
    },
    /// Anthropic `redacted_thinking` block; Responses: a `reasoning` item with an empty
    /// `summary` and `encrypted_content` = `data`; nothing in the OpenAI chat format.
    RedactedReasoning {
        data: String,
        #[serde(default, skip_serializing_if = "is_zero")]
        delay_ms: u64,
    },
    /// A tool call. `arguments` is a JSON value, or a string sent verbatim (to script invalid
    /// JSON). Several tool calls in one stream are parallel calls.
    ToolCall {
        /// Default: `call_mock_<n>` (OpenAI; Responses `call_id`) / `toolu_mock_<n>` (Anthropic).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        name: String,
        #[serde(default = "empty_object")]
        arguments: Value,
        /// How many argument deltas to split the arguments text into (at UTF-8 boundaries,
        /// otherwise anywhere: mid-key, mid-value). 0 counts as 1.
        #[serde(default = "one")]
        fragments: usize,
        #[serde(default, skip_serializing_if = "is_zero")]
        delay_ms: u64,
    },
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

fn one() -> usize {
    1
}

/// Usage numbers in Anthropic's terms; each set field replaces the computed one.
///
/// OpenAI's `prompt_tokens` (Responses: `input_tokens`) is
/// `input_tokens + cache_read_tokens + cache_write_tokens` and its `cached_tokens` is
/// `cache_read_tokens`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
}

/// Why the answer ended; accepts both providers' names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// OpenAI `stop`, Anthropic `end_turn`.
    #[serde(alias = "end_turn")]
    Stop,
    /// OpenAI `tool_calls`, Anthropic `tool_use`.
    #[serde(alias = "tool_use")]
    ToolCalls,
    /// OpenAI `length`, Anthropic `max_tokens`, Responses `response.incomplete` with
    /// `incomplete_details.reason` = `max_output_tokens`.
    #[serde(alias = "max_tokens")]
    Length,
}

/// Something going wrong after the `200` headers, once `after` items were sent (an `after`
/// beyond the item count fires before the final events). Without `stream: true`: `disconnect`
/// cuts the JSON body, `malformed` sends half of it, `stall` delays it, `error_event` becomes an
/// HTTP error (529 for `overloaded_error`, else 500).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The body is cut (no terminating events, no final chunk) and the connection closed.
    Disconnect { after: usize },
    /// One event whose `data:` line is invalid JSON is inserted; the stream then goes on.
    Malformed { after: usize },
    /// Nothing is sent for `ms` milliseconds (forever when absent) with the connection open.
    Stall {
        after: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ms: Option<u64>,
    },
    /// An `event: error` with the provider's error body ends the stream (Responses:
    /// `{"type": "error", "code": error_type, "message", "param": null, "sequence_number"}`).
    ErrorEvent {
        after: usize,
        #[serde(default = "overloaded_type")]
        error_type: String,
        #[serde(default = "overloaded_message")]
        message: String,
    },
}

fn overloaded_type() -> String {
    "overloaded_error".into()
}

fn overloaded_message() -> String {
    "Overloaded".into()
}

impl Fault {
    pub(crate) fn after(&self) -> usize {
        match self {
            Self::Disconnect { after }
            | Self::Malformed { after }
            | Self::Stall { after, .. }
            | Self::ErrorEvent { after, .. } => *after,
        }
    }
}

/// A non-`200` answer. The body defaults to the provider's error shape for `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpError {
    pub status: u16,
    /// Sent as the `retry-after` header (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// Replaces the default error `type` (e.g. `overloaded_error`, `rate_limit_error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Replaces the whole body: a JSON string is sent verbatim as text, anything else as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Extra response headers, e.g. `x-should-retry`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl Response {
    /// A streamed (or JSON) answer made of `items`.
    pub fn stream(items: Vec<Item>) -> Self {
        Self {
            provider: None,
            latency_ms: 0,
            reply: Reply::Stream(Stream {
                items,
                ..Stream::default()
            }),
        }
    }

    /// A one-item text answer.
    pub fn text(text: &str) -> Self {
        Self::stream(vec![Item::text(text)])
    }

    /// A `status` answer with the provider's default error body.
    pub fn http_error(status: u16) -> Self {
        Self {
            provider: None,
            latency_ms: 0,
            reply: Reply::Error(HttpError {
                status,
                ..HttpError::default()
            }),
        }
    }

    /// Restricts this response to requests in `provider`'s format.
    pub fn for_provider(mut self, provider: Provider) -> Self {
        self.provider = Some(provider);
        self
    }

    pub fn with_latency(mut self, ms: u64) -> Self {
        self.latency_ms = ms;
        self
    }

    /// Sets a fault; no effect on an [`Reply::Error`] response.
    pub fn with_fault(mut self, fault: Fault) -> Self {
        if let Reply::Stream(stream) = &mut self.reply {
            stream.fault = Some(fault);
        }
        self
    }

    /// Sets the usage override; no effect on an [`Reply::Error`] response.
    pub fn with_usage(mut self, usage: Usage) -> Self {
        if let Reply::Stream(stream) = &mut self.reply {
            stream.usage = Some(usage);
        }
        self
    }

    /// Sets the finish reason; no effect on an [`Reply::Error`] response.
    pub fn with_finish(mut self, finish: Finish) -> Self {
        if let Reply::Stream(stream) = &mut self.reply {
            stream.finish = Some(finish);
        }
        self
    }

    /// Rejects what would only fail later, when the response is sent.
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        let error = match &self.reply {
            Reply::Stream(_) => return Ok(()),
            Reply::Error(error) => error,
        };
        if axum::http::StatusCode::from_u16(error.status).is_err() {
            return Err(format!("invalid HTTP status {}", error.status));
        }
        for (name, value) in &error.headers {
            if axum::http::HeaderName::try_from(name.as_str()).is_err()
                || axum::http::HeaderValue::try_from(value.as_str()).is_err()
            {
                return Err(format!("invalid header {name}: {value}"));
            }
        }
        Ok(())
    }
}

impl Item {
    pub fn text(text: &str) -> Self {
        Self::Text {
            text: text.into(),
            delay_ms: 0,
        }
    }

    pub fn reasoning(text: &str, signature: Option<&str>) -> Self {
        Self::Reasoning {
            text: text.into(),
            signature: signature.map(Into::into),
            delay_ms: 0,
        }
    }

    pub fn redacted_reasoning(data: &str) -> Self {
        Self::RedactedReasoning {
            data: data.into(),
            delay_ms: 0,
        }
    }

    /// A tool call whose `arguments` text is sent verbatim in `fragments` pieces.
    pub fn tool_call(id: &str, name: &str, arguments: &str, fragments: usize) -> Self {
        Self::ToolCall {
            id: Some(id.into()),
            name: name.into(),
            arguments: Value::String(arguments.into()),
            fragments,
            delay_ms: 0,
        }
    }

    /// Waits `ms` milliseconds before this item is sent.
    pub fn delayed(mut self, ms: u64) -> Self {
        match &mut self {
            Self::Text { delay_ms, .. }
            | Self::Reasoning { delay_ms, .. }
            | Self::RedactedReasoning { delay_ms, .. }
            | Self::ToolCall { delay_ms, .. } => *delay_ms = ms,
        }
        self
    }

    pub(crate) fn delay_ms(&self) -> u64 {
        match self {
            Self::Text { delay_ms, .. }
            | Self::Reasoning { delay_ms, .. }
            | Self::RedactedReasoning { delay_ms, .. }
            | Self::ToolCall { delay_ms, .. } => *delay_ms,
        }
    }
}

/// The arguments text of a tool call: a JSON string verbatim, anything else compact JSON.
pub(crate) fn arguments_text(arguments: &Value) -> String {
    match arguments {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Splits `text` into `parts` pieces of about equal byte length, each cut moved forward to the
/// next UTF-8 character boundary (so a piece may be empty only when `text` is short).
pub(crate) fn split_fragments(text: &str, parts: usize) -> Vec<&str> {
    let parts = parts.max(1);
    let mut pieces = Vec::with_capacity(parts);
    let mut start = 0;
    for k in 1..=parts {
        let mut end = (text.len() * k).div_ceil(parts).max(start);
        while !text.is_char_boundary(end) {
            end += 1;
        }
        pieces.push(&text[start..end]);
        start = end;
    }
    pieces
}

/// Parses a script: one response object or an array of them.
pub fn parse_script(json: &str) -> Result<Vec<Response>> {
    let value: Value = serde_json::from_str(json).map_err(|err| Error::Script(err.to_string()))?;
    let responses: Vec<Response> = match value {
        Value::Array(_) => serde_json::from_value(value),
        other => serde_json::from_value(other).map(|one| vec![one]),
    }
    .map_err(|err| Error::Script(err.to_string()))?;
    for (index, response) in responses.iter().enumerate() {
        response
            .validate()
            .map_err(|err| Error::Script(format!("response {index}: {err}")))?;
    }
    Ok(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, parts: usize, expect: &[&str]) {
        let pieces = split_fragments(text, parts);
        assert_eq!(pieces, expect);
        assert_eq!(pieces.concat(), text);
    }

    #[test]
    fn fragments_respect_utf8_boundaries() {
        check(r#"{"a":"b"}"#, 3, &[r#"{"a"#, r#"":""#, r#"b"}"#]);
        check("ééé", 2, &["éé", "é"]);
        check("é", 3, &["é", "", ""]);
        check("", 2, &["", ""]);
        check("abc", 0, &["abc"]);
    }

    #[test]
    fn the_crate_docs_example_script_parses() {
        let docs: String = include_str!("lib.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("//!"))
            .map(|line| format!("{}\n", line.trim_start()))
            .collect();
        let example = docs
            .split("```json")
            .nth(1)
            .and_then(|rest| rest.split("```").next());
        let parsed = example.map(parse_script);
        assert!(
            matches!(parsed, Some(Ok(ref responses)) if responses.len() == 3),
            "{parsed:?}"
        );
    }

    #[test]
    fn script_parse_rejects_bad_input() {
        assert!(parse_script(r#"{"stream":{"items":[{"type":"txt","text":"x"}]}}"#).is_err());
        assert!(parse_script(r#"{"latncy_ms":1,"stream":{}}"#).is_err());
        assert!(parse_script(r#"{"error":{"status":42}}"#).is_err());
        assert!(parse_script(r#"{}"#).is_err());
        assert!(
            parse_script(r#"{"stream":{"items":[{"type":"text","text":"x","dely_ms":1}]}}"#)
                .is_err()
        );
        assert!(parse_script(r#"{"stream":{"fault":{"type":"stall"}}}"#).is_err());
        let parsed =
            parse_script(r#"[{"stream":{"items":[{"type":"text","text":"x","delay_ms":5}]}}]"#);
        assert_eq!(
            parsed.ok(),
            Some(vec![Response::stream(vec![Item::text("x").delayed(5)])])
        );
    }
}
