//! Extractors that turn every malformed input into an [`ApiError`] naming the offending
//! field, instead of axum's plain-text rejections: a JSON body ([`Body`]), query parameters
//! ([`Query`] over [`FromQuery`]), path ids ([`ConversationId`], [`WorkspaceId`]) and the
//! `Idempotency-Key` header ([`IdempotencyKey`]).
//!
//! The rules themselves (ids, slugs, JSON bodies naming the field at fault, the idempotency
//! header, a turn's options) live in `transport_kit::input`, shared with every other route
//! that takes the same input (the runs control plane, the todo route).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use dispatch_transport_kit::ApiError;
pub use dispatch_transport_kit::input::{
    IDEMPOTENCY_KEY, bad_request, check_id, check_send, check_slug, check_text, idempotency_key,
    is_id, is_request_id, parse_json, require_json,
};
use serde::de::DeserializeOwned;

/// The body limit in force, put on every request by the app so rejections can say it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

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
        require_json(req.headers())?;
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

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        idempotency_key(&parts.headers).map(IdempotencyKey)
    }
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
}
