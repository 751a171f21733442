//! Provider faults through real turns against the mock: what is retried (before content
//! only), what is not, what the error says, and that the key never shows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use dispatch_mock_llm::{Fault, HttpError, Item, MockLlm, Response};
use dispatch_test_support::TurnRun;
use dispatch_wire::{AgentEvent, FinishReason};
use pretty_assertions::assert_eq;

use common::{
    Delta, KEY, completions, http_error, mock, provider, retrying, streamed, the_error, usages,
};

/// A turn of `model` that fails after one request without retrying: the run and its one
/// error `(message, code, retryable)`.
async fn fails_at_once(mock: &MockLlm, model: &str) -> (TurnRun, (String, Option<String>, bool)) {
    let run = retrying(provider(mock), model).await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Error);
    assert_eq!(run.retries(), [], "{model}");
    assert_eq!(completions(mock).len(), 1);
    let error = the_error(&run);
    (run, error)
}

#[track_caller]
fn assert_no_key(run: &TurnRun) {
    let events = serde_json::to_string(&run.events).unwrap();
    assert!(!events.contains(KEY), "the key leaked into an event");
    assert!(
        !format!("{:?}", run.outcome).contains(KEY),
        "the key leaked into the outcome"
    );
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_and_usage_counts_once() {
    let mock = mock().await;
    mock.push(http_error(HttpError {
        status: 429,
        retry_after: Some(1),
        ..HttpError::default()
    }));
    mock.push(Response::text("Recovered."));
    let run = retrying(provider(&mock), "gpt-4o-mini").await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    assert!(run.elapsed >= Duration::from_secs(1), "{:?}", run.elapsed);
    assert_eq!(
        run.retries(),
        [(1, 1000, Some("rate_limit_exceeded".to_owned()))],
        "the server's retry-after wins"
    );
    let AgentEvent::ProviderRetry { message, .. } = run.of_type("provider-retry")[0] else {
        unreachable!()
    };
    assert!(
        message.starts_with("openai (gpt-4o-mini): HTTP 429"),
        "{message}"
    );
    assert_eq!(completions(&mock).len(), 2);
    let usages = usages(&run);
    assert_eq!(usages.len(), 1);
    assert_eq!(run.outcome.usage, usages[0].0);
}

#[tokio::test]
async fn a_disconnect_after_content_is_not_retried() {
    let mock = mock().await;
    mock.push(
        Response::stream(vec![Item::text("Half an ans"), Item::text("wer")])
            .with_fault(Fault::Disconnect { after: 1 }),
    );
    mock.push(Response::text("never asked for"));
    let (_, (message, code, retryable)) = fails_at_once(&mock, "gpt-4o").await;
    assert!(message.starts_with("openai (gpt-4o): "), "{message}");
    assert!(retryable, "retryable in itself, but content was shown");
    assert!(matches!(code.as_deref(), Some("disconnect")), "{code:?}");
}

#[tokio::test]
async fn a_disconnect_before_content_is_retried() {
    let mock = mock().await;
    mock.push(Response::text("lost").with_fault(Fault::Disconnect { after: 0 }));
    mock.push(Response::text("Second try."));
    let run = retrying(provider(&mock), "gpt-4o").await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    assert_eq!(run.count_type("provider-retry"), 1);
    assert_eq!(completions(&mock).len(), 2);
    assert_eq!(streamed(&run, Delta::Text), "Second try.");
}

#[tokio::test]
async fn a_malformed_event_is_a_clear_fatal_error() {
    let mock = mock().await;
    mock.push(Response::text("fine so far").with_fault(Fault::Malformed { after: 0 }));
    mock.push(Response::text("never asked for"));
    let (_, (message, code, retryable)) = fails_at_once(&mock, "gpt-4o").await;
    assert!(
        message.starts_with("openai (gpt-4o): malformed stream event: "),
        "{message}"
    );
    assert_eq!(code.as_deref(), Some("malformed_event"));
    assert!(!retryable);
}

#[tokio::test]
async fn auth_and_not_found_errors_are_final_and_never_show_the_key() {
    for (status, code) in [(401, "invalid_api_key"), (404, "model_not_found")] {
        let mock = mock().await;
        mock.push(http_error(HttpError {
            status,
            message: Some(format!(
                "Incorrect API key provided: {KEY}. Model `gpt-x` unknown."
            )),
            ..HttpError::default()
        }));
        mock.push(Response::text("never asked for"));
        let (run, (message, got_code, retryable)) = fails_at_once(&mock, "gpt-x").await;
        assert_eq!(
            message,
            format!(
                "openai (gpt-x): HTTP {status} {code}: Incorrect API key provided: [REDACTED]. Model `gpt-x` unknown."
            )
        );
        assert_eq!(got_code.as_deref(), Some(code));
        assert!(!retryable);
        assert_no_key(&run);
    }
}

#[tokio::test]
async fn a_mid_stream_error_event_ends_the_turn_with_an_error() {
    let mock = mock().await;
    mock.push(Response::text("Starting").with_fault(Fault::ErrorEvent {
        after: 1,
        error_type: "server_error".into(),
        message: format!("The server had an error ({KEY})"),
    }));
    let (run, (message, code, _)) = fails_at_once(&mock, "gpt-4o").await;
    assert_eq!(
        message,
        "openai (gpt-4o): stream error server_error: The server had an error ([REDACTED])"
    );
    assert_eq!(code.as_deref(), Some("server_error"));
    assert_no_key(&run);
}

#[tokio::test]
async fn an_error_event_before_content_is_retried_when_transient() {
    let mock = mock().await;
    mock.push(Response::text("x").with_fault(Fault::ErrorEvent {
        after: 0,
        error_type: "overloaded_error".into(),
        message: "Overloaded".into(),
    }));
    mock.push(Response::text("Fine now."));
    let run = retrying(provider(&mock), "gpt-4o").await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Stop);
    assert_eq!(run.count_type("provider-retry"), 1);
}

#[tokio::test]
async fn a_refused_connection_is_a_retryable_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    let mut config = dispatch_provider_openai::InstanceConfig::new("openai", &base);
    config.local = false;
    let provider = common::provider_with(config, common::catalog());
    let run = common::turn(provider, "gpt-4o").await;
    assert_eq!(run.outcome.finish_reason, FinishReason::Error);
    let (message, code, retryable) = the_error(&run);
    assert!(
        message.starts_with("openai (gpt-4o): could not connect"),
        "{message}"
    );
    assert_eq!(code.as_deref(), Some("connect"));
    assert!(retryable);
}
