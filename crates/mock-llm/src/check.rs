//! Protocol invariants checked on every provider request; breaches are recorded, not rejected.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::script::Provider;

/// Anthropic rejects requests with more cache breakpoints than this.
const MAX_CACHE_BREAKPOINTS: usize = 4;

/// One broken invariant in a recorded request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub rule: Rule,
    pub detail: String,
}

/// The invariants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The body is not a JSON object with a `messages` array (Responses: with an `input`
    /// string or array).
    InvalidBody,
    /// A tool result names no tool call of an earlier assistant message (Responses: a
    /// `function_call_output` names no earlier `function_call` `call_id`; not checked when the
    /// request has a `previous_response_id`, whose stored output may hold the call).
    ToolResultWithoutCall,
    /// A tool call of a non-final assistant message (Responses: of a non-final run of model
    /// items) has zero or several results before the next assistant message.
    ToolCallResultCount,
    /// Tool call arguments (OpenAI `arguments` text, Responses `function_call.arguments` text,
    /// Anthropic `input`) are not a JSON object.
    ToolArgumentsNotObject,
    /// Anthropic: more than 4 blocks carry `cache_control`.
    TooManyCacheBreakpoints,
    /// Anthropic: a user message holds other blocks before a `tool_result` block (tool results
    /// must open their own user message; text may only follow them).
    ToolResultAfterText,
}

/// A message (Responses: a run of input items from one side) reduced to what the tool-pairing
/// rules need. Calls and results carry the index of their message or item.
struct Turn {
    assistant: bool,
    calls: Vec<(usize, String)>,
    results: Vec<(usize, String)>,
}

pub(crate) fn check(provider: Provider, body: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut violate = |rule, detail: String| out.push(Violation { rule, detail });
    let (unit, results_need_calls) = match provider {
        Provider::Openai | Provider::Anthropic => ("message", true),
        Provider::OpenaiResponses => ("item", body["previous_response_id"].is_null()),
    };
    let turns = match provider {
        Provider::Openai | Provider::Anthropic => {
            let Some(messages) = body["messages"].as_array() else {
                violate(Rule::InvalidBody, "the body has no `messages` array".into());
                return out;
            };
            message_turns(provider, messages, &mut violate)
        }
        Provider::OpenaiResponses => match &body["input"] {
            Value::String(_) => Vec::new(),
            Value::Array(items) => item_turns(items, &mut violate),
            _ => {
                violate(
                    Rule::InvalidBody,
                    "the body has no `input` string or array".into(),
                );
                return out;
            }
        },
    };
    for (index, turn) in turns.iter().enumerate() {
        for (at, id) in &turn.results {
            let called = turns[..index]
                .iter()
                .any(|t| t.assistant && t.calls.iter().any(|(_, call)| call == id));
            if results_need_calls && !called {
                violate(
                    Rule::ToolResultWithoutCall,
                    format!("{unit} {at}: result for unknown call {id}"),
                );
            }
        }
        if !turn.assistant || index + 1 == turns.len() {
            continue;
        }
        let window: Vec<&Turn> = turns[index + 1..]
            .iter()
            .take_while(|t| !t.assistant)
            .collect();
        for (at, id) in &turn.calls {
            let count = window
                .iter()
                .flat_map(|t| &t.results)
                .filter(|(_, r)| r == id)
                .count();
            if count != 1 {
                violate(
                    Rule::ToolCallResultCount,
                    format!("{unit} {at}: tool call {id} has {count} results"),
                );
            }
        }
    }
    if provider == Provider::Anthropic {
        let blocks = |value: &Value| value.as_array().cloned().unwrap_or_default();
        let mut all: Vec<Value> = blocks(&body["tools"]);
        all.extend(blocks(&body["system"]));
        for message in body["messages"].as_array().into_iter().flatten() {
            for block in blocks(&message["content"]) {
                all.extend(blocks(&block["content"]));
                all.push(block);
            }
        }
        let count = all
            .iter()
            .filter(|block| block.get("cache_control").is_some())
            .count();
        if count > MAX_CACHE_BREAKPOINTS {
            violate(
                Rule::TooManyCacheBreakpoints,
                format!("{count} blocks carry cache_control"),
            );
        }
    }
    out
}

