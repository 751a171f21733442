#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `web_search` against a local mock of the Firecrawl API (127.0.0.1:0) that records every
//! request: compliance, each mode's request and output, crawl polling, errors, auth,
//! cancellation, truncation, and the extension's registration.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use dispatch_kernel::abi::{Extension, Tool, ToolCtx, ToolError};
use dispatch_kernel::host::{ExtensionState, Host, HostConfig};
use dispatch_provider_kit::Env;
use dispatch_stdx::Secret;
use dispatch_test_support::{ToolCompliance, assert_tool_compliance};
use dispatch_tool_web_search::{Config, Settings, ToolWebSearchExtension, WebSearchTool};
use expect_test::{Expect, expect};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------
// The mock Firecrawl API.

/// One scripted answer: a status and a JSON body, or no answer at all.
#[derive(Clone)]
enum Answer {
    Json(u16, Value),
    Hang,
}

/// A request as the mock saw it.
#[derive(Debug, Clone, PartialEq)]
struct Recorded {
    method: String,
    path: String,
    auth: Option<String>,
    body: Value,
}

#[derive(Default)]
struct MockState {
    /// Answers by `"METHOD /path"`; the last one of a queue repeats.
    script: Mutex<BTreeMap<String, VecDeque<Answer>>>,
    requests: Mutex<Vec<Recorded>>,
    seen: Notify,
}

struct Mock {
    base_url: String,
    state: Arc<MockState>,
}

impl Mock {
    async fn start(script: Vec<(&str, Vec<Answer>)>) -> Mock {
        let state = Arc::new(MockState::default());
        *state.script.lock().unwrap() = script
            .into_iter()
            .map(|(route, answers)| (route.to_string(), answers.into()))
            .collect();
        let app = Router::new().fallback(answer).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Mock {
            base_url: format!("http://{addr}"),
            state,
        }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Waits (bounded) until the mock has seen `n` requests.
    async fn wait_for_requests(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let seen = self.state.seen.notified();
                if self.state.requests.lock().unwrap().len() >= n {
                    return;
                }
                seen.await;
            }
        })
        .await
        .expect("the mock did not see the expected requests");
    }

    fn tool(&self, config: Config, key: Option<&str>) -> WebSearchTool {
        let settings = Settings::new(&config, &self.base_url).unwrap();
        WebSearchTool::new(settings, key.map(Secret::new)).unwrap()
    }
}

async fn answer(
    State(state): State<Arc<MockState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("{method} {}", uri.path());
    let next = {
        let mut script = state.script.lock().unwrap();
        script.get_mut(&route).and_then(|queue| {
            if queue.len() > 1 {
                queue.pop_front()
            } else {
                queue.front().cloned()
            }
        })
    };
    state.requests.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path: uri.path().to_string(),
        auth: headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string()),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    state.seen.notify_waiters();
    match next {
        Some(Answer::Json(status, body)) => {
            (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
        }
        Some(Answer::Hang) => std::future::pending().await,
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"success": false, "error": format!("no route {route}")})),
        )
            .into_response(),
    }
}

