#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property test of `run_turn`: random provider scripts, tool behaviours and cancel points.
//! Whatever happens, the turn finishes (in bounded virtual time), its events satisfy
//! `check_turn_invariants`, and persisted history never holds a tool call without its result.

use std::sync::Arc;
use std::time::Duration;

use dispatch_kernel::BackoffSchedule;
use dispatch_kernel::abi::{Message, ProviderError, StopReason, ToolError};
use dispatch_test_support::{
    Behaviour, FakeTool, Opening, Script, ScriptedProvider, check_history, turn_input,
};
use dispatch_wire::{FinishReason, Role};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Item {
    Text,
    Reasoning,
    /// A call of tool `0..=3` (3 is not registered) with some arguments.
    Call(usize, Args),
    Usage(u64, u64),
    Delay(u64),
    Error {
        retryable: bool,
    },
    End,
    Hang,
}

#[derive(Debug, Clone)]
enum Args {
    Empty,
    Object(u8),
    Invalid,
}

#[derive(Debug, Clone)]
enum Open {
    Stream,
    Fail { retryable: bool },
    Hang,
}

#[derive(Debug, Clone)]
struct Response {
    open: Open,
    items: Vec<Item>,
    finish: Option<StopReason>,
}

#[derive(Debug, Clone)]
enum ToolKind {
    Reply,
    Fail,
    Hang,
    Sleep(u64),
    Panic,
}

#[derive(Debug, Clone)]
struct Case {
    responses: Vec<Response>,
    tools: Vec<(ToolKind, bool)>,
    cancel_after_ms: Option<u64>,
    max_steps: u32,
    retry: bool,
    concurrency: usize,
}

fn item() -> impl Strategy<Value = Item> {
    let args = prop_oneof![
        Just(Args::Empty),
        (0u8..3).prop_map(Args::Object),
        Just(Args::Invalid)
    ];
    prop_oneof![
        6 => Just(Item::Text),
        2 => Just(Item::Reasoning),
        8 => (0usize..4, args).prop_map(|(tool, args)| Item::Call(tool, args)),
        2 => (0u64..1000, 0u64..100).prop_map(|(i, o)| Item::Usage(i, o)),
        2 => (0u64..3000).prop_map(Item::Delay),
        1 => prop_oneof![
            any::<bool>().prop_map(|retryable| Item::Error { retryable }),
            Just(Item::End),
            Just(Item::Hang),
        ],
    ]
}

fn response() -> impl Strategy<Value = Response> {
    let open = prop_oneof![
        12 => Just(Open::Stream),
        1 => prop_oneof![
            any::<bool>().prop_map(|retryable| Open::Fail { retryable }),
            Just(Open::Hang),
        ],
    ];
    let finish = prop_oneof![
        8 => Just(Some(StopReason::ToolCalls)),
        2 => Just(Some(StopReason::EndTurn)),
        1 => Just(Some(StopReason::MaxTokens)),
        1 => Just(None),
    ];
    (open, prop::collection::vec(item(), 0..6), finish).prop_map(|(open, items, finish)| Response {
        open,
        items,
        finish,
    })
}

fn tool_kind() -> impl Strategy<Value = ToolKind> {
    prop_oneof![
        3 => Just(ToolKind::Reply),
        1 => Just(ToolKind::Fail),
        1 => Just(ToolKind::Hang),
        2 => (0u64..5000).prop_map(ToolKind::Sleep),
        1 => Just(ToolKind::Panic),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(response(), 1..7),
        prop::collection::vec((tool_kind(), any::<bool>()), 3),
        prop::option::of(0u64..20_000),
        0u32..4,
        any::<bool>(),
        1usize..4,
    )
        .prop_map(
            |(responses, tools, cancel_after_ms, max_steps, retry, concurrency)| Case {
                responses,
                tools,
                cancel_after_ms,
                max_steps,
                retry,
                concurrency,
            },
        )
}

