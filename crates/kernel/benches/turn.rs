#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The kernel's share of a turn: `run_turn` driving a scripted in-process provider (no
//! network, no serialization), events into a counting sink. What is measured is the turn
//! loop's own overhead per turn: event construction, history assembly, tool dispatch.
//!
//! Run: `cargo bench -p dispatch-kernel --bench turn`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dispatch_kernel::abi::{EventSink, Message, ProviderRequest, StopReason};
use dispatch_kernel::{TurnEnv, TurnInput, TurnOptions, run_turn};
use dispatch_test_support::{FakeTool, Script, ScriptedProvider, TokioClock, TokioSleeper};
use dispatch_wire::{AgentEvent, Id};
use divan::Bencher;
use tokio_util::sync::CancellationToken;

fn main() {
    divan::main();
}

#[derive(Default)]
struct Counting(AtomicUsize);

impl EventSink for Counting {
    fn emit(&self, event: AgentEvent) {
        self.0.fetch_add(1, Ordering::Relaxed);
        drop(event);
    }
}

fn reply(deltas: usize) -> Script {
    let mut script = Script::new();
    for i in 0..deltas {
        script = script.text(if i % 2 == 0 { "token " } else { "word " });
    }
    script
        .usage(1200, deltas as u64)
        .finish(StopReason::EndTurn)
}

fn input(scripts: Vec<Script>, tools: Vec<Arc<dyn dispatch_kernel::abi::Tool>>) -> TurnInput {
    TurnInput {
        conversation_id: Id::from("conv-bench"),
        turn_id: Id::from("turn-bench"),
        provider: Arc::new(ScriptedProvider::new(scripts)),
        request: ProviderRequest::new(
            "bench-model",
            vec![Message::user(Id::from("turn-bench:0"), "hello")],
        ),
        tools,
        cwd: None,
        workspace_id: None,
        computer_id: None,
        options: TurnOptions::default(),
        env: TurnEnv {
            clock: Arc::new(TokioClock::new()),
            sleeper: Arc::new(TokioSleeper::new()),
            events: Arc::new(Counting::default()),
            steering: None,
            on_step_complete: None,
            retry: None,
            pricing: None,
        },
        cancel: CancellationToken::new(),
    }
}

/// One step, `deltas` text deltas.
#[divan::bench(args = [1, 200, 2000])]
fn text_reply(bencher: Bencher, deltas: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    bencher
        .with_inputs(|| input(vec![reply(deltas)], Vec::new()))
        .bench_local_values(|input| runtime.block_on(run_turn(input)));
}

/// Two steps: four parallel tool calls, then a 200-delta reply.
#[divan::bench]
fn tool_step_then_reply(bencher: Bencher) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    bencher
        .with_inputs(|| {
            let calls = Script::new()
                .tool_call("c1", "read", "{\"path\":\"a\"}")
                .tool_call("c2", "read", "{\"path\":\"b\"}")
                .tool_call("c3", "read", "{\"path\":\"c\"}")
                .tool_call("c4", "read", "{\"path\":\"d\"}")
                .usage(1000, 40)
                .finish(StopReason::ToolCalls);
            let tool = FakeTool::reply("read", "contents").safe(true);
            input(vec![calls, reply(200)], vec![Arc::new(tool)])
        })
        .bench_local_values(|input| runtime.block_on(run_turn(input)));
}
