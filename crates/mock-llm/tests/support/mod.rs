//! Test helpers: a small SSE parser, per-provider stream assemblers, JSON key-path sets and
//! shapes, and the location of the recorded provider captures.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use futures::StreamExt;
use serde_json::{Value, json};

/// One SSE event: its `event:` name (if any) and its `data:` text (padding trimmed).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|err| panic!("bad JSON {err}: {}", self.data))
    }
}

/// Splits an SSE body into events; `:` comment lines are skipped.
pub fn parse_sse(body: &str) -> Vec<Event> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                if let Some(rest) = line.strip_prefix("event:") {
                    name = Some(rest.trim().to_owned());
                } else if let Some(rest) = line.strip_prefix("data:") {
                    data.push(rest.trim());
                }
            }
            (!data.is_empty()).then(|| Event {
                name,
                data: data.join("\n"),
            })
        })
        .collect()
}

/// What a client makes of a stream, in provider-neutral terms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assembled {
    pub text: String,
    pub reasoning: String,
    pub signatures: Vec<String>,
    pub redacted: Vec<String>,
    /// `(id, name, raw arguments)`.
    pub tool_calls: Vec<(String, String, String)>,
    /// Responses: the final `status`.
    pub finish: Option<String>,
    /// OpenAI and Responses: the usage object; Anthropic: `{input, output, cache_read,
    /// cache_write}`.
    pub usage: Option<Value>,
    /// `[DONE]` (OpenAI), `message_stop` (Anthropic) or `response.completed`/`.incomplete`
    /// (Responses) was seen.
    pub done: bool,
    pub error: Option<Value>,
}

pub fn assemble_openai(events: &[Event]) -> Assembled {
    let mut out = Assembled::default();
    for event in events {
        if event.data == "[DONE]" {
            out.done = true;
            continue;
        }
        let chunk = event.json();
        if chunk.get("error").is_some() {
            out.error = Some(chunk["error"].clone());
            continue;
        }
        if chunk["usage"].is_object() {
            out.usage = Some(chunk["usage"].clone());
        }
        let Some(choice) = chunk["choices"].get(0) else {
            continue;
        };
        let delta = &choice["delta"];
        out.text += delta["content"].as_str().unwrap_or_default();
        out.reasoning += delta["reasoning_content"].as_str().unwrap_or_default();
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap() as usize;
            let arguments = call["function"]["arguments"].as_str().unwrap_or_default();
            if let Some(id) = call["id"].as_str() {
                assert_eq!(index, out.tool_calls.len(), "tool call indices are dense");
                out.tool_calls.push((
                    id.into(),
                    call["function"]["name"].as_str().unwrap().into(),
                    arguments.into(),
                ));
            } else {
                out.tool_calls[index].2 += arguments;
            }
        }
        if let Some(finish) = choice["finish_reason"].as_str() {
            out.finish = Some(finish.into());
        }
    }
    out
}

pub fn assemble_anthropic(events: &[Event]) -> Assembled {
    let mut out = Assembled::default();
    let mut usage = json!({});
    // Per block index: its type and (for tool_use) its slot in `tool_calls`.
    let mut blocks: Vec<(String, usize)> = Vec::new();
    for event in events {
        let data = event.json();
        assert_eq!(
            event.name.as_deref(),
            data["type"].as_str(),
            "event name = data.type"
        );
        match data["type"].as_str().unwrap() {
            "message_start" => {
                let start = &data["message"]["usage"];
                usage = json!({
                    "input": start["input_tokens"],
                    "cache_read": start["cache_read_input_tokens"],
                    "cache_write": start["cache_creation_input_tokens"],
                });
            }
            "content_block_start" => {
                let block = &data["content_block"];
                assert_eq!(
                    data["index"].as_u64().unwrap() as usize,
                    blocks.len(),
                    "block indices are dense"
                );
                let kind = block["type"].as_str().unwrap().to_owned();
                match kind.as_str() {
                    "tool_use" => out.tool_calls.push((
                        block["id"].as_str().unwrap().into(),
                        block["name"].as_str().unwrap().into(),
                        String::new(),
                    )),
                    "redacted_thinking" => {
                        out.redacted.push(block["data"].as_str().unwrap().into())
                    }
                    _ => {}
                }
                blocks.push((kind, out.tool_calls.len().saturating_sub(1)));
            }
            "content_block_delta" => {
                let delta = &data["delta"];
                let (_, slot) = &blocks[data["index"].as_u64().unwrap() as usize];
                match delta["type"].as_str().unwrap() {
                    "text_delta" => out.text += delta["text"].as_str().unwrap(),
                    "thinking_delta" => out.reasoning += delta["thinking"].as_str().unwrap(),
                    "signature_delta" => out
                        .signatures
                        .push(delta["signature"].as_str().unwrap().into()),
                    "input_json_delta" => {
                        out.tool_calls[*slot].2 += delta["partial_json"].as_str().unwrap()
                    }
                    other => panic!("unknown delta {other}"),
                }
            }
            "message_delta" => {
                out.finish = data["delta"]["stop_reason"].as_str().map(Into::into);
                usage["output"] = data["usage"]["output_tokens"].clone();
            }
            "message_stop" => out.done = true,
            "error" => out.error = Some(data.clone()),
            _ => {}
        }
    }
    if usage.get("input").is_some() {
        out.usage = Some(usage);
    }
    out
}

