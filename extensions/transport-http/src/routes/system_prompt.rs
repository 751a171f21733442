//! The system-prompt template and its variables.

use axum::Json;
use axum::extract::State;
use dispatch_transport_kit::ApiError;
use dispatch_wire::{SetSystemPromptRequest, SystemPromptResponse, SystemPromptVariablesResponse};

use crate::extract::Body;
use crate::state::AppState;

pub async fn get(State(state): State<AppState>) -> Result<Json<SystemPromptResponse>, ApiError> {
    let template = state.system_prompt()?.template().await?;
    Ok(Json(SystemPromptResponse {
        template: template.template,
        is_default: template.is_default,
    }))
}

pub async fn put(
    State(state): State<AppState>,
    Body(request): Body<SetSystemPromptRequest>,
) -> Result<Json<SystemPromptResponse>, ApiError> {
    if request
        .template
        .as_deref()
        .is_some_and(|t| t.contains('\0'))
    {
        return Err(ApiError::invalid("template", "must not contain NUL"));
    }
    let template = state
        .system_prompt()?
        .set_template(request.template.as_deref())
        .await?;
    Ok(Json(SystemPromptResponse {
        template: template.template,
        is_default: template.is_default,
    }))
}

pub async fn variables(
    State(state): State<AppState>,
) -> Result<Json<SystemPromptVariablesResponse>, ApiError> {
    let variables = state.system_prompt()?.variables();
    Ok(Json(SystemPromptVariablesResponse { variables }))
}
