//! The HTTP surface, mounted into `transport_kit::ROUTES`:
//!
//! | route                        | answer                                              |
//! |------------------------------|-----------------------------------------------------|
//! | `POST /runs`                 | 202 `RunAccepted` (`Idempotency-Key` honoured)      |
//! | `GET /runs`                  | `RunListResponse`, newest first (`status`, `conversationId`, `limit`) |
//! | `GET /runs/{id}`             | `RunInfo`                                           |
//! | `GET /runs/{id}/events`      | Server-Sent Events: replay from `Last-Event-ID`, live, then `run-end` |
//! | `POST /runs/{id}/cancel`     | `RunCancelResponse`                                 |
//! | `GET /runs/{id}/artifacts`   | `RunArtifacts`                                      |
//!
//! Every bad input is a 400 naming the field; unknown runs are 404s.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dispatch_kernel::abi::HistoryWindow;
use dispatch_transport_kit::ApiError;
use dispatch_wire::{RunArtifacts, RunEnd, RunInfo, RunListResponse, RunStatus};
use tokio::sync::watch;

use crate::registry::{ListFilter, Run, Runs, SNAPSHOT_FRAMES, Snapshot};
use crate::request::{self, check_id};
use crate::store::{self, Frame};

/// Runs listed when `limit` is not given, and the most it may ask for.
pub const DEFAULT_LIST_LIMIT: usize = 100;
pub const MAX_LIST_LIMIT: usize = 1000;

/// The SSE reconnect header.
pub const LAST_EVENT_ID: &str = "Last-Event-ID";

pub fn router(runs: Arc<Runs>) -> Router {
    Router::new()
        .route("/runs", post(submit).get(list))
        .route("/runs/{id}", get(status))
        .route("/runs/{id}/events", get(events))
        .route("/runs/{id}/cancel", post(cancel))
        .route("/runs/{id}/artifacts", get(artifacts))
        .with_state(runs)
}

fn run_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = id.map_err(|rejection| ApiError::invalid("id", rejection.body_text()))?;
    check_id("id", &id)?;
    Ok(id)
}

