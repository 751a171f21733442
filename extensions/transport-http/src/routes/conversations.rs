//! Conversations: list, history windows, metrics, the last answer, status, the system
//! prompt as built, and the actions stop / close / open / queue.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use dispatch_kernel::abi::{
    ActionOutcome, ConversationFilter, ConversationStore, HistoryWindow, SendRequest,
};
use dispatch_transport_kit::ApiError;
use dispatch_wire::{
    Chunk, ConversationActionResponse, ConversationListResponse, ConversationMeta,
    ConversationStatus, ConversationSystemPromptResponse, HistoryResponse, Id, LastMessageResponse,
    MetricsResponse, QueueRequest, QueueResponse, Role, StatusResponse,
};
use schemars::JsonSchema;

use crate::extract::{
    Body, ConversationId, FromQuery, Query, QueryPairs, check_slug, is_id, is_request_id,
};
use crate::state::AppState;

/// The conversation's metadata, or a 404.
pub async fn require(
    store: &dyn ConversationStore,
    id: &str,
) -> Result<ConversationMeta, ApiError> {
    store
        .meta(id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation", id))
}

/// `GET /conversations` filters.
#[derive(Debug, Default, JsonSchema)]
#[schemars(rename_all = "camelCase")]
pub struct ListQuery {
    /// Only conversations whose id starts with this prefix.
    q: Option<String>,
    /// Comma-separated statuses to keep (`active`, `idle`, `closed`); any when absent.
    #[allow(dead_code)] // documents the raw parameter; `statuses` is what is used
    status: Option<String>,
    /// Only conversations of this workspace.
    workspace_id: Option<String>,
    #[schemars(skip)]
    statuses: Vec<ConversationStatus>,
}

impl FromQuery for ListQuery {
    fn from_query(query: &mut QueryPairs) -> Result<ListQuery, ApiError> {
        let q = query.take("q")?.filter(|q| !q.is_empty());
        if let Some(q) = &q {
            if !is_id(q) {
                return Err(ApiError::invalid(
                    "q",
                    "must be at most 128 characters of A-Z a-z 0-9 _ . : -",
                ));
            }
        }
        let status = query.take("status")?;
        let mut statuses = Vec::new();
        for name in status.iter().flat_map(|s| s.split(',')) {
            let parsed = match name.trim() {
                "" => continue,
                "active" => ConversationStatus::Active,
                "idle" => ConversationStatus::Idle,
                "closed" => ConversationStatus::Closed,
                other => {
                    return Err(ApiError::invalid(
                        "status",
                        format!(
                            "unknown status `{}` (expected active, idle or closed)",
                            other.chars().take(32).collect::<String>()
                        ),
                    ));
                }
            };
            if !statuses.contains(&parsed) {
                statuses.push(parsed);
            }
        }
        let workspace_id = query.take("workspaceId")?.filter(|w| !w.is_empty());
        if let Some(workspace) = &workspace_id {
            check_slug("workspaceId", workspace)?;
        }
        Ok(ListQuery {
            q,
            status,
            workspace_id,
            statuses,
        })
    }
}

pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<ConversationListResponse>, ApiError> {
    let conversations = state
        .store()?
        .list(&ConversationFilter {
            id_prefix: query.q,
            statuses: query.statuses,
            workspace_id: query.workspace_id,
        })
        .await?;
    Ok(Json(ConversationListResponse { conversations }))
}

/// `GET /conversations/{id}` window: chunks with `sinceSeq < seq < beforeSeq`, the newest
/// `limit`.
#[derive(Debug, Default, JsonSchema)]
#[schemars(rename_all = "camelCase")]
pub struct HistoryQuery {
    /// Only chunks after this seq (a positive integer).
    #[schemars(range(min = 1))]
    since_seq: Option<u64>,
    /// Only chunks before this seq (a positive integer).
    #[schemars(range(min = 1))]
    before_seq: Option<u64>,
    /// At most this many chunks, the newest of the window (a positive integer; capped at
    /// 1000).
    #[schemars(range(min = 1))]
    limit: Option<u64>,
}

impl FromQuery for HistoryQuery {
    fn from_query(query: &mut QueryPairs) -> Result<HistoryQuery, ApiError> {
        Ok(HistoryQuery {
            since_seq: query.positive("sinceSeq")?,
            before_seq: query.positive("beforeSeq")?,
            limit: query.positive("limit")?,
        })
    }
}

pub async fn history(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<HistoryResponse>, ApiError> {
    let store = state.store()?;
    require(&*store, &id).await?;
    let page = store
        .window(
            &id,
            HistoryWindow {
                since_seq: query.since_seq,
                before_seq: query.before_seq,
                limit: query
                    .limit
                    .map(|limit| usize::try_from(limit).unwrap_or(usize::MAX)),
            },
        )
        .await?;
    Ok(Json(HistoryResponse {
        conversation_id: Id::from(id),
        chunks: page.chunks,
        last_seq: page.last_seq,
        has_more: page.has_more,
    }))
}

pub async fn metrics(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
) -> Result<Json<MetricsResponse>, ApiError> {
    let store = state.store()?;
    require(&*store, &id).await?;
    let turns = store.metrics(&id).await?;
    Ok(Json(MetricsResponse {
        conversation_id: Id::from(id),
        turns,
    }))
}

/// `GET /conversations/{id}/last` options.
#[derive(Debug, Default, JsonSchema)]
#[schemars(rename_all = "camelCase")]
pub struct LastQuery {
    /// Give up waiting for a running turn after this many milliseconds (504); waits as
    /// long as it takes when absent.
    #[schemars(range(min = 1))]
    timeout_ms: Option<u64>,
}

impl FromQuery for LastQuery {
    fn from_query(query: &mut QueryPairs) -> Result<LastQuery, ApiError> {
        Ok(LastQuery {
            timeout_ms: query.positive("timeoutMs")?,
        })
    }
}

/// How far back `last` looks for an assistant text, in chunks.
const LAST_SCAN_CHUNKS: usize = 5000;
const LAST_PAGE: usize = 500;

pub async fn last(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    Query(query): Query<LastQuery>,
) -> Result<Json<LastMessageResponse>, ApiError> {
    let store = state.store()?;
    require(&*store, &id).await?;
    let session = state.session()?;
    let settled = session.settled(&id);
    let timeout = query.timeout_ms.map(Duration::from_millis);
    let waited = async {
        match timeout {
            Some(limit) => tokio::time::timeout(limit, settled).await.is_ok(),
            None => {
                settled.await;
                true
            }
        }
    };
    let shutdown = state.shutdown().clone();
    tokio::select! {
        settled = waited => if !settled {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!(
                    "the running turn of conversation `{id}` did not finish within {} ms",
                    query.timeout_ms.unwrap_or_default()
                ),
            ));
        },
        () = shutdown.cancelled() => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting-down",
                "the server is shutting down",
            ));
        }
    }
    let content = last_assistant_text(&*store, &id).await?;
    Ok(Json(LastMessageResponse {
        conversation_id: Id::from(id),
        content,
    }))
}

