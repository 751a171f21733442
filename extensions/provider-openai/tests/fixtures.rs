//! Every recorded capture under `shared/fixtures/providers/{openai,deepseek,openrouter,groq,
//! openai-responses}` assembles to exactly the `[expected]` of its `.meta.toml`, whatever the
//! chunking of the body (one byte at a time included).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use dispatch_kernel::abi::StopReason;
use dispatch_provider_openai::chat::{ChatAssembler, parse_completion};
use dispatch_provider_openai::responses::ResponsesAssembler;
use dispatch_test_support::fixtures::{Capture, captures};
use dispatch_wire::Usage;
use pretty_assertions::assert_eq;
use reqwest::header::HeaderMap;

use common::{Assembled, CHUNKINGS, assemble_body, canonical, ctx, fold};

fn expected(capture: &Capture) -> &toml::Table {
    capture.meta["expected"].as_table().unwrap()
}

fn str_of<'a>(table: &'a toml::Table, key: &str) -> &'a str {
    table.get(key).and_then(|v| v.as_str()).unwrap_or_default()
}

fn u64_of(table: &toml::Table, key: &str) -> u64 {
    table
        .get(key)
        .and_then(|v| v.as_integer())
        .map_or(0, |n| u64::try_from(n).unwrap())
}

fn calls_of(table: &toml::Table, key: &str, id_key: &str) -> Vec<(String, String, String)> {
    table
        .get(key)
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .filter_map(|call| call.as_table())
        .filter(|call| {
            call.get("type")
                .is_none_or(|t| t.as_str() == Some("function_call"))
        })
        .map(|call| {
            (
                str_of(call, id_key).to_owned(),
                str_of(call, "name").to_owned(),
                str_of(call, "arguments_canonical").to_owned(),
            )
        })
        .collect()
}

/// What a chat-completions capture's `[expected]` says it assembles to.
fn chat_expectation(capture: &Capture) -> Assembled {
    let e = expected(capture);
    let usage = e.get("usage").and_then(|u| u.as_table()).map(|u| Usage {
        input_tokens: u64_of(u, "prompt_tokens"),
        output_tokens: u64_of(u, "completion_tokens"),
        cache_read_tokens: u64_of(u, "cached_tokens"),
        cache_write_tokens: 0,
        reasoning_tokens: u64_of(u, "reasoning_tokens"),
    });
    let finish = match str_of(e, "finish_reason") {
        "stop" => Some(StopReason::EndTurn),
        "tool_calls" => Some(StopReason::ToolCalls),
        "length" => Some(StopReason::MaxTokens),
        other if other.starts_with("NONE") => None,
        other => Some(StopReason::Other(other.to_owned())),
    };
    Assembled {
        text: str_of(e, "content").to_owned(),
        reasoning: str_of(e, "reasoning").to_owned(),
        calls: calls_of(e, "tool_calls", "id"),
        usage,
        finish,
        error: None,
        prefixes: 0,
    }
}

#[track_caller]
fn check(name: &str, chunk: usize, actual: Assembled, expect: &Assembled) {
    let Assembled { error, .. } = &actual;
    assert!(error.is_none(), "{name} ({chunk}-byte chunks): {error:?}");
    assert_eq!(&actual, expect, "{name} ({chunk}-byte chunks)");
}

