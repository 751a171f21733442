//! [`AnthropicProvider`]: one instance of the Messages API, with its HTTP client, headers,
//! catalog and prompt-prefix tracker.

use std::sync::Arc;

use async_trait::async_trait;
use dispatch_kernel::abi::{
    ModelCatalog, Provider, ProviderError, ProviderEvent, ProviderRequest, ProviderStream,
};
use dispatch_provider_kit::{ErrorCtx, PrefixTracker, Redactor, assemble, http, sse};
use dispatch_stdx::{Cancelled, Secret, or_cancel};
use dispatch_wire::ModelInfo;
use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::{DEFAULT_BASE_URL, InstanceConfig};
use crate::error::{Error, Result};
use crate::request;
use crate::stream::AnthropicAssembler;

/// The provider kind the catalog lists Anthropic models under.
const KIND: &str = "anthropic";

/// Pages of `GET /v1/models` read at most (1000 models each).
const MAX_MODEL_PAGES: usize = 20;

/// One Anthropic Messages endpoint.
pub struct AnthropicProvider {
    id: Arc<str>,
    base_url: String,
    messages_url: String,
    models_url: String,
    /// `x-api-key` (sensitive), `anthropic-version`, `anthropic-beta`.
    auth_headers: HeaderMap,
    has_key: bool,
    client: reqwest::Client,
    redactor: Redactor,
    catalog: Arc<dyn ModelCatalog>,
    tracker: PrefixTracker,
}

impl AnthropicProvider {
    /// The instance `name` with `config` (`base_url` `None` = [`DEFAULT_BASE_URL`]) and its
    /// key, if any. Fails when the key, version or beta names are not valid header values,
    /// or the client cannot be built.
    pub fn new(
        name: &str,
        config: InstanceConfig,
        key: Option<Secret>,
        catalog: Arc<dyn ModelCatalog>,
    ) -> Result<AnthropicProvider> {
        let invalid = |message: String| Error::Instance {
            instance: name.to_owned(),
            message,
        };
        let base_url = config
            .base_url
            .as_deref()
            .unwrap_or(DEFAULT_BASE_URL)
            .trim()
            .trim_end_matches('/')
            .to_owned();
        if reqwest::Url::parse(&base_url).is_err() {
            return Err(invalid(format!("base_url `{base_url}` is not a URL")));
        }
        let key = key.filter(|k| !k.is_empty());
        let mut auth_headers = HeaderMap::new();
        if let Some(key) = &key {
            let mut value = HeaderValue::from_str(key.expose())
                .map_err(|_| invalid("the API key is not a valid header value".to_owned()))?;
            value.set_sensitive(true);
            auth_headers.insert(HeaderName::from_static("x-api-key"), value);
        }
        let version = HeaderValue::from_str(&config.version).map_err(|_| {
            invalid(format!(
                "version `{}` is not a valid header",
                config.version
            ))
        })?;
        auth_headers.insert(HeaderName::from_static("anthropic-version"), version);
        if !config.beta.is_empty() {
            let beta = config.beta.join(",");
            let value = HeaderValue::from_str(&beta)
                .map_err(|_| invalid(format!("beta `{beta}` is not a valid header")))?;
            auth_headers.insert(HeaderName::from_static("anthropic-beta"), value);
        }
        let client = http::client(&config.http).map_err(invalid)?;
        Ok(AnthropicProvider {
            id: Arc::from(name),
            messages_url: format!("{base_url}/v1/messages"),
            models_url: format!("{base_url}/v1/models"),
            base_url,
            has_key: key.is_some(),
            redactor: Redactor::new(key),
            auth_headers,
            client,
            catalog,
            tracker: PrefixTracker::default(),
        })
    }

    /// `{base_url}` without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Whether requests carry an `x-api-key`.
    pub fn has_key(&self) -> bool {
        self.has_key
    }

    fn error_ctx(&self, model: &str) -> ErrorCtx {
        ErrorCtx::new(self.id.clone(), model, self.redactor.clone())
    }

