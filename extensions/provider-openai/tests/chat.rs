//! Chat completions over real HTTP against the mock: turns with text, reasoning, tool calls
//! (fragmented, parallel), usage and cost, cached tokens, exact request bytes, malformed
//! stored arguments, tool order, a whole JSON answer, and cancellation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use dispatch_kernel::abi::{
    Message, Pricing, ProviderEvent, ProviderRequest, StopReason, SystemSection, ToolSpec,
};
use dispatch_mock_llm::{Fault, HttpError, Item, Response, Usage as MockUsage};
use dispatch_provider_openai::{Api, MaxTokensField};
use dispatch_test_support::history::{assistant, call, result, text, tool, user};
use dispatch_test_support::{Behaviour, FakeTool, is_type, turn_input};
use dispatch_wire::{AgentEvent, Chunk, FinishReason, Id, ReasoningEffort, Role, Usage};
use expect_test::expect;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use common::{
    Delta, catalog, collect, completions, fold, http_error, instance, mock, provider,
    provider_with, reasoning, second_turn, streamed, turn, two_cached_turns, two_step_turn, usages,
};

fn body(request: &dispatch_mock_llm::RecordedRequest) -> Value {
    request.body.clone().unwrap()
}

#[tokio::test]
async fn text_streams_into_a_turn() {
    let mock = mock().await;
    mock.push(Response::stream(vec![
        Item::text("Hello"),
        Item::text(" there"),
    ]));
    let run = turn(provider(&mock), "gpt-4o-mini").await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    assert_eq!(streamed(&run, Delta::Text), "Hello there");
    let prefix = run.steps[0].prefix.clone().expect("a prompt-prefix record");
    assert_eq!(prefix.provider, "openai");
    assert_eq!(prefix.model, "gpt-4o-mini");

    let requests = completions(&mock);
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(
        request.headers["authorization"],
        dispatch_mock_llm::REDACTED
    );
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["accept"], "text/event-stream");
    assert_eq!(request.violations, []);
    assert_eq!(
        body(request)["stream_options"],
        json!({"include_usage": true})
    );
}

#[tokio::test]
async fn reasoning_content_is_streamed_and_never_sent_back() {
    let mock = mock().await;
    mock.push(Response::stream(vec![
        Item::reasoning("Let me think.", None),
        Item::text("Answer."),
    ]));
    let first = turn(provider(&mock), "deepseek-reasoner").await;
    assert_eq!(streamed(&first, Delta::Reasoning), "Let me think.");
    assert_eq!(streamed(&first, Delta::Text), "Answer.");
    let stored = &first.outcome.messages[0];
    assert!(matches!(&stored.chunks[0], Chunk::Reasoning { text, .. } if text == "Let me think."));

    mock.push(Response::text("More."));
    let second = second_turn(
        provider(&mock),
        "deepseek-reasoner",
        Vec::new(),
        &first,
        "and?",
    )
    .await;
    assert_eq!(second.outcome.finish_reason, FinishReason::Stop);
    let request = &completions(&mock)[1];
    assert!(
        !request.raw_body.contains("reasoning"),
        "{}",
        request.raw_body
    );
    assert_eq!(
        body(request)["messages"],
        json!([
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "Answer."},
            {"role": "user", "content": "and?"},
        ])
    );
}

#[tokio::test]
async fn a_tool_call_split_into_many_fragments_runs_once() {
    let mock = mock().await;
    let arguments = r#"{"path":"src/main.rs","range":{"start":1,"end":20},"note":"é ü"}"#;
    mock.push(Response::stream(vec![
        Item::text("Reading."),
        Item::tool_call("call_1", "read_file", arguments, 17),
    ]));
    mock.push(Response::text("Done."));
    let tool = FakeTool::new("read_file", Behaviour::Echo);
    let (_, calls) = two_step_turn(provider(&mock), "gpt-4o-mini", tool).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].input,
        serde_json::from_str::<Value>(arguments).unwrap()
    );
    assert_eq!(&*calls[0].tool_call_id, "call_1");

    let requests = completions(&mock);
    assert_eq!(requests[1].violations, []);
    let messages = body(&requests[1])["messages"].clone();
    assert_eq!(
        messages[1],
        json!({"role": "assistant", "content": "Reading.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "read_file",
             "arguments": serde_json::from_str::<Value>(arguments).unwrap().to_string()}}
        ]})
    );
    assert_eq!(
        messages[2],
        json!({"role": "tool", "tool_call_id": "call_1", "content": calls[0].input.to_string()})
    );
}

