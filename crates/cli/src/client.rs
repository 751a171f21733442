//! The HTTP client: one method per endpoint the CLI uses, and the translation of transport
//! failures into messages a person can act on (server down, token missing, server's own
//! `error` text).

use std::fmt;

use anyhow::{Context, Result};
use dispatch_wire::{
    ChatRequest, ConversationActionResponse, ConversationListResponse, ConversationMeta,
    ErrorResponse, LastMessageResponse, ModelsResponse, QueueRequest, QueueResponse,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::cli::DEFAULT_URL;

/// A 4xx/5xx answer from the server, with its `ErrorResponse` body (or a stand-in when the
/// body was not one). Kept typed so callers can react to a `code` such as `already-active`.
#[derive(Debug)]
pub struct ApiError {
    pub body: ErrorResponse,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.body.error)?;
        if let Some(field) = &self.body.field {
            write!(f, " (field `{field}`)")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

#[derive(Clone)]
pub struct Client {
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
}

/// An accepted `POST /chat`: the turn's ids from the headers and the NDJSON body still to read.
pub struct ChatResponse {
    pub conversation_id: Option<String>,
    pub response: Response,
}

impl Client {
    /// `base` may leave out the scheme (`127.0.0.1:24203` means `http://127.0.0.1:24203`);
    /// an empty one (`DISPATCH_URL=`) means the default.
    pub fn new(base: &str, token: Option<String>) -> Result<Client> {
        let base = match base.trim() {
            "" => DEFAULT_URL.to_owned(),
            given if given.contains("://") => given.to_owned(),
            given => format!("http://{given}"),
        };
        let base = Url::parse(&base).with_context(|| format!("invalid server URL `{base}`"))?;
        if base.cannot_be_a_base() {
            anyhow::bail!("invalid server URL `{base}`: not an http(s) base URL");
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("dispatch-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Client {
            base,
            token: token.filter(|t| !t.is_empty()),
            http,
        })
    }

    /// The base URL as the user gave it, for messages.
    pub fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        let builder = self.http.request(method, self.url(segments));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// Sends and turns every failure into a message: unreachable server, missing or rejected
    /// token, or the server's `ErrorResponse`.
    async fn send(&self, builder: RequestBuilder) -> Result<Response> {
        let response = builder
            .send()
            .await
            .map_err(|err| self.transport_error(&err))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == StatusCode::UNAUTHORIZED {
            anyhow::bail!(match self.token {
                None => "the server requires a token: set DISPATCH_TOKEN (or pass --token)",
                Some(_) => "the server rejected the token: check DISPATCH_TOKEN (or --token)",
            });
        }
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str::<ErrorResponse>(&text).unwrap_or_else(|_| {
            let text = text.trim();
            ErrorResponse {
                error: if text.is_empty() {
                    format!("the server answered {status}")
                } else {
                    format!("the server answered {status}: {text}")
                },
                field: None,
                code: None,
            }
        });
        Err(ApiError { body }.into())
    }

    /// Describes a failure below HTTP: the server is unreachable or the connection broke.
    pub fn transport_error(&self, err: &reqwest::Error) -> anyhow::Error {
        if err.is_connect() {
            anyhow::anyhow!(
                "cannot reach dispatch-server at {} (is it running? `dispatch-server`)",
                self.base()
            )
        } else {
            anyhow::anyhow!("talking to dispatch-server at {}: {err}", self.base())
        }
    }

    async fn json<T: DeserializeOwned>(&self, builder: RequestBuilder) -> Result<T> {
        let response = self.send(builder).await?;
        let url = response.url().path().to_owned();
        let bytes = response
            .bytes()
            .await
            .map_err(|err| self.transport_error(&err))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("unexpected answer from dispatch-server for {url}"))
    }

    /// `POST /chat`: starts a turn; the body is the turn's NDJSON event stream.
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let response = self
            .send(self.request(Method::POST, &["chat"]).json(request))
            .await?;
        let conversation_id = response
            .headers()
            .get("x-conversation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(ChatResponse {
            conversation_id,
            response,
        })
    }

    /// `GET /conversations?q=&status=&workspaceId=`.
    pub async fn conversations(
        &self,
        prefix: Option<&str>,
        status: Option<&str>,
        workspace: Option<&str>,
    ) -> Result<Vec<ConversationMeta>> {
        let query: Vec<(&str, &str)> = [
            ("q", prefix),
            ("status", status),
            ("workspaceId", workspace),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        let list: ConversationListResponse = self
            .json(self.request(Method::GET, &["conversations"]).query(&query))
            .await?;
        Ok(list.conversations)
    }

    /// `GET /conversations/:id/last`: waits for a running turn to settle.
    pub async fn last(&self, id: &str) -> Result<LastMessageResponse> {
        self.json(self.request(Method::GET, &["conversations", id, "last"]))
            .await
    }

    /// `POST /conversations/:id/queue`.
    pub async fn queue(&self, id: &str, text: &str) -> Result<QueueResponse> {
        let body = QueueRequest {
            text: text.to_owned(),
            request_id: None,
        };
        self.json(
            self.request(Method::POST, &["conversations", id, "queue"])
                .json(&body),
        )
        .await
    }

    /// `POST /conversations/:id/<action>` for `open` and `stop`.
    pub async fn action(&self, id: &str, action: &str) -> Result<ConversationActionResponse> {
        self.json(self.request(Method::POST, &["conversations", id, action]))
            .await
    }

    /// `GET /models`.
    pub async fn models(&self) -> Result<ModelsResponse> {
        self.json(self.request(Method::GET, &["models"])).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(base: &str, segments: &[&str], expect: &str) {
        let url = Client::new(base, None).map(|client| client.url(segments).to_string());
        assert_eq!(url.map_err(|err| err.to_string()).as_deref(), Ok(expect));
    }

    #[test]
    fn urls_are_built_from_the_base_and_escaped_segments() {
        check("", &["models"], "http://127.0.0.1:24203/models");
        check("127.0.0.1:9", &["models"], "http://127.0.0.1:9/models");
        check(
            "http://h:1/",
            &["conversations", "a b/c", "last"],
            "http://h:1/conversations/a%20b%2Fc/last",
        );
        check("https://h/dispatch", &["chat"], "https://h/dispatch/chat");
    }

    #[test]
    fn a_blank_token_is_no_token() {
        let client = Client::new("", Some(String::new())).map(|c| c.token);
        assert!(matches!(client, Ok(None)));
    }
}