/// What a client makes of a Responses stream. Checks on the way that each event's name is its
/// `type`, that `sequence_number`s increase, and that every `.done` event repeats what its
/// deltas built. Reasoning items' `encrypted_content` lands in `signatures`.
pub fn assemble_responses(events: &[Event]) -> Assembled {
    let mut out = Assembled::default();
    let mut last_sequence: Option<u64> = None;
    // Per item id: what its deltas built so far, and (function calls) its `tool_calls` slot.
    let mut built: BTreeMap<String, (String, Option<usize>)> = BTreeMap::new();
    for event in events {
        let data = event.json();
        assert_eq!(
            event.name.as_deref(),
            data["type"].as_str(),
            "event name = data.type"
        );
        let sequence = data["sequence_number"].as_u64().expect("sequence_number");
        assert!(
            last_sequence.is_none_or(|last| sequence > last),
            "sequence numbers increase: {sequence} after {last_sequence:?}"
        );
        last_sequence = Some(sequence);
        let item_id = data["item_id"].as_str().unwrap_or_default().to_owned();
        let delta = data["delta"].as_str().unwrap_or_default();
        match data["type"].as_str().unwrap() {
            "response.output_item.added" => {
                let item = &data["item"];
                let slot = (item["type"] == "function_call").then(|| {
                    out.tool_calls.push((
                        item["call_id"].as_str().unwrap().into(),
                        item["name"].as_str().unwrap().into(),
                        item["arguments"].as_str().unwrap().into(),
                    ));
                    out.tool_calls.len() - 1
                });
                built.insert(item["id"].as_str().unwrap().into(), (String::new(), slot));
            }
            "response.output_text.delta" => {
                out.text += delta;
                built.get_mut(&item_id).unwrap().0 += delta;
            }
            "response.reasoning_summary_text.delta" => {
                out.reasoning += delta;
                built.get_mut(&item_id).unwrap().0 += delta;
            }
            "response.function_call_arguments.delta" => {
                let (text, slot) = built.get_mut(&item_id).unwrap();
                *text += delta;
                out.tool_calls[slot.unwrap()].2 += delta;
            }
            "response.output_text.done" | "response.reasoning_summary_text.done" => {
                assert_eq!(data["text"].as_str(), Some(built[&item_id].0.as_str()));
            }
            "response.function_call_arguments.done" => {
                assert_eq!(data["arguments"].as_str(), Some(built[&item_id].0.as_str()));
            }
            "response.output_item.done" => {
                if let Some(encrypted) = data["item"]["encrypted_content"].as_str() {
                    out.signatures.push(encrypted.into());
                }
            }
            "response.completed" | "response.incomplete" => {
                let response = &data["response"];
                out.finish = response["status"].as_str().map(Into::into);
                out.usage = Some(response["usage"].clone());
                out.done = true;
            }
            "error" => out.error = Some(data.clone()),
            _ => {}
        }
    }
    out
}

