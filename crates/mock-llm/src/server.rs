//! The axum routes: provider endpoints, the control API, request recording and body playback.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Json};
use axum::routing::{MethodRouter, get, post};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::cache::{PromptCache, PromptTokens};
use crate::check::{self, Rule, Violation};
use crate::script::{Fault, HttpError, Provider, Reply, Response, parse_script};
use crate::wire::{self, Ctx, Step};
use crate::{Config, Error};

/// Headers whose values are replaced by [`REDACTED`] in recordings.
const SECRET_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
];
/// What a secret header's value is recorded as.
pub const REDACTED: &str = "[redacted]";

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// 0-based arrival order since start or reset.
    pub seq: u64,
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Lower-case names; repeated headers joined with `, `; secrets redacted.
    pub headers: BTreeMap<String, String>,
    /// The parsed body, when it is JSON.
    pub body: Option<Value>,
    /// The body exactly as received (invalid UTF-8 replaced by U+FFFD), for byte-for-byte
    /// comparisons; `body_bytes` counts the bytes received.
    #[serde(default)]
    pub raw_body: String,
    pub body_bytes: usize,
    pub received_unix_ms: u64,
    /// The format the request was answered in (`None` for unknown routes).
    pub provider: Option<Provider>,
    /// The prompt's token accounting (provider requests with a JSON body).
    pub prompt: Option<PromptTokens>,
    pub violations: Vec<Violation>,
}

/// State shared by the handlers and [`crate::MockLlm`].
pub(crate) struct Shared {
    pub config: Config,
    pub token: CancellationToken,
    state: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<Response>,
    requests: Vec<RecordedRequest>,
    cache: PromptCache,
}

impl Shared {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            config,
            token: CancellationToken::new(),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn push(&self, responses: Vec<Response>) -> usize {
        let mut state = self.lock();
        state.queue.extend(responses);
        state.queue.len()
    }

    pub(crate) fn queued(&self) -> Vec<Response> {
        self.lock().queue.iter().cloned().collect()
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    pub(crate) fn reset(&self) {
        *self.lock() = Inner::default();
    }

    /// Records a request and returns its sequence number.
    fn record(&self, mut request: RecordedRequest) -> u64 {
        let mut state = self.lock();
        request.seq = state.requests.len() as u64;
        state.requests.push(request);
        state.requests.len() as u64 - 1
    }
}

pub(crate) fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", provider_route(Provider::Openai))
        .route("/chat/completions", provider_route(Provider::Openai))
        .route("/v1/responses", provider_route(Provider::OpenaiResponses))
        .route("/responses", provider_route(Provider::OpenaiResponses))
        .route("/v1/messages", provider_route(Provider::Anthropic))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/_mock/responses", post(push_responses).get(list_responses))
        .route("/_mock/requests", get(list_requests))
        .route("/_mock/reset", post(reset))
        .route("/_mock/health", get(health))
        .fallback(unknown)
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
}

