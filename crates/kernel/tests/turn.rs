#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `run_turn`: events, steps, history, usage, metrics, persistence, steering, max steps.

use std::sync::Arc;
use std::time::Duration;

use dispatch_kernel::abi::{Message, StepRecord, StepTiming, StopReason};
use dispatch_kernel::{TurnOutcome, run_turn};
use dispatch_test_support::{
    FakeTool, FlatPricing, Opening, RecordingStepSink, Script, ScriptedProvider, TokioClock,
    check_turn_invariants, is_type, turn_input,
};
use dispatch_wire::{AgentEvent, Chunk, Cost, FinishReason, Id, Role, Usage};
use pretty_assertions::assert_eq;
use serde_json::json;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn id(s: &str) -> Id {
    Id::from(s)
}

fn text(s: &str) -> Chunk {
    Chunk::Text { text: s.to_owned() }
}

fn usage(input_tokens: u64, output_tokens: u64) -> Usage {
    Usage {
        input_tokens,
        output_tokens,
        ..Usage::default()
    }
}

fn provider(scripts: impl IntoIterator<Item = Script>) -> Arc<ScriptedProvider> {
    Arc::new(ScriptedProvider::new(scripts))
}

#[tokio::test(start_paused = true)]
async fn plain_reply_streams_merges_text_and_ends_with_stop() {
    let p = provider([Script::new()
        .text("Hel")
        .text("")
        .text("lo")
        .usage(10, 2)
        .finish(StopReason::EndTurn)]);
    let run = turn_input(p.clone()).run().await;

    assert_eq!(
        run.types(),
        [
            "turn-start",
            "text-delta",
            "text-delta",
            "usage",
            "step-complete",
            "done"
        ]
    );
    assert_eq!(
        run.events[0],
        AgentEvent::TurnStart {
            conversation_id: id("conv-1"),
            turn_id: id("turn-1"),
            model: "test-model".to_owned(),
            started_at: TokioClock::EPOCH_MS,
        }
    );
    let assistant = Message::new(id("turn-1:1"), Role::Assistant, vec![text("Hello")]);
    assert_eq!(
        run.outcome,
        TurnOutcome {
            finish_reason: FinishReason::Stop,
            usage: usage(10, 2),
            cost: None,
            steps: 1,
            duration: Duration::ZERO,
            context_size: Some(12),
            error: None,
            messages: vec![assistant.clone()],
        }
    );
    assert_eq!(
        run.events.last().unwrap(),
        &AgentEvent::Done {
            conversation_id: id("conv-1"),
            turn_id: id("turn-1"),
            finish_reason: FinishReason::Stop,
            usage: usage(10, 2),
            cost: None,
            duration_ms: 0,
            context_size: Some(12),
            steps: 1,
        }
    );
    assert_eq!(
        run.steps,
        vec![StepRecord {
            conversation_id: id("conv-1"),
            turn_id: id("turn-1"),
            step_id: id("turn-1#0"),
            step_index: 0,
            messages: vec![assistant],
            finish_reason: FinishReason::Stop,
            usage: Some(usage(10, 2)),
            cost: None,
            timing: StepTiming {
                ttft: Some(Duration::ZERO),
                decode: Some(Duration::ZERO),
                total: Duration::ZERO
            },
            prefix: None,
        }]
    );
    // The request carries the caller's history and the model.
    let requests = p.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].model, "test-model");
    assert_eq!(
        requests[0].messages,
        vec![Message::user(id("turn-1:0"), "hello")]
    );
}

#[tokio::test(start_paused = true)]
async fn metrics_come_from_the_injected_clock() {
    let script = Script::new()
        .opening(Opening::Delay(ms(20)))
        .delay(ms(100))
        .reasoning("think")
        .delay(ms(30))
        .text("answer")
        .delay(ms(50))
        .finish(StopReason::EndTurn);
    let run = turn_input(provider([script])).run().await;

    let timing = StepTiming {
        ttft: Some(ms(120)),
        decode: Some(ms(80)),
        total: ms(200),
    };
    assert_eq!(run.steps[0].timing, timing);
    assert_eq!(
        run.of_type("step-complete")[0],
        &AgentEvent::StepComplete {
            conversation_id: id("conv-1"),
            turn_id: id("turn-1"),
            step_id: id("turn-1#0"),
            step_index: 0,
            finish_reason: FinishReason::Stop,
            ttft_ms: Some(120),
            decode_ms: Some(80),
            gen_total_ms: 200,
        }
    );
    assert_eq!(run.outcome.duration, ms(200));
    let AgentEvent::Done { duration_ms, .. } = run.events.last().unwrap() else {
        panic!()
    };
    assert_eq!(*duration_ms, 200);
}

