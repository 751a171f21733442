#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Against the running server on a real socket (`127.0.0.1:0`) with reqwest: streaming
//! chat, client disconnects, the throughput hook, the token, mounted routes, the static SPA
//! and shutdown with a stream open.

mod common;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::{MODEL, TestServer};
use dispatch_transport_kit::{LISTENER, ROUTES};
use futures::StreamExt;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Reads NDJSON lines from a streaming response until `count` lines arrived.
async fn read_lines(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<axum::body::Bytes>> + Unpin),
    buffer: &mut String,
    count: usize,
) -> Vec<Value> {
    while buffer.matches('\n').count() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("no line within 10 s")
            .expect("stream ended")
            .unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    buffer
        .lines()
        .take(count)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn chat_streams_over_a_real_socket_and_feeds_throughput() {
    let server = TestServer::start("").await;
    let listener = server.host.services().get(&LISTENER).unwrap();
    assert!(listener.addr.ip().is_loopback());
    assert_ne!(listener.addr.port(), 0);
    assert!(!listener.token_required);
    let url = server.url();
    let response = client()
        .post(format!("{url}/chat"))
        .json(&json!({"conversationId": "sock", "message": "over the wire"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    assert_eq!(response.headers()["x-conversation-id"], "sock");
    let text = response.text().await.unwrap();
    let types: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(types.first().unwrap(), "user-message");
    assert_eq!(types.last().unwrap(), "turn-sealed");

    // The TURN_SETTLED hook fed one sample (10 tokens in 50 ms).
    let samples: Value = client()
        .get(format!("{url}/metrics/throughput?model={MODEL}&limit=5"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let samples = samples["samples"].as_array().unwrap().clone();
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0]["conversationId"], "sock");
    assert_eq!(samples[0]["tokensPerSecond"], 200.0);
    let other: Value = client()
        .get(format!("{url}/metrics/throughput?model=other"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(other, json!({"samples": []}));
    server.stop().await;
}

#[tokio::test]
async fn a_client_disconnect_never_aborts_the_turn() {
    let server = TestServer::start("").await;
    let url = server.url();
    let response = client()
        .post(format!("{url}/chat"))
        .json(&json!({"conversationId": "walkaway", "message": "hang around"}))
        .send()
        .await
        .unwrap();
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let lines = read_lines(&mut stream, &mut buffer, 2).await;
    assert_eq!(lines[0]["type"], "user-message");
    assert_eq!(lines[1]["type"], "turn-start");
    drop(stream);

    // The turn still runs; a new watcher still sees it; stop aborts it for real.
    assert!(server.session().is_active("walkaway"));
    let status: Value = client()
        .get(format!("{url}/conversations/walkaway/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["isActive"], true);
    let mut watcher = server.session().subscribe("walkaway");
    let stop: Value = client()
        .post(format!("{url}/conversations/walkaway/stop"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stop,
        json!({"conversationId": "walkaway", "abortedTurn": true, "status": "idle"})
    );
    let mut seen = Vec::new();
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(5), watcher.recv()).await {
        seen.push(frame.event.type_name());
        if frame.event.type_name() == "turn-sealed" {
            break;
        }
    }
    assert_eq!(seen, ["done", "turn-sealed"]);
    server.stop().await;
}

#[tokio::test]
async fn the_token_guards_every_route_including_mounted_ones() {
    let server = TestServer::start("token = \"s3cret\"").await;
    let listener = server.host.services().get(&LISTENER).unwrap();
    assert!(listener.token_required);
    server
        .host
        .services()
        .get(&ROUTES)
        .unwrap()
        .mount(
            "test-ext",
            Router::new().route("/mounted", get(|| async { "mounted ok" })),
        )
        .unwrap();
    let url = server.url();
    let http = client();

    for path in [
        "/health",
        "/conversations",
        "/openapi.json",
        "/mounted",
        "/nowhere",
    ] {
        let response = http.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "unauthorized", "{path}");
        let response = http
            .get(format!("{url}{path}"))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
        let response = http
            .get(format!("{url}{path}?token=s3cre"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
    }
    let response = http
        .get(format!("{url}/health"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = http
        .get(format!("{url}/health"))
        .header("authorization", "bearer s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The query token is accepted and removed before strict query parsing.
    let response = http
        .get(format!("{url}/conversations?token=s3cret&q=abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = http
        .get(format!("{url}/mounted?token=s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "mounted ok");
    let response = http
        .get(format!("{url}/nowhere"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    // With a token, any Host name is fine (the token is the guard).
    let response = http
        .get(format!("{url}/health"))
        .bearer_auth("s3cret")
        .header("host", "dispatch.example:443")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Unmounted routes are gone.
    server
        .host
        .services()
        .get(&ROUTES)
        .unwrap()
        .unmount("test-ext");
    let response = http
        .get(format!("{url}/mounted"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    server.stop().await;
}

#[tokio::test]
async fn the_static_spa_is_served_on_paths_the_api_does_not_own() {
    let web = tempfile::TempDir::new().unwrap();
    std::fs::write(web.path().join("index.html"), "<html>spa</html>").unwrap();
    std::fs::create_dir(web.path().join("assets")).unwrap();
    std::fs::write(web.path().join("assets/app.js"), "console.log(1)").unwrap();
    let server = TestServer::start(&format!(
        "web_dir = {:?}\ntoken = \"t\"",
        web.path().display().to_string()
    ))
    .await;
    let url = server.url();
    let http = client();
    for (path, body) in [
        ("/", "<html>spa</html>"),
        ("/chats/some/tab", "<html>spa</html>"),
        ("/assets/app.js", "console.log(1)"),
    ] {
        let response = http.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.text().await.unwrap(), body, "{path}");
    }
    // API paths stay API: JSON errors, token required.
    let response = http
        .get(format!("{url}/conversations/x/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = http
        .get(format!("{url}/conversations/x/nothing"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/json");
    let response = http
        .post(format!("{url}/somewhere"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    server.stop().await;
}

#[tokio::test]
async fn deactivation_ends_open_streams_and_frees_the_port() {
    let server = TestServer::start("").await;
    let url = server.url();
    let addr = server.host.services().get(&LISTENER).unwrap().addr;
    let response = client()
        .post(format!("{url}/chat"))
        .json(&json!({"conversationId": "open", "message": "hang in there"}))
        .send()
        .await
        .unwrap();
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    read_lines(&mut stream, &mut buffer, 1).await;
    let started = std::time::Instant::now();
    server.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "deactivation waited {:?} for the open stream",
        started.elapsed()
    );
    // The stream ended (cleanly or not) and the port can be bound again.
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = stream.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(rest.is_ok(), "the stream did not end");
    tokio::net::TcpListener::bind(addr).await.unwrap();
}