fn recorded(method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> RecordedRequest {
    let mut recorded_headers = BTreeMap::<String, String>::new();
    for (name, value) in headers {
        let value = if SECRET_HEADERS.contains(&name.as_str()) {
            REDACTED.into()
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        recorded_headers
            .entry(name.as_str().into())
            .and_modify(|v| *v = format!("{v}, {value}"))
            .or_insert(value);
    }
    RecordedRequest {
        seq: 0,
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().into(), ToString::to_string),
        headers: recorded_headers,
        body: serde_json::from_slice(body).ok(),
        raw_body: String::from_utf8_lossy(body).into_owned(),
        body_bytes: body.len(),
        received_unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        provider: None,
        prompt: None,
        violations: Vec::new(),
    }
}

/// The route of one provider format: records the request, answers in that format.
fn provider_route(provider: Provider) -> MethodRouter<Arc<Shared>> {
    post(
        move |State(shared): State<Arc<Shared>>,
              method: Method,
              uri: Uri,
              headers: HeaderMap,
              body: Bytes| async move {
            let request = recorded(&method, &uri, &headers, &body);
            completion(provider, &shared, request).await
        },
    )
}

async fn completion(
    provider: Provider,
    shared: &Shared,
    mut request: RecordedRequest,
) -> axum::response::Response {
    let config = &shared.config;
    let body = request.body.clone().filter(Value::is_object);
    request.provider = Some(provider);
    request.violations = match &body {
        Some(body) => check::check(provider, body),
        None => vec![Violation {
            rule: Rule::InvalidBody,
            detail: "the body is not a JSON object".into(),
        }],
    };
    let model = body
        .as_ref()
        .and_then(|b| b["model"].as_str())
        .unwrap_or("mock-model")
        .to_owned();
    let (seq, response, prompt) = {
        let mut state = shared.lock();
        let taken = body.as_ref().and_then(|_| {
            let index = state
                .queue
                .iter()
                .position(|r| r.provider.is_none_or(|p| p == provider))?;
            state.queue.remove(index)
        });
        let commit = !matches!(
            taken,
            Some(Response {
                reply: Reply::Error(_),
                ..
            })
        );
        let prompt = body.as_ref().map(|body| match provider {
            Provider::Anthropic => state
                .cache
                .anthropic(body, config.min_cacheable_tokens, commit),
            Provider::Openai => state.cache.openai(
                body,
                config.min_cacheable_tokens,
                config.openai_prefix_caching,
                commit,
            ),
            Provider::OpenaiResponses => state.cache.openai_responses(
                body,
                config.min_cacheable_tokens,
                config.openai_prefix_caching,
                commit,
            ),
        });
        drop(state);
        request.prompt = prompt;
        let violations = request.violations.len();
        let seq = shared.record(request);
        tracing::info!(seq, ?provider, %model, violations, "Received provider request");
        (seq, taken, prompt.unwrap_or_default())
    };
    let Some(body) = body else {
        let error = HttpError {
            status: 400,
            message: Some("dispatch-mock-llm: the body is not a JSON object".into()),
            ..HttpError::default()
        };
        return error_response(provider, &error, &model, seq);
    };
    let response = match response {
        Some(response) => response,
        None if config.strict => Response {
            reply: Reply::Error(HttpError {
                status: 500,
                message: Some(
                    "dispatch-mock-llm: no scripted response queued (strict mode)".into(),
                ),
                ..HttpError::default()
            }),
            ..Response::text("")
        },
        None => Response::text(&config.default_text),
    };
    if response.latency_ms > 0 {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(response.latency_ms)) => {}
            () = shared.token.cancelled() => {}
        }
    }
    let stream = match response.reply {
        Reply::Error(error) => return error_response(provider, &error, &model, seq),
        Reply::Stream(stream) => stream,
    };
    let ctx = Ctx {
        provider,
        model,
        streaming: body["stream"] == true,
        include_usage: body["stream_options"]["include_usage"] == true,
        prompt,
        seq,
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        request: body,
    };
    if let (
        false,
        Some(Fault::ErrorEvent {
            error_type,
            message,
            ..
        }),
    ) = (ctx.streaming, &stream.fault)
    {
        let status = if error_type == "overloaded_error" {
            529
        } else {
            500
        };
        let error = HttpError {
            status,
            error_type: Some(error_type.clone()),
            message: Some(message.clone()),
            ..HttpError::default()
        };
        return error_response(provider, &error, &ctx.model, seq);
    }
    let mut headers = provider_headers(provider, seq);
    let content_type = if ctx.streaming {
        "text/event-stream; charset=utf-8"
    } else {
        "application/json"
    };
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (
        StatusCode::OK,
        headers,
        play(wire::steps(&ctx, &stream), shared.token.clone()),
    )
        .into_response()
}

fn provider_headers(provider: Provider, seq: u64) -> HeaderMap {
    let name = match provider {
        Provider::Openai | Provider::OpenaiResponses => "x-request-id",
        Provider::Anthropic => "request-id",
    };
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::try_from(format!("req_mock{seq}")) {
        headers.insert(name, value);
    }
    headers
}

