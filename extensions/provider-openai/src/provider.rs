//! [`OpenAiProvider`]: one configured instance (one endpoint, one key, one HTTP client, one
//! prompt-prefix tracker) implementing the kernel's `Provider`.

use std::sync::Arc;

use async_trait::async_trait;
use dispatch_kernel::abi::{
    ModelCatalog, Provider, ProviderError, ProviderEvent, ProviderRequest, ProviderStream,
};
use dispatch_kernel::{Cancelled, or_cancel};
use dispatch_provider_kit::{ErrorCtx, PrefixTracker, Redactor, assemble, http, sse};
use dispatch_stdx::Secret;
use dispatch_wire::ModelInfo;
use futures::StreamExt;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tokio_util::sync::CancellationToken;

use crate::chat::{self, ChatAssembler};
use crate::config::{Api, InstanceConfig};
use crate::encode::effort_name;
use crate::error::{Error, Result};
use crate::responses::{self, ResponsesAssembler};

/// One OpenAI-compatible endpoint as a [`Provider`] named after its instance.
pub struct OpenAiProvider {
    config: InstanceConfig,
    id: Arc<str>,
    client: reqwest::Client,
    /// `Authorization` (when a key is set, marked sensitive) and the configured extras.
    headers: HeaderMap,
    redactor: Redactor,
    has_key: bool,
    catalog: Arc<dyn ModelCatalog>,
    prefixes: PrefixTracker,
}

impl std::fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("config", &self.config)
            .field("has_key", &self.has_key)
            .finish_non_exhaustive()
    }
}

