//! The cache acceptance test: a ten-turn conversation with tool calls against the mock's
//! Anthropic prefix-cache emulation. Every request stays within four breakpoints, extends
//! the previous request's cached prefix byte for byte, has a prompt-prefix record with no
//! difference, and turns 2..10 read at least 80% of their prompt from the cache.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use dispatch_kernel::abi::{Message, SystemSection};
use dispatch_mock_llm::{Item, Response};
use dispatch_test_support::{Behaviour, FakeTool, turn_input};
use dispatch_wire::{FinishReason, Id, PromptPrefix};
use pretty_assertions::assert_eq;

use common::*;

const TURNS: usize = 10;

/// Long, fixed tool definitions and system sections: well over Anthropic's 1024-token
/// minimum (the mock counts a token per 4 bytes).
fn tools() -> Vec<Arc<FakeTool>> {
    ["lookup", "search", "summarize", "translate"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let description = format!(
                "The {name} tool. {}",
                "It takes a query and answers with what it found, precisely and briefly. "
                    .repeat(8 + i)
            );
            FakeTool::new(name, Behaviour::Echo)
                .description(&description)
                .arc()
        })
        .collect()
}

fn system() -> Vec<SystemSection> {
    vec![
        SystemSection::new(
            "stable",
            "You are Dispatch, a careful agent. Follow the user's instructions exactly. "
                .repeat(40),
        ),
        SystemSection::new(
            "project",
            "The project is a Rust workspace with a pure kernel. ".repeat(20),
        ),
    ]
}

/// Where the cacheable blocks start in a body (the tools array's first tool).
fn first_block(canonical: &str) -> usize {
    let key = r#""tools":["#;
    canonical.find(key).unwrap() + key.len()
}

/// The end (exclusive) of the block carrying the body's last marker, in the coordinates of
/// the body with every marker removed.
fn last_breakpoint_end(raw: &str) -> usize {
    let at = raw.rfind(MARKER).unwrap();
    let before = raw[..at].matches(MARKER).count();
    // The marker sits right before its block's closing brace.
    assert_eq!(&raw[at + MARKER.len()..at + MARKER.len() + 1], "}");
    at - before * MARKER.len() + 1
}

#[tokio::test]
async fn ten_turns_with_tools_read_the_cache() {
    let mock = mock_with_cache(1024).await;
    let catalog = catalog();
    let provider = provider(&mock, &catalog);
    let tools = tools();
    let mut history: Vec<Message> = Vec::new();
    let mut ratios = Vec::new();
    let mut records: Vec<Arc<PromptPrefix>> = Vec::new();
    for turn in 1..=TURNS {
        script(
            &mock,
            vec![
                Response::stream(vec![Item::tool_call(
                    &format!("toolu_{turn:02}"),
                    "lookup",
                    &format!(r#"{{"query":"item {turn}"}}"#),
                    3,
                )]),
                Response::text(&format!("Item {turn} is in stock.")),
            ],
        );
        let turn_id = format!("turn-{turn}");
        history.push(Message::user(
            Id::from(format!("{turn_id}:0")),
            format!("Is item {turn} in stock?"),
        ));
        let mut input = turn_input(provider.clone())
            .model(MODEL)
            .ids("conv-cache", &turn_id)
            .system(system());
        for tool in &tools {
            input = input.tool(tool.clone());
        }
        let run = input.history(history.clone()).run().await;
        assert_eq!(run.outcome.finish_reason, FinishReason::Stop, "turn {turn}");
        assert_eq!(run.outcome.steps, 2);
        history.extend(run.outcome.messages);
        let usage = run.outcome.usage;
        ratios.push((
            turn,
            usage,
            usage.cache_read_tokens as f64 / usage.input_tokens as f64,
        ));
        records.extend(run.steps.iter().map(|s| s.prefix.clone().unwrap()));
    }

    let requests = messages_requests(&mock);
    assert_eq!(requests.len(), 2 * TURNS);
    assert_no_violations(&mock);
    for (i, request) in requests.iter().enumerate() {
        let markers = request.raw_body.matches(MARKER).count();
        assert!(markers <= 4, "request {i}: {markers} markers");
        assert_eq!(cache_control_blocks(body(request)), markers);
        // Tools, system and the last two user messages (the first request has one).
        assert_eq!(markers, if i == 0 { 3 } else { 4 }, "request {i}");
    }
    // Each request holds the previous request's canonical prefix, byte for byte, at the
    // same offset: from its first block up to the end of its last breakpoint block.
    for pair in requests.windows(2) {
        let (previous, next) = (&pair[0], &pair[1]);
        let (a, b) = (
            previous.raw_body.replace(MARKER, ""),
            next.raw_body.replace(MARKER, ""),
        );
        let (start, end) = (first_block(&a), last_breakpoint_end(&previous.raw_body));
        assert_eq!(first_block(&b), start);
        // From byte 0: the fields before the blocks (model, max_tokens, ...) are equal too.
        assert!(
            b.len() >= end && b[..end] == a[..end],
            "request {} does not extend request {}'s cached prefix",
            next.seq,
            previous.seq
        );
    }
    // The prompt-prefix records agree: nothing before the newest messages ever changed.
    assert_eq!(records.len(), 2 * TURNS);
    for (i, record) in records.iter().enumerate().skip(1) {
        assert_eq!(record.first_difference, None, "request {i}");
        assert_eq!(
            record.blocks.iter().filter(|b| b.breakpoint).count(),
            4,
            "request {i}"
        );
    }

    println!("turn | input | cache read | cache write | read ratio");
    for (turn, usage, ratio) in &ratios {
        println!(
            "{turn:>4} | {:>5} | {:>10} | {:>11} | {:>5.1}%",
            usage.input_tokens,
            usage.cache_read_tokens,
            usage.cache_write_tokens,
            ratio * 100.0
        );
    }
    assert!(
        ratios[0].1.input_tokens > 2 * 1500,
        "the prompt is big enough to cache"
    );
    for (turn, _, ratio) in ratios.iter().skip(1) {
        assert!(
            *ratio >= 0.8,
            "turn {turn} read only {:.1}% from the cache",
            ratio * 100.0
        );
    }
}
