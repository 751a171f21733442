//! The Responses API (`api = "responses"`) over real HTTP against the mock's `/v1/responses`:
//! exact request bytes, text, reasoning summaries, function calls across steps, usage with
//! cached tokens, `response.incomplete`, error events and faults.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use dispatch_kernel::abi::{ProviderRequest, StopReason, SystemSection, ToolSpec};
use dispatch_mock_llm::{Fault, Finish, HttpError, Item, Provider as MockProvider, Response};
use dispatch_provider_openai::Api;
use dispatch_test_support::history::{assistant, call, result, text, tool, user};
use dispatch_test_support::{Behaviour, FakeTool};
use dispatch_wire::{FinishReason, ReasoningEffort, Usage};
use expect_test::expect;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use common::{
    Delta, collect, completions, fold, http_error, mock, reasoning, responses_provider, retrying,
    streamed, turn, two_cached_turns, two_step_turn,
};

fn scripted(response: Response) -> Response {
    response.for_provider(MockProvider::OpenaiResponses)
}

#[tokio::test]
async fn the_request_body_is_exact() {
    let mock = mock().await;
    let provider = responses_provider(&mock);
    let mut request = ProviderRequest::new(
        "o3",
        vec![
            user("m0", "Read a.rs"),
            assistant(
                "m1",
                vec![
                    reasoning("I should read it.", Some("sig")),
                    text("Reading."),
                    call("call_1", json!({"path": "a.rs"})),
                    call("call_2", Value::String("{broken".into())),
                ],
            ),
            tool(
                "m2",
                vec![result("call_1", "fn main() {}"), result("call_2", "bad")],
            ),
            user("m3", "Thanks"),
        ],
    );
    request.system = Arc::from(vec![
        SystemSection::new("stable", "You are Dispatch."),
        SystemSection::new("volatile", "Today is Monday."),
    ]);
    request.tools = Arc::from(vec![ToolSpec {
        name: "read_file".into(),
        description: "Reads a file.".into(),
        input_schema: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
        concurrency_safe: true,
        capabilities: Vec::new(),
    }]);
    request.max_output_tokens = Some(2048);
    request.reasoning_effort = Some(ReasoningEffort::Max);
    request.temperature = Some(0.3);
    mock.push(scripted(Response::text("ok")));
    let assembled = fold(collect(&*provider, &request).await);
    assert_eq!(assembled.error, None);
    assert_eq!(assembled.text, "ok");
    let recorded = &completions(&mock)[0];
    assert_eq!(recorded.path, "/v1/responses");
    assert_eq!(recorded.violations, []);
    expect![[r#"{"model":"o3","stream":true,"store":false,"instructions":"You are Dispatch.\n\nToday is Monday.","max_output_tokens":2048,"reasoning":{"effort":"high"},"tools":[{"type":"function","name":"read_file","description":"Reads a file.","parameters":{"properties":{"path":{"type":"string"}},"type":"object"}}],"input":[{"role":"user","content":[{"type":"input_text","text":"Read a.rs"}]},{"role":"assistant","content":[{"type":"output_text","text":"Reading."}]},{"type":"function_call","call_id":"call_1","name":"run_shell","arguments":"{\"path\":\"a.rs\"}"},{"type":"function_call","call_id":"call_2","name":"run_shell","arguments":"{\"_malformed_arguments\":\"{broken\"}"},{"type":"function_call_output","call_id":"call_1","output":"fn main() {}"},{"type":"function_call_output","call_id":"call_2","output":"bad"},{"role":"user","content":[{"type":"input_text","text":"Thanks"}]}]}"#]]
        .assert_eq(&recorded.raw_body);
}

#[tokio::test]
async fn text_and_reasoning_summaries_stream_into_a_turn() {
    let mock = mock().await;
    mock.push(scripted(Response::stream(vec![
        Item::reasoning("Thinking it over.", Some("enc")),
        Item::text("Hello"),
        Item::text(" world"),
    ])));
    let run = turn(responses_provider(&mock), "gpt-5").await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    assert_eq!(streamed(&run, Delta::Reasoning), "Thinking it over.");
    assert_eq!(streamed(&run, Delta::Text), "Hello world");
    assert!(run.steps[0].prefix.is_some());
    let usage = run.outcome.usage;
    assert!(
        usage.input_tokens > 0 && usage.output_tokens > 0,
        "{usage:?}"
    );
    assert!(usage.reasoning_tokens > 0, "{usage:?}");
}

#[tokio::test]
async fn function_calls_run_and_their_outputs_go_back() {
    let mock = mock().await;
    mock.push(scripted(Response::stream(vec![
        Item::text("Multiplying."),
        Item::tool_call("call_m1", "multiply", r#"{"a":1231,"b":2331}"#, 6),
        Item::tool_call("call_m2", "multiply", r#"{"a":2,"b":3}"#, 1),
    ])));
    mock.push(scripted(Response::text("2,869,461 and 6")));
    let tool = FakeTool::new("multiply", Behaviour::Echo).safe(true);
    let (_, calls) = two_step_turn(responses_provider(&mock), "gpt-5", tool).await;
    let ids: Vec<&str> = calls.iter().map(|c| &*c.tool_call_id).collect();
    assert_eq!(ids, ["call_m1", "call_m2"]);
    assert_eq!(calls[0].input, json!({"a": 1231, "b": 2331}));

    let second = &completions(&mock)[1];
    assert_eq!(second.violations, []);
    let kinds: Vec<String> = second.body.as_ref().unwrap()["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            item["type"]
                .as_str()
                .or_else(|| item["role"].as_str())
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "user",
            "assistant",
            "function_call",
            "function_call",
            "function_call_output",
            "function_call_output"
        ]
    );
}

#[tokio::test]
async fn cached_input_tokens_are_read_on_a_second_request() {
    two_cached_turns(
        Api::Responses,
        "gpt-5",
        &"Be precise and brief. ".repeat(200),
    )
    .await;
}

#[tokio::test]
async fn an_incomplete_response_is_a_length_finish() {
    let mock = mock().await;
    mock.push(scripted(
        Response::text("Cut sh").with_finish(Finish::Length),
    ));
    let run = turn(responses_provider(&mock), "gpt-5").await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Length);
    assert_eq!(streamed(&run, Delta::Text), "Cut sh");
    assert!(run.outcome.usage.output_tokens > 0);
}

#[tokio::test]
async fn error_events_and_malformed_events_end_the_turn() {
    let mock = mock().await;
    mock.push(scripted(Response::text("Partial").with_fault(
        Fault::ErrorEvent {
            after: 1,
            error_type: "server_error".into(),
            message: "Something broke".into(),
        },
    )));
    let run = turn(responses_provider(&mock), "gpt-5").await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Error);
    assert_eq!(
        run.outcome.error.as_deref(),
        Some("openai (gpt-5): stream error server_error: Something broke")
    );

    mock.push(scripted(
        Response::text("x").with_fault(Fault::Malformed { after: 0 }),
    ));
    let run = retrying(responses_provider(&mock), "gpt-5").await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Error);
    assert_eq!(run.count_type("provider-retry"), 0);
    let error = run.outcome.error.unwrap();
    assert!(
        error.starts_with("openai (gpt-5): malformed stream event"),
        "{error}"
    );
}

