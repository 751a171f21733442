//! Extractors that turn every malformed input into an [`ApiError`] naming the offending
//! field, instead of axum's plain-text rejections: a JSON body ([`Body`]), query parameters
//! ([`Query`] over [`FromQuery`]), path ids ([`ConversationId`], [`WorkspaceId`]) and the
//! `Idempotency-Key` header ([`IdempotencyKey`]).
//!
//! serde's errors do not carry a path, so a body that fails to deserialize is located by
//! its message (`unknown field`, `missing field`) or, for a wrong type, by removing one key
//! at a time until the rest deserializes.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use dispatch_transport_kit::ApiError;
use dispatch_wire::ErrorResponse;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Longest conversation id (and any other opaque id), in bytes.
pub const MAX_ID: usize = 128;

/// The body limit in force, put on every request by the app so rejections can say it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A 400 with an exact message and field.
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

/// A JSON request body of type `T`. Requires `Content-Type: application/json` (a browser
/// cannot send that cross-origin without a CORS preflight, so a foreign page cannot start
/// turns on a loopback server).
pub struct Body<T>(pub T);

impl<T, S> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !is_json(content_type) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "expected a JSON body with Content-Type: application/json",
            ));
        }
        let limit = req.extensions().get::<BodyLimit>().map(|l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large(limit)
            } else {
                bad_request(
                    None,
                    format!("cannot read the request body: {}", rejection.body_text()),
                )
            }
        })?;
        parse_json(&bytes).map(Body)
    }
}

/// The 413 for a body over the limit.
pub fn too_large(limit: Option<usize>) -> ApiError {
    let message = match limit {
        Some(limit) => format!("the request body is larger than the limit of {limit} bytes"),
        None => "the request body is too large".to_owned(),
    };
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", message)
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
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

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space).
pub fn form_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Query parameters, decoded, consumed one name at a time; names left over are unknown.
#[derive(Debug, Default)]
pub struct QueryPairs {
    pairs: Vec<(String, String)>,
}

impl QueryPairs {
    pub fn parse(query: Option<&str>) -> Result<QueryPairs, ApiError> {
        let mut pairs = Vec::new();
        for segment in query.unwrap_or_default().split('&') {
            if segment.is_empty() {
                continue;
            }
            let (raw_key, raw_value) = segment.split_once('=').unwrap_or((segment, ""));
            let (Some(key), Some(value)) = (form_decode(raw_key), form_decode(raw_value)) else {
                return Err(bad_request(
                    None,
                    format!("malformed query parameter `{}`", truncate(segment, 64)),
                ));
            };
            pairs.push((key, value));
        }
        Ok(QueryPairs { pairs })
    }

    /// The value of `key`, if given (once).
    pub fn take(&mut self, key: &str) -> Result<Option<String>, ApiError> {
        let mut found = None;
        let mut count = 0;
        self.pairs.retain(|(k, v)| {
            if k == key {
                count += 1;
                found = Some(v.clone());
                false
            } else {
                true
            }
        });
        if count > 1 {
            return Err(ApiError::invalid(key, "given more than once"));
        }
        Ok(found)
    }

    /// `key` as a positive integer.
    pub fn positive(&mut self, key: &str) -> Result<Option<u64>, ApiError> {
        let Some(raw) = self.take(key)? else {
            return Ok(None);
        };
        match raw.trim().parse::<u64>() {
            Ok(value) if value > 0 => Ok(Some(value)),
            _ => Err(ApiError::invalid(
                key,
                format!("must be a positive integer, got `{}`", truncate(&raw, 32)),
            )),
        }
    }

    /// Fails on the first name nobody took.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.pairs.into_iter().next() {
            None => Ok(()),
            Some((key, _)) => Err(bad_request(
                Some(&key),
                format!("unknown query parameter `{}`", truncate(&key, 64)),
            )),
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Query parameters of one endpoint, read from [`QueryPairs`].
pub trait FromQuery: Sized {
    fn from_query(query: &mut QueryPairs) -> Result<Self, ApiError>;
}

/// Query parameters: unknown names, repeated names and bad values are 400s naming them.
pub struct Query<T>(pub T);

impl<T: FromQuery, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut pairs = QueryPairs::parse(parts.uri.query())?;
        let value = T::from_query(&mut pairs)?;
        pairs.finish()?;
        Ok(Query(value))
    }
}