#[tokio::test]
async fn parallel_tool_calls_all_run_and_answer_in_order() {
    let mock = mock().await;
    mock.push(Response::stream(vec![
        Item::tool_call("call_a", "read_file", r#"{"path":"a.rs"}"#, 3),
        Item::tool_call("call_b", "grep", r#"{"pattern":"fn main"}"#, 2),
        Item::tool_call("call_c", "read_file", "", 1),
    ]));
    mock.push(Response::text("Both read."));
    let read = FakeTool::reply("read_file", "contents").safe(true).arc();
    let grep = FakeTool::reply("grep", "matches").safe(true).arc();
    let run = turn_input(provider(&mock))
        .model("gpt-4o")
        .tool(read.clone())
        .tool(grep.clone())
        .run()
        .await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    assert_eq!(read.call_count(), 2);
    assert_eq!(grep.call_count(), 1);
    let ids: Vec<Id> = run
        .of_type("tool-call")
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolCall { tool_call_id, .. } => Some(tool_call_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        ids,
        [Id::from("call_a"), Id::from("call_b"), Id::from("call_c")]
    );
    let empty = read
        .calls()
        .into_iter()
        .find(|c| &*c.tool_call_id == "call_c")
        .unwrap();
    assert_eq!(
        empty.input,
        json!({}),
        "empty arguments are an empty object"
    );

    let second = &completions(&mock)[1];
    assert_eq!(second.violations, []);
    let roles: Vec<(String, String)> = body(second)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["tool_call_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let pair = |r: &str, id: &str| (r.to_owned(), id.to_owned());
    assert_eq!(
        roles,
        [
            pair("user", ""),
            pair("assistant", ""),
            pair("tool", "call_a"),
            pair("tool", "call_b"),
            pair("tool", "call_c"),
        ]
    );
}

#[tokio::test]
async fn usage_maps_to_dispatch_terms_and_is_priced_by_the_catalog() {
    let mock = mock().await;
    mock.push(Response::text("Priced.").with_usage(MockUsage {
        input_tokens: Some(1000),
        output_tokens: Some(200),
        cache_read_tokens: Some(300),
        cache_write_tokens: Some(0),
        reasoning_tokens: Some(50),
    }));
    let catalog = catalog();
    let run = turn_input(provider_with(instance(&mock, Api::Chat), catalog.clone()))
        .model("gpt-4o-mini")
        .pricing(catalog.clone())
        .run()
        .await;
    let want = Usage {
        input_tokens: 1300,
        output_tokens: 200,
        cache_read_tokens: 300,
        cache_write_tokens: 0,
        reasoning_tokens: 50,
    };
    let cost = catalog.cost("openai", "gpt-4o-mini", &want);
    assert!(cost.is_some_and(|c| c.total > 0.0), "{cost:?}");
    assert_eq!(usages(&run), [(want, cost)]);
    assert_eq!(run.outcome.usage, want);
    assert_eq!(run.outcome.cost, cost);
}

#[tokio::test]
async fn a_second_request_with_the_same_prefix_reads_the_cache() {
    let (first, second) = two_cached_turns(
        Api::Chat,
        "gpt-4o-mini",
        &"You are a careful assistant. ".repeat(150),
    )
    .await;
    assert!(
        first.outcome.usage.input_tokens > 1000,
        "{:?}",
        first.outcome.usage
    );
    assert_eq!(
        second.steps[0].prefix.as_ref().unwrap().first_difference,
        None
    );
}

#[tokio::test]
async fn stored_malformed_tool_arguments_are_sent_as_objects() {
    let mock = mock().await;
    let history = vec![
        user("u1", "list"),
        assistant(
            "a1",
            vec![
                call("call_bad", Value::String(r#"{"cmd": "ls"#.to_owned())),
                call("call_str", Value::String(r#"{"cmd":"pwd"}"#.to_owned())),
                call("call_arr", json!([1, 2])),
            ],
        ),
        tool(
            "t1",
            vec![
                result("call_bad", "invalid arguments"),
                result("call_str", "/"),
                result("call_arr", "invalid arguments"),
            ],
        ),
        user("turn-1:0", "go on"),
    ];
    let run = turn_input(provider(&mock))
        .model("gpt-4o")
        .history(history)
        .run()
        .await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    let request = &completions(&mock)[0];
    assert_eq!(request.violations, [], "no ToolArgumentsNotObject");
    let arguments: Vec<String> = body(request)["messages"][1]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["function"]["arguments"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        arguments,
        [
            r#"{"_malformed_arguments":"{\"cmd\": \"ls"}"#,
            r#"{"cmd":"pwd"}"#,
            r#"{"_malformed_arguments":"[1,2]"}"#,
        ]
    );
}

fn spec(name: &str, schema: Value) -> ToolSpec {
    ToolSpec {
        name: name.to_owned(),
        description: format!("The {name} tool."),
        input_schema: schema,
        concurrency_safe: true,
        capabilities: Vec::new(),
    }
}

/// A request using every part of the body: two system sections, two tools, each role,
/// reasoning and error chunks (never sent), an output limit and a temperature.
fn full_request(model: &str) -> ProviderRequest {
    let mut request = ProviderRequest::new(
        model,
        vec![
            user("m0", "Read a.rs"),
            assistant(
                "m1",
                vec![
                    reasoning("I should read it.", None),
                    text("Reading."),
                    call("call_1", json!({"path": "a.rs", "limit": 10})),
                ],
            ),
            tool("m2", vec![result("call_1", "fn main() {}")]),
            Message::new(
                Id::from("m3"),
                Role::Assistant,
                vec![Chunk::Error {
                    message: "failed".into(),
                    code: None,
                }],
            ),
            user("m4", "Thanks \"quoted\" ü"),
        ],
    );
    request.conversation_id = Some(Id::from("conv-body"));
    request.system = Arc::from(vec![
        SystemSection::new("stable", "You are Dispatch."),
        SystemSection::new("volatile", "Today is Monday."),
    ]);
    request.tools = Arc::from(vec![
        spec(
            "grep",
            json!({"type": "object", "properties": {"pattern": {"type": "string"}}}),
        ),
        spec(
            "read_file",
            json!({"type": "object", "required": ["path"], "properties": {"path": {"type": "string"}}}),
        ),
    ]);
    request.max_output_tokens = Some(1024);
    request.temperature = Some(0.25);
    request
}

#[tokio::test]
async fn the_request_body_is_exact_and_deterministic() {
    let mock = mock().await;
    let provider = provider(&mock);
    let request = full_request("gpt-4o");
    let events = fold(collect(&*provider, &request).await);
    assert_eq!(events.error, None);
    assert_eq!(events.prefixes, 1);
    fold(collect(&*provider, &request).await);
    let requests = completions(&mock);
    assert_eq!(
        requests[0].raw_body, requests[1].raw_body,
        "same request, same bytes"
    );
    assert_eq!(requests[0].violations, []);
    expect![[r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"max_tokens":1024,"temperature":0.25,"tools":[{"type":"function","function":{"name":"grep","description":"The grep tool.","parameters":{"properties":{"pattern":{"type":"string"}},"type":"object"}}},{"type":"function","function":{"name":"read_file","description":"The read_file tool.","parameters":{"properties":{"path":{"type":"string"}},"required":["path"],"type":"object"}}}],"messages":[{"role":"system","content":"You are Dispatch.\n\nToday is Monday."},{"role":"user","content":"Read a.rs"},{"role":"assistant","content":"Reading.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"run_shell","arguments":"{\"limit\":10,\"path\":\"a.rs\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"fn main() {}"},{"role":"user","content":"Thanks \"quoted\" ü"}]}"#]]
        .assert_eq(&requests[0].raw_body);
}

#[tokio::test]
async fn reasoning_effort_is_sent_only_to_reasoning_models() {
    let mock = mock().await;
    let mut config = instance(&mock, Api::Chat);
    config.include_usage = false;
    config.max_tokens_field = MaxTokensField::MaxCompletionTokens;
    let provider = provider_with(config, catalog());
    for (model, effort) in [
        ("o3", ReasoningEffort::Xhigh),
        ("o4-mini", ReasoningEffort::Low),
        ("gpt-4o", ReasoningEffort::High),
    ] {
        let mut request = ProviderRequest::new(model, vec![user("m0", "hi")]);
        request.reasoning_effort = Some(effort);
        request.temperature = Some(0.5);
        request.max_output_tokens = Some(100);
        assert_eq!(fold(collect(&*provider, &request).await).error, None);
    }
    let bodies: Vec<String> = completions(&mock).into_iter().map(|r| r.raw_body).collect();
    expect![[r#"
        [
            "{\"model\":\"o3\",\"stream\":true,\"max_completion_tokens\":100,\"reasoning_effort\":\"high\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
            "{\"model\":\"o4-mini\",\"stream\":true,\"max_completion_tokens\":100,\"reasoning_effort\":\"low\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
            "{\"model\":\"gpt-4o\",\"stream\":true,\"max_completion_tokens\":100,\"temperature\":0.5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        ]
    "#]]
    .assert_debug_eq(&bodies);
}

#[tokio::test]
async fn growing_history_never_changes_earlier_bytes() {
    let mock = mock().await;
    let provider = provider(&mock);
    let short = full_request("gpt-4o");
    let mut long = short.clone();
    long.messages
        .push(assistant("m5", vec![text("You're welcome.")]));
    long.messages.push(user("m6", "Bye"));
    let first = collect(&*provider, &short).await;
    let second = collect(&*provider, &long).await;
    let requests = completions(&mock);
    let (a, b) = (&requests[0].raw_body, &requests[1].raw_body);
    assert!(
        b.starts_with(&a[..a.len() - 2]),
        "the longer body extends the shorter"
    );

    let prefix = |items: &[Result<ProviderEvent, _>]| match &items[0] {
        Ok(ProviderEvent::Prefix(p)) => p.clone(),
        other => panic!("the first event is the prefix record: {other:?}"),
    };
    let (p1, p2) = (prefix(&first), prefix(&second));
    assert_eq!(
        p2.first_difference, None,
        "an extension of the previous request"
    );
    assert_eq!(p1.blocks[..], p2.blocks[..p1.blocks.len()]);
    let kinds: Vec<String> = p2
        .blocks
        .iter()
        .map(|b| serde_json::to_value(&b.at).unwrap().to_string())
        .collect();
    expect![[r#"
        [
            "{\"count\":2,\"kind\":\"tools\"}",
            "{\"index\":0,\"kind\":\"system\",\"name\":\"stable\"}",
            "{\"index\":1,\"kind\":\"system\",\"name\":\"volatile\"}",
            "{\"index\":1,\"kind\":\"message\",\"role\":\"user\"}",
            "{\"index\":2,\"kind\":\"message\",\"role\":\"assistant\"}",
            "{\"index\":3,\"kind\":\"message\",\"role\":\"tool\"}",
            "{\"index\":4,\"kind\":\"message\",\"role\":\"user\"}",
            "{\"index\":5,\"kind\":\"message\",\"role\":\"assistant\"}",
            "{\"index\":6,\"kind\":\"message\",\"role\":\"user\"}",
        ]
    "#]]
    .assert_debug_eq(&kinds);
}

#[tokio::test]
async fn reordering_tools_does_not_change_a_byte() {
    let mock = mock().await;
    for order in [
        ["write_file", "grep", "read_file"],
        ["read_file", "write_file", "grep"],
    ] {
        let mut turn = turn_input(provider(&mock)).model("gpt-4o");
        for name in order {
            turn = turn.tool(FakeTool::reply(name, "ok").arc());
        }
        assert_eq!(turn.run().await.outcome.finish_reason, FinishReason::Stop);
    }
    let requests = completions(&mock);
    assert_eq!(requests.len(), 2);
    assert!(requests[0].raw_body.contains("\"grep\""));
    assert_eq!(requests[0].raw_body, requests[1].raw_body);
}

#[tokio::test]
async fn a_whole_json_answer_is_parsed() {
    let mock = mock().await;
    let capture =
        dispatch_test_support::fixtures::captures(env!("CARGO_MANIFEST_DIR"), "openai", ".json")
            .into_iter()
            .find(|c| c.name == "openai/prompt-cache-hit-nonstreaming.json")
            .unwrap();
    // A scripted "error" with status 200: the mock sends the body as `application/json`.
    mock.push(http_error(HttpError {
        status: 200,
        body: Some(serde_json::from_slice(&capture.body).unwrap()),
        ..HttpError::default()
    }));
    let run = turn(provider(&mock), "gpt-4o-mini").await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    let expected = capture.meta["expected"].as_table().unwrap();
    assert_eq!(
        streamed(&run, Delta::Text),
        expected["content"].as_str().unwrap()
    );
    assert_eq!(run.outcome.usage.input_tokens, 1149);
    assert_eq!(run.outcome.usage.cache_read_tokens, 1024);
    assert_eq!(run.outcome.usage.output_tokens, 353);
    assert!(run.steps[0].prefix.is_some());
}

#[tokio::test]
async fn cancelling_a_stalled_stream_aborts_promptly() {
    let mock = mock().await;
    mock.push(Response::text("partial").with_fault(Fault::Stall { after: 1, ms: None }));
    let turn = turn_input(provider(&mock)).model("gpt-4o");
    let (events, cancel) = (turn.events.clone(), turn.cancel.clone());
    let run = turn
        .run_with(async move {
            let seen = events
                .wait_for(is_type("text-delta"), Duration::from_secs(5))
                .await;
            assert!(seen.is_some(), "the partial text arrives");
            cancel.cancel();
        })
        .await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Aborted);
    assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
    assert_eq!(streamed(&run, Delta::Text), "partial");
}

#[tokio::test]
async fn cancelling_while_waiting_for_headers_aborts_promptly() {
    let mock = mock().await;
    mock.push(Response::text("late").with_latency(60_000));
    let turn = turn_input(provider(&mock)).model("gpt-4o");
    let cancel = turn.cancel.clone();
    let mock_ref = &mock;
    let run = turn
        .run_with(async move {
            let arrived = tokio::time::timeout(Duration::from_secs(5), async {
                while mock_ref.requests().is_empty() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await;
            assert!(arrived.is_ok(), "the request reaches the mock");
            cancel.cancel();
        })
        .await;
    assert_eq!(
        run.outcome.finish_reason,
        FinishReason::Aborted,
        "{:?}",
        run.outcome.error
    );
    assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
}

#[tokio::test]
async fn finish_reasons_map_to_stop_reasons() {
    let mock = mock().await;
    mock.push(Response::text("cut").with_finish(dispatch_mock_llm::Finish::Length));
    let provider = provider(&mock);
    let request = ProviderRequest::new("gpt-4o", vec![user("m0", "hi")]);
    let assembled = fold(collect(&*provider, &request).await);
    assert_eq!(assembled.finish, Some(StopReason::MaxTokens));
    assert_eq!(assembled.text, "cut");
}
