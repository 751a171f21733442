#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The OpenAI Responses API against a running server: streams, JSON bodies, usage, faults,
//! HTTP errors, protocol checks, prompt caching and the structure of the recorded captures.

mod support;

use std::time::Duration;

use dispatch_mock_llm::{
    Config, Fault, Finish, HttpError, Item, MockLlm, Provider, Reply, Response, Rule, Usage,
    estimate_tokens,
};
use futures::StreamExt;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use support::{
    Assembled, Event, Shapes, assemble_openai, assemble_responses, openai_request, parse_sse, post,
    read_until_end, responses_request, rich_response, start,
};

fn responses_url(mock: &MockLlm) -> String {
    format!("{}/responses", mock.openai_base_url())
}

async fn stream_text(url: &str, body: &Value) -> String {
    let response = post(url, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    response.text().await.unwrap()
}

/// The event's type, with the item type for `output_item` events.
fn kind(event: &Event) -> String {
    let data = event.json();
    let name = data["type"].as_str().unwrap();
    match data["item"]["type"].as_str() {
        Some(item) => format!("{name}/{item}"),
        None => name.to_owned(),
    }
}

/// The last event's `response` object.
fn final_response(events: &[Event]) -> Value {
    events.last().unwrap().json()["response"].clone()
}

#[tokio::test]
async fn stream_carries_reasoning_text_and_parallel_function_calls() {
    let mock = start().await;
    mock.push(rich_response());
    let events = parse_sse(&stream_text(&responses_url(&mock), &responses_request()).await);
    let kinds: Vec<String> = events.iter().map(kind).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added/reasoning",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done/reasoning",
            "response.output_item.added/reasoning",
            "response.output_item.done/reasoning",
            "response.output_item.added/message",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done/message",
            "response.output_item.added/function_call",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done/function_call",
            "response.output_item.added/function_call",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done/function_call",
            "response.completed",
        ]
    );
    let sequence: Vec<u64> = events
        .iter()
        .map(|e| e.json()["sequence_number"].as_u64().unwrap())
        .collect();
    assert_eq!(sequence, (0..events.len() as u64).collect::<Vec<_>>());
    assert!(!events.iter().any(|e| e.data == "[DONE]"));

    let mut assembled = assemble_responses(&events);
    let usage = assembled.usage.take().unwrap();
    assert_eq!(
        assembled,
        Assembled {
            text: "Reading both.".into(),
            reasoning: "Thinking.".into(),
            signatures: vec!["sig-1".into(), "opaque".into()],
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
            finish: Some("completed".into()),
            done: true,
            ..Assembled::default()
        }
    );
    // One argument delta per fragment, and no empty first delta.
    let fragments = |item_id: &str| {
        events
            .iter()
            .map(Event::json)
            .filter(|d| {
                d["type"] == "response.function_call_arguments.delta" && d["item_id"] == item_id
            })
            .map(|d| d["delta"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        fragments("fc_mock0_3"),
        [r#"{"pat"#, r#"h":"s"#, "rc/é", r#".rs"}"#]
    );
    assert_eq!(
        fragments("fc_mock0_4"),
        [r#"{"patte"#, r#"rn":"fn"#, r#" main"}"#]
    );

    // The final response object repeats every output item.
    let response = final_response(&events);
    assert_eq!(
        (
            response["id"].as_str(),
            response["object"].as_str(),
            response["status"].as_str(),
            response["model"].as_str(),
            response["instructions"].as_str(),
            &response["incomplete_details"],
        ),
        (
            Some("resp_mock0"),
            Some("response"),
            Some("completed"),
            Some("gpt-mock"),
            Some("Be brief."),
            &Value::Null
        )
    );
    assert_eq!(
        response["output"],
        json!([
            {"id": "rs_mock0_0", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Thinking."}], "encrypted_content": "sig-1"},
            {"id": "rs_mock0_1", "type": "reasoning", "summary": [], "encrypted_content": "opaque"},
            {"id": "msg_mock0_2", "type": "message", "status": "completed", "role": "assistant", "phase": "commentary",
             "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": "Reading both."}]},
            {"id": "fc_mock0_3", "type": "function_call", "status": "completed", "arguments": r#"{"path":"src/é.rs"}"#, "call_id": "call_a", "name": "read_file"},
            {"id": "fc_mock0_4", "type": "function_call", "status": "completed", "arguments": r#"{"pattern":"fn main"}"#, "call_id": "call_mock_0_1", "name": "grep"},
        ])
    );

    // Usage: the prompt from the recorded accounting, output estimated from the content.
    let recorded = &mock.requests()[0];
    assert_eq!(recorded.provider, Some(Provider::OpenaiResponses));
    assert_eq!(recorded.path, "/v1/responses");
    let prompt = recorded.prompt.unwrap();
    let reasoning = estimate_tokens("Thinking.".len() + "opaque".len());
    let output = estimate_tokens(
        "Reading both.".len()
            + "read_file".len()
            + r#"{"path":"src/é.rs"}"#.len()
            + "grep".len()
            + r#"{"pattern":"fn main"}"#.len(),
    ) + reasoning;
    assert_eq!(
        usage,
        json!({
            "input_tokens": prompt.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt.input_tokens + output,
        })
    );
    assert_eq!(reasoning, 4);
}

#[tokio::test]
async fn usage_overrides_and_a_length_finish() {
    let mock = start().await;
    let usage = Usage {
        input_tokens: Some(10),
        output_tokens: Some(7),
        cache_read_tokens: Some(90),
        cache_write_tokens: None,
        reasoning_tokens: Some(2),
    };
    mock.push(Response::text("a").with_usage(usage));
    mock.push(Response::text("b").with_finish(Finish::Length));
    let url = responses_url(&mock);
    let events = parse_sse(&stream_text(&url, &responses_request()).await);
    assert_eq!(
        assemble_responses(&events).usage,
        Some(json!({
            "input_tokens": 100, "input_tokens_details": {"cached_tokens": 90},
            "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 2},
            "total_tokens": 107,
        }))
    );
    let events = parse_sse(&stream_text(&url, &responses_request()).await);
    let assembled = assemble_responses(&events);
    assert_eq!(
        (
            assembled.text.as_str(),
            assembled.finish.as_deref(),
            assembled.done
        ),
        ("b", Some("incomplete"), true)
    );
    assert_eq!(
        events.last().unwrap().name.as_deref(),
        Some("response.incomplete")
    );
    let response = final_response(&events);
    assert_eq!(
        response["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(response["output"][0]["status"], "incomplete");
    assert_eq!(response["output"][0]["phase"], "final_answer");
}

#[tokio::test]
async fn non_streaming_requests_get_the_response_object() {
    let mock = start().await;
    mock.push(rich_response());
    mock.push(rich_response());
    let url = responses_url(&mock);
    let streamed = final_response(&parse_sse(&stream_text(&url, &responses_request()).await));
    let mut request = responses_request();
    request.as_object_mut().unwrap().remove("stream");
    let response = post(&url, &request).await;
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    // The same object as the streamed `response.completed` one, but for the ids (which hold
    // the request's number) and the clock.
    let normal = |value: &Value, seq: &str| {
        let mut value = value.clone();
        value["created_at"] = Value::Null;
        value["completed_at"] = Value::Null;
        value
            .to_string()
            .replace(&format!("mock{seq}"), "mockN")
            .replace(&format!("mock_{seq}_"), "mock_N_")
    };
    assert_eq!(normal(&streamed, "0"), normal(&body, "1"));
    assert_eq!(body["status"], "completed");
    assert_eq!(
        body["output"][2]["content"][0]["text"],
        json!("Reading both.")
    );
}

#[tokio::test]
async fn faults_disconnect_malformed_stall_and_error_event() {
    let mock = start().await;
    let url = responses_url(&mock);
    let items = vec![Item::text("one"), Item::text("two"), Item::text("three")];

    // Disconnect: the body fails after two deltas, without a final event.
    mock.push(Response::stream(items.clone()).with_fault(Fault::Disconnect { after: 2 }));
    let (text, error) = read_until_end(post(&url, &responses_request()).await).await;
    assert!(error.is_some(), "the body must fail, got {text}");
    let assembled = assemble_responses(&parse_sse(&text));
    assert_eq!(
        (assembled.text.as_str(), assembled.done, assembled.finish),
        ("onetwo", false, None)
    );

    // Malformed: one event whose data is not JSON; the stream goes on.
    mock.push(
        Response::stream(vec![Item::text("a"), Item::text("b")])
            .with_fault(Fault::Malformed { after: 1 }),
    );
    let events = parse_sse(&stream_text(&url, &responses_request()).await);
    let bad: Vec<&Event> = events
        .iter()
        .filter(|e| serde_json::from_str::<Value>(&e.data).is_err())
        .collect();
    assert_eq!(bad.len(), 1, "{events:?}");
    assert_eq!(bad[0].name.as_deref(), Some("response.output_text.delta"));
    let good: Vec<Event> = events.iter().filter(|e| *e != bad[0]).cloned().collect();
    let assembled = assemble_responses(&good);
    assert_eq!((assembled.text.as_str(), assembled.done), ("ab", true));

    // Stall: nothing arrives and the body neither ends nor fails; a bounded stall completes.
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
    let mut body = post(&url, &responses_request()).await.bytes_stream();
    let mut text = String::new();
    while !text.contains(r#""before""#) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .unwrap();
        text += std::str::from_utf8(&chunk.unwrap().unwrap()).unwrap();
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), body.next())
            .await
            .is_err()
    );
    drop(body);
    let assembled = assemble_responses(&parse_sse(&stream_text(&url, &responses_request()).await));
    assert_eq!(
        (assembled.text.as_str(), assembled.done),
        ("beforeafter", true)
    );

    // Error event: OpenAI's documented shape, then nothing.
    let fault = Fault::ErrorEvent {
        after: 1,
        error_type: "server_error".into(),
        message: "The server had an error.".into(),
    };
    mock.push(Response::stream(vec![Item::text("a"), Item::text("b")]).with_fault(fault.clone()));
    let events = parse_sse(&stream_text(&url, &responses_request()).await);
    let assembled = assemble_responses(&events);
    assert_eq!((assembled.text.as_str(), assembled.done), ("a", false));
    let last = events.last().unwrap();
    assert_eq!(last.name.as_deref(), Some("error"));
    assert_eq!(
        last.json(),
        json!({"type": "error", "code": "server_error", "message": "The server had an error.",
            "param": null, "sequence_number": events.len() - 1})
    );
    // Without streaming the same fault is an HTTP error with OpenAI's body.
    mock.push(Response::text("a").with_fault(fault));
    let mut request = responses_request();
    request["stream"] = json!(false);
    let response = post(&url, &request).await;
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {"message": "The server had an error.", "type": "server_error", "param": null, "code": null}})
    );
}

#[tokio::test]
async fn http_errors_have_openais_bodies_and_retry_after() {
    let mock = start().await;
    mock.push(Response {
        reply: Reply::Error(HttpError {
            status: 429,
            retry_after: Some(7),
            ..HttpError::default()
        }),
        ..Response::http_error(429)
    });
    mock.push(Response::http_error(401));
    let url = responses_url(&mock);
    let response = post(&url, &responses_request()).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(response.headers()["x-request-id"], "req_mock0");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {"message": "Rate limit reached for requests. Please try again later.",
            "type": "requests", "param": null, "code": "rate_limit_exceeded"}})
    );
    let body: Value = post(&url, &responses_request()).await.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key");
}

