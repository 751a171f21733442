//! `POST /runs` input: the body ([`parse_body`], strict: an unknown field is a 400 naming
//! it), its validation ([`validate`], the same rules as a chat turn) and the one mapping of a
//! [`RunRequest`] onto the session's [`SendRequest`] ([`send_request`]).

use axum::http::{HeaderMap, StatusCode, header};
use dispatch_kernel::abi::SendRequest;
use dispatch_transport_kit::ApiError;
use dispatch_wire::{ErrorResponse, Id, RunRequest};
use serde_json::Value;

/// Longest opaque id (conversation, computer, run) and idempotency key, in bytes.
pub const MAX_ID: usize = 128;

/// The `Idempotency-Key` header.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

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

fn bad_request(field: Option<&str>, error: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        body: ErrorResponse {
            error: error.into(),
            field: field.map(str::to_owned),
            code: Some("invalid".to_owned()),
        },
    }
}

/// 1 to 128 bytes of `[A-Za-z0-9_.:-]`.
pub fn is_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

pub fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    if is_id(id) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("must be 1 to {MAX_ID} characters of A-Z a-z 0-9 _ . : -"),
        ))
    }
}

fn check_text(field: &str, text: &str, max: usize) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if text.len() > max {
        return Err(ApiError::invalid(
            field,
            format!("must be at most {max} bytes"),
        ));
    }
    if text.contains('\0') {
        return Err(ApiError::invalid(field, "must not contain NUL"));
    }
    Ok(())
}

/// A workspace slug: `^[a-z0-9][a-z0-9-]{0,63}$`.
fn check_slug(field: &str, id: &str) -> Result<(), ApiError> {
    let bytes = id.as_bytes();
    let ok = (1..=64).contains(&bytes.len())
        && bytes[0] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "must be 1 to 64 characters of a-z 0-9 -, not starting with -",
        ))
    }
}

/// The same rules as `POST /chat`.
pub fn validate(run: &RunRequest) -> Result<(), ApiError> {
    if let Some(id) = &run.conversation_id {
        check_id("conversationId", id)?;
    }
    if run.message.trim().is_empty() {
        return Err(ApiError::invalid("message", "must not be empty"));
    }
    if run.message.contains('\0') {
        return Err(ApiError::invalid("message", "must not contain NUL"));
    }
    if let Some(model) = &run.model {
        check_text("model", model, 200)?;
    }
    if let Some(cwd) = &run.cwd {
        check_text("cwd", cwd, 4096)?;
    }
    if let Some(workspace) = &run.workspace_id {
        check_slug("workspaceId", workspace)?;
    }
    if let Some(computer) = &run.computer_id {
        check_id("computerId", computer)?;
    }
    Ok(())
}

/// The `Idempotency-Key` header, if given: 1 to 128 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|key| {
            (1..=MAX_ID).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(|key| Some(key.to_owned()))
        .ok_or_else(|| {
            ApiError::invalid(
                IDEMPOTENCY_KEY,
                format!("must be 1 to {MAX_ID} visible ASCII characters"),
            )
        })
}

/// The request body as a [`RunRequest`]: `Content-Type: application/json` (else 415), a
/// JSON object, only allowlisted fields (else a 400 naming the first unknown one).
pub fn parse_body(headers: &HeaderMap, bytes: &[u8]) -> Result<RunRequest, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if !(essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json")))
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "expected a JSON body with Content-Type: application/json",
        ));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|err| bad_request(None, format!("malformed JSON: {err}")))?;
    let Value::Object(map) = value else {
        return Err(bad_request(None, "expected a JSON object"));
    };
    let object = Value::Object(map);
    serde_json::from_value::<RunRequest>(object.clone())
        .map_err(|err| locate(&object, &err.to_string()))
}

/// The text between the backticks following `prefix` in `message`.
fn backticked<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    rest.split('`').next()
}

/// Names the field a serde error is about: unknown and missing fields by the message, a
/// wrong type by removing one key at a time until the rest deserializes.
fn locate(object: &Value, message: &str) -> ApiError {
    if let Some(field) = backticked(message, "unknown field `") {
        return bad_request(Some(field), format!("unknown field `{field}`"));
    }
    if let Some(field) = backticked(message, "missing field `") {
        return bad_request(Some(field), format!("missing field `{field}`"));
    }
    if let Value::Object(map) = object {
        for key in map.keys() {
            let mut rest = map.clone();
            rest.remove(key);
            let culprit = match serde_json::from_value::<RunRequest>(Value::Object(rest)) {
                Ok(_) => true,
                Err(err) => err.to_string() == format!("missing field `{key}`"),
            };
            if culprit {
                return ApiError::invalid(key, message);
            }
        }
    }
    bad_request(None, format!("invalid request body: {message}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::HeaderValue;
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