#[tokio::test(start_paused = true)]
async fn a_step_without_tokens_has_no_ttft() {
    let script = Script::new()
        .delay(ms(40))
        .usage(3, 0)
        .finish(StopReason::EndTurn);
    let run = turn_input(provider([script])).run().await;
    assert_eq!(
        run.steps[0].timing,
        StepTiming {
            ttft: None,
            decode: None,
            total: ms(40)
        }
    );
    assert_eq!(
        run.outcome.messages,
        vec![],
        "an empty assistant message is left out"
    );
}

#[tokio::test(start_paused = true)]
async fn step_ids_are_turn_id_and_index() {
    let tool = FakeTool::reply("echo", "ok").arc();
    let p = provider([
        Script::calls(&[("c1", "echo", "{}")]),
        Script::calls(&[("c2", "echo", "{}")]),
        Script::reply("done"),
    ]);
    let run = turn_input(p).tool(tool.clone()).run().await;

    let step_ids: Vec<Id> = run.steps.iter().map(|s| s.step_id.clone()).collect();
    assert_eq!(step_ids, [id("turn-1#0"), id("turn-1#1"), id("turn-1#2")]);
    let complete: Vec<(Id, u32)> = run
        .events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::StepComplete {
                step_id,
                step_index,
                ..
            } => Some((step_id.clone(), *step_index)),
            _ => None,
        })
        .collect();
    assert_eq!(
        complete,
        [
            (id("turn-1#0"), 0),
            (id("turn-1#1"), 1),
            (id("turn-1#2"), 2)
        ]
    );
    let tool_steps: Vec<Id> = tool.calls().iter().map(|c| c.step_id.clone()).collect();
    assert_eq!(tool_steps, [id("turn-1#0"), id("turn-1#1")]);
    assert_eq!(run.outcome.steps, 3);
}

#[tokio::test(start_paused = true)]
async fn reasoning_signature_and_redacted_blocks_become_chunks() {
    let script = Script::new()
        .reasoning("a")
        .reasoning("b")
        .signature("sig-1")
        .redacted("opaque")
        .reasoning("c")
        .text("t")
        .finish(StopReason::EndTurn);
    let lone_signature = Script::new()
        .signature("sig-2")
        .text("u")
        .finish(StopReason::EndTurn);
    let run = turn_input(provider([script])).run().await;

    let reasoning =
        |text: &str, signature: Option<&str>, redacted: Option<&str>| Chunk::Reasoning {
            text: text.to_owned(),
            signature: signature.map(str::to_owned),
            redacted: redacted.map(str::to_owned),
        };
    assert_eq!(
        run.outcome.messages[0].chunks,
        vec![
            reasoning("ab", Some("sig-1"), None),
            reasoning("", None, Some("opaque")),
            reasoning("c", None, None),
            text("t"),
        ]
    );
    assert_eq!(
        run.types(),
        [
            "turn-start",
            "reasoning-delta",
            "reasoning-delta",
            "reasoning-delta",
            "text-delta",
            "step-complete",
            "done"
        ]
    );

    let run = turn_input(provider([lone_signature])).run().await;
    assert_eq!(
        run.outcome.messages[0].chunks,
        vec![reasoning("", Some("sig-2"), None), text("u")]
    );
}

