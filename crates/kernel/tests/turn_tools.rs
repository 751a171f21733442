#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `run_turn` tool dispatch: unknown tools, invalid arguments, dedup, scheduling, failures.

use std::sync::Arc;
use std::time::Duration;

use dispatch_kernel::abi::{StopReason, ToolError};
use dispatch_test_support::{
    Behaviour, FakeTool, Script, ScriptedProvider, TurnRun, max_overlap, overlaps, turn_input,
};
use dispatch_wire::{AgentEvent, Chunk, FinishReason, Id, OutputStream, Role};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn provider(scripts: impl IntoIterator<Item = Script>) -> Arc<ScriptedProvider> {
    Arc::new(ScriptedProvider::new(scripts))
}

/// `(tool_call_id, output, is_error)` of every `tool-result` event, in emission order.
fn results(run: &TurnRun) -> Vec<(String, String, bool)> {
    run.events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolResult {
                tool_call_id,
                output,
                is_error,
                ..
            } => Some((tool_call_id.to_string(), output.clone(), *is_error)),
            _ => None,
        })
        .collect()
}

/// `(tool_call_id, output, is_error)` of the persisted tool message of the first step.
fn persisted_results(run: &TurnRun) -> Vec<(String, String, bool)> {
    let tool_message = run
        .outcome
        .messages
        .iter()
        .find(|m| m.role == Role::Tool)
        .unwrap();
    tool_message
        .chunks
        .iter()
        .filter_map(|c| match c {
            Chunk::ToolResult {
                tool_call_id,
                output,
                is_error,
                ..
            } => Some((tool_call_id.to_string(), output.clone(), *is_error)),
            _ => None,
        })
        .collect()
}

fn result(id: &str, output: &str, is_error: bool) -> (String, String, bool) {
    (id.to_owned(), output.to_owned(), is_error)
}

#[tokio::test(start_paused = true)]
async fn an_unknown_tool_gets_an_error_result_and_the_turn_goes_on() {
    let p = provider([
        Script::calls(&[("c1", "nope", "{}")]),
        Script::reply("sorry"),
    ]);
    let run = turn_input(p).run().await;
    assert_eq!(results(&run), [result("c1", "Unknown tool: nope", true)]);
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
}

