//! Server-level routes: health, models, throughput samples, the OpenAPI document.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use dispatch_transport_kit::ApiError;
use dispatch_wire::{HealthResponse, ModelsResponse, ThroughputResponse, WIRE_VERSION};
use schemars::JsonSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::extract::{FromQuery, Query, QueryPairs};
use crate::openapi::{DocInput, DocOutput, OperationDoc, Schemas};
use crate::state::AppState;

/// Facts about the API itself, computed once when the app is built.
pub struct ApiMeta {
    /// The OpenAPI document, serialized.
    pub openapi: Bytes,
    /// First path segments the API owns (`conversations`, `health`, ...), which the static
    /// SPA fallback leaves alone.
    pub prefixes: Vec<String>,
}

impl<T> DocInput for Extension<T> {
    fn document(_doc: &mut OperationDoc, _schemas: &mut Schemas) {}
}

pub async fn health(State(state): State<AppState>) -> Result<Json<HealthResponse>, ApiError> {
    Ok(Json(HealthResponse {
        status: "ok".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        wire_version: WIRE_VERSION.to_owned(),
        uptime_ms: state.uptime_ms(),
    }))
}

pub async fn models(State(state): State<AppState>) -> Result<Json<ModelsResponse>, ApiError> {
    let list = state.session()?.models().await;
    Ok(Json(ModelsResponse {
        models: list.models,
        default_model: list.default_model,
    }))
}

/// `GET /metrics/throughput` filters.
#[derive(Debug, Default, JsonSchema)]
#[schemars(rename_all = "camelCase")]
pub struct ThroughputQuery {
    /// Only samples of this model.
    model: Option<String>,
    /// Only the newest this many samples (a positive integer).
    #[schemars(range(min = 1))]
    limit: Option<u64>,
}

impl FromQuery for ThroughputQuery {
    fn from_query(query: &mut QueryPairs) -> Result<ThroughputQuery, ApiError> {
        let model = query.take("model")?.filter(|m| !m.is_empty());
        if model.as_ref().is_some_and(|m| m.len() > 200) {
            return Err(ApiError::invalid("model", "must be at most 200 bytes"));
        }
        Ok(ThroughputQuery {
            model,
            limit: query.positive("limit")?,
        })
    }
}

pub async fn throughput(
    State(state): State<AppState>,
    Query(query): Query<ThroughputQuery>,
) -> Result<Json<ThroughputResponse>, ApiError> {
    let limit = query
        .limit
        .map(|limit| usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(Json(ThroughputResponse {
        samples: state.throughput().recent(query.model.as_deref(), limit),
    }))
}

/// The serialized OpenAPI document.
pub struct OpenApiJson(Bytes);

impl IntoResponse for OpenApiJson {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl DocOutput for OpenApiJson {
    fn document(doc: &mut OperationDoc, _schemas: &mut Schemas) {
        let schema = RefOr::T(Schema::Object(
            ObjectBuilder::new().schema_type(Type::Object).build(),
        ));
        doc.success(
            "200",
            ResponseBuilder::new()
                .description("This document (OpenAPI 3.1)")
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(schema)).build(),
                )
                .build(),
        );
    }
}

pub async fn openapi(Extension(meta): Extension<Arc<ApiMeta>>) -> Result<OpenApiJson, ApiError> {
    Ok(OpenApiJson(meta.openapi.clone()))
}