#[tokio::test]
async fn responses_are_targeted_by_provider() {
    let mock = start().await;
    let script = json!([
        {"provider": "openai", "stream": {"items": [{"type": "text", "text": "for chat"}]}},
        {"provider": "openai_responses", "stream": {"items": [{"type": "text", "text": "for responses"}]}},
        {"stream": {"items": [{"type": "text", "text": "for anyone"}]}},
    ]);
    let added = reqwest::Client::new()
        .post(format!("{}/_mock/responses", mock.url()))
        .json(&script)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 200);
    assert_eq!(mock.queued()[1].provider, Some(Provider::OpenaiResponses));
    let text = |url: String| async move {
        assemble_responses(&parse_sse(&stream_text(&url, &responses_request()).await)).text
    };
    assert_eq!(
        text(format!("{}/v1/responses", mock.url())).await,
        "for responses"
    );
    assert_eq!(
        text(format!("{}/responses", mock.url())).await,
        "for anyone"
    );
    let chat = stream_text(
        &format!("{}/chat/completions", mock.openai_base_url()),
        &openai_request(false),
    )
    .await;
    assert_eq!(assemble_openai(&parse_sse(&chat)).text, "for chat");
    // An empty queue answers the default text.
    assert_eq!(text(responses_url(&mock)).await, "ok");
    let paths: Vec<String> = mock.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/v1/responses",
            "/responses",
            "/v1/chat/completions",
            "/v1/responses"
        ]
    );
}

