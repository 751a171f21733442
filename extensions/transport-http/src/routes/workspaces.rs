//! Workspaces: list, read, create-or-update, delete (closing their conversations).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use dispatch_kernel::abi::{ConversationFilter, WorkspaceUpdate};
use dispatch_transport_kit::ApiError;
use dispatch_wire::{
    DEFAULT_WORKSPACE_ID, DeleteWorkspaceResponse, PutWorkspaceRequest, Workspace,
    WorkspaceListResponse,
};

use crate::extract::{Body, WorkspaceId, check_text};
use crate::state::AppState;

pub async fn list(State(state): State<AppState>) -> Result<Json<WorkspaceListResponse>, ApiError> {
    let workspaces = state.store()?.workspaces().await?;
    Ok(Json(WorkspaceListResponse { workspaces }))
}

pub async fn get(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
) -> Result<Json<Workspace>, ApiError> {
    state
        .store()?
        .workspace(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("workspace", &id))
}

/// Creates the workspace when missing, then applies what is given. `defaultCwd: ""` clears
/// the default cwd (the request type cannot tell null from absent).
pub async fn put(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
    Body(request): Body<PutWorkspaceRequest>,
) -> Result<Json<Workspace>, ApiError> {
    if let Some(title) = &request.title {
        check_text("title", title, 1024)?;
    }
    let default_cwd = match request.default_cwd {
        None => None,
        Some(cwd) if cwd.is_empty() => Some(None),
        Some(cwd) => {
            check_text("defaultCwd", &cwd, 4096)?;
            Some(Some(cwd))
        }
    };
    let workspace = state
        .store()?
        .put_workspace(
            &id,
            WorkspaceUpdate {
                title: request.title,
                default_cwd,
            },
        )
        .await?;
    Ok(Json(workspace))
}

/// Stops turns running in the workspace, then closes its conversations and moves them to
/// `default`. Deleting `default` is a 409.
pub async fn delete(
    State(state): State<AppState>,
    WorkspaceId(id): WorkspaceId,
) -> Result<Json<DeleteWorkspaceResponse>, ApiError> {
    if id == DEFAULT_WORKSPACE_ID {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "the default workspace cannot be deleted",
        ));
    }
    let store = state.store()?;
    if store.workspace(&id).await?.is_none() {
        return Err(ApiError::not_found("workspace", &id));
    }
    if let Ok(session) = state.session() {
        let members = store
            .list(&ConversationFilter {
                workspace_id: Some(id.clone()),
                ..ConversationFilter::default()
            })
            .await?;
        for meta in members.iter().filter(|m| session.is_active(&m.id)) {
            if let Err(err) = session.stop(&meta.id).await {
                tracing::warn!(conversation_id = %meta.id, error = %err, "Cannot stop a turn of a deleted workspace");
            }
        }
    }
    let closed_count = store.delete_workspace(&id).await?;
    Ok(Json(DeleteWorkspaceResponse {
        workspace_id: id,
        closed_count,
    }))
}