fn ok(body: Value) -> Answer {
    Answer::Json(200, body)
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn ctx(cancel: CancellationToken) -> ToolCtx {
    ToolCtx {
        conversation_id: "c".into(),
        turn_id: "t".into(),
        step_id: "t#0".into(),
        tool_call_id: "call".into(),
        cwd: None,
        workspace_id: None,
        computer_id: None,
        cancel,
        output: Arc::new(|_, _| {}),
    }
}

async fn call(tool: &WebSearchTool, input: Value) -> Result<String, ToolError> {
    tool.call(input, ctx(CancellationToken::new()))
        .await
        .map(|out| out.content)
}

/// Runs `input` and compares the result (or `error: …`) with `expect`.
#[track_caller]
fn check(result: Result<String, ToolError>, expect: Expect) {
    let actual = match result {
        Ok(text) => text,
        Err(ToolError::Model(message)) => format!("model error: {message}"),
        Err(ToolError::Fatal(message)) => format!("fatal error: {message}"),
        Err(ToolError::Aborted) => "aborted".to_string(),
    };
    expect.assert_eq(&actual);
}

fn fast() -> Config {
    Config {
        crawl_poll_ms: 10,
        crawl_max_wait_secs: 30,
        timeout_secs: 5,
        ..Config::default()
    }
}

fn config_table(entries: &[(&str, toml::Value)]) -> HostConfig {
    let mut config = HostConfig::default();
    let table: toml::Table = entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    config.extensions.insert("tool-web-search".into(), table);
    config
}

fn search_answer() -> Answer {
    ok(json!({
        "success": true,
        "data": [
            {"url": "https://www.rust-lang.org/", "title": "Rust Programming Language", "description": "A language empowering everyone to build reliable and efficient software."},
            {"url": "https://doc.rust-lang.org/book/", "title": "The Rust Book", "description": "An introductory book about Rust."}
        ]
    }))
}

// ---------------------------------------------------------------------------------------
// Compliance.

#[test]
fn extension_is_compliant() {
    dispatch_test_support::assert_extension_compliance(
        Arc::new(ToolWebSearchExtension::with_env(Env::default())),
        env!("CARGO_MANIFEST_DIR"),
        Vec::new(),
        config_table(&[("base_url", "http://127.0.0.1:9".into())]),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_is_compliant() {
    let mock = Mock::start(vec![("POST /v1/search", vec![search_answer()])]).await;
    let tool = Arc::new(mock.tool(fast(), None));
    assert_tool_compliance(
        tool,
        ToolCompliance {
            input: json!({"mode": "search", "query": "rust"}),
            cwd: None,
            output_cap: Some(Config::default().max_result_bytes),
        },
    )
    .await;
    // The cancelled call sent nothing; the normal one sent one search.
    assert_eq!(mock.requests().len(), 1);
}

// ---------------------------------------------------------------------------------------
// Modes.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_posts_query_and_limit() {
    let mock = Mock::start(vec![("POST /v1/search", vec![search_answer()])]).await;
    let tool = mock.tool(fast(), None);
    check(
        call(
            &tool,
            json!({"mode": "search", "query": "rust language", "limit": 2}),
        )
        .await,
        expect![[r#"
            Web search: "rust language" (2 results)

            1. Rust Programming Language
               https://www.rust-lang.org/
               A language empowering everyone to build reliable and efficient software.

            2. The Rust Book
               https://doc.rust-lang.org/book/
               An introductory book about Rust.
        "#]],
    );
    call(&tool, json!({"mode": "search", "query": "default limit"}))
        .await
        .unwrap();
    let requests = mock.requests();
    assert_eq!(
        requests[0],
        Recorded {
            method: "POST".into(),
            path: "/v1/search".into(),
            auth: None,
            body: json!({"query": "rust language", "limit": 2}),
        }
    );
    assert_eq!(
        requests[1].body,
        json!({"query": "default limit", "limit": 5})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_posts_url_and_markdown_format() {
    let mock = Mock::start(vec![(
        "POST /v1/scrape",
        vec![ok(json!({
            "success": true,
            "data": {
                "markdown": "# Example Domain\n\nThis domain is for use in examples.",
                "metadata": {"title": "Example Domain", "sourceURL": "https://example.com/", "statusCode": 200}
            }
        }))],
    )])
    .await;
    let tool = mock.tool(fast(), None);
    check(
        call(
            &tool,
            json!({"mode": "scrape", "url": "https://example.com/"}),
        )
        .await,
        expect![[r#"
            # Example Domain
            URL: https://example.com/

            # Example Domain

            This domain is for use in examples.
        "#]],
    );
    assert_eq!(
        mock.requests()[0].body,
        json!({"url": "https://example.com/", "formats": ["markdown"]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_posts_url_and_search() {
    let mock = Mock::start(vec![(
        "POST /v1/map",
        vec![ok(json!({
            "success": true,
            "links": ["https://example.com/", "https://example.com/docs", "https://example.com/blog"]
        }))],
    )])
    .await;
    let tool = mock.tool(fast(), None);
    check(
        call(
            &tool,
            json!({"mode": "map", "url": "https://example.com", "search": "docs"}),
        )
        .await,
        expect![[r#"
            Links of https://example.com (3 links)

            - https://example.com/
            - https://example.com/docs
            - https://example.com/blog
        "#]],
    );
    call(&tool, json!({"mode": "map", "url": "https://example.com"}))
        .await
        .unwrap();
    let requests = mock.requests();
    assert_eq!(
        requests[0].body,
        json!({"url": "https://example.com", "search": "docs"})
    );
    assert_eq!(requests[1].body, json!({"url": "https://example.com"}));
}

fn crawl_page(n: u32) -> Value {
    json!({
        "markdown": format!("Page {n} text."),
        "metadata": {"title": format!("Page {n}"), "sourceURL": format!("https://example.com/{n}")}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawl_polls_until_completed() {
    let mock = Mock::start(vec![
        (
            "POST /v1/crawl",
            vec![ok(json!({"success": true, "id": "crawl-123", "url": "http://elsewhere/v1/crawl/crawl-123"}))],
        ),
        (
            "GET /v1/crawl/crawl-123",
            vec![
                ok(json!({"status": "scraping", "total": 2, "completed": 0, "data": []})),
                ok(json!({"status": "scraping", "total": 2, "completed": 1, "data": [crawl_page(1)]})),
                ok(json!({"status": "completed", "total": 2, "completed": 2, "data": [crawl_page(1), crawl_page(2)]})),
            ],
        ),
    ])
    .await;
    let tool = mock.tool(fast(), Some("fc-crawl-key"));
    check(
        call(
            &tool,
            json!({"mode": "crawl", "url": "https://example.com", "limit": 2}),
        )
        .await,
        expect![[r#"
            Crawl of https://example.com: 2 pages (completed)

            ## Page 1
            URL: https://example.com/1

            Page 1 text.

            ## Page 2
            URL: https://example.com/2

            Page 2 text.
        "#]],
    );
    let requests = mock.requests();
    let routes: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        routes,
        [
            "POST /v1/crawl",
            "GET /v1/crawl/crawl-123",
            "GET /v1/crawl/crawl-123",
            "GET /v1/crawl/crawl-123"
        ]
    );
    assert_eq!(
        requests[0].body,
        json!({"url": "https://example.com", "limit": 2, "scrapeOptions": {"formats": ["markdown"]}})
    );
    // Every request, polls included, carries the key.
    assert!(
        requests
            .iter()
            .all(|r| r.auth.as_deref() == Some("Bearer fc-crawl-key"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawl_failure_is_a_model_error() {
    let mock = Mock::start(vec![
        (
            "POST /v1/crawl",
            vec![ok(json!({"success": true, "id": "c1"}))],
        ),
        (
            "GET /v1/crawl/c1",
            vec![
                ok(json!({"status": "scraping", "data": []})),
                ok(json!({"status": "failed", "error": "robots.txt disallows crawling"})),
            ],
        ),
    ])
    .await;
    let tool = mock.tool(fast(), None);
    check(
        call(
            &tool,
            json!({"mode": "crawl", "url": "https://example.com"}),
        )
        .await,
        expect![
            "model error: web_search failed: the crawl of https://example.com failed: robots.txt disallows crawling"
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawl_past_max_wait_returns_pages_so_far() {
    let mock = Mock::start(vec![
        (
            "POST /v1/crawl",
            vec![ok(json!({"success": true, "id": "slow"}))],
        ),
        (
            "GET /v1/crawl/slow",
            vec![ok(
                json!({"status": "scraping", "total": 10, "completed": 1, "data": [crawl_page(1)]}),
            )],
        ),
    ])
    .await;
    let config = Config {
        crawl_max_wait_secs: 0,
        ..fast()
    };
    let tool = mock.tool(config, None);
    check(
        call(
            &tool,
            json!({"mode": "crawl", "url": "https://example.com"}),
        )
        .await,
        expect![[r#"
            Crawl of https://example.com: 1 page of 10 (scraping)
            Note: the crawl was still scraping after 0s; these are the pages received so far

            ## Page 1
            URL: https://example.com/1

            Page 1 text.
        "#]],
    );
    assert_eq!(mock.requests().len(), 2);
}

// ---------------------------------------------------------------------------------------
// Errors, auth, cancellation, truncation.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_header_is_sent_only_with_a_key() {
    let mock = Mock::start(vec![("POST /v1/search", vec![search_answer()])]).await;
    call(
        &mock.tool(fast(), Some("fc-secret-123")),
        json!({"mode": "search", "query": "a"}),
    )
    .await
    .unwrap();
    call(
        &mock.tool(fast(), None),
        json!({"mode": "search", "query": "b"}),
    )
    .await
    .unwrap();
    let auth: Vec<Option<String>> = mock.requests().into_iter().map(|r| r.auth).collect();
    assert_eq!(auth, [Some("Bearer fc-secret-123".to_string()), None]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_and_server_errors_are_model_errors_without_the_key() {
    let mock = Mock::start(vec![
        (
            "POST /v1/search",
            vec![Answer::Json(
                401,
                json!({"success": false, "error": "Unauthorized: Invalid token fc-secret-123"}),
            )],
        ),
        (
            "POST /v1/scrape",
            vec![Answer::Json(
                500,
                json!({"success": false, "error": "Internal server error"}),
            )],
        ),
        (
            "POST /v1/crawl",
            vec![Answer::Json(302, json!({"moved": "elsewhere"}))],
        ),
        (
            "POST /v1/map",
            vec![Answer::Json(
                429,
                json!({"success": false, "error": "Rate limit exceeded"}),
            )],
        ),
    ])
    .await;
    let tool = mock.tool(fast(), Some("fc-secret-123"));
    let unauthorized = call(&tool, json!({"mode": "search", "query": "a"})).await;
    assert!(!format!("{unauthorized:?}").contains("fc-secret-123"));
    check(
        unauthorized,
        expect![
            "model error: web_search: Firecrawl refused the request (401 Unauthorized): Unauthorized: Invalid token [REDACTED] (check the Firecrawl API key configured for web_search)"
        ],
    );
    check(
        call(
            &tool,
            json!({"mode": "scrape", "url": "https://example.com"}),
        )
        .await,
        expect![
            "model error: web_search failed: Firecrawl answered 500 Internal Server Error: Internal server error; this may be temporary, try again later"
        ],
    );
    check(
        call(&tool, json!({"mode": "map", "url": "https://example.com"})).await,
        expect![
            "model error: web_search: Firecrawl refused the request (429 Too Many Requests): Rate limit exceeded"
        ],
    );
    check(
        call(
            &tool,
            json!({"mode": "crawl", "url": "https://example.com"}),
        )
        .await,
        expect![
            "model error: web_search failed: Firecrawl answered 302 Found, a redirect, which is not followed; the configured base_url may be wrong"
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_slow_servers_are_model_errors() {
    let mock = Mock::start(vec![("POST /v1/scrape", vec![Answer::Hang])]).await;
    let slow = mock.tool(
        Config {
            timeout_secs: 1,
            ..fast()
        },
        None,
    );
    check(
        call(
            &slow,
            json!({"mode": "scrape", "url": "https://example.com"}),
        )
        .await,
        expect![
            "model error: web_search failed: Firecrawl did not answer within 1s; try again later or ask for less"
        ],
    );

    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let tool = WebSearchTool::new(Settings::new(&fast(), &closed).unwrap(), None).unwrap();
    let err = call(&tool, json!({"mode": "search", "query": "a"}))
        .await
        .unwrap_err();
    let ToolError::Model(message) = err else {
        panic!("expected a model error, got {err:?}");
    };
    assert!(
        message.starts_with(&format!(
            "web_search failed: cannot connect to Firecrawl at {closed} ("
        )),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_arguments_send_nothing() {
    let mock = Mock::start(Vec::new()).await;
    let tool = mock.tool(fast(), None);
    check(
        call(
            &tool,
            json!({"mode": "scrape", "url": "javascript:alert(1)"}),
        )
        .await,
        expect!["model error: `url` must be an http or https URL, got `javascript:alert(1)`"],
    );
    check(
        call(&tool, json!({"mode": "search", "query": "x", "limit": 100})).await,
        expect!["model error: `limit` must be an integer 1..=20 for mode `search`, got 100"],
    );
    check(
        call(&tool, json!({"query": "x"})).await,
        expect![
            "model error: missing required argument `mode` (one of search, scrape, crawl, map)"
        ],
    );
    assert!(mock.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_a_crawl_poll_aborts_promptly() {
    let mock = Mock::start(vec![
        (
            "POST /v1/crawl",
            vec![ok(json!({"success": true, "id": "long"}))],
        ),
        (
            "GET /v1/crawl/long",
            vec![ok(json!({"status": "scraping", "data": []}))],
        ),
    ])
    .await;
    let tool = Arc::new(mock.tool(
        Config {
            crawl_poll_ms: 60_000,
            crawl_max_wait_secs: 600,
            ..fast()
        },
        None,
    ));
    let cancel = CancellationToken::new();
    let running = {
        let tool = tool.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tool.call(
                json!({"mode": "crawl", "url": "https://example.com"}),
                ctx(cancel),
            )
            .await
        })
    };
    // The first poll has been answered; the tool now sleeps 60s before the next.
    mock.wait_for_requests(2).await;
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(1), running)
        .await
        .expect("the crawl did not stop promptly")
        .unwrap();
    assert_eq!(result.unwrap_err(), ToolError::Aborted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_a_request_aborts_promptly() {
    let mock = Mock::start(vec![("POST /v1/scrape", vec![Answer::Hang])]).await;
    let tool = Arc::new(mock.tool(fast(), None));
    let cancel = CancellationToken::new();
    let running = {
        let tool = tool.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tool.call(
                json!({"mode": "scrape", "url": "https://example.com"}),
                ctx(cancel),
            )
            .await
        })
    };
    mock.wait_for_requests(1).await;
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(1), running)
        .await
        .expect("the request did not stop promptly")
        .unwrap();
    assert_eq!(result.unwrap_err(), ToolError::Aborted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_output_is_truncated_with_a_notice() {
    let long: String = (0..2000)
        .map(|i| format!("Line {i} of a long page.\n"))
        .collect();
    let mock = Mock::start(vec![(
        "POST /v1/scrape",
        vec![ok(
            json!({"success": true, "data": {"markdown": long, "metadata": {"title": "Long"}}}),
        )],
    )])
    .await;
    let tool = mock.tool(
        Config {
            max_result_bytes: 2048,
            ..fast()
        },
        None,
    );
    let text = call(
        &tool,
        json!({"mode": "scrape", "url": "https://example.com/long"}),
    )
    .await
    .unwrap();
    assert!(text.len() <= 2048, "{}", text.len());
    check(
        Ok(text[text.len() - 200..].to_string()),
        expect![[r#"
            long page.
            Line 76 of a long page.
            Line 77 of a long page.
            Line 78 of a long page.

            [Output truncated to 2048 of 50928 bytes. Ask for less: a lower `limit`, a narrower query, or `scrape` of one page.]"#]],
    );
}

// ---------------------------------------------------------------------------------------
// Registration.

#[tokio::test]
async fn no_base_url_registers_nothing() {
    let ext: Arc<dyn Extension> = Arc::new(ToolWebSearchExtension::with_env(Env::default()));
    let mut host = Host::new(vec![ext], HostConfig::default()).unwrap();
    host.activate().await.unwrap();
    assert_eq!(host.statuses()[0].state, ExtensionState::Active);
    assert!(host.catalog().tools().is_empty());
}

#[tokio::test]
async fn a_bad_base_url_disables_the_extension() {
    let ext: Arc<dyn Extension> = Arc::new(ToolWebSearchExtension::with_env(Env::default()));
    let config = config_table(&[("base_url", "ftp://127.0.0.1".into())]);
    let mut host = Host::new(vec![ext], config).unwrap();
    let _ = host.activate().await;
    let ExtensionState::Disabled { reason } = &host.statuses()[0].state else {
        panic!("expected disabled, got {:?}", host.statuses()[0].state);
    };
    assert!(reason.contains("invalid config `base_url`"), "{reason}");
    assert!(host.catalog().tools().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registered_tool_uses_the_key_from_the_named_env_variable() {
    let mock = Mock::start(vec![("POST /v1/search", vec![search_answer()])]).await;
    let env = Env::new([
        ("MY_FIRECRAWL_KEY", "fc-from-env"),
        ("FIRECRAWL_API_KEY", "fc-unused"),
    ]);
    let ext: Arc<dyn Extension> = Arc::new(ToolWebSearchExtension::with_env(env));
    let config = config_table(&[
        ("base_url", mock.base_url.clone().into()),
        ("api_key_env", "MY_FIRECRAWL_KEY".into()),
    ]);
    let mut host = Host::new(vec![ext], config).unwrap();
    host.activate().await.unwrap();
    let tools = host.catalog().tools();
    let names: Vec<&str> = tools.iter().map(|t| t.spec().name.as_str()).collect();
    assert_eq!(names, ["web_search"]);
    let spec = tools[0].spec();
    assert!(spec.concurrency_safe);
    assert_eq!(
        spec.capabilities,
        [dispatch_kernel::abi::Capability::Network]
    );
    tools[0]
        .call(
            json!({"mode": "search", "query": "q"}),
            ctx(CancellationToken::new()),
        )
        .await
        .unwrap();
    assert_eq!(
        mock.requests()[0].auth.as_deref(),
        Some("Bearer fc-from-env")
    );
    host.deactivate().await;
}