async fn submit(
    State(runs): State<Arc<Runs>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = request::idempotency_key(&headers)?;
    let run = request::parse_body(&headers, &body)?;
    request::validate(&run)?;
    let accepted = runs.submit(run, key).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

async fn status(
    State(runs): State<Arc<Runs>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<RunInfo>, ApiError> {
    let id = run_id(id)?;
    runs.info(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("run", &id))
}

async fn cancel(
    State(runs): State<Arc<Runs>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = run_id(id)?;
    Ok(Json(runs.cancel(&id).await?).into_response())
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space).
fn form_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// `status=`, `conversationId=`, `limit=`; anything else, a repeat or a bad value is a 400
/// naming the parameter.
pub fn parse_list_query(query: Option<&str>) -> Result<ListFilter, ApiError> {
    let mut filter = ListFilter {
        limit: DEFAULT_LIST_LIMIT,
        ..ListFilter::default()
    };
    let mut seen: Vec<String> = Vec::new();
    for segment in query
        .unwrap_or_default()
        .split('&')
        .filter(|s| !s.is_empty())
    {
        let (raw_key, raw_value) = segment.split_once('=').unwrap_or((segment, ""));
        let (Some(key), Some(value)) = (form_decode(raw_key), form_decode(raw_value)) else {
            return Err(ApiError::invalid("query", "malformed query parameter"));
        };
        if seen.contains(&key) {
            return Err(ApiError::invalid(&key, "given more than once"));
        }
        match key.as_str() {
            "status" => {
                filter.status = Some(match value.as_str() {
                    "queued" => RunStatus::Queued,
                    "running" => RunStatus::Running,
                    "completed" => RunStatus::Completed,
                    "failed" => RunStatus::Failed,
                    "cancelled" => RunStatus::Cancelled,
                    _ => {
                        return Err(ApiError::invalid(
                            "status",
                            "must be one of queued, running, completed, failed, cancelled",
                        ));
                    }
                });
            }
            "conversationId" => {
                check_id("conversationId", &value)?;
                filter.conversation_id = Some(value);
            }
            "limit" => match value.trim().parse::<usize>() {
                Ok(limit) if (1..=MAX_LIST_LIMIT).contains(&limit) => filter.limit = limit,
                _ => {
                    return Err(ApiError::invalid(
                        "limit",
                        format!("must be an integer from 1 to {MAX_LIST_LIMIT}"),
                    ));
                }
            },
            _ => {
                let shown: String = key.chars().take(64).collect();
                return Err(ApiError::invalid(
                    &shown,
                    format!("unknown query parameter `{shown}`"),
                ));
            }
        }
        seen.push(key);
    }
    Ok(filter)
}

async fn list(
    State(runs): State<Arc<Runs>>,
    RawQuery(query): RawQuery,
) -> Result<Json<RunListResponse>, ApiError> {
    let filter = parse_list_query(query.as_deref())?;
    Ok(Json(RunListResponse {
        runs: runs.list(&filter).await?,
    }))
}

async fn artifacts(
    State(runs): State<Arc<Runs>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<RunArtifacts>, ApiError> {
    let id = run_id(id)?;
    let info = runs
        .info(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("run", &id))?;
    let mut artifacts = RunArtifacts {
        run_id: info.run_id.clone(),
        conversation_id: info.conversation_id.clone(),
        transcript: Vec::new(),
        steps: Vec::new(),
        system_prompt: Vec::new(),
    };
    let Some(turn_id) = info.turn_id else {
        return Ok(Json(artifacts));
    };
    let page = runs
        .store
        .window(&info.conversation_id, HistoryWindow::default())
        .await?;
    artifacts.transcript = page
        .chunks
        .into_iter()
        .filter(|chunk| chunk.turn_id.as_ref() == Some(&turn_id))
        .collect();
    artifacts.steps = store::read_steps(&*runs.scope, &turn_id)
        .await
        .map_err(ApiError::internal)?;
    artifacts.system_prompt = match store::read_prompt(&*runs.scope, &turn_id)
        .await
        .map_err(ApiError::internal)?
    {
        Some(records) => records,
        // `TURN_SETTLED` may not have arrived yet: the metrics are committed before the
        // turn sealed.
        None => runs
            .store
            .metrics(&info.conversation_id)
            .await?
            .into_iter()
            .find(|metrics| metrics.turn_id == turn_id)
            .map(|metrics| metrics.system_prompt)
            .unwrap_or_default(),
    };
    Ok(Json(artifacts))
}

async fn events(
    State(runs): State<Arc<Runs>>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = run_id(id)?;
    let after = match headers.get(LAST_EVENT_ID) {
        None => 0,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::invalid(LAST_EVENT_ID, "must be a non-negative integer"))?,
    };
    let source = match runs.run(&id) {
        Some(run) => Source::Live(run.clone(), run.watch()),
        None => {
            let info = store::get_info(&*runs.scope, &id)
                .await
                .map_err(ApiError::internal)?
                .ok_or_else(|| ApiError::not_found("run", &id))?;
            Source::Stored(Box::new(info))
        }
    };
    let stream = EventStream {
        keep_alive: Duration::from_secs(runs.config.keep_alive_secs),
        runs,
        run_id: id,
        source,
        after,
        done: false,
    };
    let body = Body::from_stream(futures::stream::unfold(stream, EventStream::next));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Where a stream's events come from.
enum Source {
    /// A run of this process: memory while it runs, then storage.
    Live(Arc<Run>, watch::Receiver<u64>),
    /// A run of an earlier process (ended): storage only.
    Stored(Box<RunInfo>),
}

struct EventStream {
    runs: Arc<Runs>,
    run_id: String,
    source: Source,
    /// The last seq sent (or the client's `Last-Event-ID`).
    after: u64,
    keep_alive: Duration,
    done: bool,
}

/// One SSE event; `data` is written unchanged (it never holds a newline).
fn write_event(out: &mut Vec<u8>, id: u64, kind: &str, data: &str) {
    out.extend_from_slice(format!("id: {id}\nevent: {kind}\ndata: ").as_bytes());
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
}

impl EventStream {
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, EventStream)> {
        if self.done {
            return None;
        }
        loop {
            let snapshot = match &mut self.source {
                Source::Live(run, watch) => {
                    watch.borrow_and_update();
                    run.snapshot(self.after)
                }
                Source::Stored(info) if self.after < info.event_count => Snapshot::Stored {
                    event_count: info.event_count,
                },
                Source::Stored(info) => Snapshot::End(info.clone()),
            };
            match snapshot {
                Snapshot::Frames(frames) => return Some((Ok(self.write_frames(&frames)), self)),
                Snapshot::Stored { event_count } => {
                    let read = store::read_events(
                        &*self.runs.scope,
                        &self.run_id,
                        self.after,
                        SNAPSHOT_FRAMES as u64,
                    )
                    .await;
                    match read {
                        Ok(frames) if !frames.is_empty() => {
                            return Some((Ok(self.write_frames(&frames)), self));
                        }
                        Ok(_) => {
                            // Nothing readable left below `event_count`.
                            self.after = event_count;
                        }
                        Err(err) => {
                            tracing::error!(run_id = %self.run_id, error = %err, "Run events unreadable");
                            return None;
                        }
                    }
                }
                Snapshot::End(info) => {
                    self.done = true;
                    let mut out = Vec::new();
                    let id = info.event_count + 1;
                    match serde_json::to_string(&RunEnd { run: *info }) {
                        Ok(json) => write_event(&mut out, id, "run-end", &json),
                        Err(err) => {
                            tracing::error!(error = %err, "Run end not encoded");
                            return None;
                        }
                    }
                    return Some((Ok(Bytes::from(out)), self));
                }
                Snapshot::Wait => {
                    let Source::Live(_, watch) = &mut self.source else {
                        return None;
                    };
                    tokio::select! {
                        changed = watch.changed() => {
                            if changed.is_err() {
                                return None;
                            }
                        }
                        () = tokio::time::sleep(self.keep_alive) => {
                            return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), self));
                        }
                        () = self.runs.token.cancelled() => return None,
                    }
                }
            }
        }
    }

    fn write_frames(&mut self, frames: &[(u64, Frame)]) -> Bytes {
        let mut out = Vec::new();
        for (seq, frame) in frames {
            write_event(&mut out, *seq, &frame.kind, &frame.json);
            self.after = *seq;
        }
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use pretty_assertions::assert_eq;

    use super::*;

    #[test]
    fn list_queries_are_strict() {
        let filter = parse_list_query(Some("status=running&conversationId=c-1&limit=5")).unwrap();
        assert_eq!(
            filter,
            ListFilter {
                status: Some(RunStatus::Running),
                conversation_id: Some("c-1".to_owned()),
                limit: 5,
            }
        );
        assert_eq!(parse_list_query(None).unwrap().limit, DEFAULT_LIST_LIMIT);
        for (query, field) in [
            ("status=odd", "status"),
            ("limit=0", "limit"),
            ("limit=x", "limit"),
            ("conversationId=a%20b", "conversationId"),
            ("sort=asc", "sort"),
            ("limit=1&limit=2", "limit"),
        ] {
            let err = parse_list_query(Some(query)).unwrap_err();
            assert_eq!(err.body.field.as_deref(), Some(field), "{query}");
        }
    }

    #[test]
    fn an_event_is_written_as_id_type_and_unchanged_data() {
        let mut out = Vec::new();
        write_event(
            &mut out,
            3,
            "text-delta",
            r#"{"type":"text-delta","delta":"hi"}"#,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "id: 3\nevent: text-delta\ndata: {\"type\":\"text-delta\",\"delta\":\"hi\"}\n\n"
        );
    }
}
