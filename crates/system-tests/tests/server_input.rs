#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Bad input on every endpoint of the real server gets a 4xx with a message, never a 5xx
//! (issue 5 acceptance). One table; each row is a request and the status it must get.

use dispatch_mock_llm::Response;
use dispatch_system_tests::e2e::{Home, MockProc, ServerOptions, ServerProc};
use serde_json::{Value, json};

/// A request body: JSON, raw bytes with a content type, or none.
enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

struct Case {
    method: &'static str,
    path: String,
    body: Body,
    /// The exact status expected, or `None` for "any 4xx".
    status: Option<u16>,
}

fn case(method: &'static str, path: &str, body: Body, status: Option<u16>) -> Case {
    Case {
        method,
        path: path.to_string(),
        body,
        status,
    }
}

fn json_body(value: Value) -> Body {
    Body::Json(value)
}

fn raw(text: &str) -> Body {
    Body::Raw("application/json", text.as_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_and_parameters_get_4xx_with_a_message_never_5xx() {
    let mock = MockProc::start();
    let home = Home::new();
    let server = ServerProc::start(&home, Some(&mock.url), &ServerOptions::default());
    let api = server.api();
    mock.push(&[Response::text("ok")]).await;
    let chat = api
        .chat(json!({"conversationId": "known-1", "message": "hi"}))
        .await;
    assert_eq!(chat.text(), "ok");
    let c = "/conversations/known-1";

    let mut cases = vec![
        // POST /chat
        case("POST", "/chat", raw("{"), Some(400)),
        case("POST", "/chat", raw("[]"), Some(400)),
        case("POST", "/chat", raw(""), Some(400)),
        case("POST", "/chat", json_body(json!({})), Some(400)),
        case("POST", "/chat", json_body(json!({"message": 1})), Some(400)),
        case(
            "POST",
            "/chat",
            json_body(json!({"message": ""})),
            Some(400),
        ),
        case(
            "POST",
            "/chat",
            json_body(json!({"message": "   "})),
            Some(400),
        ),
        case(
            "POST",
            "/chat",
            json_body(json!({"message": "hi", "bogus": 1})),
            Some(400),
        ),
        case(
            "POST",
            "/chat",
            json_body(json!({"message": "hi", "reasoningEffort": "ultra"})),
            Some(400),
        ),
        case(
            "POST",
            "/chat",
            json_body(json!({"message": "hi", "conversationId": "../etc"})),
            Some(400),
        ),
        case(
            "POST",
            "/chat",
            json_body(json!({"message": "hi", "conversationId": "x".repeat(300)})),
            Some(400),
        ),
        case(
            "POST",
            "/chat",
            json_body(json!({"message": "hi", "model": "nosuch/model-x"})),
            Some(400),
        ),
        case(
            "POST",
            "/chat",
            json_body(json!({"message": "hi", "workspaceId": "Not A Slug!"})),
            Some(400),
        ),
        case(
            "POST",
            "/chat",
            Body::Raw("text/plain", b"hello".to_vec()),
            None,
        ),
        case(
            "POST",
            "/chat",
            Body::Raw(
                "application/json",
                format!("{{\"message\":\"{}\"}}", "a".repeat(6 * 1024 * 1024)).into_bytes(),
            ),
            Some(413),
        ),
        // conversations
        case(
            "GET",
            "/conversations?status=sleeping",
            Body::None,
            Some(400),
        ),
        case(
            "GET",
            "/conversations?workspaceId=Bad%20Slug",
            Body::None,
            Some(400),
        ),
        case("GET", "/conversations/nope-404", Body::None, Some(404)),
        case("GET", "/conversations/bad%2Fid", Body::None, Some(400)),
        case("GET", &format!("{c}?limit=0"), Body::None, Some(400)),
        case("GET", &format!("{c}?limit=abc"), Body::None, Some(400)),
        case("GET", &format!("{c}?limit=-3"), Body::None, Some(400)),
        case("GET", &format!("{c}?sinceSeq=-1"), Body::None, Some(400)),
        case("GET", &format!("{c}?beforeSeq=0"), Body::None, Some(400)),
        case("GET", &format!("{c}?sinceSeq=1.5"), Body::None, Some(400)),
        case(
            "GET",
            "/conversations/nope-404/metrics",
            Body::None,
            Some(404),
        ),
        case("GET", "/conversations/nope-404/last", Body::None, Some(404)),
        case(
            "GET",
            "/conversations/nope-404/status",
            Body::None,
            Some(404),
        ),
        case(
            "GET",
            &format!("{c}/last?timeoutMs=soon"),
            Body::None,
            Some(400),
        ),
        // settings
        case("PUT", &format!("{c}/cwd"), json_body(json!({})), Some(400)),
        case(
            "PUT",
            &format!("{c}/cwd"),
            json_body(json!({"cwd": 5})),
            Some(400),
        ),
        case(
            "PUT",
            &format!("{c}/cwd"),
            json_body(json!({"cwd": ""})),
            Some(400),
        ),
        case(
            "PUT",
            &format!("{c}/cwd"),
            json_body(json!({"cwd": "/tmp", "workspaceId": "NO SLUG"})),
            Some(400),
        ),
        case(
            "PUT",
            &format!("{c}/model"),
            json_body(json!({"model": ""})),
            Some(400),
        ),
        case(
            "PUT",
            &format!("{c}/model"),
            json_body(json!({"model": 7})),
            Some(400),
        ),
        case(
            "PUT",
            &format!("{c}/reasoning-effort"),
            json_body(json!({"effort": "x"})),
            Some(400),
        ),
        case(
            "PUT",
            &format!("{c}/compact-percent"),
            json_body(json!({"percent": 101})),
            Some(400),
        ),
        case(
            "PUT",
            &format!("{c}/compact-percent"),
            json_body(json!({"percent": -1})),
            Some(400),
        ),
        case(
            "PUT",
            &format!("{c}/title"),
            json_body(json!({"title": ""})),
            Some(400),
        ),
        case(
            "PUT",
            &format!("{c}/title"),
            json_body(json!({"title": "  "})),
            Some(400),
        ),
        case(
            "PUT",
            &format!("{c}/title"),
            json_body(json!({"name": "x"})),
            Some(400),
        ),
        case("PUT", &format!("{c}/title"), raw("{\"title\":"), Some(400)),
        // actions
        case(
            "POST",
            &format!("{c}/queue"),
            json_body(json!({"text": ""})),
            Some(400),
        ),
        case(
            "POST",
            &format!("{c}/queue"),
            json_body(json!({})),
            Some(400),
        ),
        case(
            "POST",
            "/conversations/nope-404/stop",
            Body::None,
            Some(404),
        ),
        case(
            "POST",
            "/conversations/nope-404/close",
            Body::None,
            Some(404),
        ),
        case(
            "POST",
            "/conversations/nope-404/open",
            Body::None,
            Some(404),
        ),
        case(
            "POST",
            "/conversations/nope-404/queue",
            json_body(json!({"text": "x"})),
            Some(404),
        ),
        // workspaces
        case("GET", "/workspaces/nope-ws", Body::None, Some(404)),
        case(
            "PUT",
            "/workspaces/Bad%20Slug",
            json_body(json!({})),
            Some(400),
        ),
        case(
            "PUT",
            "/workspaces/ws-1",
            json_body(json!({"title": 5})),
            Some(400),
        ),
        case(
            "PUT",
            "/workspaces/ws-1",
            json_body(json!({"color": "red"})),
            Some(400),
        ),
        case("DELETE", "/workspaces/default", Body::None, Some(409)),
        case("DELETE", "/workspaces/nope-ws", Body::None, Some(404)),
        // system prompt
        case(
            "PUT",
            "/system-prompt",
            json_body(json!({"template": "[if system:date]unclosed"})),
            Some(400),
        ),
        case(
            "PUT",
            "/system-prompt",
            json_body(json!({"template": "[nosuch:var]"})),
            Some(400),
        ),
        case(
            "PUT",
            "/system-prompt",
            json_body(json!({"template": 5})),
            Some(400),
        ),
        // metrics
        case(
            "GET",
            "/metrics/throughput?limit=abc",
            Body::None,
            Some(400),
        ),
        // wrong method, unknown path
        case("DELETE", "/chat", Body::None, Some(405)),
        case("GET", "/no/such/route", Body::None, Some(404)),
    ];
    // Each settings endpoint with a body that is not JSON at all.
    for setting in [
        "cwd",
        "model",
        "reasoning-effort",
        "compact-percent",
        "title",
    ] {
        cases.push(case(
            "PUT",
            &format!("{c}/{setting}"),
            raw("nope"),
            Some(400),
        ));
    }

    let mut failures = Vec::new();
    for case in &cases {
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let mut request = api.request(method, &case.path);
        match &case.body {
            Body::None => {}
            Body::Json(value) => request = request.json(value),
            Body::Raw(content_type, bytes) => {
                request = request
                    .header("content-type", *content_type)
                    .body(bytes.clone());
            }
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message_ok = body["error"].as_str().is_some_and(|e| !e.is_empty());
        let status_ok = match case.status {
            Some(expected) => status == expected,
            None => (400..500).contains(&status),
        };
        if !status_ok || !message_ok {
            failures.push(format!(
                "{} {} → {status} (expected {:?}): {}",
                case.method,
                &case.path[..case.path.len().min(120)],
                case.status,
                &text[..text.len().min(300)]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // A 413 leaves the body unread: the server must close that connection, and say so, or a
    // client's pool reuses it and its next request fails.
    let response = api
        .request(reqwest::Method::POST, "/chat")
        .header("content-type", "application/json")
        .body(vec![b' '; 5 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        response
            .headers()
            .get("connection")
            .and_then(|v| v.to_str().ok()),
        Some("close")
    );

    // Nothing was lost: the conversation is as it was.
    let (status, history) = api.get(c).await;
    assert_eq!(status, 200);
    assert_eq!(history["chunks"].as_array().unwrap().len(), 2);
    assert!(
        !server.stderr.text().contains("panicked"),
        "{}",
        server.stderr.text()
    );
}
