//! 401 and 400 answers whose error bodies echo the API key: not retried, named after the
//! instance and model, and the key is in no event, error, step record or log line.
//!
//! Alone in its test binary: it captures logs with a thread-local subscriber, which misses
//! events when other tests register and drop subscribers concurrently (tracing rebuilds
//! callsite interest process-wide).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use dispatch_mock_llm::{HttpError, Response};
use dispatch_wire::FinishReason;
use pretty_assertions::assert_eq;

use common::*;

/// One failed turn; returns the `error` events as `(message, code, retryable)`.
async fn fatal_status(status: u16, error_type: &str) -> Vec<(String, Option<String>, bool)> {
    let mock = scripted(vec![
        http_error(HttpError {
            status,
            error_type: Some(error_type.to_owned()),
            message: Some(format!("request refused for key {KEY}")),
            retry_after: Some(1),
            ..HttpError::default()
        }),
        Response::text("unused"),
    ])
    .await;
    let run = retrying_turn(provider(&mock, &catalog())).await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Error);
    assert_eq!(messages_requests(&mock).len(), 1, "not retried");
    assert_eq!(
        messages_requests(&mock)[0].headers["x-api-key"],
        dispatch_mock_llm::REDACTED
    );
    assert!(!run.outcome.error.as_deref().unwrap().contains(KEY));
    assert!(!format!("{:?}", run.events).contains(KEY));
    assert!(!format!("{:?}", run.steps).contains(KEY));
    run.errors()
}

#[tokio::test]
async fn a_401_and_a_400_are_fatal_named_and_never_show_the_key() {
    let (logs, _guard) = Logs::install();
    for (status, error_type) in [
        (401, "authentication_error"),
        (400, "invalid_request_error"),
    ] {
        assert_eq!(
            fatal_status(status, error_type).await,
            [(
                format!(
                    "anthropic (claude-sonnet-4-5): HTTP {status} {error_type}: request refused for key [REDACTED]"
                ),
                Some(error_type.to_owned()),
                false
            )]
        );
    }
    let lines = logs.lines();
    let failures = lines
        .iter()
        .filter(|l| l.contains("Provider request failed"))
        .count();
    assert_eq!(failures, 2, "the capture saw both turns: {lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Sending a messages request"))
    );
    for line in &lines {
        assert!(
            !line.contains(KEY),
            "the key leaked into a log line: {line}"
        );
    }
}
