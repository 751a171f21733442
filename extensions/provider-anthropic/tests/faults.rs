//! Faults through whole turns: what is retried (429 with retry-after, an overloaded error
//! event before content) and what is not (a disconnect after content, a malformed event, a
//! `200` that is not a stream). 401 and 400 are in `redaction.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use dispatch_mock_llm::{Fault, HttpError, Item, Response, Usage as MockUsage};
use dispatch_wire::{AgentEvent, FinishReason, Usage};
use pretty_assertions::assert_eq;

use common::*;

#[tokio::test]
async fn a_429_with_retry_after_is_retried_once_after_the_delay() {
    let mock = scripted(vec![
        http_error(HttpError {
            status: 429,
            retry_after: Some(1),
            error_type: Some("rate_limit_error".to_owned()),
            ..HttpError::default()
        }),
        Response::text("Made it.").with_usage(MockUsage {
            input_tokens: Some(40),
            output_tokens: Some(7),
            cache_read_tokens: Some(0),
            cache_write_tokens: Some(0),
            reasoning_tokens: None,
        }),
    ])
    .await;
    let run = retrying_turn(provider(&mock, &catalog())).await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    assert_eq!(messages_requests(&mock).len(), 2);
    assert_eq!(
        run.retries(),
        [(1, 1000, Some("rate_limit_error".to_owned()))]
    );
    assert!(run.elapsed >= Duration::from_secs(1), "{:?}", run.elapsed);
    assert_eq!(
        run.outcome.usage,
        Usage {
            input_tokens: 40,
            output_tokens: 7,
            ..Usage::default()
        },
        "only the successful attempt counts"
    );
    assert_eq!(run.count_type("usage"), 1);
    assert_eq!(run.outcome.messages[0].text(), "Made it.");
}

#[tokio::test]
async fn an_overloaded_error_event_before_content_is_retried() {
    let mock = scripted(vec![
        Response::stream(vec![Item::text("never shown")]).with_fault(Fault::ErrorEvent {
            after: 0,
            error_type: "overloaded_error".to_owned(),
            message: "Overloaded".to_owned(),
        }),
        Response::text("Second try."),
    ])
    .await;
    let run = retrying_turn(provider(&mock, &catalog())).await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    assert_eq!(messages_requests(&mock).len(), 2);
    assert_eq!(run.count_type("provider-retry"), 1);
    assert!(matches!(
        run.of_type("provider-retry")[0],
        AgentEvent::ProviderRetry { code: Some(code), message, .. }
            if code == "overloaded_error" && message.contains("anthropic (claude-sonnet-4-5)")
    ));
    assert_eq!(run.outcome.messages[0].text(), "Second try.");
}

#[tokio::test]
async fn a_disconnect_after_content_is_not_retried() {
    let mock = scripted(vec![
        Response::stream(vec![Item::text("Partial"), Item::text(" answer")])
            .with_fault(Fault::Disconnect { after: 1 }),
        Response::text("unused"),
    ])
    .await;
    let run = retrying_turn(provider(&mock, &catalog())).await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Error);
    assert_eq!(messages_requests(&mock).len(), 1);
    assert_eq!(
        mock.queued().len(),
        1,
        "the second response was never asked for"
    );
    assert_eq!(run.count_type("provider-retry"), 0);
    let errors = run.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].1.as_deref(), Some("disconnect"));
    assert!(
        errors[0].2,
        "retryable in itself, but content was already shown"
    );
    assert!(
        errors[0].0.starts_with("anthropic (claude-sonnet-4-5): "),
        "{}",
        errors[0].0
    );
    assert_eq!(run.outcome.messages[0].text(), "Partial");
}

#[tokio::test]
async fn a_malformed_event_is_a_clear_fatal_error() {
    let mock = scripted(vec![
        Response::stream(vec![Item::text("x")]).with_fault(Fault::Malformed { after: 0 }),
        Response::text("unused"),
    ])
    .await;
    let run = retrying_turn(provider(&mock, &catalog())).await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Error);
    assert_eq!(messages_requests(&mock).len(), 1);
    let errors = run.errors();
    assert_eq!(errors.len(), 1);
    let (message, code, retryable) = &errors[0];
    assert!(!retryable);
    assert_eq!(code.as_deref(), Some("malformed_event"));
    assert!(
        message.starts_with(
            "anthropic (claude-sonnet-4-5): malformed stream event: `content_block_delta` event: "
        ),
        "{message}"
    );
}

#[tokio::test]
async fn a_200_that_is_not_an_event_stream_is_a_clear_fatal_error() {
    let json = r#"{"type":"message","content":[{"type":"text","text":"hi"}]}"#;
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
        json.len()
    );
    let (url, _closed) = raw_server(answer).await;
    let run = retrying_turn(provider_at(&url, &catalog())).await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Error);
    assert_eq!(run.count_type("provider-retry"), 0);
    assert_eq!(
        run.errors(),
        [(
            "anthropic (claude-sonnet-4-5): malformed stream event: expected an event stream, got a `application/json` answer".to_owned(),
            Some("malformed_event".to_owned()),
            false
        )]
    );
}