#[tokio::test]
async fn chat_completion_streams_match_their_expectations() {
    let mut seen = 0;
    for dir in ["openai", "deepseek", "openrouter"] {
        for capture in captures(env!("CARGO_MANIFEST_DIR"), dir, ".sse") {
            let expect = chat_expectation(&capture);
            for chunk in CHUNKINGS {
                let actual = assemble_body(&capture.body, chunk, ChatAssembler::new(ctx())).await;
                check(&capture.name, chunk, actual, &expect);
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 8, "every openai, deepseek and openrouter stream");
}

#[tokio::test]
async fn groq_mid_stream_error_event_is_an_error_not_a_silent_success() {
    let captures = captures(env!("CARGO_MANIFEST_DIR"), "groq", ".sse");
    assert_eq!(captures.len(), 1);
    let capture = &captures[0];
    let e = expected(capture);
    let error_json = e["stream_errors"][0]["json"].as_str().unwrap();
    let want = ctx().stream_error(error_json);
    for chunk in CHUNKINGS {
        let actual = assemble_body(&capture.body, chunk, ChatAssembler::new(ctx())).await;
        assert_eq!(actual.reasoning, str_of(e, "reasoning"), "{chunk}");
        assert_eq!(actual.text, "");
        assert_eq!(actual.finish, None, "no Finish after an error");
        assert_eq!(actual.usage, None);
        let error = actual.error.expect("the error event ends the stream");
        assert_eq!(error, want);
        assert!(!error.retryable);
        assert_eq!(error.code.as_deref(), Some("tool_use_failed"));
        assert_eq!(error.status, Some(400));
        assert!(
            error.message.starts_with(
                "fixture (m): stream error tool_use_failed: Tool call validation failed"
            ),
            "{}",
            error.message
        );
    }
}

#[tokio::test]
async fn responses_streams_match_their_expectations() {
    let captures = captures(env!("CARGO_MANIFEST_DIR"), "openai-responses", ".sse");
    assert_eq!(captures.len(), 2);
    for capture in &captures {
        let e = expected(capture);
        assert_eq!(str_of(e, "status"), "completed");
        let u = e["usage"].as_table().unwrap();
        let calls = calls_of(e, "output", "call_id");
        let expect = Assembled {
            text: str_of(e, "streamed_text").to_owned(),
            reasoning: String::new(),
            usage: Some(Usage {
                input_tokens: u64_of(u, "input_tokens"),
                output_tokens: u64_of(u, "output_tokens"),
                cache_read_tokens: u64_of(u, "cached_tokens"),
                cache_write_tokens: 0,
                reasoning_tokens: u64_of(u, "reasoning_tokens"),
            }),
            finish: Some(if calls.is_empty() {
                StopReason::EndTurn
            } else {
                StopReason::ToolCalls
            }),
            calls,
            error: None,
            prefixes: 0,
        };
        for chunk in CHUNKINGS {
            let actual = assemble_body(&capture.body, chunk, ResponsesAssembler::new(ctx())).await;
            check(&capture.name, chunk, actual, &expect);
        }
    }
}

#[test]
fn the_non_streaming_completion_parses_with_its_cached_tokens() {
    let captures = captures(env!("CARGO_MANIFEST_DIR"), "openai", ".json");
    let capture = captures
        .iter()
        .find(|c| c.name == "openai/prompt-cache-hit-nonstreaming.json")
        .unwrap();
    let body = std::str::from_utf8(&capture.body).unwrap();
    let actual = fold(
        parse_completion(body, &ctx())
            .unwrap()
            .into_iter()
            .map(Ok)
            .collect(),
    );
    let expect = chat_expectation(capture);
    assert_eq!(expect.usage.unwrap().cache_read_tokens, 1024);
    assert_eq!(actual, expect);
}

#[test]
fn error_bodies_are_classified() {
    let captures = captures(env!("CARGO_MANIFEST_DIR"), "openai", ".json");
    let errors: Vec<&Capture> = captures
        .iter()
        .filter(|c| c.name.starts_with("openai/error-"))
        .collect();
    assert_eq!(errors.len(), 3);
    for capture in errors {
        let e = expected(capture);
        let status = u16::try_from(u64_of(e, "http_status")).unwrap();
        let body = std::str::from_utf8(&capture.body).unwrap();
        let err = ctx().status(status, &HeaderMap::new(), body);
        let retryable = e["retryable"].as_bool().unwrap();
        assert_eq!(err.retryable, retryable, "{}", capture.name);
        assert_eq!(err.status, Some(status));
        assert_eq!(
            err.code.as_deref(),
            Some(str_of(e, "error_code")),
            "{}",
            capture.name
        );
        assert!(
            err.message.contains(str_of(e, "message")),
            "{}",
            err.message
        );
        assert!(err.message.starts_with("fixture (m): "), "{}", err.message);
        let hint = e
            .get("retry_after_hint_from_message_ms")
            .and_then(|v| v.as_integer())
            .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap()));
        assert_eq!(err.retry_after, hint, "{}", capture.name);
    }
}

#[test]
fn canonical_sorts_keys() {
    assert_eq!(
        canonical(r#"{"b": 1, "a": {"d": 2, "c": [3]}}"#),
        r#"{"a":{"c":[3],"d":2},"b":1}"#
    );
}