#[tokio::test(start_paused = true)]
async fn invalid_arguments_are_kept_raw_and_the_tool_is_not_run() {
    let tool = FakeTool::new("t", Behaviour::Echo).arc();
    let p = provider([
        Script::calls(&[
            ("c1", "t", "{not json"),
            ("c2", "t", "[1, 2]"),
            ("c3", "t", ""),
            ("c4", "t", " "),
        ]),
        Script::reply("ok"),
    ]);
    let run = turn_input(p).tool(tool.clone()).run().await;

    let inputs: Vec<Value> = run
        .events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolCall { input, .. } => Some(input.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        inputs,
        [json!("{not json"), json!("[1, 2]"), json!({}), json!({})]
    );
    let persisted: Vec<&Value> = run.outcome.messages[0]
        .tool_calls()
        .map(|(_, _, input)| input)
        .collect();
    assert_eq!(
        persisted,
        [
            &json!("{not json"),
            &json!("[1, 2]"),
            &json!({}),
            &json!({})
        ]
    );

    let got = persisted_results(&run);
    assert!(got[0].1.starts_with("Invalid tool arguments: "), "{got:?}");
    assert!(got[0].2);
    assert_eq!(
        got[1],
        result(
            "c2",
            "Invalid tool arguments: expected a JSON object, got an array",
            true
        )
    );
    // Empty arguments mean `{}`; the two `{}` calls are identical, so the tool runs once.
    assert_eq!(
        got[2..],
        [result("c3", "{}", false), result("c4", "{}", false)]
    );
    assert_eq!(tool.call_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn identical_calls_in_a_step_run_once() {
    let tool = FakeTool::new("t", Behaviour::Echo).safe(true).arc();
    let p = provider([
        Script::calls(&[
            ("c1", "t", r#"{"a":1,"b":[2]}"#),
            ("c2", "t", r#"{"a":2}"#),
            ("c3", "t", r#"{ "b": [2], "a": 1 }"#),
        ]),
        Script::reply("ok"),
    ]);
    let run = turn_input(p).tool(tool.clone()).run().await;

    assert_eq!(tool.call_count(), 2);
    let echoed = json!({"a": 1, "b": [2]}).to_string();
    assert_eq!(
        persisted_results(&run),
        [
            result("c1", &echoed, false),
            result("c2", r#"{"a":2}"#, false),
            result("c3", &echoed, false)
        ]
    );
    assert_eq!(
        results(&run).len(),
        3,
        "every call id gets its own tool-result"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrency_safe_tools_overlap() {
    let tools: Vec<Arc<FakeTool>> = ["a", "b", "c"]
        .map(|n| FakeTool::sleeping(n, secs(10), n).safe(true).arc())
        .into();
    let p = provider([
        Script::calls(&[("c1", "a", "{}"), ("c2", "b", "{}"), ("c3", "c", "{}")]),
        Script::reply("ok"),
    ]);
    let mut t = turn_input(p);
    for tool in &tools {
        t = t.tool(tool.clone());
    }
    let run = t.run().await;

    let intervals: Vec<_> = tools.iter().flat_map(|t| t.intervals()).collect();
    assert_eq!(max_overlap(&intervals), 3);
    assert_eq!(run.elapsed, secs(10));
    // Results are in call order in history whatever the completion order.
    let ids: Vec<String> = persisted_results(&run).into_iter().map(|r| r.0).collect();
    assert_eq!(ids, ["c1", "c2", "c3"]);
}

#[tokio::test(start_paused = true)]
async fn unsafe_tools_never_overlap_anything() {
    let safe = |n: &str| FakeTool::sleeping(n, secs(10), n).safe(true).arc();
    let unsafe_ = |n: &str| FakeTool::sleeping(n, secs(10), n).safe(false).arc();
    let (a, b, c, d, e) = (safe("a"), safe("b"), unsafe_("c"), safe("d"), unsafe_("e"));
    let calls = [
        ("c1", "a", "{}"),
        ("c2", "b", "{}"),
        ("c3", "c", "{}"),
        ("c4", "d", "{}"),
        ("c5", "e", "{}"),
    ];
    let p = provider([Script::calls(&calls), Script::reply("ok")]);
    let run = turn_input(p)
        .tool(a.clone())
        .tool(b.clone())
        .tool(c.clone())
        .tool(d.clone())
        .tool(e.clone())
        .run()
        .await;

    let span = |t: &Arc<FakeTool>| t.intervals()[0];
    let all = [span(&a), span(&b), span(&c), span(&d), span(&e)];
    assert!(
        overlaps(all[0], all[1]),
        "consecutive safe calls run together"
    );
    for unsafe_index in [2, 4] {
        for (i, other) in all.iter().enumerate() {
            if i != unsafe_index {
                assert!(
                    !overlaps(all[unsafe_index], *other),
                    "call {unsafe_index} overlaps call {i}"
                );
            }
        }
    }
    // Call order is kept between groups: a,b | c | d | e.
    assert!(all[2].0 >= all[0].1 && all[3].0 >= all[2].1 && all[4].0 >= all[3].1);
    assert_eq!(run.elapsed, secs(40));
}

#[tokio::test(start_paused = true)]
async fn tool_concurrency_bounds_parallel_calls() {
    let tools: Vec<Arc<FakeTool>> = ["a", "b", "c", "d", "e"]
        .map(|n| FakeTool::sleeping(n, secs(10), n).safe(true).arc())
        .into();
    let calls: Vec<(String, &str)> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|n| (format!("id-{n}"), *n))
        .collect();
    let calls: Vec<(&str, &str, &str)> = calls
        .iter()
        .map(|(id, n)| (id.as_str(), *n, "{}"))
        .collect();
    let p = provider([Script::calls(&calls), Script::reply("ok")]);
    let mut t = turn_input(p).tool_concurrency(2);
    for tool in &tools {
        t = t.tool(tool.clone());
    }
    let run = t.run().await;

    let intervals: Vec<_> = tools.iter().flat_map(|t| t.intervals()).collect();
    assert_eq!(intervals.len(), 5);
    assert_eq!(max_overlap(&intervals), 2);
    assert_eq!(run.elapsed, secs(30));
}

#[tokio::test(start_paused = true)]
async fn tool_failures_become_error_results() {
    let model = FakeTool::new(
        "model",
        Behaviour::Fail(ToolError::Model("no such file".into())),
    )
    .arc();
    let fatal = FakeTool::new(
        "fatal",
        Behaviour::Fail(ToolError::Fatal("backend down".into())),
    )
    .arc();
    let aborted = FakeTool::new("aborted", Behaviour::Fail(ToolError::Aborted)).arc();
    let panics = FakeTool::new("panics", Behaviour::Panic("boom".into()))
        .safe(true)
        .arc();
    let fine = FakeTool::sleeping("fine", secs(1), "fine").safe(true).arc();
    let p = provider([
        Script::calls(&[
            ("c1", "model", "{}"),
            ("c2", "fatal", "{}"),
            ("c3", "aborted", "{}"),
            ("c4", "panics", "{}"),
            ("c5", "fine", "{}"),
        ]),
        Script::reply("ok"),
    ]);
    let run = turn_input(p)
        .tool(model)
        .tool(fatal)
        .tool(aborted)
        .tool(panics)
        .tool(fine)
        .run()
        .await;

    assert_eq!(
        persisted_results(&run),
        [
            result("c1", "no such file", true),
            result("c2", "backend down", true),
            result("c3", "Aborted", true),
            result("c4", "Tool panicked: boom", true),
            result("c5", "fine", false),
        ]
    );
    assert_eq!(
        run.outcome.finish_reason,
        FinishReason::Stop,
        "tool failures do not end the turn"
    );
}

#[tokio::test(start_paused = true)]
async fn tool_output_is_streamed_between_call_and_result() {
    let chunks = vec![
        (OutputStream::Stdout, "line 1\n".to_owned()),
        (OutputStream::Stderr, "warn\n".to_owned()),
    ];
    let tool = FakeTool::new("sh", Behaviour::Output(chunks, "exit 0".into())).arc();
    let p = provider([Script::calls(&[("c1", "sh", "{}")]), Script::reply("ok")]);
    let run = turn_input(p).tool(tool).run().await;

    let outputs: Vec<(Id, OutputStream, String)> = run
        .events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolOutput {
                tool_call_id,
                stream,
                chunk,
                step_id,
                ..
            } => {
                assert_eq!(&**step_id, "turn-1#0");
                Some((tool_call_id.clone(), *stream, chunk.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        outputs,
        [
            (Id::from("c1"), OutputStream::Stdout, "line 1\n".to_owned()),
            (Id::from("c1"), OutputStream::Stderr, "warn\n".to_owned())
        ]
    );
    assert_eq!(
        &run.types()[..6],
        [
            "turn-start",
            "tool-call",
            "tool-output",
            "tool-output",
            "tool-result",
            "step-complete"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn tool_results_carry_their_duration() {
    let tool = FakeTool::sleeping("slow", Duration::from_millis(1500), "done").arc();
    let p = provider([
        Script::new()
            .tool_call("c1", "slow", "{}")
            .finish(StopReason::ToolCalls),
        Script::reply("ok"),
    ]);
    let run = turn_input(p).tool(tool).run().await;
    let AgentEvent::ToolResult {
        duration_ms,
        tool_name,
        ..
    } = run.of_type("tool-result")[0]
    else {
        panic!()
    };
    assert_eq!((*duration_ms, tool_name.as_str()), (1500, "slow"));
}

#[tokio::test(start_paused = true)]
async fn empty_or_duplicate_call_ids_get_fresh_ones() {
    let tool = FakeTool::new("t", Behaviour::Echo).arc();
    let p = provider([
        Script::calls(&[
            ("", "t", r#"{"a":0}"#),
            ("x", "t", r#"{"a":1}"#),
            ("x", "t", r#"{"a":2}"#),
        ]),
        Script::reply("ok"),
    ]);
    let run = turn_input(p).tool(tool.clone()).run().await;

    let ids: Vec<String> = persisted_results(&run).into_iter().map(|r| r.0).collect();
    assert_eq!(ids, ["turn-1#0:call0", "x", "turn-1#0:call2"]);
    let call_ids: Vec<String> = run.outcome.messages[0]
        .tool_calls()
        .map(|(id, _, _)| id.to_string())
        .collect();
    assert_eq!(call_ids, ids);
    assert_eq!(tool.call_count(), 3);
}

#[tokio::test(start_paused = true)]
async fn live_tool_output_stops_after_its_limit_and_results_are_capped() {
    let chunks: Vec<(OutputStream, String)> = (0..10)
        .map(|i| (OutputStream::Stdout, format!("{i}{}\n", "x".repeat(99))))
        .collect();
    let result = "r".repeat(5000);
    let tool = FakeTool::new("sh", Behaviour::Output(chunks, result)).arc();
    let p = provider([Script::calls(&[("c1", "sh", "{}")]), Script::reply("ok")]);
    let run = turn_input(p)
        .tool(tool)
        .output_limits(1000, 350)
        .run()
        .await;

    let streamed: Vec<String> = run
        .events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolOutput { chunk, .. } => Some(chunk.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        streamed.len(),
        4,
        "three chunks, then one notice: {streamed:?}"
    );
    assert!(streamed[3].contains("live output stopped after 350 bytes"));
    let output = run
        .events
        .iter()
        .find_map(|e| match e {
            AgentEvent::ToolResult { output, .. } => Some(output.clone()),
            _ => None,
        })
        .unwrap();
    assert!(output.len() <= 1000, "{}", output.len());
    assert!(
        output.contains("cut: the result exceeded 1000 bytes"),
        "{output}"
    );
}