/// The text of the last assistant message that has text, read backwards page by page.
async fn last_assistant_text(store: &dyn ConversationStore, id: &str) -> Result<String, ApiError> {
    let mut before_seq = None;
    let mut target: Option<Id> = None;
    let mut texts: Vec<String> = Vec::new();
    let mut scanned = 0;
    'pages: while scanned < LAST_SCAN_CHUNKS {
        let page = store
            .window(
                id,
                HistoryWindow {
                    since_seq: None,
                    before_seq,
                    limit: Some(LAST_PAGE),
                },
            )
            .await?;
        scanned += page.chunks.len();
        for stored in page.chunks.iter().rev() {
            let text = match &stored.chunk {
                Chunk::Text { text } => (stored.role == Role::Assistant).then_some(text),
                Chunk::Reasoning { .. }
                | Chunk::ToolCall { .. }
                | Chunk::ToolResult { .. }
                | Chunk::Error { .. }
                | Chunk::Unknown => None,
            };
            match &target {
                None => {
                    if let Some(text) = text {
                        target = Some(stored.message_id.clone());
                        texts.push(text.clone());
                    }
                }
                Some(message) if *message == stored.message_id => {
                    if let Some(text) = text {
                        texts.push(text.clone());
                    }
                }
                Some(_) => break 'pages,
            }
        }
        match page.chunks.first() {
            Some(first) if page.has_more => before_seq = Some(first.seq),
            _ => break,
        }
    }
    texts.reverse();
    Ok(texts.concat())
}

