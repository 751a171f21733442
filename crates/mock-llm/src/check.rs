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
    /// The body is not a JSON object with a `messages` array.
    InvalidBody,
    /// A tool result names no tool call of an earlier assistant message.
    ToolResultWithoutCall,
    /// A tool call of a non-final assistant message has zero or several results before the next
    /// assistant message.
    ToolCallResultCount,
    /// Tool call arguments (OpenAI `arguments` text, Anthropic `input`) are not a JSON object.
    ToolArgumentsNotObject,
    /// Anthropic: more than 4 blocks carry `cache_control`.
    TooManyCacheBreakpoints,
    /// Anthropic: a user message holds other blocks before a `tool_result` block (tool results
    /// must open their own user message; text may only follow them).
    ToolResultAfterText,
}

/// A message reduced to what the tool-pairing rules need.
struct Turn {
    assistant: bool,
    calls: Vec<String>,
    results: Vec<String>,
}

pub(crate) fn check(provider: Provider, body: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut violate = |rule, detail: String| out.push(Violation { rule, detail });
    let Some(messages) = body["messages"].as_array() else {
        violate(Rule::InvalidBody, "the body has no `messages` array".into());
        return out;
    };
    let mut turns = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let role = message["role"].as_str().unwrap_or_default();
        let mut turn = Turn {
            assistant: role == "assistant",
            calls: Vec::new(),
            results: Vec::new(),
        };
        match provider {
            Provider::Openai => {
                for call in message["tool_calls"].as_array().into_iter().flatten() {
                    let id = call["id"].as_str().unwrap_or_default().to_owned();
                    let arguments = call["function"]["arguments"].as_str().unwrap_or_default();
                    if !serde_json::from_str::<Value>(arguments).is_ok_and(|v| v.is_object()) {
                        violate(
                            Rule::ToolArgumentsNotObject,
                            format!("message {index}: tool call {id}: {arguments:?}"),
                        );
                    }
                    turn.calls.push(id);
                }
                if role == "tool" {
                    turn.results.push(
                        message["tool_call_id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    );
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
                            turn.calls.push(id);
                        }
                        "tool_result" => {
                            let id = block["tool_use_id"].as_str().unwrap_or_default().to_owned();
                            if other_before {
                                violate(
                                    Rule::ToolResultAfterText,
                                    format!("message {index}: tool_result {id}"),
                                );
                            }
                            turn.results.push(id);
                        }
                        _ => other_before = true,
                    }
                }
            }
        }
        turns.push(turn);
    }
    for (index, turn) in turns.iter().enumerate() {
        for id in &turn.results {
            if !turns[..index]
                .iter()
                .any(|t| t.assistant && t.calls.contains(id))
            {
                violate(
                    Rule::ToolResultWithoutCall,
                    format!("message {index}: result for unknown call {id}"),
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
        for id in &turn.calls {
            let count = window
                .iter()
                .flat_map(|t| &t.results)
                .filter(|r| *r == id)
                .count();
            if count != 1 {
                violate(
                    Rule::ToolCallResultCount,
                    format!("message {index}: tool call {id} has {count} results"),
                );
            }
        }
    }
    if provider == Provider::Anthropic {
        let blocks = |value: &Value| value.as_array().cloned().unwrap_or_default();
        let mut all: Vec<Value> = blocks(&body["tools"]);
        all.extend(blocks(&body["system"]));
        for message in messages {
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
}