#[tokio::test]
async fn a_cut_stream_without_response_completed_is_retried() {
    let mock = mock().await;
    mock.push(scripted(
        Response::text("lost").with_fault(Fault::Disconnect { after: 0 }),
    ));
    mock.push(scripted(Response::text("Again.")));
    let run = retrying(responses_provider(&mock), "gpt-5").await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    assert_eq!(run.count_type("provider-retry"), 1);
    assert_eq!(streamed(&run, Delta::Text), "Again.");
}

#[tokio::test]
async fn a_whole_response_object_is_parsed() {
    let mock = mock().await;
    let body = json!({
        "id": "resp_1", "object": "response", "status": "completed",
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Hmm."}]},
            {"type": "message", "id": "msg_1", "role": "assistant",
             "content": [{"type": "output_text", "text": "Calling."}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "multiply",
             "arguments": "{\"a\":1}", "status": "completed"},
        ],
        "usage": {"input_tokens": 120, "input_tokens_details": {"cached_tokens": 64},
                  "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 10},
                  "total_tokens": 150},
    });
    mock.push(scripted(http_error(HttpError {
        status: 200,
        body: Some(body),
        ..HttpError::default()
    })));
    let provider = responses_provider(&mock);
    let request = ProviderRequest::new("gpt-5", vec![user("m0", "go")]);
    let assembled = fold(collect(&*provider, &request).await);
    assert_eq!(assembled.error, None);
    assert_eq!(assembled.reasoning, "Hmm.");
    assert_eq!(assembled.text, "Calling.");
    assert_eq!(
        assembled.calls,
        [(
            "call_9".to_owned(),
            "multiply".to_owned(),
            "{\"a\":1}".to_owned()
        )]
    );
    assert_eq!(
        assembled.usage,
        Some(Usage {
            input_tokens: 120,
            output_tokens: 30,
            cache_read_tokens: 64,
            cache_write_tokens: 0,
            reasoning_tokens: 10,
        })
    );
    assert_eq!(assembled.finish, Some(StopReason::ToolCalls));
}