pub async fn status(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
) -> Result<Json<StatusResponse>, ApiError> {
    let session = state.session()?;
    let meta = session
        .meta(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation", &id))?;
    Ok(Json(StatusResponse {
        is_active: session.is_active(&id),
        conversation_id: Id::from(id),
        status: meta.status,
    }))
}

pub async fn system_prompt(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
) -> Result<Json<ConversationSystemPromptResponse>, ApiError> {
    let store = state.store()?;
    require(&*store, &id).await?;
    let built = state.system_prompt()?.stored(&id).await?;
    let conversation_id = Id::from(id);
    Ok(Json(match built {
        None => ConversationSystemPromptResponse {
            conversation_id,
            cwd: None,
            sections: Vec::new(),
            texts: Vec::new(),
        },
        Some(built) => ConversationSystemPromptResponse {
            conversation_id,
            cwd: Some(built.cwd.display().to_string()),
            sections: built.records,
            texts: built.sections.iter().map(|s| s.text.to_string()).collect(),
        },
    }))
}

#[derive(Clone, Copy)]
enum Action {
    Stop,
    Close,
    Open,
}

async fn act(
    state: &AppState,
    id: &str,
    action: Action,
) -> Result<Json<ConversationActionResponse>, ApiError> {
    let store = state.store()?;
    require(&*store, id).await?;
    let session = state.session()?;
    let ActionOutcome {
        conversation_id,
        aborted_turn,
        status,
        ..
    } = match action {
        Action::Stop => session.stop(id).await?,
        Action::Close => session.close(id).await?,
        Action::Open => session.open(id).await?,
    };
    Ok(Json(ConversationActionResponse {
        conversation_id,
        aborted_turn,
        status,
    }))
}

pub async fn stop(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
) -> Result<Json<ConversationActionResponse>, ApiError> {
    act(&state, &id, Action::Stop).await
}

pub async fn close(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
) -> Result<Json<ConversationActionResponse>, ApiError> {
    act(&state, &id, Action::Close).await
}

pub async fn open(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
) -> Result<Json<ConversationActionResponse>, ApiError> {
    act(&state, &id, Action::Open).await
}

pub async fn queue(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    Body(request): Body<QueueRequest>,
) -> Result<Json<QueueResponse>, ApiError> {
    if request.text.trim().is_empty() {
        return Err(ApiError::invalid("text", "must not be empty"));
    }
    if let Some(key) = &request.request_id {
        if !is_request_id(key) {
            return Err(ApiError::invalid(
                "requestId",
                "must be 1 to 128 visible ASCII characters",
            ));
        }
    }
    let store = state.store()?;
    require(&*store, &id).await?;
    let enqueued = state
        .session()?
        .enqueue(SendRequest {
            conversation_id: Some(Id::from(id)),
            text: request.text,
            request_id: request.request_id,
            ..SendRequest::default()
        })
        .await?;
    Ok(Json(QueueResponse {
        conversation_id: enqueued.conversation_id,
        queued: enqueued.queued,
        started_turn: enqueued.started.is_some(),
    }))
}
