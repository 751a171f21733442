#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The wire formats against a running server: streams, bodies, faults, and the structure of
//! the recorded provider captures.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dispatch_mock_llm::{
    Config, Fault, Finish, HttpError, Item, MockLlm, Provider, Reply, Response, Usage,
};
use futures::StreamExt;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use support::{
    Assembled, Event, Shapes, anthropic_request, assemble_anthropic, assemble_openai,
    openai_request, parse_sse, post, read_until_end, rich_response, start,
};

async fn stream_text(url: &str, body: &Value) -> String {
    let response = post(url, body).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn openai_stream_carries_reasoning_text_and_parallel_tool_calls() {
    let mock = start().await;
    mock.push(rich_response());
    let url = format!("{}/chat/completions", mock.openai_base_url());
    let events = parse_sse(&stream_text(&url, &openai_request(true)).await);
    let mut assembled = assemble_openai(&events);
    let usage = assembled.usage.take().unwrap();
    assert_eq!(
        assembled,
        Assembled {
            text: "Reading both.".into(),
            reasoning: "Thinking.".into(),
            tool_calls: vec![
                (
                    "call_a".into(),
                    "read_file".into(),
                    r#"{"path":"src/é.rs"}"#.into()
                ),
                (
                    "call_mock_0_1".into(),
                    "grep".into(),
                    r#"{"pattern":"fn main"}"#.into()
                ),
            ],
            finish: Some("tool_calls".into()),
            done: true,
            ..Assembled::default()
        }
    );
    // The first delta of a call names it with empty arguments; then one delta per fragment.
    let argument_deltas: Vec<(u64, String)> = events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .filter_map(|e| {
            let call = e.json()["choices"].get(0)?["delta"]["tool_calls"]
                .get(0)?
                .clone();
            Some((
                call["index"].as_u64()?,
                call["function"]["arguments"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let fragments = |index| {
        argument_deltas
            .iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, a)| a.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        fragments(0),
        ["", r#"{"pat"#, r#"h":"s"#, "rc/é", r#".rs"}"#]
    );
    assert_eq!(fragments(1), ["", r#"{"patte"#, r#"rn":"fn"#, r#" main"}"#]);
    // Usage: trailing chunk with empty choices, prompt from the recorded accounting.
    let prompt = mock.requests()[0].prompt.unwrap();
    assert_eq!(prompt.cache_read_tokens, 0);
    let last_chunk = events[events.len() - 2].json();
    assert_eq!(last_chunk["choices"], json!([]));
    assert_eq!(usage["prompt_tokens"], json!(prompt.input_tokens));
    assert_eq!(
        usage["total_tokens"],
        json!(
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        )
    );
    // ceil(15 / 4): "Thinking." and the redacted "opaque" count as reasoning.
    assert_eq!(
        usage["completion_tokens_details"]["reasoning_tokens"],
        json!(4)
    );
}

#[tokio::test]
async fn openai_usage_chunk_only_with_include_usage_and_overrides_map_to_openai_terms() {
    let mock = start().await;
    let usage = Usage {
        input_tokens: Some(10),
        output_tokens: Some(7),
        cache_read_tokens: Some(90),
        cache_write_tokens: None,
        reasoning_tokens: Some(2),
    };
    mock.push(Response::text("a").with_usage(usage));
    mock.push(
        Response::text("b")
            .with_usage(usage)
            .with_finish(Finish::Length),
    );
    let url = format!("{}/chat/completions", mock.openai_base_url());
    let with = assemble_openai(&parse_sse(&stream_text(&url, &openai_request(true)).await));
    assert_eq!(
        with.usage,
        Some(json!({
            "prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107,
            "prompt_tokens_details": {"cached_tokens": 90, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 2, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        }))
    );
    let events = parse_sse(&stream_text(&url, &openai_request(false)).await);
    let without = assemble_openai(&events);
    assert_eq!(without.usage, None);
    assert_eq!(
        (
            without.text.as_str(),
            without.finish.as_deref(),
            without.done
        ),
        ("b", Some("length"), true)
    );
    assert!(
        events
            .iter()
            .filter(|e| e.data != "[DONE]")
            .all(|e| !e.json()["choices"].as_array().unwrap().is_empty())
    );
}

#[tokio::test]
async fn anthropic_stream_has_blocks_in_order() {
    let mock = start().await;
    mock.push(rich_response());
    let events = parse_sse(
        &stream_text(
            &format!("{}/v1/messages", mock.anthropic_base_url()),
            &anthropic_request(),
        )
        .await,
    );
    let names: Vec<String> = events
        .iter()
        .map(|e| {
            let data = e.json();
            let sub = data["content_block"]["type"]
                .as_str()
                .or(data["delta"]["type"].as_str())
                .unwrap_or_default()
                .to_owned();
            format!("{} {sub}", e.name.as_deref().unwrap())
                .trim()
                .to_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start thinking",
            "ping",
            "content_block_delta thinking_delta",
            "content_block_delta thinking_delta",
            "content_block_delta signature_delta",
            "content_block_stop",
            "content_block_start redacted_thinking",
            "content_block_stop",
            "content_block_start text",
            "content_block_delta text_delta",
            "content_block_delta text_delta",
            "content_block_stop",
            "content_block_start tool_use",
            "content_block_delta input_json_delta",
            "content_block_delta input_json_delta",
            "content_block_delta input_json_delta",
            "content_block_delta input_json_delta",
            "content_block_delta input_json_delta",
            "content_block_stop",
            "content_block_start tool_use",
            "content_block_delta input_json_delta",
            "content_block_delta input_json_delta",
            "content_block_delta input_json_delta",
            "content_block_delta input_json_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let mut assembled = assemble_anthropic(&events);
    let usage = assembled.usage.take().unwrap();
    assert_eq!(
        assembled,
        Assembled {
            text: "Reading both.".into(),
            reasoning: "Thinking.".into(),
            signatures: vec!["sig-1".into()],
            redacted: vec!["opaque".into()],
            tool_calls: vec![
                (
                    "call_a".into(),
                    "read_file".into(),
                    r#"{"path":"src/é.rs"}"#.into()
                ),
                (
                    "toolu_mock_0_1".into(),
                    "grep".into(),
                    r#"{"pattern":"fn main"}"#.into()
                ),
            ],
            finish: Some("tool_use".into()),
            done: true,
            ..Assembled::default()
        }
    );
    let prompt = mock.requests()[0].prompt.unwrap();
    assert_eq!(usage["input"], json!(prompt.input_tokens));
    // message_delta repeats the input counters, like current API generations.
    let delta = events
        .iter()
        .find(|e| e.name.as_deref() == Some("message_delta"))
        .unwrap()
        .json();
    assert_eq!(delta["usage"]["input_tokens"], json!(prompt.input_tokens));
    assert_eq!(delta["usage"]["output_tokens"], usage["output"]);
}

#[tokio::test]
async fn non_streaming_requests_get_json_bodies() {
    let mock = start().await;
    mock.push(rich_response());
    mock.push(rich_response());
    let mut request = openai_request(false);
    request["stream"] = json!(false);
    let body: Value = post(
        &format!("{}/chat/completions", mock.openai_base_url()),
        &request,
    )
    .await
    .json()
    .await
    .unwrap();
    let message = &body["choices"][0]["message"];
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        (
            message["content"].as_str(),
            message["reasoning_content"].as_str()
        ),
        (Some("Reading both."), Some("Thinking."))
    );
    assert_eq!(
        message["tool_calls"][1]["function"],
        json!({"name": "grep", "arguments": r#"{"pattern":"fn main"}"#})
    );
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");

    let mut request = anthropic_request();
    request.as_object_mut().unwrap().remove("stream");
    let body: Value = post(&format!("{}/v1/messages", mock.url()), &request)
        .await
        .json()
        .await
        .unwrap();
    let types: Vec<&str> = body["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "thinking",
            "redacted_thinking",
            "text",
            "tool_use",
            "tool_use"
        ]
    );
    assert_eq!(
        body["content"][0],
        json!({"type": "thinking", "thinking": "Thinking.", "signature": "sig-1"})
    );
    assert_eq!(body["content"][3]["input"], json!({"path": "src/é.rs"}));
    assert_eq!(body["stop_reason"], "tool_use");
}

#[tokio::test]
async fn per_item_delays_keep_order_and_latency_precedes_headers() {
    let mock = start().await;
    let items = vec![
        Item::text("a").delayed(30),
        Item::text("b"),
        Item::text("c").delayed(10),
        Item::text("d").delayed(1),
    ];
    mock.push(Response::stream(items.clone()).with_latency(20));
    mock.push(Response::stream(items));
    let url = format!("{}/chat/completions", mock.openai_base_url());
    assert_eq!(
        assemble_openai(&parse_sse(&stream_text(&url, &openai_request(false)).await)).text,
        "abcd"
    );
    let anthropic =
        parse_sse(&stream_text(&format!("{}/v1/messages", mock.url()), &anthropic_request()).await);
    assert_eq!(assemble_anthropic(&anthropic).text, "abcd");
}

#[tokio::test]
async fn default_answer_strict_mode_and_provider_targeting() {
    let mock = start().await;
    let openai_url = format!("{}/chat/completions", mock.openai_base_url());
    let anthropic_url = format!("{}/v1/messages", mock.url());
    mock.push(Response::text("for anthropic").for_provider(Provider::Anthropic));
    mock.push(Response::text("for anyone"));
    assert_eq!(
        assemble_openai(&parse_sse(
            &stream_text(&openai_url, &openai_request(false)).await
        ))
        .text,
        "for anyone"
    );
    assert_eq!(
        assemble_anthropic(&parse_sse(
            &stream_text(&anthropic_url, &anthropic_request()).await
        ))
        .text,
        "for anthropic"
    );
    assert_eq!(
        assemble_openai(&parse_sse(
            &stream_text(&openai_url, &openai_request(false)).await
        ))
        .text,
        "ok"
    );

    let strict = MockLlm::start(Config {
        strict: true,
        default_text: "unused".into(),
        ..Config::default()
    })
    .await
    .unwrap();
    let response = post(
        &format!("{}/v1/messages", strict.url()),
        &anthropic_request(),
    )
    .await;
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "api_error");
    strict.shutdown().await;
}

fn http_error(status: u16, retry_after: Option<u64>) -> Response {
    Response {
        reply: Reply::Error(HttpError {
            status,
            retry_after,
            ..HttpError::default()
        }),
        ..Response::http_error(status)
    }
}

#[tokio::test]
async fn http_errors_have_the_providers_bodies() {
    let mock = start().await;
    let mut seen = Vec::new();
    for (provider, url, request) in [
        (
            Provider::Anthropic,
            format!("{}/v1/messages", mock.url()),
            anthropic_request(),
        ),
        (
            Provider::Openai,
            format!("{}/chat/completions", mock.openai_base_url()),
            openai_request(true),
        ),
    ] {
        for status in [400, 401, 404, 429, 500, 529] {
            mock.push(http_error(status, (status == 429).then_some(7)).for_provider(provider));
            let response = post(&url, &request).await;
            assert_eq!(response.status().as_u16(), status);
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = response.json().await.unwrap();
            let kind = match provider {
                Provider::Anthropic => body["error"]["type"].clone(),
                Provider::Openai | Provider::OpenaiResponses => {
                    json!([body["error"]["type"], body["error"]["code"]])
                }
            };
            seen.push((status, retry_after, kind));
        }
    }
    let expected: Vec<(u16, Option<String>, Value)> = vec![
        (400, None, json!("invalid_request_error")),
        (401, None, json!("authentication_error")),
        (404, None, json!("not_found_error")),
        (429, Some("7".into()), json!("rate_limit_error")),
        (500, None, json!("api_error")),
        (529, None, json!("overloaded_error")),
        (400, None, json!(["invalid_request_error", null])),
        (
            401,
            None,
            json!(["invalid_request_error", "invalid_api_key"]),
        ),
        (
            404,
            None,
            json!(["invalid_request_error", "model_not_found"]),
        ),
        (
            429,
            Some("7".into()),
            json!(["requests", "rate_limit_exceeded"]),
        ),
        (500, None, json!(["server_error", null])),
        (529, None, json!(["server_error", "overloaded"])),
    ];
    assert_eq!(seen, expected);

    // A custom body and headers are sent as given.
    let custom = HttpError {
        status: 502,
        body: Some(json!("<html>bad gateway</html>")),
        headers: BTreeMap::from([("x-should-retry".into(), "true".into())]),
        ..HttpError::default()
    };
    mock.push(Response {
        reply: Reply::Error(custom),
        ..Response::text("")
    });
    let response = post(&format!("{}/v1/messages", mock.url()), &anthropic_request()).await;
    assert_eq!(
        (
            response.status().as_u16(),
            response.headers()["x-should-retry"].to_str().unwrap()
        ),
        (502, "true")
    );
    assert_eq!(response.text().await.unwrap(), "<html>bad gateway</html>");
}

#[tokio::test]
async fn disconnect_cuts_the_body_without_terminating_events() {
    let mock = start().await;
    let items = vec![Item::text("one"), Item::text("two"), Item::text("three")];
    for url in [
        format!("{}/chat/completions", mock.openai_base_url()),
        format!("{}/v1/messages", mock.url()),
    ] {
        mock.push(Response::stream(items.clone()).with_fault(Fault::Disconnect { after: 2 }));
        let request = if url.ends_with("messages") {
            anthropic_request()
        } else {
            openai_request(true)
        };
        let (text, error) = read_until_end(post(&url, &request).await).await;
        assert!(error.is_some(), "the body must fail, got {text}");
        let events = parse_sse(&text);
        let assembled = if url.ends_with("messages") {
            assemble_anthropic(&events)
        } else {
            assemble_openai(&events)
        };
        assert_eq!(
            (assembled.text.as_str(), assembled.done, assembled.finish),
            ("onetwo", false, None)
        );
    }
}

#[tokio::test]
async fn malformed_event_has_invalid_json_and_the_stream_goes_on() {
    let mock = start().await;
    for url in [
        format!("{}/chat/completions", mock.openai_base_url()),
        format!("{}/v1/messages", mock.url()),
    ] {
        mock.push(
            Response::stream(vec![Item::text("a"), Item::text("b")])
                .with_fault(Fault::Malformed { after: 1 }),
        );
        let request = if url.ends_with("messages") {
            anthropic_request()
        } else {
            openai_request(false)
        };
        let events = parse_sse(&stream_text(&url, &request).await);
        let bad: Vec<&Event> = events
            .iter()
            .filter(|e| e.data != "[DONE]" && serde_json::from_str::<Value>(&e.data).is_err())
            .collect();
        assert_eq!(bad.len(), 1, "{events:?}");
        let position = events.iter().position(|e| e == bad[0]).unwrap();
        let good: Vec<Event> = events.iter().filter(|e| *e != bad[0]).cloned().collect();
        let assembled = if url.ends_with("messages") {
            assemble_anthropic(&good)
        } else {
            assemble_openai(&good)
        };
        assert_eq!((assembled.text.as_str(), assembled.done), ("ab", true));
        assert!(
            events[..position].iter().any(|e| e.data.contains("\"a\""))
                && events[position + 1..]
                    .iter()
                    .any(|e| e.data.contains("\"b\""))
        );
    }
}

#[tokio::test]
async fn stall_keeps_the_connection_open_without_data() {
    let mock = start().await;
    mock.push(
        Response::stream(vec![Item::text("before"), Item::text("after")])
            .with_fault(Fault::Stall { after: 1, ms: None }),
    );
    mock.push(
        Response::stream(vec![Item::text("before"), Item::text("after")]).with_fault(
            Fault::Stall {
                after: 1,
                ms: Some(20),
            },
        ),
    );
    let url = format!("{}/chat/completions", mock.openai_base_url());
    let mut body = post(&url, &openai_request(false)).await.bytes_stream();
    let mut text = String::new();
    while !text.contains(r#""before""#) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .unwrap();
        text += std::str::from_utf8(&chunk.unwrap().unwrap()).unwrap();
    }
    // Then nothing arrives, and the body neither ends nor fails.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), body.next())
            .await
            .is_err()
    );
    assert_eq!(assemble_openai(&parse_sse(&text)).text, "before");
    drop(body);
    // A bounded stall resumes and completes.
    let assembled = assemble_openai(&parse_sse(&stream_text(&url, &openai_request(false)).await));
    assert_eq!(
        (assembled.text.as_str(), assembled.done),
        ("beforeafter", true)
    );
    // Shutdown does not wait for a stalled stream.
    mock.push(
        Response::stream(vec![Item::text("x")]).with_fault(Fault::Stall { after: 0, ms: None }),
    );
    let stalled = post(&url, &openai_request(false)).await;
    tokio::time::timeout(Duration::from_secs(5), mock.shutdown())
        .await
        .unwrap();
    assert!(read_until_end(stalled).await.1.is_some());
}

#[tokio::test]
async fn error_event_ends_the_stream() {
    let mock = start().await;
    let fault = Fault::ErrorEvent {
        after: 1,
        error_type: "overloaded_error".into(),
        message: "Overloaded".into(),
    };
    mock.push(
        Response::stream(vec![Item::text("a"), Item::text("b")])
            .with_fault(fault.clone())
            .for_provider(Provider::Anthropic),
    );
    mock.push(
        Response::stream(vec![Item::text("a"), Item::text("b")])
            .with_fault(fault.clone())
            .for_provider(Provider::Openai),
    );
    mock.push(Response::stream(vec![Item::text("a")]).with_fault(fault));
    let events =
        parse_sse(&stream_text(&format!("{}/v1/messages", mock.url()), &anthropic_request()).await);
    let assembled = assemble_anthropic(&events);
    assert_eq!(events.last().unwrap().name.as_deref(), Some("error"));
    assert_eq!((assembled.text.as_str(), assembled.done), ("a", false));
    assert_eq!(
        assembled.error,
        Some(
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        )
    );
    let url = format!("{}/chat/completions", mock.openai_base_url());
    let assembled = assemble_openai(&parse_sse(&stream_text(&url, &openai_request(true)).await));
    assert_eq!(
        (
            assembled.text.as_str(),
            assembled.done,
            assembled.error.unwrap()["type"].as_str()
        ),
        ("a", false, Some("overloaded_error"))
    );
    // Without streaming the same fault is an HTTP error.
    let mut request = openai_request(false);
    request["stream"] = json!(false);
    assert_eq!(post(&url, &request).await.status().as_u16(), 529);
}

// ---- the recorded captures -------------------------------------------------------------

fn meta_str<'a>(meta: &'a toml::Value, key: &str) -> Option<&'a str> {
    meta["expected"].get(key).and_then(|v| v.as_str())
}

#[tokio::test]
async fn the_test_assembler_reproduces_the_captures_expected_results() {
    for (file, body) in support::fixtures("anthropic", ".sse") {
        let meta = support::meta("anthropic", &file);
        let got = assemble_anthropic(&parse_sse(&body));
        let expected = &meta["expected"];
        let text: String = expected["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|b| b.get("text")?.as_str())
            .collect();
        let calls: Vec<(String, String, String)> = expected["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"].as_str() == Some("tool_use"))
            .map(|b| {
                (
                    b["id"].as_str().unwrap().into(),
                    b["name"].as_str().unwrap().into(),
                    b["input_json_raw"].as_str().unwrap().into(),
                )
            })
            .collect();
        let usage = &expected["usage"];
        let int = |key: &str| json!(usage[key].as_integer().unwrap());
        assert_eq!(got.text, text, "{file}");
        assert_eq!(got.tool_calls, calls, "{file}");
        assert_eq!(
            got.finish.as_deref(),
            meta_str(&meta, "stop_reason"),
            "{file}"
        );
        assert_eq!(
            got.usage.unwrap(),
            json!({"input": int("input_tokens"), "output": int("output_tokens"), "cache_read": int("cache_read_input_tokens"), "cache_write": int("cache_creation_input_tokens")}),
            "{file}"
        );
        assert!(got.done, "{file}");
    }
    for dir in ["openai", "deepseek"] {
        for (file, body) in support::fixtures(dir, ".sse") {
            let meta = support::meta(dir, &file);
            let got = assemble_openai(&parse_sse(&body));
            let expected = &meta["expected"];
            let calls: Vec<(String, String, String)> = expected
                .get("tool_calls")
                .and_then(|c| c.as_array())
                .into_iter()
                .flatten()
                .map(|c| {
                    (
                        c["id"].as_str().unwrap().into(),
                        c["name"].as_str().unwrap().into(),
                        c["arguments_raw"].as_str().unwrap().into(),
                    )
                })
                .collect();
            assert_eq!(
                got.text,
                meta_str(&meta, "content").unwrap_or_default(),
                "{file}"
            );
            assert_eq!(
                got.reasoning,
                meta_str(&meta, "reasoning").unwrap_or_default(),
                "{file}"
            );
            assert_eq!(got.tool_calls, calls, "{file}");
            assert_eq!(
                got.finish.as_deref(),
                meta_str(&meta, "finish_reason"),
                "{file}"
            );
            let prompt = expected
                .get("usage")
                .map(|u| u["prompt_tokens"].as_integer().unwrap() as u64);
            assert_eq!(
                got.usage.map(|u| u["prompt_tokens"].as_u64().unwrap()),
                prompt,
                "{file}"
            );
        }
    }
}

/// The kind of an event for structure comparison: the event name plus the block/delta type
/// (Anthropic), or what an OpenAI chunk carries.
fn kind(event: &Event) -> String {
    let data = event.json();
    if let Some(name) = &event.name {
        let sub = data["content_block"]["type"]
            .as_str()
            .or(data["delta"]["type"].as_str());
        return sub.map_or_else(|| name.clone(), |sub| format!("{name}/{sub}"));
    }
    let Some(choice) = data["choices"].get(0) else {
        return "usage".into();
    };
    let delta = &choice["delta"];
    let kind = if !choice["finish_reason"].is_null() {
        "finish"
    } else if delta.get("role").is_some() {
        "role"
    } else if delta["tool_calls"][0].get("id").is_some() {
        "tool_start"
    } else if delta.get("tool_calls").is_some() {
        "tool_arguments"
    } else if delta["reasoning_content"].is_string() {
        "reasoning"
    } else {
        "content"
    };
    kind.into()
}

/// Splits an OpenAI chunk into its envelope (fields every chunk of a stream may carry,
/// compared across all chunks) and its body (`choices` and `usage`, compared per kind).
fn split_chunk(chunk: &Value) -> (Value, Value) {
    let mut envelope = chunk.clone();
    let map = envelope.as_object_mut().unwrap();
    let body = json!({"choices": map.remove("choices"), "usage": map.remove("usage")});
    let body = Value::Object(
        body.as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    );
    (envelope, body)
}

fn capture_shapes(dirs: &[&str]) -> Shapes {
    let mut shapes = Shapes::default();
    for dir in dirs {
        for (_, body) in support::fixtures(dir, ".sse") {
            for event in parse_sse(&body).iter().filter(|e| e.data != "[DONE]") {
                match event.name {
                    Some(_) => shapes.add(kind(event), &event.json()),
                    None => {
                        let (envelope, body) = split_chunk(&event.json());
                        shapes.add("envelope".into(), &envelope);
                        shapes.add(kind(event), &body);
                    }
                }
            }
        }
    }
    shapes
}

#[tokio::test]
async fn mock_output_has_the_structure_of_the_captures() {
    let mock = start().await;
    let fault = Fault::ErrorEvent {
        after: 1,
        error_type: "overloaded_error".into(),
        message: "Overloaded".into(),
    };
    for _ in 0..2 {
        mock.push(rich_response());
        mock.push(Response::text("plain").with_fault(fault.clone()));
    }

    // Anthropic: every event kind and its keys, against all Anthropic captures.
    let mut anthropic = capture_shapes(&["anthropic"]);
    for (_, body) in support::fixtures("anthropic", ".json") {
        anthropic.add("error".into(), &serde_json::from_str(&body).unwrap());
    }
    let url = format!("{}/v1/messages", mock.url());
    let mut events = parse_sse(&stream_text(&url, &anthropic_request()).await);
    events.extend(parse_sse(&stream_text(&url, &anthropic_request()).await));
    let mut kinds = BTreeSet::new();
    for event in &events {
        anthropic.check(&kind(event), &event.json());
        kinds.insert(kind(event));
    }
    assert_eq!(kinds.len(), 14, "{kinds:?}");

    // OpenAI-compatible: chunks against the OpenAI and DeepSeek captures, the error event
    // against Groq's in-stream error and OpenAI's error bodies.
    let mut openai = capture_shapes(&["openai", "deepseek"]);
    for (_, body) in support::fixtures("groq", ".sse") {
        for event in parse_sse(&body)
            .iter()
            .filter(|e| e.name.as_deref() == Some("error"))
        {
            openai.add("error".into(), &event.json());
        }
    }
    for (_, body) in support::fixtures("openai", ".json")
        .iter()
        .filter(|(f, _)| f.starts_with("error"))
    {
        openai.add("error".into(), &serde_json::from_str(body).unwrap());
    }
    let url = format!("{}/chat/completions", mock.openai_base_url());
    let mut events = parse_sse(&stream_text(&url, &openai_request(true)).await);
    events.extend(parse_sse(&stream_text(&url, &openai_request(true)).await));
    let mut kinds = BTreeSet::new();
    for event in events.iter().filter(|e| e.data != "[DONE]") {
        if event.name.is_some() {
            openai.check("error", &event.json());
            kinds.insert("error".into());
        } else {
            let (envelope, body) = split_chunk(&event.json());
            openai.check("envelope", &envelope);
            openai.check(&kind(event), &body);
            kinds.insert(kind(event));
        }
    }
    assert_eq!(kinds.len(), 8, "{kinds:?}");
    assert_eq!(events.iter().filter(|e| e.data == "[DONE]").count(), 1);
}

#[tokio::test]
async fn error_and_json_bodies_have_the_structure_of_the_captures() {
    let mock = start().await;
    for (dir, url, request) in [
        (
            "anthropic",
            format!("{}/v1/messages", mock.url()),
            anthropic_request(),
        ),
        (
            "openai",
            format!("{}/chat/completions", mock.openai_base_url()),
            openai_request(false),
        ),
    ] {
        let mut shapes = Shapes::default();
        for (_, body) in support::fixtures(dir, ".json")
            .iter()
            .filter(|(f, _)| f.starts_with("error"))
        {
            shapes.add("error".into(), &serde_json::from_str(body).unwrap());
        }
        for status in [400, 401, 404, 429, 500, 529] {
            mock.push(Response::http_error(status));
            shapes.check("error", &post(&url, &request).await.json().await.unwrap());
        }
    }
    let mut shapes = Shapes::default();
    let capture = support::fixtures("openai", "prompt-cache-hit-nonstreaming.json");
    shapes.add(
        "completion".into(),
        &serde_json::from_str(&capture[0].1).unwrap(),
    );
    mock.push(Response::text("plain"));
    let mut request = openai_request(false);
    request["stream"] = json!(false);
    let body: Value = post(
        &format!("{}/chat/completions", mock.openai_base_url()),
        &request,
    )
    .await
    .json()
    .await
    .unwrap();
    shapes.check("completion", &body);
}
