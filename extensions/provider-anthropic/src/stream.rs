//! The Anthropic Messages stream, assembled into provider events.
//!
//! Events: `message_start` (usage), `content_block_start` / `_delta` / `_stop` per content
//! block index (text, thinking with its signature, redacted thinking, tool use whose input
//! JSON arrives in `input_json_delta` fragments), `message_delta` (stop reason, usage),
//! `message_stop`. `ping` and event types this build does not know are ignored; `error`
//! ends the stream with a classified error.
//!
//! Usage is assigned, never summed: `message_start` gives the input and cache numbers and a
//! provisional output count; a later `message_delta` replaces whatever it repeats, and its
//! `output_tokens` is cumulative.
//!
//! Each event's data is read in one pass into `Data`, borrowing its strings from the
//! event (a text delta costs one allocation, the delta's own `String`), and as leniently as
//! indexing a `serde_json::Value` would: a field of another type than expected reads as
//! absent instead of failing the event, so fields one block kind uses and another kind
//! types differently never break a stream. Only data that is not JSON is malformed (and,
//! unlike with a `Value`, data naming a field the assembler reads twice).

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;

use dispatch_kernel::abi::{ProviderError, ProviderEvent, StopReason};
use dispatch_provider_kit::{Assembler, ErrorCtx, SseEvent};
use dispatch_wire::Usage;
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// The fields of an event's data the assembler reads; everything else is skipped unread.
/// (In these structs one `#[serde(borrow)]` field lets every field borrow from the data.)
#[derive(Default, Deserialize)]
#[serde(default)]
struct Data<'a> {
    /// The event type, read when the event has no `event:` line.
    #[serde(rename = "type", borrow)]
    kind: Scalar<'a>,
    index: Scalar<'a>,
    /// `content_block_start`.
    content_block: Json<'a, Content<'a>>,
    /// `content_block_delta` (the content) and `message_delta` (the stop reason).
    delta: Json<'a, Content<'a>>,
    /// `message_start`.
    message: Json<'a, MessageStart<'a>>,
    /// `message_delta`.
    usage: Json<'a, UsageData<'a>>,
}

/// A content block or a delta: the fields the assembler reads from either.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Content<'a> {
    #[serde(rename = "type", borrow)]
    kind: Scalar<'a>,
    text: Scalar<'a>,
    thinking: Scalar<'a>,
    signature: Scalar<'a>,
    /// Redacted thinking's data.
    data: Scalar<'a>,
    id: Scalar<'a>,
    name: Scalar<'a>,
    partial_json: Scalar<'a>,
    stop_reason: Scalar<'a>,
    /// A tool call's input when it comes whole (rare: read as a value).
    input: Option<Value>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct MessageStart<'a> {
    #[serde(borrow)]
    usage: Json<'a, UsageData<'a>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct UsageData<'a> {
    #[serde(borrow)]
    input_tokens: Scalar<'a>,
    cache_read_input_tokens: Scalar<'a>,
    cache_creation_input_tokens: Scalar<'a>,
    output_tokens: Scalar<'a>,
    output_tokens_details: Json<'a, UsageDetails<'a>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct UsageDetails<'a> {
    #[serde(borrow)]
    thinking_tokens: Scalar<'a>,
}

/// A JSON value as far as the assembler reads one: a string (borrowed from the event's
/// data unless it has escapes), a non-negative integer, an object read as `T`, or anything
/// else, skipped. Like indexing into a `serde_json::Value`, reading a value as a kind it
/// is not gives the empty string, `None` or `T`'s default.
#[derive(Default)]
enum Json<'a, T> {
    Str(Cow<'a, str>),
    U64(u64),
    Object(T),
    #[default]
    Other,
}

/// A value whose object form is never read.
type Scalar<'a> = Json<'a, IgnoredAny>;