/// Every key path of `value`; array elements are `[]`, e.g. `choices[].delta.content`.
pub fn key_paths(value: &Value) -> BTreeSet<String> {
    fn walk(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    out.insert(path.clone());
                    walk(child, &path, out);
                }
            }
            Value::Array(items) => items
                .iter()
                .for_each(|item| walk(item, &format!("{prefix}[]"), out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(value, "", &mut out);
    out
}

/// Per kind: the key paths every capture has (required) and any capture has (allowed).
#[derive(Default)]
pub struct Shapes(BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>);

impl Shapes {
    pub fn add(&mut self, kind: String, value: &Value) {
        let paths = key_paths(value);
        let (required, allowed) = self
            .0
            .entry(kind)
            .or_insert_with(|| (paths.clone(), BTreeSet::new()));
        required.retain(|p| paths.contains(p));
        allowed.extend(paths);
    }

    #[track_caller]
    pub fn check(&self, kind: &str, value: &Value) {
        let (required, allowed) = self
            .0
            .get(kind)
            .unwrap_or_else(|| panic!("no capture has a {kind} event"));
        let paths = key_paths(value);
        let missing: Vec<&String> = required.difference(&paths).collect();
        let extra: Vec<&String> = paths.difference(allowed).collect();
        assert_eq!((kind, missing, extra), (kind, vec![], vec![]), "{value}");
    }
}

/// The recorded captures (the repository's `fixtures/providers`).
pub fn fixtures_dir() -> PathBuf {
    dispatch_test_support::fixtures::fixtures_dir(env!("CARGO_MANIFEST_DIR"))
}

/// `(file name, contents)` of the fixtures in `dir` ending in `ext`, sorted by name.
pub fn fixtures(dir: &str, ext: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(fixtures_dir().join(dir))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(ext))
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&path).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// The `.meta.toml` next to a fixture.
pub fn meta(dir: &str, file: &str) -> toml::Value {
    let stem = file.rsplit_once('.').unwrap().0;
    let text = std::fs::read_to_string(fixtures_dir().join(dir).join(format!("{stem}.meta.toml")))
        .unwrap();
    toml::Value::Table(toml::from_str(&text).unwrap())
}

pub async fn post(url: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("authorization", "Bearer sk-secret")
        .header("x-api-key", "sk-ant-secret")
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// A minimal OpenAI streaming request.
pub fn openai_request(include_usage: bool) -> Value {
    json!({
        "model": "gpt-mock",
        "stream": true,
        "stream_options": {"include_usage": include_usage},
        "messages": [{"role": "user", "content": "hello"}],
    })
}

/// A minimal Responses streaming request.
pub fn responses_request() -> Value {
    json!({
        "model": "gpt-mock",
        "stream": true,
        "instructions": "Be brief.",
        "input": [{"role": "user", "content": "hello"}],
    })
}

/// Reads a streaming body until it ends or fails: `(text received, Some(error) if it failed)`.
pub async fn read_until_end(response: reqwest::Response) -> (String, Option<String>) {
    let mut body = response.bytes_stream();
    let mut text = Vec::new();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => text.extend_from_slice(&bytes),
            Err(err) => return (String::from_utf8(text).unwrap(), Some(err.to_string())),
        }
    }
    (String::from_utf8(text).unwrap(), None)
}

/// A minimal Anthropic streaming request.
pub fn anthropic_request() -> Value {
    json!({
        "model": "claude-mock",
        "max_tokens": 1024,
        "stream": true,
        "messages": [{"role": "user", "content": "hello"}],
    })
}

pub async fn start() -> dispatch_mock_llm::MockLlm {
    dispatch_mock_llm::MockLlm::start(dispatch_mock_llm::Config::default())
        .await
        .unwrap()
}

/// A response using every content item: reasoning (closed by a signature), redacted
/// reasoning, text in two items, two parallel tool calls with split arguments (one split next
/// to a multi-byte character).
pub fn rich_response() -> dispatch_mock_llm::Response {
    use dispatch_mock_llm::{Item, Response};
    Response::stream(vec![
        Item::reasoning("Think", None),
        Item::reasoning("ing.", Some("sig-1")),
        Item::redacted_reasoning("opaque"),
        Item::text("Reading "),
        Item::text("both."),
        Item::tool_call("call_a", "read_file", r#"{"path":"src/é.rs"}"#, 4),
        Item::ToolCall {
            id: None,
            name: "grep".into(),
            arguments: json!({"pattern": "fn main"}),
            fragments: 3,
            delay_ms: 0,
        },
    ])
}
