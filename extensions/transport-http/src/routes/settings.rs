//! Per-conversation settings: cwd, model, reasoning effort, auto-compact percent, title.
//!
//! Reads of an unknown conversation are 404s. Writes create it (a frontend sets the cwd
//! or model of a new tab before its first message), in the given workspace for the cwd.

use axum::Json;
use axum::extract::State;
use dispatch_kernel::abi::{ConversationStore, WorkspaceUpdate};
use dispatch_transport_kit::ApiError;
use dispatch_wire::{
    CompactPercentResponse, CwdResponse, Id, ModelResponse, ReasoningEffort,
    ReasoningEffortResponse, SetCompactPercentRequest, SetCwdRequest, SetModelRequest,
    SetReasoningEffortRequest, SetTitleRequest, TitleResponse,
};

use crate::extract::{Body, ConversationId, check_slug, check_text};
use crate::routes::conversations::require;
use crate::state::AppState;

/// The effort a turn gets when neither the turn nor the conversation sets one.
pub const DEFAULT_EFFORT: ReasoningEffort = ReasoningEffort::High;

async fn cwd_response(
    store: &dyn ConversationStore,
    id: String,
) -> Result<Json<CwdResponse>, ApiError> {
    let settings = store.settings(&id).await?;
    let effective = store.effective_cwd(&id, None).await?;
    Ok(Json(CwdResponse {
        conversation_id: Id::from(id),
        cwd: settings.cwd,
        effective_cwd: Some(effective.display().to_string()),
    }))
}

pub async fn get_cwd(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
) -> Result<Json<CwdResponse>, ApiError> {
    let store = state.store()?;
    require(&*store, &id).await?;
    cwd_response(&*store, id).await
}

/// Ensures the workspace, moves the conversation into it (creating the conversation when
/// new), then sets the cwd, so a relative cwd resolves against the right workspace.
pub async fn put_cwd(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    Body(request): Body<SetCwdRequest>,
) -> Result<Json<CwdResponse>, ApiError> {
    check_text("cwd", &request.cwd, 4096)?;
    if let Some(workspace) = &request.workspace_id {
        check_slug("workspaceId", workspace)?;
    }
    let store = state.store()?;
    match &request.workspace_id {
        Some(workspace) => {
            if store.workspace(workspace).await?.is_none() {
                store
                    .put_workspace(workspace, WorkspaceUpdate::default())
                    .await?;
            }
            let meta = store.ensure(&id, Some(workspace)).await?;
            if meta.workspace_id != *workspace {
                store.set_workspace(&id, workspace).await?;
            }
        }
        None => {
            store.ensure(&id, None).await?;
        }
    }
    store.set_cwd(&id, Some(&request.cwd)).await?;
    cwd_response(&*store, id).await
}

pub async fn delete_cwd(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
) -> Result<Json<CwdResponse>, ApiError> {
    let store = state.store()?;
    require(&*store, &id).await?;
    store.set_cwd(&id, None).await?;
    cwd_response(&*store, id).await
}

pub async fn get_model(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
) -> Result<Json<ModelResponse>, ApiError> {
    let store = state.store()?;
    require(&*store, &id).await?;
    let model = store.settings(&id).await?.model;
    Ok(Json(ModelResponse {
        conversation_id: Id::from(id),
        model,
    }))
}

pub async fn put_model(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    Body(request): Body<SetModelRequest>,
) -> Result<Json<ModelResponse>, ApiError> {
    check_text("model", &request.model, 200)?;
    let store = state.store()?;
    store.ensure(&id, None).await?;
    store.set_model(&id, Some(&request.model)).await?;
    let model = store.settings(&id).await?.model;
    Ok(Json(ModelResponse {
        conversation_id: Id::from(id),
        model,
    }))
}

pub async fn get_reasoning_effort(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
) -> Result<Json<ReasoningEffortResponse>, ApiError> {
    let store = state.store()?;
    require(&*store, &id).await?;
    let effort = store
        .settings(&id)
        .await?
        .reasoning_effort
        .unwrap_or(DEFAULT_EFFORT);
    Ok(Json(ReasoningEffortResponse {
        conversation_id: Id::from(id),
        effort,
    }))
}

pub async fn put_reasoning_effort(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    Body(request): Body<SetReasoningEffortRequest>,
) -> Result<Json<ReasoningEffortResponse>, ApiError> {
    let store = state.store()?;
    store.ensure(&id, None).await?;
    store
        .set_reasoning_effort(&id, Some(request.effort))
        .await?;
    Ok(Json(ReasoningEffortResponse {
        conversation_id: Id::from(id),
        effort: request.effort,
    }))
}

pub async fn get_compact_percent(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
) -> Result<Json<CompactPercentResponse>, ApiError> {
    let store = state.store()?;
    require(&*store, &id).await?;
    let percent = store.settings(&id).await?.compact_percent;
    Ok(Json(CompactPercentResponse {
        conversation_id: Id::from(id),
        percent,
    }))
}

pub async fn put_compact_percent(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    Body(request): Body<SetCompactPercentRequest>,
) -> Result<Json<CompactPercentResponse>, ApiError> {
    if request.percent.is_some_and(|percent| percent > 100) {
        return Err(ApiError::invalid(
            "percent",
            "must be 0 to 100 (0 = manual compaction only), or null for the server default",
        ));
    }
    let store = state.store()?;
    store.ensure(&id, None).await?;
    store.set_compact_percent(&id, request.percent).await?;
    Ok(Json(CompactPercentResponse {
        conversation_id: Id::from(id),
        percent: request.percent,
    }))
}

pub async fn get_title(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
) -> Result<Json<TitleResponse>, ApiError> {
    let store = state.store()?;
    let meta = require(&*store, &id).await?;
    Ok(Json(TitleResponse {
        conversation_id: meta.id,
        title: meta.title,
    }))
}

pub async fn put_title(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    Body(request): Body<SetTitleRequest>,
) -> Result<Json<TitleResponse>, ApiError> {
    check_text("title", &request.title, 1024)?;
    let store = state.store()?;
    store.ensure(&id, None).await?;
    let meta = store.set_title(&id, &request.title).await?;
    Ok(Json(TitleResponse {
        conversation_id: meta.id,
        title: meta.title,
    }))
}