impl<'a, T> Json<'a, T> {
    /// The string, or `""`.
    fn as_str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            Json::U64(_) | Json::Object(_) | Json::Other => "",
        }
    }

    /// The string, owned (no copy when it had escapes), or empty.
    fn into_string(self) -> String {
        match self {
            Json::Str(s) => s.into_owned(),
            Json::U64(_) | Json::Object(_) | Json::Other => String::new(),
        }
    }

    fn as_u64(&self) -> Option<u64> {
        match self {
            Json::U64(n) => Some(*n),
            Json::Str(_) | Json::Object(_) | Json::Other => None,
        }
    }

    fn into_object(self) -> T
    where
        T: Default,
    {
        match self {
            Json::Object(object) => object,
            Json::Str(_) | Json::U64(_) | Json::Other => T::default(),
        }
    }
}

impl<'de: 'a, 'a, T: Deserialize<'de>> Deserialize<'de> for Json<'a, T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json<'a, T>, D::Error> {
        struct JsonVisitor<'a, T>(PhantomData<(&'a (), T)>);

        impl<'de: 'a, 'a, T: Deserialize<'de>> Visitor<'de> for JsonVisitor<'a, T> {
            type Value = Json<'a, T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'a, T>, E> {
                Ok(Json::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Json<'a, T>, E> {
                Ok(Json::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Json<'a, T>, E> {
                Ok(Json::Str(Cow::Owned(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Json<'a, T>, E> {
                Ok(Json::U64(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Json<'a, T>, E> {
                Ok(u64::try_from(v).map_or(Json::Other, Json::U64))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Json<'a, T>, E> {
                Ok(Json::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Json<'a, T>, E> {
                Ok(Json::Other)
            }
            fn visit_unit<E>(self) -> Result<Json<'a, T>, E> {
                Ok(Json::Other)
            }
            fn visit_none<E>(self) -> Result<Json<'a, T>, E> {
                Ok(Json::Other)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json<'a, T>, D::Error> {
                Json::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Json<'a, T>, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| Json::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Json<'a, T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Json::Object)
            }
        }

        deserializer.deserialize_any(JsonVisitor(PhantomData))
    }
}

/// An open content block.
enum Block {
    /// Text and thinking stream as deltas; a thinking block may carry a signature in its
    /// start event (sent at its stop unless a `signature_delta` came).
    Streamed { signature: Option<String> },
    /// A tool call: its input JSON is the concatenation of its fragments.
    ToolUse {
        id: String,
        name: String,
        json: String,
        /// The start event's non-empty `input`, used when no fragment arrives.
        initial: Option<String>,
    },
    /// Anything else (redacted thinking, server tools, newer kinds): nothing at its stop.
    Other,
}

/// Anthropic's usage numbers, as last reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RawUsage {
    input: u64,
    cache_read: u64,
    cache_write: u64,
    output: u64,
    thinking: u64,
}

impl RawUsage {
    /// Takes every number `usage` reports; absent (or `null`) numbers keep their value.
    fn assign(&mut self, usage: UsageData<'_>) {
        let set = |field: &mut u64, value: Scalar<'_>| {
            if let Some(n) = value.as_u64() {
                *field = n;
            }
        };
        set(&mut self.input, usage.input_tokens);
        set(&mut self.cache_read, usage.cache_read_input_tokens);
        set(&mut self.cache_write, usage.cache_creation_input_tokens);
        set(&mut self.output, usage.output_tokens);
        set(
            &mut self.thinking,
            usage.output_tokens_details.into_object().thinking_tokens,
        );
    }

    /// In Dispatch's terms: Anthropic's `input_tokens` excludes the cached parts.
    fn wire(self) -> Usage {
        Usage {
            input_tokens: self.input + self.cache_read + self.cache_write,
            output_tokens: self.output,
            cache_read_tokens: self.cache_read,
            cache_write_tokens: self.cache_write,
            reasoning_tokens: self.thinking,
        }
    }
}

/// The stateful assembler of one response.
pub struct AnthropicAssembler {
    ctx: ErrorCtx,
    blocks: BTreeMap<u64, Block>,
    usage: RawUsage,
    stop: Option<StopReason>,
    finished: bool,
}

impl AnthropicAssembler {
    /// `ctx` names the instance and model in errors and redacts the key.
    pub fn new(ctx: ErrorCtx) -> AnthropicAssembler {
        AnthropicAssembler {
            ctx,
            blocks: BTreeMap::new(),
            usage: RawUsage::default(),
            stop: None,
            finished: false,
        }
    }

    /// The content block index of a `kind` event.
    fn index(&self, kind: &str, data: &Data<'_>) -> Result<u64, ProviderError> {
        data.index.as_u64().ok_or_else(|| {
            self.ctx
                .malformed(&format!("`{kind}` event without an index"))
        })
    }

    fn block_start(&mut self, index: u64, block: Content<'_>, out: &mut VecDeque<ProviderEvent>) {
        let open = match block.kind.as_str() {
            "text" => {
                push_text(out, ProviderEvent::TextDelta, block.text.into_string());
                Block::Streamed { signature: None }
            }
            "thinking" => {
                push_text(
                    out,
                    ProviderEvent::ReasoningDelta,
                    block.thinking.into_string(),
                );
                let signature = block.signature.into_string();
                Block::Streamed {
                    signature: (!signature.is_empty()).then_some(signature),
                }
            }
            "redacted_thinking" => {
                out.push_back(ProviderEvent::RedactedReasoning(block.data.into_string()));
                Block::Other
            }
            "tool_use" => Block::ToolUse {
                id: block.id.into_string(),
                name: block.name.into_string(),
                json: String::new(),
                initial: block
                    .input
                    .filter(|input| input.as_object().is_some_and(|input| !input.is_empty()))
                    .map(|input| input.to_string()),
            },
            _ => Block::Other,
        };
        self.blocks.insert(index, open);
    }

    fn block_delta(&mut self, index: u64, delta: Content<'_>, out: &mut VecDeque<ProviderEvent>) {
        match delta.kind.as_str() {
            "text_delta" => push_text(out, ProviderEvent::TextDelta, delta.text.into_string()),
            "thinking_delta" => {
                push_text(
                    out,
                    ProviderEvent::ReasoningDelta,
                    delta.thinking.into_string(),
                );
            }
            "signature_delta" => {
                if let Some(Block::Streamed { signature }) = self.blocks.get_mut(&index) {
                    *signature = None;
                }
                out.push_back(ProviderEvent::ReasoningSignature(
                    delta.signature.into_string(),
                ));
            }
            "input_json_delta" => {
                if let Some(Block::ToolUse { json, .. }) = self.blocks.get_mut(&index) {
                    json.push_str(delta.partial_json.as_str());
                }
            }
            _ => {}
        }
    }

    fn block_stop(&mut self, index: u64, out: &mut VecDeque<ProviderEvent>) {
        match self.blocks.remove(&index) {
            Some(Block::ToolUse {
                id,
                name,
                json,
                initial,
            }) => {
                let arguments = if json.trim().is_empty() {
                    initial.unwrap_or_else(|| "{}".to_owned())
                } else {
                    json
                };
                out.push_back(ProviderEvent::ToolCall {
                    id,
                    name,
                    arguments,
                });
            }
            Some(Block::Streamed {
                signature: Some(signature),
            }) => out.push_back(ProviderEvent::ReasoningSignature(signature)),
            Some(Block::Streamed { signature: None } | Block::Other) | None => {}
        }
    }
}

/// Pushes a text or reasoning delta unless it is empty.
fn push_text(out: &mut VecDeque<ProviderEvent>, event: fn(String) -> ProviderEvent, text: String) {
    if !text.is_empty() {
        out.push_back(event(text));
    }
}

/// Anthropic's stop reason in Dispatch's terms.
pub fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "end_turn" | "stop_sequence" => StopReason::EndTurn,
        "tool_use" => StopReason::ToolCalls,
        "max_tokens" => StopReason::MaxTokens,
        other => StopReason::Other(other.to_owned()),
    }
}