fn script(index: usize, response: &Response) -> Script {
    let error = |retryable: bool| {
        if retryable {
            ProviderError::retryable("overloaded")
        } else {
            ProviderError::fatal("bad request")
        }
    };
    let mut script = match response.open {
        Open::Stream => Script::new(),
        Open::Fail { retryable } => Script::new().opening(Opening::Fail(error(retryable))),
        Open::Hang => Script::new().opening(Opening::Hang),
    };
    for (k, item) in response.items.iter().enumerate() {
        script = match item {
            Item::Text => script.text("text "),
            Item::Reasoning => script.reasoning("thinking "),
            Item::Call(tool, args) => {
                let arguments = match args {
                    Args::Empty => String::new(),
                    Args::Object(n) => format!(r#"{{"n":{n}}}"#),
                    Args::Invalid => "{oops".to_owned(),
                };
                script.tool_call(&format!("r{index}c{k}"), &format!("t{tool}"), &arguments)
            }
            Item::Usage(i, o) => script.usage(*i, *o),
            Item::Delay(ms) => script.delay(Duration::from_millis(*ms)),
            Item::Error { retryable } => script.error(error(*retryable)),
            Item::End => script.end(),
            Item::Hang => script.hang(),
        };
    }
    match &response.finish {
        Some(reason) => script.finish(reason.clone()),
        None => script,
    }
}

fn fake_tool(index: usize, kind: &ToolKind, safe: bool, can_hang: bool) -> Arc<FakeTool> {
    let behaviour = match kind {
        ToolKind::Reply => Behaviour::Reply("ok".to_owned()),
        ToolKind::Fail => Behaviour::Fail(ToolError::Model("failed".to_owned())),
        // Without a cancel, a hanging tool would hang the turn by design: sleep instead.
        ToolKind::Hang if can_hang => Behaviour::Hang,
        ToolKind::Hang => Behaviour::Sleep(Duration::from_secs(5), "slept".to_owned()),
        ToolKind::Sleep(ms) => Behaviour::Sleep(Duration::from_millis(*ms), "slept".to_owned()),
        ToolKind::Panic => Behaviour::Panic("tool panic".to_owned()),
    };
    FakeTool::new(&format!("t{index}"), behaviour)
        .safe(safe)
        .arc()
}

fn run_case(case: &Case) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let scripts = case.responses.iter().enumerate().map(|(i, r)| script(i, r));
        let provider = Arc::new(ScriptedProvider::new(scripts));
        let mut t = turn_input(provider)
            .idle_timeout(Duration::from_secs(30))
            .max_steps(case.max_steps)
            .tool_concurrency(case.concurrency);
        for (i, (kind, safe)) in case.tools.iter().enumerate() {
            t = t.tool(fake_tool(i, kind, *safe, case.cancel_after_ms.is_some()));
        }
        if case.retry {
            t = t.retry(Arc::new(BackoffSchedule {
                delays: vec![Duration::from_secs(1)],
                budget: Duration::from_secs(10),
            }));
        }
        let cancel = t.cancel.clone();
        let cancel_after = case.cancel_after_ms;
        let driver = async move {
            if let Some(ms) = cancel_after {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                cancel.cancel();
            }
        };
        let bound = Duration::from_secs(24 * 3600);
        let run = tokio::time::timeout(bound, t.run_with(driver))
            .await
            .expect("the turn finishes");

        let outcome = &run.outcome;
        check_history(&outcome.messages);
        let persisted: Vec<Message> = run.steps.iter().flat_map(|s| s.messages.clone()).collect();
        assert_eq!(
            persisted, outcome.messages,
            "the outcome holds what was persisted"
        );
        for step in &run.steps {
            check_history(&step.messages);
            if step.finish_reason == FinishReason::Aborted {
                assert!(
                    step.messages
                        .iter()
                        .all(|m| m.role != Role::Tool && m.tool_calls().count() == 0)
                );
            }
        }
        assert_eq!(outcome.steps as usize, run.count_type("step-complete"));
        if outcome.finish_reason == FinishReason::Aborted {
            assert!(case.cancel_after_ms.is_some(), "aborted without a cancel");
        }
        if case.max_steps > 0 {
            assert!(outcome.steps <= case.max_steps);
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_turn_finishes_with_its_invariants(case in case()) {
        run_case(&case);
    }
}
