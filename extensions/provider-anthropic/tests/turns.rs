//! Whole turns through `run_turn` against the real-HTTP mock: text, thinking and its
//! signature round trip, redacted thinking, tool calls (fragmented, parallel), usage and
//! cost, stored malformed arguments, byte-stable requests, explained prefix changes and
//! cancellation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use dispatch_kernel::abi::{Extension, Manifest, Message, SystemSection};
use dispatch_kernel::host::{Host, HostApi, HostConfig};
use dispatch_mock_llm::{Fault, Item, Response, Usage as MockUsage};
use dispatch_provider_anthropic::AnthropicProvider;
use dispatch_test_support::{Behaviour, FakeTool, TurnRun, is_type, turn_input};
use dispatch_wire::{
    AgentEvent, Chunk, FinishReason, Id, PrefixBlockRef, ReasoningEffort, Role, Usage,
};
use pretty_assertions::assert_eq;
use serde_json::json;

use common::*;

const SIGNATURE: &str = "EqQBCkYIARgCIkCepoF8CXqdCGI7O1AAkEcx/vta5WeUn1g3tOabtne7C0veTgb4+mBCBB==";
const REDACTED: &str = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP==";

#[tokio::test]
async fn text_usage_cost_and_headers() {
    let mock = scripted(vec![Response::text("Hello there.").with_usage(MockUsage {
        input_tokens: Some(100),
        output_tokens: Some(50),
        cache_read_tokens: Some(1000),
        cache_write_tokens: Some(200),
        reasoning_tokens: None,
    })])
    .await;
    let catalog = catalog();
    let run = turn_input(provider(&mock, &catalog))
        .model(MODEL)
        .pricing(catalog.clone())
        .run()
        .await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    assert_eq!(run.outcome.messages.len(), 1);
    assert_eq!(run.outcome.messages[0].text(), "Hello there.");
    let usage = Usage {
        input_tokens: 1300,
        output_tokens: 50,
        cache_read_tokens: 1000,
        cache_write_tokens: 200,
        reasoning_tokens: 0,
    };
    assert_eq!(run.outcome.usage, usage);
    assert_eq!(run.count_type("usage"), 1);
    // claude-sonnet-4-5: $3 input, $15 output, $0.30 cache read, $3.75 cache write per M.
    let cost = run.outcome.cost.unwrap();
    let expected = (100.0 * 3.0 + 50.0 * 15.0 + 1000.0 * 0.30 + 200.0 * 3.75) / 1e6;
    assert!((cost.total - expected).abs() < 1e-12, "{cost:?}");

    let requests = messages_requests(&mock);
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    let header = |name: &str| request.headers.get(name).map(String::as_str);
    assert_eq!(header("x-api-key"), Some(dispatch_mock_llm::REDACTED));
    assert_eq!(header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(header("anthropic-beta"), None);
    assert_eq!(header("content-type"), Some("application/json"));
    assert_eq!(header("accept"), Some("text/event-stream"));
    assert_eq!(
        request.raw_body,
        r#"{"model":"claude-sonnet-4-5","max_tokens":64000,"stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"hello","cache_control":{"type":"ephemeral"}}]}]}"#
    );
    let prefix = run.steps[0].prefix.as_ref().unwrap();
    assert_eq!(prefix.provider, "anthropic");
    assert_eq!(prefix.model, MODEL);
    assert_eq!(
        prefix.blocks[0].at,
        PrefixBlockRef::Message {
            index: 0,
            role: "user".to_owned()
        }
    );
    assert!(prefix.blocks[0].breakpoint);
    assert_no_violations(&mock);
}

#[tokio::test]
async fn thinking_and_redacted_thinking_round_trip_byte_exact() {
    let mock = scripted(vec![
        Response::stream(vec![
            Item::reasoning("Let me think", None),
            Item::reasoning(" about it.", Some(SIGNATURE)),
            Item::redacted_reasoning(REDACTED),
            Item::text("Answer."),
        ]),
        Response::text("Second answer."),
    ])
    .await;
    let catalog = catalog();
    let provider = provider(&mock, &catalog);
    let first_user = Message::user(Id::from("turn-1:0"), "Think hard.");
    let run = turn_input(provider.clone())
        .model(MODEL)
        .history(vec![first_user.clone()])
        .reasoning_effort(ReasoningEffort::High)
        .run()
        .await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    assert_eq!(
        run.outcome.messages[0].chunks,
        [
            Chunk::Reasoning {
                text: "Let me think about it.".to_owned(),
                signature: Some(SIGNATURE.to_owned()),
                redacted: None,
            },
            Chunk::Reasoning {
                text: String::new(),
                signature: None,
                redacted: Some(REDACTED.to_owned()),
            },
            Chunk::Text {
                text: "Answer.".to_owned()
            },
        ]
    );
    assert!(run.count_type("reasoning-delta") >= 1);
    let first = &messages_requests(&mock)[0];
    assert_eq!(
        body(first)["thinking"],
        json!({"type": "enabled", "budget_tokens": 16384})
    );
    assert_eq!(body(first)["max_tokens"], 64000);
    assert!(first.raw_body.starts_with(
        r#"{"model":"claude-sonnet-4-5","max_tokens":64000,"stream":true,"thinking":{"type":"enabled","budget_tokens":16384},"messages":"#
    ));

    let mut history = vec![first_user];
    history.extend(run.outcome.messages);
    history.push(Message::user(Id::from("turn-2:0"), "And now?"));
    let run = turn_input(provider)
        .model(MODEL)
        .ids("conv-1", "turn-2")
        .history(history)
        .run()
        .await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    let second = &messages_requests(&mock)[1];
    let assistant = format!(
        r#"{{"role":"assistant","content":[{{"type":"thinking","thinking":"Let me think about it.","signature":"{SIGNATURE}"}},{{"type":"redacted_thinking","data":"{REDACTED}"}},{{"type":"text","text":"Answer."}}]}}"#
    );
    assert!(second.raw_body.contains(&assistant), "{}", second.raw_body);
    assert!(
        body(second).get("thinking").is_none(),
        "no effort, no thinking"
    );
    assert_no_violations(&mock);
}

#[tokio::test]
async fn one_tool_call_split_into_many_fragments() {
    let arguments = r#"{"city":"Zürich","units":"metric","days":[1,2,3],"note":"ß→✓"}"#;
    let mock = scripted(vec![
        Response::stream(vec![
            Item::text("Looking it up."),
            Item::tool_call("toolu_01", "lookup", arguments, 23),
        ]),
        Response::text("Sunny."),
    ])
    .await;
    let catalog = catalog();
    let lookup = FakeTool::new("lookup", Behaviour::Echo).arc();
    let run = turn_input(provider(&mock, &catalog))
        .model(MODEL)
        .tool(lookup.clone())
        .run()
        .await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    let input: serde_json::Value = serde_json::from_str(arguments).unwrap();
    assert_eq!(lookup.calls().len(), 1);
    assert_eq!(lookup.calls()[0].input, input);
    assert_eq!(lookup.calls()[0].tool_call_id.as_ref(), "toolu_01");
    let calls = run.of_type("tool-call");
    assert!(
        matches!(calls[0], AgentEvent::ToolCall { input: i, tool_name, .. } if *i == input && tool_name == "lookup")
    );

    let second = &messages_requests(&mock)[1];
    let messages = body(second)["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(
        messages[1],
        json!({"role": "assistant", "content": [
            {"type": "text", "text": "Looking it up."},
            {"type": "tool_use", "id": "toolu_01", "name": "lookup", "input": input},
        ]})
    );
    assert_eq!(
        messages[2],
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01",
            "content": input.to_string(), "cache_control": {"type": "ephemeral"}}]})
    );
    assert_eq!(body(second)["tools"][0]["name"], "lookup");
    assert_no_violations(&mock);
}