impl Assembler for AnthropicAssembler {
    fn event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<(), ProviderError> {
        let SseEvent { event: name, data } = event;
        match name.as_str() {
            "ping" => return Ok(()),
            "error" => return Err(self.ctx.stream_error(&data)),
            "message_start"
            | "content_block_start"
            | "content_block_delta"
            | "content_block_stop"
            | "message_delta"
            | "message_stop"
            | "message" => {}
            // A newer event type: its data is not ours to judge.
            _ => return Ok(()),
        }
        let parsed: Data<'_> = serde_json::from_str::<Json<'_, Data<'_>>>(&data)
            .map_err(|err| self.ctx.malformed(&format!("`{name}` event: {err}")))?
            .into_object();
        // Without an `event:` line the type is in the data.
        let kind = if name == "message" {
            parsed.kind.as_str()
        } else {
            name.as_str()
        };
        match kind {
            "message_start" => {
                self.usage
                    .assign(parsed.message.into_object().usage.into_object());
                out.push_back(ProviderEvent::Usage(self.usage.wire()));
            }
            "content_block_start" => {
                let index = self.index(kind, &parsed)?;
                self.block_start(index, parsed.content_block.into_object(), out);
            }
            "content_block_delta" => {
                let index = self.index(kind, &parsed)?;
                self.block_delta(index, parsed.delta.into_object(), out);
            }
            "content_block_stop" => {
                let index = self.index(kind, &parsed)?;
                self.block_stop(index, out);
            }
            "message_delta" => {
                if let Json::Str(reason) = &parsed.delta.into_object().stop_reason {
                    self.stop = Some(stop_reason(reason));
                }
                self.usage.assign(parsed.usage.into_object());
                out.push_back(ProviderEvent::Usage(self.usage.wire()));
            }
            "message_stop" => {
                self.finished = true;
                let stop = self
                    .stop
                    .take()
                    .unwrap_or_else(|| StopReason::Other("unknown".to_owned()));
                out.push_back(ProviderEvent::Usage(self.usage.wire()));
                out.push_back(ProviderEvent::Finish(stop));
            }
            "error" => return Err(self.ctx.stream_error(&data)),
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut VecDeque<ProviderEvent>) -> Result<(), ProviderError> {
        if self.finished {
            Ok(())
        } else {
            Err(self.ctx.disconnected())
        }
    }

    fn finished(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use dispatch_provider_kit::Redactor;
    use pretty_assertions::assert_eq;

    use super::*;

    fn run(events: &[(&str, &str)]) -> (Vec<ProviderEvent>, Result<(), ProviderError>) {
        let mut a = AnthropicAssembler::new(ErrorCtx::new(
            Arc::from("anthropic"),
            "claude-x",
            Redactor::default(),
        ));
        let mut out = VecDeque::new();
        for (event, data) in events {
            let step = a.event(
                SseEvent {
                    event: (*event).to_owned(),
                    data: (*data).to_owned(),
                },
                &mut out,
            );
            if let Err(err) = step {
                return (out.into(), Err(err));
            }
        }
        let end = a.end(&mut out);
        (out.into(), end)
    }

    #[test]
    fn usage_is_assigned_and_a_missing_stop_is_a_disconnect() {
        let (events, end) = run(&[
            (
                "message_start",
                r#"{"type":"message_start","message":{"usage":{"input_tokens":10,"cache_read_input_tokens":100,"cache_creation_input_tokens":null,"output_tokens":3}}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"pause_turn"},"usage":{"output_tokens":40,"output_tokens_details":{"thinking_tokens":25}}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ]);
        assert!(end.is_ok());
        let usage = Usage {
            input_tokens: 110,
            output_tokens: 40,
            cache_read_tokens: 100,
            cache_write_tokens: 0,
            reasoning_tokens: 25,
        };
        assert_eq!(
            events.last(),
            Some(&ProviderEvent::Finish(StopReason::Other(
                "pause_turn".to_owned()
            )))
        );
        assert_eq!(events[events.len() - 2], ProviderEvent::Usage(usage));

        let (_, end) = run(&[("message_start", r#"{"message":{}}"#)]);
        let err = end.unwrap_err();
        assert!(err.retryable);
        assert_eq!(err.code.as_deref(), Some("disconnect"));
    }

    #[test]
    fn events_without_an_event_line_unknown_events_and_bad_json() {
        let (events, end) = run(&[
            (
                "message",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":"Hi"}}"#,
            ),
            ("future_event", "not json at all"),
            ("message", r#"{"type":"message_stop"}"#),
        ]);
        assert!(end.is_ok());
        assert_eq!(events[0], ProviderEvent::TextDelta("Hi".to_owned()));
        let (_, end) = run(&[(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"#,
        )]);
        let err = end.unwrap_err();
        assert!(!err.retryable);
        assert_eq!(err.code.as_deref(), Some("malformed_event"));
        assert!(
            err.message.starts_with(
                "anthropic (claude-x): malformed stream event: `content_block_delta` event:"
            ),
            "{}",
            err.message
        );
    }

    #[test]
    fn fields_of_an_unexpected_type_read_as_absent() {
        let (events, end) = run(&[
            ("message_start", "[1, 2]"),
            (
                "message_start",
                r#"{"message":{"usage":{"input_tokens":"7","cache_read_input_tokens":-1,"output_tokens":2.5,"output_tokens_details":[1]}}}"#,
            ),
            (
                "content_block_start",
                r#"{"index":0,"content_block":{"type":"redacted_thinking","data":"ZA==","text":{"a":[1]},"id":7}}"#,
            ),
            (
                "content_block_start",
                r#"{"index":1,"content_block":{"type":"text","text":5}}"#,
            ),
            (
                "content_block_delta",
                r#"{"index":1,"delta":{"type":"text_delta","text":"a\nb","citations":[{"x":null}]}}"#,
            ),
            (
                "message_delta",
                r#"{"delta":{"stop_reason":null},"usage":"none"}"#,
            ),
            (
                "message_delta",
                r#"{"delta":"x","usage":{"output_tokens":9}}"#,
            ),
            ("message_stop", "{}"),
        ]);
        assert!(end.is_ok());
        let nine = Usage {
            output_tokens: 9,
            ..Usage::default()
        };
        assert_eq!(
            events,
            [
                ProviderEvent::Usage(Usage::default()),
                ProviderEvent::Usage(Usage::default()),
                ProviderEvent::RedactedReasoning("ZA==".to_owned()),
                ProviderEvent::TextDelta("a\nb".to_owned()),
                ProviderEvent::Usage(Usage::default()),
                ProviderEvent::Usage(nine),
                ProviderEvent::Usage(nine),
                ProviderEvent::Finish(StopReason::Other("unknown".to_owned())),
            ]
        );
        let (_, end) = run(&[("content_block_stop", r#"{"index":"0"}"#)]);
        assert_eq!(
            end.unwrap_err().message,
            "anthropic (claude-x): malformed stream event: `content_block_stop` event without an index"
        );
    }

    #[test]
    fn tool_input_from_the_start_event_when_no_fragment_comes() {
        let (events, _) = run(&[
            (
                "content_block_start",
                r#"{"index":1,"content_block":{"type":"tool_use","id":"t","name":"n","input":{"a":1}}}"#,
            ),
            ("content_block_stop", r#"{"index":1}"#),
            (
                "content_block_start",
                r#"{"index":2,"content_block":{"type":"thinking","thinking":"","signature":"c2ln"}}"#,
            ),
            ("content_block_stop", r#"{"index":2}"#),
        ]);
        assert_eq!(
            events,
            [
                ProviderEvent::ToolCall {
                    id: "t".to_owned(),
                    name: "n".to_owned(),
                    arguments: r#"{"a":1}"#.to_owned()
                },
                ProviderEvent::ReasoningSignature("c2ln".to_owned()),
            ]
        );
    }
}