/// Whether `arguments` is text holding a JSON object.
fn is_object_text(arguments: &str) -> bool {
    serde_json::from_str::<Value>(arguments).is_ok_and(|v| v.is_object())
}

/// One turn per chat message (OpenAI chat, Anthropic messages; Responses requests use
/// [`item_turns`] and never come here).
fn message_turns(
    provider: Provider,
    messages: &[Value],
    violate: &mut impl FnMut(Rule, String),
) -> Vec<Turn> {
    let mut turns = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let role = message["role"].as_str().unwrap_or_default();
        let mut turn = Turn {
            assistant: role == "assistant",
            calls: Vec::new(),
            results: Vec::new(),
        };
        match provider {
            Provider::Openai | Provider::OpenaiResponses => {
                for call in message["tool_calls"].as_array().into_iter().flatten() {
                    let id = call["id"].as_str().unwrap_or_default().to_owned();
                    let arguments = call["function"]["arguments"].as_str().unwrap_or_default();
                    if !is_object_text(arguments) {
                        violate(
                            Rule::ToolArgumentsNotObject,
                            format!("message {index}: tool call {id}: {arguments:?}"),
                        );
                    }
                    turn.calls.push((index, id));
                }
                if role == "tool" {
                    let id = message["tool_call_id"].as_str().unwrap_or_default();
                    turn.results.push((index, id.to_owned()));
                }
            }
            Provider::Anthropic => {
                let mut other_before = false;
                for block in message["content"].as_array().into_iter().flatten() {
                    match block["type"].as_str().unwrap_or_default() {
                        "tool_use" => {
                            let id = block["id"].as_str().unwrap_or_default().to_owned();
                            if !block["input"].is_object() {
                                violate(
                                    Rule::ToolArgumentsNotObject,
                                    format!("message {index}: tool_use {id}"),
                                );
                            }
                            turn.calls.push((index, id));
                        }
                        "tool_result" => {
                            let id = block["tool_use_id"].as_str().unwrap_or_default().to_owned();
                            if other_before {
                                violate(
                                    Rule::ToolResultAfterText,
                                    format!("message {index}: tool_result {id}"),
                                );
                            }
                            turn.results.push((index, id));
                        }
                        _ => other_before = true,
                    }
                }
            }
        }
        turns.push(turn);
    }
    turns
}

