//! The `web_search` tool: its spec, and the Firecrawl client that runs one validated
//! [`Request`] — every request and every poll sleep raced against the call's cancel token.

use std::time::Duration;

use async_trait::async_trait;
use dispatch_kernel::abi::{Capability, Tool, ToolCtx, ToolError, ToolOutput, ToolSpec};
use dispatch_provider_kit::Redactor;
use dispatch_stdx::Secret;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::args::{self, Request};
use crate::config::Settings;
use crate::error::Error;
use crate::format::{self, CrawlStatus, Link, Page};

/// The tool's name, as the model calls it.
pub const NAME: &str = "web_search";

/// A Firecrawl response larger than this is refused rather than held in memory.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The `web_search` tool bound to one Firecrawl API.
pub struct WebSearchTool {
    spec: ToolSpec,
    http: reqwest::Client,
    settings: Settings,
    key: Option<Secret>,
    redactor: Redactor,
}

impl std::fmt::Debug for WebSearchTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSearchTool")
            .field("settings", &self.settings)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl WebSearchTool {
    /// A tool calling the API at `settings.base_url`, sending `key` as a bearer token.
    pub fn new(settings: Settings, key: Option<Secret>) -> crate::error::Result<WebSearchTool> {
        // Redirects are not followed: every request goes to `base_url` and nowhere else.
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("dispatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| Error::Client(format!("cannot build the HTTP client: {err}")))?;
        let description = format!(
            "Search the web and read web pages (through Firecrawl). Modes:\n\
             - search: web search for `query`; returns titles, URLs and snippets (`limit` 1-20, default 5).\n\
             - scrape: one page at `url` as markdown. Use it to read a result of a search.\n\
             - crawl: several pages of the site at `url` as markdown (`limit` 1-50, default 10); slow, prefer scrape for one page.\n\
             - map: the URLs of the site at `url`, optionally only those related to `search`.\n\
             Output beyond {} KiB is truncated.",
            settings.max_result_bytes / 1024
        );
        Ok(WebSearchTool {
            spec: ToolSpec {
                name: NAME.to_string(),
                description,
                input_schema: args::schema(),
                concurrency_safe: true,
                capabilities: vec![Capability::Network],
            },
            http,
            redactor: Redactor::new(key.clone()),
            settings,
            key,
        })
    }

    /// The formatted (not yet truncated) answer to `request`.
    async fn run(
        &self,
        request: &Request,
        cancel: &CancellationToken,
    ) -> Result<String, ToolError> {
        match request {
            Request::Search { query, limit } => {
                let body = self
                    .send(
                        Method::POST,
                        "/v1/search",
                        Some(json!({"query": query, "limit": limit})),
                        cancel,
                    )
                    .await?;
                let results =
                    format::search_results(&body).map_err(|err| unexpected("search", &err))?;
                Ok(format::search(query, &results))
            }
            Request::Scrape { url } => {
                let body = self
                    .send(
                        Method::POST,
                        "/v1/scrape",
                        Some(json!({"url": url, "formats": ["markdown"]})),
                        cancel,
                    )
                    .await?;
                let page: Page = field(&body, "data", "scrape")?;
                Ok(format::scrape(url, &page))
            }
            Request::Crawl { url, limit } => self.crawl(url, *limit, cancel).await,
            Request::Map { url, search } => {
                let mut payload = json!({"url": url});
                if let Some(search) = search {
                    payload["search"] = json!(search);
                }
                let body = self
                    .send(Method::POST, "/v1/map", Some(payload), cancel)
                    .await?;
                let links: Vec<Link> = field(&body, "links", "map")?;
                Ok(format::map(url, &links))
            }
        }
    }

    /// Starts a crawl and polls it until it completes, fails, or `crawl_max_wait` passes
    /// (then the pages so far are returned with a note).
    async fn crawl(
        &self,
        url: &str,
        limit: u64,
        cancel: &CancellationToken,
    ) -> Result<String, ToolError> {
        let payload =
            json!({"url": url, "limit": limit, "scrapeOptions": {"formats": ["markdown"]}});
        let started = self
            .send(Method::POST, "/v1/crawl", Some(payload), cancel)
            .await?;
        let id = started
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| {
                !id.is_empty()
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .ok_or_else(|| {
                ToolError::Fatal(
                    "web_search failed: Firecrawl started a crawl without a usable id".into(),
                )
            })?;
        let deadline = Instant::now() + self.settings.crawl_max_wait;
        let path = format!("/v1/crawl/{id}");
        loop {
            let body = self.send(Method::GET, &path, None, cancel).await?;
            let status: CrawlStatus =
                serde_json::from_value(body).map_err(|err| unexpected("crawl status", &err))?;
            match status.status.as_str() {
                "completed" => {
                    return Ok(format::crawl(
                        url,
                        &status,
                        None,
                        self.settings.max_result_bytes,
                    ));
                }
                "failed" | "cancelled" => {
                    let reason = status
                        .error
                        .as_deref()
                        .map(|e| format!(": {}", self.redactor.redact(e)))
                        .unwrap_or_default();
                    return Err(ToolError::Model(format!(
                        "web_search failed: the crawl of {url} {}{reason}",
                        status.status
                    )));
                }
                _ => {}
            }
            if Instant::now() + self.settings.crawl_poll > deadline {
                let note = format!(
                    "the crawl was still {} after {}s; these are the pages received so far",
                    if status.status.is_empty() {
                        "running"
                    } else {
                        status.status.as_str()
                    },
                    self.settings.crawl_max_wait.as_secs()
                );
                tracing::info!(
                    url,
                    crawl = id,
                    "Crawl not completed in time; returning partial pages"
                );
                return Ok(format::crawl(
                    url,
                    &status,
                    Some(&note),
                    self.settings.max_result_bytes,
                ));
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(ToolError::Aborted),
                () = tokio::time::sleep(self.settings.crawl_poll) => {}
            }
        }
    }

    /// One request to the API: the decoded JSON body of a success, or the error the model
    /// reads. Never waits past `cancel`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        cancel: &CancellationToken,
    ) -> Result<Value, ToolError> {
        let url = format!("{}{path}", self.settings.base_url);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .timeout(self.settings.timeout)
            .header(ACCEPT, "application/json");
        if let Some(key) = &self.key {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                    ToolError::Fatal(
                        "web_search: the Firecrawl API key is not a valid header value".into(),
                    )
                })?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        tracing::debug!(%method, path, "Firecrawl request");
        let exchange = async {
            let mut response = request
                .send()
                .await
                .map_err(|err| self.transport_error(&err))?;
            let status = response.status();
            let mut bytes = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|err| self.transport_error(&err))?
            {
                if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(ToolError::Fatal(format!(
                        "web_search failed: Firecrawl's response exceeds {} MiB",
                        MAX_BODY_BYTES / (1024 * 1024)
                    )));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok((status, bytes))
        };
        let (status, bytes) = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(ToolError::Aborted),
            exchange = exchange => exchange?,
        };
        let json: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status.is_success() {
            let Some(json) = json else {
                return Err(ToolError::Fatal(format!(
                    "web_search failed: Firecrawl answered {path} with something other than JSON: {}",
                    self.excerpt(&bytes)
                )));
            };
            if json.get("success") == Some(&Value::Bool(false)) {
                return Err(ToolError::Model(format!(
                    "web_search: Firecrawl reported an error: {}",
                    self.reason(Some(&json), &bytes)
                )));
            }
            return Ok(json);
        }
        let reason = self.reason(json.as_ref(), &bytes);
        tracing::debug!(%status, path, "Firecrawl error response");
        if status.is_client_error() {
            let hint = match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    " (check the Firecrawl API key configured for web_search)"
                }
                _ => "",
            };
            Err(ToolError::Model(format!(
                "web_search: Firecrawl refused the request ({status}): {reason}{hint}"
            )))
        } else if status.is_redirection() {
            Err(ToolError::Model(format!(
                "web_search failed: Firecrawl answered {status}, a redirect, which is not followed; \
                 the configured base_url may be wrong"
            )))
        } else {
            Err(ToolError::Model(format!(
                "web_search failed: Firecrawl answered {status}: {reason}; this may be temporary, try again later"
            )))
        }
    }

    /// Firecrawl's `error` message, else an excerpt of the body.
    fn reason(&self, json: Option<&Value>, bytes: &[u8]) -> String {
        match json.and_then(|j| j.get("error")).and_then(Value::as_str) {
            Some(error) if !error.trim().is_empty() => self.redactor.redact(error.trim()),
            _ if bytes.is_empty() => "no details".to_string(),
            _ => self.excerpt(bytes),
        }
    }

    fn excerpt(&self, bytes: &[u8]) -> String {
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim();
        let mut cut = text.len().min(300);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let ellipsis = if cut < text.len() { "…" } else { "" };
        self.redactor.redact(&format!("{}{ellipsis}", &text[..cut]))
    }

    fn transport_error(&self, err: &reqwest::Error) -> ToolError {
        if err.is_timeout() {
            return ToolError::Model(format!(
                "web_search failed: Firecrawl did not answer within {}s; try again later or ask for less",
                self.settings.timeout.as_secs()
            ));
        }
        let mut message = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        let what = if err.is_connect() {
            format!("cannot connect to Firecrawl at {}", self.settings.base_url)
        } else {
            "the request to Firecrawl failed".to_string()
        };
        ToolError::Model(
            self.redactor
                .redact(&format!("web_search failed: {what} ({message})")),
        )
    }
}

/// `body[name]` decoded as `T`.
fn field<T: DeserializeOwned>(body: &Value, name: &str, what: &str) -> Result<T, ToolError> {
    let value = body.get(name).cloned().unwrap_or(Value::Null);
    serde_json::from_value(value).map_err(|err| unexpected(what, &err))
}

fn unexpected(what: &str, err: &serde_json::Error) -> ToolError {
    ToolError::Fatal(format!(
        "web_search failed: unexpected {what} response from Firecrawl: {err}"
    ))
}

#[async_trait]
impl Tool for WebSearchTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, input: Value, ctx: ToolCtx) -> Result<ToolOutput, ToolError> {
        let request = args::parse(&input)?;
        if ctx.cancel.is_cancelled() {
            return Err(ToolError::Aborted);
        }
        let text = self.run(&request, &ctx.cancel).await?;
        Ok(ToolOutput::text(format::truncate(
            &text,
            self.settings.max_result_bytes,
        )))
    }
}