    /// Every model id `GET /v1/models` lists, following `has_more`/`last_id` pages.
    async fn list_models(&self) -> Result<Vec<String>, ProviderError> {
        let ctx = self.error_ctx("models");
        let mut ids = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_MODEL_PAGES {
            let mut query = vec![("limit", "1000".to_owned())];
            if let Some(after) = &after {
                query.push(("after_id", after.clone()));
            }
            let response = self
                .client
                .get(&self.models_url)
                .headers(self.auth_headers.clone())
                .query(&query)
                .send()
                .await
                .map_err(|err| ctx.transport(&err))?;
            let status = response.status();
            let headers = response.headers().clone();
            let text = response.text().await.map_err(|err| ctx.transport(&err))?;
            if !status.is_success() {
                return Err(ctx.status(status.as_u16(), &headers, &text));
            }
            let page: Value = serde_json::from_str(&text)
                .map_err(|err| ctx.malformed(&format!("model list: {err}")))?;
            let listed = page["data"]
                .as_array()
                .ok_or_else(|| ctx.malformed("model list without `data`"))?;
            ids.extend(
                listed
                    .iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_owned)),
            );
            let next = page["last_id"].as_str().map(str::to_owned);
            if page["has_more"] != true || next.is_none() || next == after {
                return Ok(ids);
            }
            after = next;
        }
        Ok(ids)
    }
}

#[async_trait]
impl Provider for AnthropicProvider {
    fn id(&self) -> &str {
        &self.id
    }

    async fn models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        match self.list_models().await {
            Ok(ids) => Ok(ids
                .iter()
                .map(|id| self.catalog.model(&self.id, id))
                .collect()),
            Err(err) => {
                tracing::warn!(
                    provider = %self.id,
                    error = %err.message,
                    "Cannot list the endpoint's models; listing the catalog's"
                );
                Ok(self.catalog.list(&self.id, KIND))
            }
        }
    }

    async fn stream(
        &self,
        request: &ProviderRequest,
        cancel: CancellationToken,
    ) -> Result<ProviderStream, ProviderError> {
        let ctx = self.error_ctx(&request.model);
        let info = self.catalog.model(&self.id, &request.model);
        let serialized = request::serialize(request, &info)
            .map_err(|err| ctx.invalid_request(&format!("cannot serialize the request: {err}")))?;
        let prefix = self.tracker.record(
            request.conversation_id.as_ref(),
            serialized.prefix.finish(&self.id, &request.model),
        );
        tracing::trace!(
            provider = %self.id,
            model = %request.model,
            bytes = serialized.body.len(),
            breakpoints = serialized.breakpoints,
            prefix_hash = prefix.blocks.last().map(|b| b.prefix_hash.as_str()),
            "Sending a messages request"
        );
        let send = self
            .client
            .post(&self.messages_url)
            .headers(self.auth_headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "text/event-stream")
            .body(serialized.body)
            .send();
        let response = match or_cancel(&cancel, send).await {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => return Err(ctx.transport(&err)),
            Err(Cancelled) => return Err(ctx.cancelled()),
        };
        let status = response.status();
        if !status.is_success() {
            let headers = response.headers().clone();
            let body = match or_cancel(&cancel, response.text()).await {
                Ok(Ok(body)) => body,
                Ok(Err(err)) => {
                    tracing::debug!(error = %ctx.redactor.redact(&err.to_string()), "Cannot read the error body");
                    String::new()
                }
                Err(Cancelled) => return Err(ctx.cancelled()),
            };
            return Err(ctx.status(status.as_u16(), &headers, &body));
        }
        // A `200` that is not a stream (a proxy answering JSON) would otherwise look like a
        // stream cut short and be retried forever.
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("text/event-stream")
            .to_owned();
        if !content_type.contains("event-stream") {
            return Err(ctx.malformed(&format!(
                "expected an event stream, got a `{content_type}` answer"
            )));
        }
        let events = Box::pin(sse::decode(response.bytes_stream(), ctx.clone()));
        let body = assemble(events, AnthropicAssembler::new(ctx), cancel);
        let first =
            futures::stream::once(futures::future::ready(Ok(ProviderEvent::Prefix(prefix))));
        Ok(first.chain(body).boxed())
    }
}