#[tokio::test]
async fn protocol_violations_are_recorded() {
    let mock = start().await;
    let url = responses_url(&mock);
    let call = |id: &str, arguments: &str| json!({"type": "function_call", "id": format!("fc_{id}"), "call_id": id, "name": "f", "arguments": arguments});
    let output = |id: &str| json!({"type": "function_call_output", "call_id": id, "output": "ok"});
    let with_input = |input: Value| {
        let mut request = responses_request();
        request["input"] = input;
        request
    };
    let good = with_input(json!([
        {"role": "user", "content": "go"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "sig"},
        call("a", "{}"),
        call("b", r#"{"x":1}"#),
        output("a"),
        output("b"),
    ]));
    let bad = with_input(json!([
        {"role": "user", "content": "go"},
        call("a", r#"{"x":"#),
        call("b", "{}"),
        output("a"),
        output("ghost"),
        {"role": "assistant", "content": "done"},
    ]));
    let mut no_input = responses_request();
    no_input.as_object_mut().unwrap().remove("input");
    for body in [&good, &bad, &no_input] {
        assert_eq!(post(&url, body).await.status(), 200);
    }
    let response = reqwest::Client::new()
        .post(&url)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let violations: Vec<Vec<(Rule, String)>> = mock
        .requests()
        .iter()
        .map(|r| {
            r.violations
                .iter()
                .map(|v| (v.rule, v.detail.clone()))
                .collect()
        })
        .collect();
    assert_eq!(
        violations,
        vec![
            vec![],
            vec![
                (
                    Rule::ToolArgumentsNotObject,
                    r#"item 1: function_call a: "{\"x\":""#.into()
                ),
                (
                    Rule::ToolCallResultCount,
                    "item 2: tool call b has 0 results".into()
                ),
                (
                    Rule::ToolResultWithoutCall,
                    "item 4: result for unknown call ghost".into()
                ),
            ],
            vec![(
                Rule::InvalidBody,
                "the body has no `input` string or array".into()
            )],
            vec![(Rule::InvalidBody, "the body is not a JSON object".into())],
        ]
    );
}

#[tokio::test]
async fn a_repeated_prefix_reports_cached_tokens() {
    let mock = MockLlm::start(Config {
        min_cacheable_tokens: 0,
        ..Config::default()
    })
    .await
    .unwrap();
    let url = responses_url(&mock);
    let mut request = responses_request();
    request["instructions"] = json!("You are careful. ".repeat(250));
    let usage = |text: String| assemble_responses(&parse_sse(&text)).usage.unwrap();
    let first = usage(stream_text(&url, &request).await);
    request["input"][0]["content"] = json!("something else");
    let second = usage(stream_text(&url, &request).await);
    assert_eq!(first["input_tokens_details"]["cached_tokens"], 0);
    let cached = second["input_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert_eq!(cached, 8 * 128, "{second}");
    let prompt = mock.requests()[1].prompt.unwrap();
    assert_eq!(prompt.cache_read_tokens, cached);
    assert_eq!(
        second["input_tokens"],
        json!(prompt.input_tokens + prompt.cache_read_tokens)
    );
    // Without prefix caching everything is uncached input.
    let plain = MockLlm::start(Config {
        min_cacheable_tokens: 0,
        openai_prefix_caching: false,
        ..Config::default()
    })
    .await
    .unwrap();
    for _ in 0..2 {
        let usage = usage(stream_text(&responses_url(&plain), &request).await);
        assert_eq!(usage["input_tokens_details"]["cached_tokens"], 0);
    }
}

// ---- the recorded captures -------------------------------------------------------------

#[tokio::test]
async fn the_test_assembler_reproduces_the_captures_expected_results() {
    for (file, body) in support::fixtures("openai-responses", ".sse") {
        let meta = support::meta("openai-responses", &file);
        let expected = &meta["expected"];
        let got = assemble_responses(&parse_sse(&body));
        let calls: Vec<(String, String, String)> = expected["output"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["type"].as_str() == Some("function_call"))
            .map(|o| {
                (
                    o["call_id"].as_str().unwrap().into(),
                    o["name"].as_str().unwrap().into(),
                    o["arguments_raw"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(
            got.text,
            expected["streamed_text"].as_str().unwrap(),
            "{file}"
        );
        assert_eq!(got.tool_calls, calls, "{file}");
        assert_eq!(got.finish.as_deref(), expected["status"].as_str(), "{file}");
        assert!(got.done, "{file}");
        let usage = got.usage.unwrap();
        let int = |key: &str| json!(expected["usage"][key].as_integer().unwrap());
        assert_eq!(
            json!([
                usage["input_tokens"],
                usage["output_tokens"],
                usage["total_tokens"],
                usage["input_tokens_details"]["cached_tokens"],
                usage["output_tokens_details"]["reasoning_tokens"],
            ]),
            json!([
                int("input_tokens"),
                int("output_tokens"),
                int("total_tokens"),
                int("cached_tokens"),
                int("reasoning_tokens"),
            ]),
            "{file}"
        );
    }
}

#[tokio::test]
async fn a_function_call_answer_has_the_event_sequence_of_the_capture() {
    let captures = support::fixtures("openai-responses", ".sse");
    let capture = |name: &str| {
        let (_, body) = captures.iter().find(|(file, _)| file == name).unwrap();
        parse_sse(body)
    };
    let recorded = capture("function-call.sse");
    let mock = start().await;
    mock.push(Response::stream(vec![Item::tool_call(
        "call_1",
        "multiply",
        r#"{"a":1231,"b":2331}"#,
        11,
    )]));
    let events = parse_sse(&stream_text(&responses_url(&mock), &responses_request()).await);
    let types = |events: &[Event]| -> Vec<String> {
        events
            .iter()
            .map(|e| e.json()["type"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(types(&events), types(&recorded));
}

#[tokio::test]
async fn mock_events_have_the_keys_of_the_captures() {
    let mut shapes = Shapes::default();
    let mut tools = Value::Null;
    for (_, body) in support::fixtures("openai-responses", ".sse") {
        for event in parse_sse(&body) {
            if tools.is_null() {
                tools = event.json()["response"]["tools"].clone();
            }
            shapes.add(kind(&event), &event.json());
        }
    }
    let mock = start().await;
    mock.push(Response::stream(vec![Item::tool_call(
        "call_1",
        "multiply",
        r#"{"a":1231,"b":2331}"#,
        5,
    )]));
    mock.push(Response::stream(vec![
        Item::text("1231 × "),
        Item::text("2331"),
    ]));
    let mut request = responses_request();
    request["tools"] = tools;
    let mut checked = std::collections::BTreeSet::new();
    for _ in 0..2 {
        for event in parse_sse(&stream_text(&responses_url(&mock), &request).await) {
            shapes.check(&kind(&event), &event.json());
            checked.insert(kind(&event));
        }
    }
    // Every kind in the captures was produced and checked (`check` rejects unknown kinds).
    assert_eq!(checked.len(), 13, "{checked:?}");
}
