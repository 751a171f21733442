//! `GET /conversations/{id}/todos`: a conversation's list for the frontends, mounted into
//! `transport_kit::ROUTES`. A conversation without a list (unknown, or never written)
//! answers an empty list: the todo store does not know which conversations exist.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::routing::get;
use dispatch_transport_kit::ApiError;
use dispatch_transport_kit::input::check_id;
use dispatch_wire::TodoListResponse;

use crate::store::TodoStore;

/// The route this extension mounts.
pub const PATH: &str = "/conversations/{id}/todos";

/// The router to mount.
pub fn router(store: Arc<TodoStore>) -> Router {
    Router::new().route(PATH, get(list)).with_state(store)
}

async fn list(
    State(store): State<Arc<TodoStore>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<TodoListResponse>, ApiError> {
    let Path(id) = id.map_err(|rejection| ApiError::invalid("id", rejection.body_text()))?;
    check_id("id", &id)?;
    let record = store.get(&id).await.map_err(ApiError::internal)?;
    let (todos, updated_at) = match record {
        Some(record) => (record.todos, Some(record.updated_at)),
        None => (Vec::new(), None),
    };
    Ok(Json(TodoListResponse {
        conversation_id: id.into(),
        todos,
        updated_at,
    }))
}