impl OpenAiProvider {
    /// A provider for `config`, sending `key` as a bearer token when given, asking
    /// `catalog` whether a model takes a reasoning effort and what a listed model is.
    pub fn new(
        config: InstanceConfig,
        key: Option<Secret>,
        catalog: Arc<dyn ModelCatalog>,
    ) -> Result<OpenAiProvider> {
        let invalid = |message: String| Error::Config {
            instance: config.name.clone(),
            message,
        };
        let mut headers = HeaderMap::new();
        for (name, value) in config.headers.iter() {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("header `{name}` is not a valid header name")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("header `{name}` has an invalid value")))?;
            headers.insert(name, value);
        }
        if let Some(key) = &key {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                .map_err(|_| invalid("the API key is not a valid header value".to_owned()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let client = http::client(&config.http).map_err(|message| Error::Client {
            instance: config.name.clone(),
            message,
        })?;
        Ok(OpenAiProvider {
            id: Arc::from(config.name.as_str()),
            client,
            headers,
            has_key: key.is_some(),
            redactor: Redactor::new(key),
            catalog,
            prefixes: PrefixTracker::default(),
            config,
        })
    }

    pub fn config(&self) -> &InstanceConfig {
        &self.config
    }

    /// Whether requests carry an `Authorization` header.
    pub fn has_key(&self) -> bool {
        self.has_key
    }

    fn error_ctx(&self, model: &str) -> ErrorCtx {
        ErrorCtx::new(self.id.clone(), model, self.redactor.clone())
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.config.base_url)
    }

    /// `GET {base_url}/models`: the ids the endpoint lists.
    async fn list_remote(&self) -> std::result::Result<Vec<String>, ProviderError> {
        let ctx = self.error_ctx("model listing");
        let response = self
            .client
            .get(self.url("models"))
            .headers(self.headers.clone())
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|err| ctx.transport(&err))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(|err| ctx.transport(&err))?;
        if !status.is_success() {
            return Err(ctx.status(status.as_u16(), &headers, &body));
        }
        let listing: serde_json::Value = serde_json::from_str(&body)
            .map_err(|err| ctx.malformed(&format!("model listing: {err}")))?;
        // Ollama with no model pulled lists `"data": null`.
        if listing["data"].is_null() && listing["object"] == "list" {
            return Ok(Vec::new());
        }
        let Some(data) = listing["data"].as_array() else {
            return Err(ctx.malformed("model listing has no `data` array"));
        };
        Ok(data
            .iter()
            .filter_map(|model| model["id"].as_str())
            .map(str::to_owned)
            .collect())
    }
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn id(&self) -> &str {
        &self.id
    }

    /// The static `models` list, else the endpoint's `GET /models`, else (with a warning)
    /// the catalog's models of the instance's `catalog_kind` (none for a local instance).
    async fn models(&self) -> std::result::Result<Vec<ModelInfo>, ProviderError> {
        let name = &self.config.name;
        if let Some(models) = &self.config.models {
            return Ok(models
                .iter()
                .map(|id| self.catalog.model(name, id))
                .collect());
        }
        match self.list_remote().await {
            Ok(ids) => Ok(ids.iter().map(|id| self.catalog.model(name, id)).collect()),
            Err(err) if self.config.local => {
                tracing::warn!(instance = %name, error = %err, "Cannot list the models of a local instance; listing none");
                Ok(Vec::new())
            }
            Err(err) => {
                tracing::warn!(instance = %name, kind = %self.config.catalog_kind, error = %err, "Cannot list the instance's models; listing the catalog's");
                Ok(self.catalog.list(name, &self.config.catalog_kind))
            }
        }
    }

    async fn stream(
        &self,
        request: &ProviderRequest,
        cancel: CancellationToken,
    ) -> std::result::Result<ProviderStream, ProviderError> {
        let ctx = self.error_ctx(&request.model);
        let effort = request
            .reasoning_effort
            .filter(|_| self.catalog.model(&self.id, &request.model).reasoning)
            .map(effort_name);
        let (encoded, path) = match self.config.api {
            Api::Chat => (
                chat::encode(&self.config, request, effort),
                "chat/completions",
            ),
            Api::Responses => (responses::encode(request, effort), "responses"),
        };
        let encoded = encoded
            .map_err(|err| ctx.invalid_request(&format!("cannot serialize the request: {err}")))?;
        let prefix = self.prefixes.record(
            request.conversation_id.as_ref(),
            encoded.prefix.finish(&self.id, &request.model),
        );
        tracing::trace!(
            instance = %self.id,
            model = %request.model,
            bytes = encoded.body.len(),
            prefix_hash = prefix.blocks.last().map(|b| b.prefix_hash.as_str()),
            "Sending the provider request"
        );

        let send = self
            .client
            .post(self.url(path))
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "text/event-stream")
            .body(encoded.body)
            .send();
        let response = match or_cancel(&cancel, send).await {
            Err(Cancelled) => return Err(ctx.cancelled()),
            Ok(Err(err)) => return Err(ctx.transport(&err)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if !status.is_success() {
            let headers = response.headers().clone();
            let body = match or_cancel(&cancel, response.text()).await {
                Err(Cancelled) => return Err(ctx.cancelled()),
                Ok(body) => body.unwrap_or_default(),
            };
            return Err(ctx.status(status.as_u16(), &headers, &body));
        }
        let head = futures::stream::once(async move { Ok(ProviderEvent::Prefix(prefix)) });

        let whole = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        if whole {
            let body = match or_cancel(&cancel, response.text()).await {
                Err(Cancelled) => return Err(ctx.cancelled()),
                Ok(Err(err)) => return Err(ctx.transport(&err)),
                Ok(Ok(body)) => body,
            };
            let events = match self.config.api {
                Api::Chat => chat::parse_completion(&body, &ctx)?,
                Api::Responses => responses::parse_response(&body, &ctx)?,
            };
            return Ok(head
                .chain(futures::stream::iter(events.into_iter().map(Ok)))
                .boxed());
        }

        let events = Box::pin(sse::decode(response.bytes_stream(), ctx.clone()));
        let body = match self.config.api {
            Api::Chat => assemble(events, ChatAssembler::new(ctx), cancel),
            Api::Responses => assemble(events, ResponsesAssembler::new(ctx), cancel),
        };
        Ok(head.chain(body).boxed())
    }
}
