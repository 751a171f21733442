//! `POST /runs` input: the body ([`parse_body`], strict: an unknown field is a 400 naming
//! it), its validation ([`validate`], the same rules as a chat turn) and the one mapping of a
//! [`RunRequest`] onto the session's [`SendRequest`] ([`send_request`]).

use axum::http::HeaderMap;
use dispatch_kernel::abi::SendRequest;
use dispatch_transport_kit::ApiError;
pub use dispatch_transport_kit::input::{IDEMPOTENCY_KEY, check_id, idempotency_key};
use dispatch_transport_kit::input::{check_send, parse_json, require_json};
use dispatch_wire::{Id, RunRequest};

/// The session options of a run: every [`RunRequest`] field lands in the [`SendRequest`]
/// (destructured exhaustively, so a new field cannot be forgotten), and `request_id` is the
/// session's re-attach key for the run's turn.
pub fn send_request(run: RunRequest, request_id: Option<String>) -> SendRequest {
    let RunRequest {
        conversation_id,
        message,
        model,
        reasoning_effort,
        cwd,
        workspace_id,
        computer_id,
    } = run;
    SendRequest {
        conversation_id: conversation_id.map(Id::from),
        text: message,
        model,
        reasoning_effort,
        cwd,
        workspace_id,
        computer_id: computer_id.map(Id::from),
        request_id,
    }
}

/// The same rules as `POST /chat`: the run's options are checked as the turn they become.
pub fn validate(run: &RunRequest) -> Result<(), ApiError> {
    check_send(&send_request(run.clone(), None))
}

/// The request body as a [`RunRequest`]: `Content-Type: application/json` (else 415), a
/// JSON object, only allowlisted fields (else a 400 naming the first unknown one).
pub fn parse_body(headers: &HeaderMap, bytes: &[u8]) -> Result<RunRequest, ApiError> {
    require_json(headers)?;
    parse_json(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::{HeaderValue, header};
    use dispatch_wire::ReasoningEffort;
    use pretty_assertions::assert_eq;

    use super::*;

    fn json_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers
    }

    #[track_caller]
    fn check_err(body: &str, status: u16, field: Option<&str>) {
        let err = parse_body(&json_headers(), body.as_bytes()).unwrap_err();
        assert_eq!(
            (err.status.as_u16(), err.body.field.as_deref()),
            (status, field),
            "{}",
            err.body.error
        );
    }

    #[test]
    fn every_run_field_reaches_the_send_request() {
        let run: RunRequest = parse_body(
            &json_headers(),
            br#"{"conversationId":"conv-1","message":"hello","model":"scripted/m",
                "reasoningEffort":"high","cwd":"/tmp/w","workspaceId":"ws-1",
                "computerId":"box-1"}"#,
        )
        .unwrap();
        let send = send_request(run, Some("run-key".to_owned()));
        assert_eq!(
            send,
            SendRequest {
                conversation_id: Some(Id::from("conv-1")),
                text: "hello".to_owned(),
                model: Some("scripted/m".to_owned()),
                reasoning_effort: Some(ReasoningEffort::High),
                cwd: Some("/tmp/w".to_owned()),
                workspace_id: Some("ws-1".to_owned()),
                computer_id: Some(Id::from("box-1")),
                request_id: Some("run-key".to_owned()),
            }
        );
    }

    #[test]
    fn bad_bodies_name_the_field() {
        check_err(r#"{"message":"hi","install":true}"#, 400, Some("install"));
        check_err(r#"{"model":"m"}"#, 400, Some("message"));
        check_err(r#"{"message":7}"#, 400, Some("message"));
        check_err(
            r#"{"message":"hi","reasoningEffort":"huge"}"#,
            400,
            Some("reasoningEffort"),
        );
        check_err("[1]", 400, None);
        check_err("{", 400, None);
        let err = parse_body(&HeaderMap::new(), br#"{"message":"hi"}"#).unwrap_err();
        assert_eq!(err.status.as_u16(), 415);
    }

    #[test]
    fn validation_follows_the_chat_rules() {
        let ok = RunRequest {
            conversation_id: None,
            message: "hi".to_owned(),
            model: None,
            reasoning_effort: None,
            cwd: None,
            workspace_id: None,
            computer_id: None,
        };
        assert!(validate(&ok).is_ok());
        let cases = [
            (
                RunRequest {
                    message: "  ".to_owned(),
                    ..ok.clone()
                },
                "message",
            ),
            (
                RunRequest {
                    conversation_id: Some("a b".to_owned()),
                    ..ok.clone()
                },
                "conversationId",
            ),
            (
                RunRequest {
                    workspace_id: Some("Bad".to_owned()),
                    ..ok.clone()
                },
                "workspaceId",
            ),
            (
                RunRequest {
                    computer_id: Some(String::new()),
                    ..ok.clone()
                },
                "computerId",
            ),
            (
                RunRequest {
                    model: Some(" ".to_owned()),
                    ..ok.clone()
                },
                "model",
            ),
            (
                RunRequest {
                    cwd: Some("\0".to_owned()),
                    ..ok.clone()
                },
                "cwd",
            ),
        ];
        for (run, field) in cases {
            assert_eq!(
                validate(&run).unwrap_err().body.field.as_deref(),
                Some(field)
            );
        }
    }

    #[test]
    fn the_idempotency_key_must_be_visible_ascii() {
        let mut headers = HeaderMap::new();
        assert_eq!(idempotency_key(&headers).unwrap(), None);
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("k-1"));
        assert_eq!(idempotency_key(&headers).unwrap().as_deref(), Some("k-1"));
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("a b"));
        assert_eq!(
            idempotency_key(&headers).unwrap_err().body.field.as_deref(),
            Some(IDEMPOTENCY_KEY)
        );
    }
}