/// Responses `input` items as turns: a run of consecutive model items (assistant messages,
/// `reasoning`, `function_call` and other `*_call` items) is one assistant turn; every other
/// item (user/system/developer messages, `function_call_output`) is a turn of its own.
fn item_turns(items: &[Value], violate: &mut impl FnMut(Rule, String)) -> Vec<Turn> {
    let mut turns: Vec<Turn> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let kind = item["type"].as_str().unwrap_or("message");
        let assistant = item["role"] == "assistant"
            || kind == "reasoning"
            || (kind.ends_with("_call") && kind != "function_call_output");
        let call_id = || item["call_id"].as_str().unwrap_or_default().to_owned();
        if !(assistant && turns.last().is_some_and(|t| t.assistant)) {
            turns.push(Turn {
                assistant,
                calls: Vec::new(),
                results: Vec::new(),
            });
        }
        let Some(turn) = turns.last_mut() else {
            continue;
        };
        match kind {
            "function_call" => {
                let arguments = item["arguments"].as_str().unwrap_or_default();
                if !is_object_text(arguments) {
                    violate(
                        Rule::ToolArgumentsNotObject,
                        format!("item {index}: function_call {}: {arguments:?}", call_id()),
                    );
                }
                turn.calls.push((index, call_id()));
            }
            "function_call_output" => turn.results.push((index, call_id())),
            _ => {}
        }
    }
    turns
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;

    #[track_caller]
    fn check_rules(provider: Provider, body: Value, expect: &[Rule]) {
        let rules: Vec<Rule> = check(provider, &body).into_iter().map(|v| v.rule).collect();
        assert_eq!(rules, expect);
    }

    #[test]
    fn openai_pairing() {
        let call = |id: &str, args: &str| json!({"id": id, "type": "function", "function": {"name": "f", "arguments": args}});
        let good = json!({"messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [call("a", "{}"), call("b", "{\"x\":1}")]},
            {"role": "tool", "tool_call_id": "a", "content": "1"},
            {"role": "tool", "tool_call_id": "b", "content": "2"},
            {"role": "assistant", "content": null, "tool_calls": [call("c", "{}")]},
        ]});
        check_rules(Provider::Openai, good, &[]);
        let bad = json!({"messages": [
            {"role": "tool", "tool_call_id": "z", "content": "0"},
            {"role": "assistant", "content": null, "tool_calls": [call("a", "[1]"), call("b", "{}")]},
            {"role": "tool", "tool_call_id": "a", "content": "1"},
            {"role": "tool", "tool_call_id": "a", "content": "1"},
            {"role": "user", "content": "next"},
        ]});
        check_rules(
            Provider::Openai,
            bad,
            &[
                Rule::ToolArgumentsNotObject,
                Rule::ToolResultWithoutCall,
                Rule::ToolCallResultCount,
                Rule::ToolCallResultCount,
            ],
        );
    }

    #[test]
    fn anthropic_blocks() {
        let cc = json!({"type": "ephemeral"});
        let body = json!({
            "system": [{"type": "text", "text": "s", "cache_control": cc}],
            "tools": [{"name": "t", "input_schema": {}, "cache_control": cc}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "q", "cache_control": cc}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "u1", "name": "t", "input": "x"}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "q again"},
                    {"type": "tool_result", "tool_use_id": "u1", "content": [{"type": "text", "text": "r", "cache_control": cc}], "cache_control": cc},
                ]},
            ],
        });
        check_rules(
            Provider::Anthropic,
            body,
            &[
                Rule::ToolArgumentsNotObject,
                Rule::ToolResultAfterText,
                Rule::TooManyCacheBreakpoints,
            ],
        );
    }

    #[test]
    fn responses_pairing() {
        let call = |id: &str, args: &str| json!({"type": "function_call", "id": format!("fc_{id}"), "call_id": id, "name": "f", "arguments": args});
        let output =
            |id: &str| json!({"type": "function_call_output", "call_id": id, "output": "ok"});
        let good = json!({"input": [
            {"role": "user", "content": "hi"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Reading."}]},
            call("a", "{}"),
            call("b", "{\"x\":1}"),
            output("b"),
            output("a"),
            {"role": "assistant", "content": "done"},
            {"role": "user", "content": "more"},
            call("c", "{}"),
        ]});
        check_rules(Provider::OpenaiResponses, good, &[]);
        check_rules(
            Provider::OpenaiResponses,
            json!({"input": "just text"}),
            &[],
        );
        let bad = json!({"input": [
            output("z"),
            call("a", "[1]"),
            call("b", "{}"),
            output("a"),
            output("a"),
            {"role": "user", "content": "next"},
            {"role": "assistant", "content": "x"},
        ]});
        let violations = check(Provider::OpenaiResponses, &bad);
        let details: Vec<(Rule, &str)> = violations
            .iter()
            .map(|v| (v.rule, v.detail.as_str()))
            .collect();
        assert_eq!(
            details,
            [
                (
                    Rule::ToolArgumentsNotObject,
                    "item 1: function_call a: \"[1]\""
                ),
                (
                    Rule::ToolResultWithoutCall,
                    "item 0: result for unknown call z"
                ),
                (
                    Rule::ToolCallResultCount,
                    "item 1: tool call a has 2 results"
                ),
                (
                    Rule::ToolCallResultCount,
                    "item 2: tool call b has 0 results"
                ),
            ]
        );
        // With `previous_response_id` the call may live in the stored response.
        check_rules(
            Provider::OpenaiResponses,
            json!({"previous_response_id": "resp_1", "input": [output("earlier")]}),
            &[],
        );
        check_rules(
            Provider::OpenaiResponses,
            json!({"messages": []}),
            &[Rule::InvalidBody],
        );
    }
}
