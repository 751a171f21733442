//! `POST /chat`: start a turn and stream its events as NDJSON until its `turn-sealed`.
//!
//! The response body is the turn's frames, each the event's JSON as serialized once by the
//! session (never re-serialized here) plus `\n`. Frames already queued are written
//! together. The stream ends after this turn's `turn-sealed`; if the subscription is dropped
//! first (the client fell behind, or the server stops) the stream just ends and the client
//! reloads history. A client that disconnects only drops its subscription: the turn runs on.

use std::convert::Infallible;

use axum::body::{Body as HttpBody, Bytes};
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use dispatch_kernel::abi::{Accepted, EventFrame, SendRequest, Subscription};
use dispatch_transport_kit::ApiError;
use dispatch_wire::{AgentEvent, ChatRequest, Id};
use tokio_util::sync::CancellationToken;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::ResponseBuilder;

use crate::extract::{Body, IdempotencyKey, check_send};
use crate::openapi::{DocOutput, OperationDoc, Schemas, header as doc_header};
use crate::state::AppState;

/// The NDJSON media type.
pub const NDJSON: &str = "application/x-ndjson";
pub const X_CONVERSATION_ID: &str = "x-conversation-id";
pub const X_TURN_ID: &str = "x-turn-id";

/// Frames written in one body chunk at most (bytes), so a burst is batched but bounded.
const BATCH_BYTES: usize = 64 * 1024;

pub async fn chat(
    State(state): State<AppState>,
    IdempotencyKey(key): IdempotencyKey,
    Body(request): Body<ChatRequest>,
) -> Result<ChatStream, ApiError> {
    let ChatRequest {
        conversation_id,
        message,
        model,
        reasoning_effort,
        cwd,
        workspace_id,
        computer_id,
        request_id,
    } = request;
    let mut request = SendRequest {
        conversation_id: conversation_id.map(Id::from),
        text: message,
        model,
        reasoning_effort,
        cwd,
        workspace_id,
        computer_id: computer_id.map(Id::from),
        request_id,
    };
    check_send(&request)?;
    // The header wins over the body's `requestId` (both were checked).
    request.request_id = key.or(request.request_id);
    let session = state.session()?;
    let accepted = session.send(request).await?;
    tracing::debug!(
        conversation_id = %accepted.conversation_id,
        turn_id = %accepted.turn_id,
        reattached = accepted.reattached,
        "Chat turn accepted"
    );
    Ok(ChatStream {
        accepted,
        shutdown: state.shutdown().clone(),
    })
}

/// The NDJSON response of an accepted turn.
pub struct ChatStream {
    accepted: Accepted,
    shutdown: CancellationToken,
}

struct Feed {
    subscription: Subscription,
    turn_id: Id,
    shutdown: CancellationToken,
    sealed: bool,
}

impl Feed {
    /// Appends the frame's line if it belongs to this turn.
    fn push(&mut self, frame: &EventFrame, buf: &mut Vec<u8>) {
        if frame.turn_id != self.turn_id {
            return;
        }
        buf.extend_from_slice(frame.json.as_bytes());
        buf.push(b'\n');
        if matches!(frame.event, AgentEvent::TurnSealed { .. }) {
            self.sealed = true;
        }
    }

    /// The next body chunk: every frame queued now (at least one), or `None` at the end.
    async fn next_chunk(mut self) -> Option<(Result<Bytes, Infallible>, Feed)> {
        let mut buf = Vec::new();
        while buf.is_empty() {
            if self.sealed {
                return None;
            }
            let frame = tokio::select! {
                biased;
                frame = self.subscription.recv() => frame,
                () = self.shutdown.cancelled() => {
                    tracing::debug!(turn_id = %self.turn_id, "Chat stream ended by shutdown");
                    return None;
                }
            };
            let Some(frame) = frame else {
                if self.subscription.lagged() {
                    tracing::warn!(
                        conversation_id = %self.subscription.conversation_id(),
                        turn_id = %self.turn_id,
                        "Chat stream fell behind and was dropped by the hub; ended early (the client can reload history)"
                    );
                } else {
                    tracing::debug!(turn_id = %self.turn_id, "Chat subscription ended before turn-sealed");
                }
                return None;
            };
            self.push(&frame, &mut buf);
            while !self.sealed && buf.len() < BATCH_BYTES {
                match self.subscription.try_recv() {
                    Some(frame) => self.push(&frame, &mut buf),
                    None => break,
                }
            }
        }
        Some((Ok(Bytes::from(buf)), self))
    }
}

impl IntoResponse for ChatStream {
    fn into_response(self) -> Response {
        let Accepted {
            conversation_id,
            turn_id,
            subscription,
            ..
        } = self.accepted;
        let feed = Feed {
            subscription,
            turn_id: turn_id.clone(),
            shutdown: self.shutdown,
            sealed: false,
        };
        let body = HttpBody::from_stream(futures::stream::unfold(feed, Feed::next_chunk));
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        );
        for (name, value) in [(X_CONVERSATION_ID, &conversation_id), (X_TURN_ID, &turn_id)] {
            match HeaderValue::from_str(value) {
                Ok(value) => {
                    headers.insert(HeaderName::from_static(name), value);
                }
                Err(_) => {
                    tracing::warn!(id = %value, header = name, "Id not valid in a header; left out")
                }
            }
        }
        response
    }
}

impl DocOutput for ChatStream {
    fn document(doc: &mut OperationDoc, schemas: &mut Schemas) {
        let content = ContentBuilder::new()
            .schema(Some(schemas.reference::<AgentEvent>()))
            .build();
        doc.success(
            "200",
            ResponseBuilder::new()
                .description(
                    "The turn's events, one AgentEvent JSON per line, from `user-message` to \
                     this turn's `turn-sealed`",
                )
                .content(NDJSON, content)
                .header(
                    "X-Conversation-Id",
                    doc_header("The conversation of the turn"),
                )
                .header(
                    "X-Turn-Id",
                    doc_header("The turn started (or re-attached to)"),
                )
                .build(),
        );
    }
}