#[tokio::test(start_paused = true)]
async fn usage_is_replaced_within_a_step_and_summed_across_steps() {
    let tool = FakeTool::reply("echo", "ok").arc();
    let p = provider([
        Script::new()
            .usage(10, 1)
            .tool_call("c1", "echo", "{}")
            .usage(20, 2)
            .finish(StopReason::ToolCalls),
        Script::new()
            .text("done")
            .usage(30, 3)
            .finish(StopReason::EndTurn),
    ]);
    let pricing = FlatPricing {
        input: 0.5,
        cache_read: 0.0,
        output: 2.0,
    };
    let run = turn_input(p)
        .tool(tool)
        .pricing(Arc::new(pricing))
        .run()
        .await;

    let step_usages: Vec<Option<Usage>> = run.steps.iter().map(|s| s.usage).collect();
    assert_eq!(step_usages, [Some(usage(20, 2)), Some(usage(30, 3))]);
    let usage_events: Vec<(Usage, Option<f64>)> = run
        .events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Usage { usage, cost, .. } => Some((*usage, cost.map(|c| c.total))),
            _ => None,
        })
        .collect();
    assert_eq!(
        usage_events,
        [(usage(20, 2), Some(14.0)), (usage(30, 3), Some(21.0))]
    );
    assert_eq!(run.outcome.usage, usage(50, 5));
    assert_eq!(
        run.outcome.context_size,
        Some(33),
        "the last step's input + output"
    );
    assert_eq!(
        run.outcome.cost,
        Some(Cost {
            input: 25.0,
            output: 10.0,
            cache_read: 0.0,
            cache_write: 0.0,
            total: 35.0
        })
    );
    let AgentEvent::Done {
        usage: done_usage,
        context_size,
        cost,
        ..
    } = run.events.last().unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (*done_usage, *context_size, cost.map(|c| c.total)),
        (usage(50, 5), Some(33), Some(35.0))
    );
}

#[tokio::test(start_paused = true)]
async fn context_size_is_the_last_step_that_reported_usage() {
    let tool = FakeTool::reply("echo", "ok").arc();
    let p = provider([
        Script::new()
            .tool_call("c1", "echo", "{}")
            .usage(100, 7)
            .finish(StopReason::ToolCalls),
        Script::reply("no usage reported"),
    ]);
    let run = turn_input(p).tool(tool).run().await;
    assert_eq!(run.outcome.context_size, Some(107));

    let run = turn_input(provider([Script::reply("hi")])).run().await;
    assert_eq!(
        (run.outcome.context_size, run.outcome.usage),
        (None, Usage::default())
    );
    assert_eq!(run.count_type("usage"), 0);
}