async fn path_param<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    field: &str,
) -> Result<String, ApiError> {
    Path::<String>::from_request_parts(parts, state)
        .await
        .map(|Path(value)| value)
        .map_err(|rejection| ApiError::invalid(field, rejection.body_text()))
}

/// The `{id}` of a `/conversations/{id}/...` path, validated.
pub struct ConversationId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ConversationId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let id = path_param(parts, state, "conversationId").await?;
        check_id("conversationId", &id)?;
        Ok(ConversationId(id))
    }
}

/// The `{id}` of a `/workspaces/{id}` path, validated as a slug.
pub struct WorkspaceId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for WorkspaceId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let id = path_param(parts, state, "workspaceId").await?;
        check_slug("workspaceId", &id)?;
        Ok(WorkspaceId(id))
    }
}

/// The `Idempotency-Key` header: 1 to 128 visible ASCII characters.
pub struct IdempotencyKey(pub Option<String>);

/// The header's name.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(IDEMPOTENCY_KEY) else {
            return Ok(IdempotencyKey(None));
        };
        let key = value
            .to_str()
            .ok()
            .filter(|key| is_request_id(key))
            .ok_or_else(|| {
                ApiError::invalid(
                    IDEMPOTENCY_KEY,
                    format!("must be 1 to {MAX_ID} visible ASCII characters"),
                )
            })?;
        Ok(IdempotencyKey(Some(key.to_owned())))
    }
}

/// 1 to 128 visible ASCII characters (an idempotency key or `requestId`).
pub fn is_request_id(key: &str) -> bool {
    (1..=MAX_ID).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use dispatch_wire::ChatRequest;

    use super::*;

    #[track_caller]
    fn check(body: &str, field: Option<&str>, error: &str) {
        let err = parse_json::<ChatRequest>(body.as_bytes()).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.body.field.as_deref(), field, "{}", err.body.error);
        assert!(
            err.body.error.contains(error),
            "`{}` does not contain `{error}`",
            err.body.error
        );
    }

    #[test]
    fn body_errors_name_the_field() {
        check("", None, "empty");
        check("{", None, "malformed JSON");
        check("[1]", None, "expected a JSON object, got an array");
        check("{}", Some("message"), "missing field `message`");
        check(
            r#"{"message":"hi","bogus":1}"#,
            Some("bogus"),
            "unknown field `bogus`",
        );
        check(r#"{"message":5}"#, Some("message"), "invalid type: integer");
        check(
            r#"{"message":"hi","reasoningEffort":"huge"}"#,
            Some("reasoningEffort"),
            "unknown variant `huge`",
        );
        check(
            r#"{"message":"hi","conversationId":[]}"#,
            Some("conversationId"),
            "invalid type",
        );
        let ok: ChatRequest = parse_json(br#"{"message":"hi"}"#).unwrap();
        assert_eq!(ok.message, "hi");
    }

    #[test]
    fn query_pairs_decode_and_report_unknown_and_repeated_names() {
        let mut q = QueryPairs::parse(Some("q=a%20b+c&limit=5&&x")).unwrap();
        assert_eq!(q.take("q").unwrap().as_deref(), Some("a b c"));
        assert_eq!(q.positive("limit").unwrap(), Some(5));
        let err = q.finish().unwrap_err();
        assert_eq!(err.body.field.as_deref(), Some("x"));

        for bad in ["0", "-1", "abc", "1.5", "", "99999999999999999999999"] {
            let mut q = QueryPairs::parse(Some(&format!("limit={bad}"))).unwrap();
            let err = q.positive("limit").unwrap_err();
            assert_eq!(err.body.field.as_deref(), Some("limit"), "{bad}");
        }
        let mut q = QueryPairs::parse(Some("limit=1&limit=2")).unwrap();
        assert!(
            q.positive("limit")
                .unwrap_err()
                .body
                .error
                .contains("more than once")
        );
        assert!(QueryPairs::parse(Some("a=%zz")).is_err());
        assert!(QueryPairs::parse(Some("a=%ff")).is_err());
    }

    #[test]
    fn ids_and_slugs() {
        assert!(is_id("c-1.2:x_y"));
        assert!(!is_id(""));
        assert!(!is_id("a/b"));
        assert!(!is_id(&"a".repeat(129)));
        assert!(is_slug("my-ws1"));
        assert!(!is_slug("-x"));
        assert!(!is_slug("Upper"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
    }
}
