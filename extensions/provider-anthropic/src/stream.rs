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

use std::collections::{BTreeMap, VecDeque};

use dispatch_kernel::abi::{ProviderError, ProviderEvent, StopReason};
use dispatch_provider_kit::{Assembler, ErrorCtx, SseEvent};
use dispatch_wire::Usage;
use serde_json::Value;

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
    fn assign(&mut self, usage: &Value) {
        let set = |field: &mut u64, value: &Value| {
            if let Some(n) = value.as_u64() {
                *field = n;
            }
        };
        set(&mut self.input, &usage["input_tokens"]);
        set(&mut self.cache_read, &usage["cache_read_input_tokens"]);
        set(&mut self.cache_write, &usage["cache_creation_input_tokens"]);
        set(&mut self.output, &usage["output_tokens"]);
        set(
            &mut self.thinking,
            &usage["output_tokens_details"]["thinking_tokens"],
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

    fn index(&self, name: &str, data: &Value) -> Result<u64, ProviderError> {
        data["index"].as_u64().ok_or_else(|| {
            self.ctx
                .malformed(&format!("`{name}` event without an index"))
        })
    }

    fn block_start(
        &mut self,
        data: &Value,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<(), ProviderError> {
        let index = self.index("content_block_start", data)?;
        let block = &data["content_block"];
        let text = |key: &str| block[key].as_str().unwrap_or_default().to_owned();
        let open = match block["type"].as_str().unwrap_or_default() {
            "text" => {
                push_text(out, ProviderEvent::TextDelta, text("text"));
                Block::Streamed { signature: None }
            }
            "thinking" => {
                push_text(out, ProviderEvent::ReasoningDelta, text("thinking"));
                let signature = text("signature");
                Block::Streamed {
                    signature: (!signature.is_empty()).then_some(signature),
                }
            }
            "redacted_thinking" => {
                out.push_back(ProviderEvent::RedactedReasoning(text("data")));
                Block::Other
            }
            "tool_use" => Block::ToolUse {
                id: text("id"),
                name: text("name"),
                json: String::new(),
                initial: block["input"]
                    .as_object()
                    .filter(|input| !input.is_empty())
                    .map(|input| Value::Object(input.clone()).to_string()),
            },
            _ => Block::Other,
        };
        self.blocks.insert(index, open);
        Ok(())
    }

    fn block_delta(
        &mut self,
        data: &Value,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<(), ProviderError> {
        let index = self.index("content_block_delta", data)?;
        let delta = &data["delta"];
        let text = |key: &str| delta[key].as_str().unwrap_or_default().to_owned();
        match delta["type"].as_str().unwrap_or_default() {
            "text_delta" => push_text(out, ProviderEvent::TextDelta, text("text")),
            "thinking_delta" => push_text(out, ProviderEvent::ReasoningDelta, text("thinking")),
            "signature_delta" => {
                if let Some(Block::Streamed { signature }) = self.blocks.get_mut(&index) {
                    *signature = None;
                }
                out.push_back(ProviderEvent::ReasoningSignature(text("signature")));
            }
            "input_json_delta" => {
                if let Some(Block::ToolUse { json, .. }) = self.blocks.get_mut(&index) {
                    json.push_str(delta["partial_json"].as_str().unwrap_or_default());
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn block_stop(
        &mut self,
        data: &Value,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<(), ProviderError> {
        let index = self.index("content_block_stop", data)?;
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
        Ok(())
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
        let value: Value = serde_json::from_str(&data)
            .map_err(|err| self.ctx.malformed(&format!("`{name}` event: {err}")))?;
        // Without an `event:` line the type is in the data.
        let kind = if name == "message" {
            value["type"].as_str().unwrap_or_default()
        } else {
            name.as_str()
        };
        match kind {
            "message_start" => {
                self.usage.assign(&value["message"]["usage"]);
                out.push_back(ProviderEvent::Usage(self.usage.wire()));
            }
            "content_block_start" => self.block_start(&value, out)?,
            "content_block_delta" => self.block_delta(&value, out)?,
            "content_block_stop" => self.block_stop(&value, out)?,
            "message_delta" => {
                if let Some(reason) = value["delta"]["stop_reason"].as_str() {
                    self.stop = Some(stop_reason(reason));
                }
                self.usage.assign(&value["usage"]);
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