#[tokio::test(start_paused = true)]
async fn tool_step_appends_history_and_the_next_request_grows_by_appending() {
    let tool = FakeTool::reply("read", "file body").arc();
    let p = provider([
        Script::new()
            .text("Reading.")
            .tool_call("c1", "read", r#"{"path":"a.txt"}"#)
            .finish(StopReason::ToolCalls),
        Script::reply("It says: file body"),
    ]);
    let run = turn_input(p.clone())
        .tool(tool.clone())
        .cwd("/work")
        .run()
        .await;

    let assistant = Message::new(
        id("turn-1:1"),
        Role::Assistant,
        vec![
            text("Reading."),
            Chunk::ToolCall {
                tool_call_id: id("c1"),
                tool_name: "read".to_owned(),
                input: json!({"path": "a.txt"}),
            },
        ],
    );
    let results = Message::new(
        id("turn-1:2"),
        Role::Tool,
        vec![Chunk::ToolResult {
            tool_call_id: id("c1"),
            tool_name: "read".to_owned(),
            output: "file body".to_owned(),
            is_error: false,
        }],
    );
    let answer = Message::new(
        id("turn-1:3"),
        Role::Assistant,
        vec![text("It says: file body")],
    );
    assert_eq!(
        run.outcome.messages,
        vec![assistant.clone(), results.clone(), answer]
    );
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);

    let requests = p.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].messages[..1], requests[0].messages[..]);
    assert_eq!(requests[1].messages[1..], [assistant, results]);
    assert_eq!(
        requests[0].tools, requests[1].tools,
        "tools are byte-stable across steps"
    );

    let call = &tool.calls()[0];
    assert_eq!(
        (call.input.clone(), call.tool_call_id.clone()),
        (json!({"path": "a.txt"}), id("c1"))
    );
    assert_eq!(call.cwd.as_deref(), Some(std::path::Path::new("/work")));
    assert_eq!(
        run.types(),
        [
            "turn-start",
            "text-delta",
            "tool-call",
            "tool-result",
            "step-complete",
            "text-delta",
            "step-complete",
            "done"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn request_tools_are_deduplicated_by_name_and_sorted() {
    let first_b = FakeTool::reply("b", "first")
        .description("the first b")
        .arc();
    let second_b = FakeTool::reply("b", "second")
        .description("the second b")
        .arc();
    let a = FakeTool::reply("a", "a").arc();
    let p = provider([Script::calls(&[("c1", "b", "{}")]), Script::reply("ok")]);
    let run = turn_input(p.clone())
        .tool(first_b.clone())
        .tool(second_b.clone())
        .tool(a)
        .run()
        .await;

    let tools = p.requests()[0].tools.clone();
    let names: Vec<(&str, &str)> = tools
        .iter()
        .map(|t| (t.name.as_str(), t.description.as_str()))
        .collect();
    assert_eq!(names, [("a", "Fake tool a"), ("b", "the first b")]);
    assert_eq!((first_b.call_count(), second_b.call_count()), (1, 0));
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
}

#[tokio::test(start_paused = true)]
async fn on_step_complete_gets_every_step_in_order() {
    let tool = FakeTool::reply("echo", "ok").arc();
    let p = provider([
        Script::calls(&[("c1", "echo", "{}")]),
        Script::new()
            .text("more")
            .tool_call("c2", "echo", r#"{"x":1}"#)
            .finish(StopReason::ToolCalls),
        Script::reply("done"),
    ]);
    let run = turn_input(p).tool(tool).run().await;

    let indexes: Vec<(u32, FinishReason, usize)> = run
        .steps
        .iter()
        .map(|s| (s.step_index, s.finish_reason, s.messages.len()))
        .collect();
    assert_eq!(
        indexes,
        [
            (0, FinishReason::ToolCalls, 2),
            (1, FinishReason::ToolCalls, 2),
            (2, FinishReason::Stop, 1)
        ]
    );
    let persisted: Vec<Message> = run.steps.iter().flat_map(|s| s.messages.clone()).collect();
    assert_eq!(
        persisted, run.outcome.messages,
        "the outcome holds exactly what was persisted"
    );
    let ids: Vec<Id> = persisted.iter().map(|m| m.id.clone()).collect();
    assert_eq!(
        ids,
        ["turn-1:1", "turn-1:2", "turn-1:3", "turn-1:4", "turn-1:5"].map(id)
    );
    dispatch_test_support::check_history(&run.outcome.messages);
}

#[tokio::test(start_paused = true)]
async fn a_failing_on_step_complete_ends_the_turn_with_error() {
    let tool = FakeTool::reply("echo", "ok").arc();
    let p = provider([
        Script::calls(&[("c1", "echo", "{}")]),
        Script::reply("never asked"),
    ]);
    let sink = Arc::new(RecordingStepSink::failing_at(0, "disk full"));
    let run = turn_input(p.clone()).tool(tool).step_sink(sink).run().await;

    assert_eq!(run.outcome.finish_reason, FinishReason::Error);
    assert_eq!(
        run.outcome.error.as_deref(),
        Some("Could not persist the step: disk full")
    );
    assert_eq!(
        p.request_count(),
        1,
        "no step is built on history the store did not take"
    );
    assert_eq!(run.steps.len(), 1);
    assert_eq!(
        run.of_type("error"),
        [&AgentEvent::Error {
            conversation_id: id("conv-1"),
            turn_id: id("turn-1"),
            step_id: Some(id("turn-1#0")),
            message: "Could not persist the step: disk full".to_owned(),
            code: Some("persist".to_owned()),
            retryable: false,
        }]
    );
    assert_eq!(
        &run.types()[run.events.len() - 3..],
        ["error", "step-complete", "done"]
    );
}

#[tokio::test(start_paused = true)]
async fn steering_lands_at_the_tool_result_boundary() {
    let tool = FakeTool::sleeping("build", Duration::from_secs(10), "built").arc();
    let p = provider([
        Script::calls(&[("c1", "build", "{}")]),
        Script::reply("noted"),
    ]);
    let t = turn_input(p.clone()).tool(tool);
    let (events, steering) = (t.events.clone(), t.steering.clone());
    let run = t
        .run_with(async move {
            events
                .wait_for(is_type("tool-call"), Duration::from_secs(60))
                .await
                .unwrap();
            steering.push("also run the tests");
        })
        .await;

    let types = run.types();
    let result_at = types.iter().position(|t| *t == "tool-result").unwrap();
    let steering_at = types.iter().position(|t| *t == "steering").unwrap();
    assert!(steering_at > result_at, "{types:?}");
    assert_eq!(run.count_type("steering"), 1);
    let AgentEvent::Steering {
        step_id, messages, ..
    } = run.of_type("steering")[0]
    else {
        panic!()
    };
    assert_eq!(
        (step_id.clone(), messages.len(), messages[0].text.as_str()),
        (id("turn-1#0"), 1, "also run the tests")
    );

    let steered = Message::user(id("q-1"), "also run the tests");
    assert_eq!(
        p.requests()[1].messages.last(),
        Some(&steered),
        "the next request includes it"
    );
    assert_eq!(
        run.steps[0].messages.last(),
        Some(&steered),
        "persisted with the step"
    );
    assert_eq!(run.outcome.messages[2], steered);
    assert_eq!(run.outcome.messages[3].id, id("turn-1:4"));
}

#[tokio::test(start_paused = true)]
async fn steering_is_not_drained_when_the_model_stops() {
    let t = turn_input(provider([Script::reply("hi")]));
    t.steering.push("queued during the turn");
    let steering = t.steering.clone();
    let run = t.run().await;
    assert_eq!(run.count_type("steering"), 0);
    assert_eq!(steering.drains(), 0);
    assert_eq!(
        steering.pending().len(),
        1,
        "left for the orchestrator to carry over"
    );
}

#[tokio::test(start_paused = true)]
async fn max_steps_zero_is_unlimited() {
    let tool = FakeTool::reply("echo", "ok").arc();
    let mut scripts: Vec<Script> = (0..60)
        .map(|i| Script::calls(&[(&format!("c{i}"), "echo", "{}")]))
        .collect();
    scripts.push(Script::reply("finally"));
    let run = turn_input(provider(scripts))
        .tool(tool.clone())
        .max_steps(0)
        .run()
        .await;
    assert_eq!(
        (run.outcome.finish_reason, run.outcome.steps),
        (FinishReason::Stop, 61)
    );
    assert_eq!(tool.call_count(), 60);
    assert_eq!(run.count_type("step-complete"), 61);
}

#[tokio::test(start_paused = true)]
async fn max_steps_ends_the_turn_after_that_many_tool_steps() {
    let tool = FakeTool::reply("echo", "ok").arc();
    let p = provider([
        Script::calls(&[("c1", "echo", "{}")]),
        Script::calls(&[("c2", "echo", "{}")]),
        Script::calls(&[("c3", "echo", "{}")]),
    ]);
    let t = turn_input(p.clone()).tool(tool.clone()).max_steps(2);
    t.steering.push("carried to the next turn");
    let steering = t.steering.clone();
    let run = t.run().await;

    assert_eq!(
        (run.outcome.finish_reason, run.outcome.steps),
        (FinishReason::MaxSteps, 2)
    );
    assert_eq!((p.request_count(), tool.call_count()), (2, 2));
    // Step 0 drained the queue at its boundary; the last step does not drain.
    assert_eq!(steering.drains(), 1);
    dispatch_test_support::check_history(&run.outcome.messages);
    assert_eq!(
        run.outcome.messages.len(),
        5,
        "both steps' calls and results, plus the steering"
    );
}

#[tokio::test(start_paused = true)]
async fn max_tokens_ends_the_turn_with_length() {
    let script = Script::new().text("cut").finish(StopReason::MaxTokens);
    let run = turn_input(provider([script])).run().await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Length);
}

#[tokio::test(start_paused = true)]
async fn run_turn_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let t = turn_input(provider([Script::reply("hi")]));
    let turn = run_turn(t.input);
    assert_send(&turn);
    assert_eq!(turn.await.finish_reason, FinishReason::Stop);
    check_turn_invariants(&t.events.events());
}
