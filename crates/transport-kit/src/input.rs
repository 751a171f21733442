//! Validation every HTTP-facing transport applies the same way: ids, slugs and text fields,
//! the `Idempotency-Key` header, JSON bodies parsed with the offending field named, and the
//! options of a turn ([`check_send`]) whichever route starts it (`POST /chat`, `POST /runs`).
//!
//! serde's errors do not carry a path, so a body that fails to deserialize is located by its
//! message (`unknown field`, `missing field`) or, for a wrong type, by removing one key at a
//! time until the rest deserializes.

use axum::http::{HeaderMap, StatusCode, header};
use dispatch_kernel::abi::SendRequest;
use dispatch_wire::ErrorResponse;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::ApiError;

/// Longest opaque id (conversation, computer, run) and idempotency key, in bytes.
pub const MAX_ID: usize = 128;

/// The idempotency header's name.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// A 400 with an exact message and, when known, the field.
pub fn bad_request(field: Option<&str>, error: impl Into<String>) -> ApiError {
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

/// A workspace slug: `^[a-z0-9][a-z0-9-]{0,63}$`.
pub fn is_slug(id: &str) -> bool {
    let bytes = id.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes[0] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// 1 to 128 visible ASCII characters (an idempotency key or `requestId`).
pub fn is_request_id(key: &str) -> bool {
    (1..=MAX_ID).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
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

pub fn check_slug(field: &str, id: &str) -> Result<(), ApiError> {
    if is_slug(id) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "must be 1 to 64 characters of a-z 0-9 -, not starting with -",
        ))
    }
}

/// Non-blank text of at most `max` bytes without NUL.
pub fn check_text(field: &str, text: &str, max: usize) -> Result<(), ApiError> {
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

/// The options of a turn, checked before the session sees them, naming the wire field
/// (`message` for the text). The session enforces the text's size itself.
pub fn check_send(request: &SendRequest) -> Result<(), ApiError> {
    if let Some(id) = &request.conversation_id {
        check_id("conversationId", id)?;
    }
    if request.text.trim().is_empty() {
        return Err(ApiError::invalid("message", "must not be empty"));
    }
    if request.text.contains('\0') {
        return Err(ApiError::invalid("message", "must not contain NUL"));
    }
    if let Some(model) = &request.model {
        check_text("model", model, 200)?;
    }
    if let Some(cwd) = &request.cwd {
        check_text("cwd", cwd, 4096)?;
    }
    if let Some(workspace) = &request.workspace_id {
        check_slug("workspaceId", workspace)?;
    }
    if let Some(computer) = &request.computer_id {
        check_id("computerId", computer)?;
    }
    if let Some(key) = &request.request_id {
        if !is_request_id(key) {
            return Err(ApiError::invalid(
                "requestId",
                format!("must be 1 to {MAX_ID} visible ASCII characters"),
            ));
        }
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
        .filter(|key| is_request_id(key))
        .map(|key| Some(key.to_owned()))
        .ok_or_else(|| {
            ApiError::invalid(
                IDEMPOTENCY_KEY,
                format!("must be 1 to {MAX_ID} visible ASCII characters"),
            )
        })
}

/// Refuses a body that is not declared JSON (415). Requiring `application/json` also means a
/// browser cannot send it cross-origin without a CORS preflight, so a foreign page cannot
/// start turns on a loopback server.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
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
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "expected a JSON body with Content-Type: application/json",
        ))
    }
}

/// Parses a JSON object into `T`, naming the field at fault when it does not fit.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(bad_request(
            None,
            "the request body is empty: expected a JSON object",
        ));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|err| bad_request(None, format!("malformed JSON: {err}")))?;
    let Value::Object(map) = value else {
        return Err(bad_request(
            None,
            format!("expected a JSON object, got {}", kind(&value)),
        ));
    };
    let object = Value::Object(map);
    match T::deserialize(&object) {
        Ok(parsed) => Ok(parsed),
        Err(err) => Err(locate::<T>(&object, &err.to_string())),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The text between the backticks following `prefix` in `message`.
fn backticked<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    rest.split('`').next()
}

fn locate<T: DeserializeOwned>(object: &Value, message: &str) -> ApiError {
    if let Some(field) = backticked(message, "unknown field `") {
        let expected = message
            .split_once(", expected ")
            .map(|(_, expected)| format!(" (expected {expected})"))
            .unwrap_or_default();
        return bad_request(Some(field), format!("unknown field `{field}`{expected}"));
    }
    if let Some(field) = backticked(message, "missing field `") {
        return bad_request(Some(field), format!("missing field `{field}`"));
    }
    if let Value::Object(map) = object {
        for key in map.keys() {
            let mut rest: Map<String, Value> = map.clone();
            rest.remove(key);
            let culprit = match T::deserialize(&Value::Object(rest)) {
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

    use super::*;

    #[test]
    fn ids_slugs_and_request_ids() {
        assert!(is_id("c-1.2:x_y"));
        assert!(!is_id(""));
        assert!(!is_id("a/b"));
        assert!(!is_id(&"a".repeat(129)));
        assert!(is_slug("my-ws1"));
        assert!(!is_slug("-x"));
        assert!(!is_slug("Upper"));
        assert!(is_request_id("r-1!"));
        assert!(!is_request_id("has space"));
    }

    #[test]
    fn json_content_types() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            require_json(&headers)
        };
        assert!(with("application/json; charset=utf-8").is_ok());
        assert!(with("application/merge-patch+json").is_ok());
        assert_eq!(with("text/plain").unwrap_err().status.as_u16(), 415);
        assert_eq!(
            require_json(&HeaderMap::new()).unwrap_err().status.as_u16(),
            415
        );
    }

    #[test]
    fn a_turn_s_options_name_the_field_at_fault() {
        let ok = SendRequest {
            text: "hi".into(),
            ..SendRequest::default()
        };
        assert!(check_send(&ok).is_ok());
        let cases = [
            (
                SendRequest {
                    text: " ".into(),
                    ..SendRequest::default()
                },
                "message",
            ),
            (
                SendRequest {
                    conversation_id: Some("../x".into()),
                    ..ok.clone()
                },
                "conversationId",
            ),
            (
                SendRequest {
                    workspace_id: Some("Not A Slug".into()),
                    ..ok.clone()
                },
                "workspaceId",
            ),
            (
                SendRequest {
                    request_id: Some("with space".into()),
                    ..ok.clone()
                },
                "requestId",
            ),
        ];
        for (request, field) in cases {
            let err = check_send(&request).unwrap_err();
            assert_eq!(err.body.field.as_deref(), Some(field), "{}", err.body.error);
        }
    }
}