#[tokio::test]
async fn two_parallel_tool_calls_answer_in_one_user_message() {
    let mock = scripted(vec![
        Response::stream(vec![
            Item::tool_call("toolu_a", "alpha", r#"{"n":1}"#, 3),
            Item::tool_call("toolu_b", "beta", "", 1),
        ]),
        Response::text("Both done."),
    ])
    .await;
    let catalog = catalog();
    let alpha = FakeTool::reply("alpha", "A").safe(true).arc();
    let beta = FakeTool::reply("beta", "B").safe(true).arc();
    let run = turn_input(provider(&mock, &catalog))
        .model(MODEL)
        .tool(beta.clone())
        .tool(alpha.clone())
        .run()
        .await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    assert_eq!(alpha.calls()[0].input, json!({"n": 1}));
    assert_eq!(beta.calls()[0].input, json!({}), "empty input JSON is {{}}");
    let second = &messages_requests(&mock)[1];
    let b = body(second);
    assert_eq!(b["tools"][0]["name"], "alpha", "sorted by name");
    assert_eq!(b["tools"][1]["name"], "beta");
    assert_eq!(
        b["messages"][1]["content"],
        json!([
            {"type": "tool_use", "id": "toolu_a", "name": "alpha", "input": {"n": 1}},
            {"type": "tool_use", "id": "toolu_b", "name": "beta", "input": {}},
        ])
    );
    assert_eq!(
        b["messages"][2]["content"],
        json!([
            {"type": "tool_result", "tool_use_id": "toolu_a", "content": "A"},
            {"type": "tool_result", "tool_use_id": "toolu_b", "content": "B", "cache_control": {"type": "ephemeral"}},
        ])
    );
    assert_eq!(cache_control_blocks(b), 3, "last tool, two user messages");
    assert_no_violations(&mock);
}

#[tokio::test]
async fn stored_malformed_tool_arguments_are_sent_as_an_object() {
    let mock = scripted(vec![Response::text("Recovered.")]).await;
    let catalog = catalog();
    let history = vec![
        Message::user(Id::from("t0:0"), "Do it."),
        Message::new(
            Id::from("t0:1"),
            Role::Assistant,
            vec![Chunk::ToolCall {
                tool_call_id: Id::from("toolu_bad"),
                tool_name: "lookup".to_owned(),
                input: json!("{not json"),
            }],
        ),
        Message::new(
            Id::from("t0:2"),
            Role::Tool,
            vec![Chunk::ToolResult {
                tool_call_id: Id::from("toolu_bad"),
                tool_name: "lookup".to_owned(),
                output: "Invalid arguments".to_owned(),
                is_error: true,
            }],
        ),
        Message::user(Id::from("turn-1:0"), "Try again."),
    ];
    let run = turn_input(provider(&mock, &catalog))
        .model(MODEL)
        .history(history)
        .run()
        .await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    let request = &messages_requests(&mock)[0];
    assert_eq!(request.violations, []);
    assert_eq!(
        body(request)["messages"][1]["content"][0]["input"],
        json!({"_malformed_arguments": "{not json"})
    );
    assert_eq!(body(request)["messages"][2]["content"][0]["is_error"], true);
}

#[tokio::test]
async fn tool_registration_order_changes_no_request_byte() {
    let mock = mock().await;
    let catalog = catalog();
    let provider = provider(&mock, &catalog);
    let mut bodies = Vec::new();
    // Two tool extensions, activated in both orders, each registering its tools in both
    // orders: the host's tool list, and so every request byte, must not care.
    for reverse in [false, true] {
        let tools = registered_tools(reverse).await;
        mock.reset();
        script(
            &mock,
            vec![
                Response::stream(vec![Item::tool_call("toolu_1", "mid", r#"{"x":1}"#, 2)]),
                Response::text("Done."),
            ],
        );
        let mut turn = turn_input(provider.clone()).model(MODEL);
        for tool in tools {
            turn = turn.tool(tool);
        }
        let run = turn
            .ids(&format!("conv-{reverse}"), "turn-1")
            .system(vec![SystemSection::new("stable", "You are a test.")])
            .run()
            .await;
        assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
        let raw: Vec<String> = messages_requests(&mock)
            .into_iter()
            .map(|r| r.raw_body)
            .collect();
        assert_eq!(raw.len(), 2);
        bodies.push(raw);
    }
    assert_eq!(bodies[0], bodies[1]);
}

/// A standard extension registering fake tools, in the order given.
struct ToolsExt {
    id: &'static str,
    names: Vec<&'static str>,
}

#[async_trait::async_trait]
impl Extension for ToolsExt {
    fn manifest(&self) -> Result<Manifest, dispatch_kernel::Error> {
        Manifest::parse(&format!(
            "id = \"{}\"\nversion = \"0.1.0\"\nkernel = \"^0.4\"\ntier = \"standard\"\n",
            self.id
        ))
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), dispatch_kernel::BoxError> {
        for name in &self.names {
            let tool = FakeTool::reply(name, "ok")
                .description(&format!("The {name} tool."))
                .arc();
            host.register_tool(tool)?;
        }
        Ok(())
    }
}

/// The tools of a real host whose two tool extensions (and their tools) register in the
/// given order or its reverse, in the host's order.
async fn registered_tools(reverse: bool) -> Vec<Arc<dyn dispatch_kernel::abi::Tool>> {
    let mut a = vec!["zeta", "alpha"];
    let mut b = vec!["mid", "beta"];
    if reverse {
        a.reverse();
        b.reverse();
    }
    let mut extensions: Vec<Arc<dyn Extension>> = vec![
        Arc::new(ToolsExt {
            id: "tools-a",
            names: a,
        }),
        Arc::new(ToolsExt {
            id: "tools-b",
            names: b,
        }),
    ];
    if reverse {
        extensions.reverse();
    }
    let mut host = Host::new(extensions, HostConfig::default()).unwrap();
    host.activate().await.unwrap();
    host.catalog().tools()
}

#[tokio::test]
async fn a_changed_volatile_section_is_named_as_the_first_difference() {
    let mock = scripted(vec![Response::text("One."), Response::text("Two.")]).await;
    let catalog = catalog();
    let provider = provider(&mock, &catalog);
    let system = |date: &str| {
        vec![
            SystemSection::new("stable", "You are a careful assistant."),
            SystemSection::new("volatile", format!("Today is {date}.")),
        ]
    };
    let first = turn_input(provider.clone())
        .model(MODEL)
        .system(system("Monday"))
        .run()
        .await;
    let second = turn_input(provider)
        .model(MODEL)
        .ids("conv-1", "turn-2")
        .system(system("Tuesday"))
        .run()
        .await;
    assert_eq!(
        first.steps[0].prefix.as_ref().unwrap().first_difference,
        None
    );
    assert_eq!(
        second.steps[0].prefix.as_ref().unwrap().first_difference,
        Some(PrefixBlockRef::System {
            index: 1,
            name: "volatile".to_owned()
        })
    );
}

/// One turn of [`MODEL`] on `provider`, cancelled once its first text delta is out.
async fn cancelled_after_first_text(provider: Arc<AnthropicProvider>) -> TurnRun {
    let turn = turn_input(provider).model(MODEL);
    let (events, cancel) = (turn.events.clone(), turn.cancel.clone());
    turn.run_with(async move {
        events
            .wait_for(is_type("text-delta"), Duration::from_secs(5))
            .await
            .unwrap();
        cancel.cancel();
    })
    .await
}

#[tokio::test]
async fn cancelling_a_stalled_stream_aborts_the_turn_promptly() {
    let mock = scripted(vec![
        Response::stream(vec![
            Item::text("Thinking out loud"),
            Item::text(" forever"),
        ])
        .with_fault(Fault::Stall { after: 1, ms: None }),
    ])
    .await;
    let run = cancelled_after_first_text(provider(&mock, &catalog())).await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Aborted);
    assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
    assert_eq!(
        run.outcome.messages[0].text(),
        "Thinking out loud",
        "partial text kept"
    );
}

#[tokio::test]
async fn cancelling_drops_the_http_request() {
    let events = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Partial\"}}\n\n",
    );
    // One chunk of a chunked body, and nothing more: the stream never ends.
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{events}\r\n",
        events.len()
    );
    let (url, on_closed) = raw_server(answer).await;
    let run = cancelled_after_first_text(provider_at(&url, &catalog())).await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Aborted);
    let open_for = tokio::time::timeout(Duration::from_secs(2), on_closed)
        .await
        .expect("the connection was closed after the abort")
        .unwrap();
    assert!(open_for < Duration::from_secs(2), "{open_for:?}");
}