fn error_response(
    provider: Provider,
    error: &HttpError,
    model: &str,
    seq: u64,
) -> axum::response::Response {
    let (body, content_type) = wire::error_body(provider, error, model, &format!("req_mock{seq}"));
    let mut headers = provider_headers(provider, seq);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(seconds) = error.retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    for (name, value) in &error.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.insert(name, value);
        }
    }
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, headers, body).into_response()
}

/// Plays `steps` as a response body; a cut or a shutdown aborts the connection.
fn play(steps: Vec<Step>, token: CancellationToken) -> Body {
    let stream = futures::stream::unfold(
        (steps.into_iter(), token),
        |(mut steps, token)| async move {
            loop {
                let wait = match steps.next()? {
                    Step::Send(bytes) => return Some((Ok(bytes), (steps, token))),
                    Step::Sleep(duration) | Step::Stall(Some(duration)) => Some(duration),
                    Step::Stall(None) => None,
                    Step::Cut => {
                        // Hyper drops buffered bytes on a body error: let it flush them first.
                        tokio::task::yield_now().await;
                        let cut = std::io::Error::new(
                            std::io::ErrorKind::ConnectionAborted,
                            "dispatch-mock-llm: scripted disconnect",
                        );
                        return Some((Err(cut), (Vec::new().into_iter(), token)));
                    }
                };
                let sleep = async {
                    match wait {
                        Some(duration) => tokio::time::sleep(duration).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = sleep => {}
                    () = token.cancelled() => {
                        let error = std::io::Error::other("dispatch-mock-llm: shutting down");
                        return Some((Err(error), (Vec::new().into_iter(), token)));
                    }
                }
            }
        },
    );
    Body::from_stream(stream)
}

async fn models(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Json<Value> {
    let provider = if headers.contains_key("anthropic-version") {
        Provider::Anthropic
    } else {
        Provider::Openai
    };
    let mut request = recorded(&method, &uri, &headers, &body);
    request.provider = Some(provider);
    shared.record(request);
    let ids = &shared.config.models;
    Json(match provider {
        Provider::Openai | Provider::OpenaiResponses => json!({
            "object": "list",
            "data": ids.iter().map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "dispatch-mock-llm"})).collect::<Vec<_>>(),
        }),
        Provider::Anthropic => json!({
            "data": ids.iter().map(|id| json!({"type": "model", "id": id, "display_name": id, "created_at": "2025-01-01T00:00:00Z"})).collect::<Vec<_>>(),
            "has_more": false,
            "first_id": ids.first(),
            "last_id": ids.last(),
        }),
    })
}

async fn unknown(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let seq = shared.record(recorded(&method, &uri, &headers, &body));
    tracing::warn!(seq, %method, %uri, "Request for an unknown route");
    let message = format!("dispatch-mock-llm: no route for {method} {}", uri.path());
    (
        StatusCode::NOT_FOUND,
        Json(
            json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": "unknown_url"}}),
        ),
    )
}

async fn push_responses(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Json<Value>, Error> {
    let text = std::str::from_utf8(&body).map_err(|err| Error::Script(err.to_string()))?;
    let responses = parse_script(text)?;
    let added = responses.len();
    Ok(Json(
        json!({"added": added, "queued": shared.push(responses)}),
    ))
}

async fn list_responses(State(shared): State<Arc<Shared>>) -> Json<Vec<Response>> {
    Json(shared.queued())
}

async fn list_requests(State(shared): State<Arc<Shared>>) -> Json<Vec<RecordedRequest>> {
    Json(shared.requests())
}

async fn reset(State(shared): State<Arc<Shared>>) -> Json<Value> {
    shared.reset();
    Json(json!({"reset": true}))
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

impl IntoResponse for Error {
    fn into_response(self) -> axum::response::Response {
        let (status, kind) = match &self {
            Self::Script(_) => (StatusCode::BAD_REQUEST, "invalid_script"),
            Self::Bind { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        (
            status,
            Json(json!({"error": {"type": kind, "message": self.to_string()}})),
        )
            .into_response()
    }
}
