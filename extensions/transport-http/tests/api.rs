#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The endpoints in-process (`oneshot`) on a real host: real SQLite store, fake session.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{DEFAULT_TEMPLATE, MODEL, PROMPTED, TestServer, call, call_with, ndjson_types};
use dispatch_wire::AgentEvent;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Runs one chat turn to completion; returns the conversation id.
async fn chat(app: &axum::Router, body: Value) -> String {
    let reply = call(app, "POST", "/chat", Some(&body.to_string())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.headers["x-conversation-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn chat_streams_the_turn_as_ndjson_until_it_seals() {
    let server = TestServer::start("").await;
    let app = server.app();
    let reply = call(
        &app,
        "POST",
        "/chat",
        Some(r#"{"conversationId":"c1","message":"hello there"}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "application/x-ndjson");
    assert_eq!(reply.headers["x-conversation-id"], "c1");
    let turn_id = reply.headers["x-turn-id"].to_str().unwrap().to_owned();
    assert_eq!(
        ndjson_types(&reply.body),
        [
            "user-message",
            "turn-start",
            "text-delta",
            "text-delta",
            "text-delta",
            "done",
            "turn-sealed"
        ]
    );
    for line in reply.text().lines() {
        // Each line is the event exactly as the session serialized it.
        let event: AgentEvent = serde_json::from_str(line).unwrap();
        assert_eq!(serde_json::to_string(&event).unwrap(), line);
        let value: Value = serde_json::from_str(line).unwrap();
        assert_eq!(value["turnId"], turn_id.as_str());
    }
    assert!(reply.text().ends_with('\n'));

    // A new conversation gets an id from the session.
    let reply = call(&app, "POST", "/chat", Some(r#"{"message":"hi"}"#)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers.contains_key("x-conversation-id"));
    server.stop().await;
}

#[tokio::test]
async fn chat_passes_every_field_and_the_idempotency_header_wins() {
    let server = TestServer::start("").await;
    let app = server.app();
    let body = json!({
        "conversationId": "c2",
        "message": "hi",
        "model": MODEL,
        "reasoningEffort": "low",
        "cwd": "sub",
        "workspaceId": "proj",
        "computerId": "box-1",
        "requestId": "from-body"
    });
    let reply = call_with(
        &app,
        "POST",
        "/chat",
        Some(&body.to_string()),
        &[("idempotency-key", "from-header")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let first_turn = reply.headers["x-turn-id"].clone();
    let request = server.session.requests.lock().unwrap()[0].clone();
    assert_eq!(request.request_id.as_deref(), Some("from-header"));
    assert_eq!(request.model.as_deref(), Some(MODEL));
    assert_eq!(request.cwd.as_deref(), Some("sub"));
    assert_eq!(request.workspace_id.as_deref(), Some("proj"));
    assert_eq!(request.computer_id.as_deref(), Some("box-1"));
    assert_eq!(
        request.reasoning_effort,
        Some(dispatch_wire::ReasoningEffort::Low)
    );

    // Repeating the key re-attaches to the same turn (replayed in full).
    let reply = call_with(
        &app,
        "POST",
        "/chat",
        Some(r#"{"conversationId":"c2","message":"hi"}"#),
        &[("idempotency-key", "from-header")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["x-turn-id"], first_turn);
    assert_eq!(ndjson_types(&reply.body).last().unwrap(), "turn-sealed");
    server.stop().await;
}

#[tokio::test]
async fn a_second_chat_on_an_active_conversation_is_a_409_and_stop_aborts_it() {
    let server = TestServer::start("").await;
    let app = server.app();
    let request = Request::post("/chat")
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"conversationId":"busy","message":"hang on"}"#,
        ))
        .unwrap();
    let streaming = app.clone().oneshot(request).await.unwrap();
    assert_eq!(streaming.status(), StatusCode::OK);

    let reply = call(
        &app,
        "POST",
        "/chat",
        Some(r#"{"conversationId":"busy","message":"again"}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.json()["code"], "already-active");

    let status = call(&app, "GET", "/conversations/busy/status", None).await;
    assert_eq!(
        status.json(),
        json!({"conversationId": "busy", "isActive": true, "status": "active"})
    );
    // `last` with a timeout gives up with a 504 while the turn runs.
    let reply = call(&app, "GET", "/conversations/busy/last?timeoutMs=20", None).await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.json()["code"], "timeout");

    // Queueing while active steers (no new turn).
    let reply = call(
        &app,
        "POST",
        "/conversations/busy/queue",
        Some(r#"{"text":"also this"}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["startedTurn"], false);
    assert_eq!(reply.json()["queued"]["text"], "also this");

    let reply = call(&app, "POST", "/conversations/busy/stop", None).await;
    assert_eq!(
        reply.json(),
        json!({"conversationId": "busy", "abortedTurn": true, "status": "idle"})
    );
    // The first response's stream ends with the aborted turn's seal.
    let body = axum::body::to_bytes(streaming.into_body(), usize::MAX)
        .await
        .unwrap();
    let types = ndjson_types(&body);
    assert_eq!(&types[types.len() - 2..], ["done", "turn-sealed"]);
    server.stop().await;
}

#[tokio::test]
async fn history_is_windowed_and_unknown_conversations_are_404() {
    let server = TestServer::start("").await;
    let app = server.app();
    for text in ["one", "two", "three"] {
        chat(&app, json!({"conversationId": "h", "message": text})).await;
    }
    let seqs = |reply: &common::Reply| -> Vec<u64> {
        reply.json()["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["seq"].as_u64().unwrap())
            .collect()
    };
    let all = call(&app, "GET", "/conversations/h", None).await;
    assert_eq!(seqs(&all), [1, 2, 3, 4, 5, 6]);
    assert_eq!(all.json()["lastSeq"], 6);
    assert_eq!(all.json()["hasMore"], false);
    let cases = [
        ("limit=2", vec![5, 6]),
        ("beforeSeq=3", vec![1, 2]),
        ("beforeSeq=3&limit=1", vec![2]),
        ("sinceSeq=4", vec![5, 6]),
        ("sinceSeq=2&beforeSeq=5", vec![3, 4]),
        ("limit=9999", vec![1, 2, 3, 4, 5, 6]),
    ];
    for (query, expected) in cases {
        let reply = call(&app, "GET", &format!("/conversations/h?{query}"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{query}");
        assert_eq!(seqs(&reply), expected, "{query}");
    }
    let limited = call(&app, "GET", "/conversations/h?limit=2", None).await;
    assert_eq!(limited.json()["hasMore"], true);
    assert_eq!(limited.json()["lastSeq"], 6);

    for path in [
        "/conversations/nope",
        "/conversations/nope/metrics",
        "/conversations/nope/last",
        "/conversations/nope/status",
        "/conversations/nope/system-prompt",
        "/conversations/nope/cwd",
        "/conversations/nope/model",
        "/conversations/nope/reasoning-effort",
        "/conversations/nope/compact-percent",
        "/conversations/nope/title",
    ] {
        let reply = call(&app, "GET", path, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.json()["code"], "not-found", "{path}");
    }
    for path in ["stop", "close", "open"] {
        let reply = call(&app, "POST", &format!("/conversations/nope/{path}"), None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
    }
    let reply = call(
        &app,
        "POST",
        "/conversations/nope/queue",
        Some(r#"{"text":"x"}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn list_last_metrics_and_actions() {
    let server = TestServer::start("").await;
    let app = server.app();
    chat(
        &app,
        json!({"conversationId": "alpha-1", "message": "first"}),
    )
    .await;
    chat(
        &app,
        json!({"conversationId": "beta-1", "message": "second", "workspaceId": "team"}),
    )
    .await;

    let ids = |reply: &common::Reply| -> Vec<String> {
        let mut ids: Vec<String> = reply.json()["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let all = call(&app, "GET", "/conversations", None).await;
    assert_eq!(ids(&all), ["alpha-1", "beta-1"]);
    let by_prefix = call(&app, "GET", "/conversations?q=al", None).await;
    assert_eq!(ids(&by_prefix), ["alpha-1"]);
    let by_workspace = call(&app, "GET", "/conversations?workspaceId=team", None).await;
    assert_eq!(ids(&by_workspace), ["beta-1"]);
    let idle = call(&app, "GET", "/conversations?status=active,idle", None).await;
    assert_eq!(ids(&idle), ["alpha-1", "beta-1"]);
    let closed = call(&app, "GET", "/conversations?status=closed", None).await;
    assert_eq!(ids(&closed), Vec::<String>::new());

    let last = call(&app, "GET", "/conversations/alpha-1/last", None).await;
    assert_eq!(
        last.json(),
        json!({"conversationId": "alpha-1", "content": "echo: first"})
    );
    let metrics = call(&app, "GET", "/conversations/alpha-1/metrics", None).await;
    assert_eq!(
        metrics.json(),
        json!({"conversationId": "alpha-1", "turns": []})
    );

    let open = call(&app, "POST", "/conversations/alpha-1/open", None).await;
    assert_eq!(
        open.json(),
        json!({"conversationId": "alpha-1", "abortedTurn": false, "status": "idle"})
    );
    let close = call(&app, "POST", "/conversations/alpha-1/close", None).await;
    assert_eq!(
        close.json(),
        json!({"conversationId": "alpha-1", "abortedTurn": false, "status": "closed"})
    );
    let closed = call(&app, "GET", "/conversations?status=closed", None).await;
    assert_eq!(ids(&closed), ["alpha-1"]);

    // Queueing on an idle conversation starts a turn.
    let queued = call(
        &app,
        "POST",
        "/conversations/beta-1/queue",
        Some(r#"{"text":"more","requestId":"q1"}"#),
    )
    .await;
    assert_eq!(queued.status, StatusCode::OK);
    assert_eq!(queued.json()["startedTurn"], true);
    assert_eq!(queued.json()["conversationId"], "beta-1");
    server.stop().await;
}

#[tokio::test]
async fn settings_round_trip_and_writes_create_the_conversation() {
    let server = TestServer::start("").await;
    let app = server.app();

    // PUT cwd with a workspace: the workspace is created and the conversation moved into it.
    call(
        &app,
        "PUT",
        "/workspaces/proj",
        Some(r#"{"defaultCwd":"/home/me/proj"}"#),
    )
    .await;
    let reply = call(
        &app,
        "PUT",
        "/conversations/new-tab/cwd",
        Some(r#"{"cwd":"sub","workspaceId":"proj"}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"conversationId": "new-tab", "cwd": "sub", "effectiveCwd": "/home/me/proj/sub"})
    );
    let meta = server.store().meta("new-tab").await.unwrap().unwrap();
    assert_eq!(meta.workspace_id, "proj");
    let reply = call(
        &app,
        "PUT",
        "/conversations/new-tab/cwd",
        Some(r#"{"cwd":"/abs","workspaceId":"fresh"}"#),
    )
    .await;
    assert_eq!(reply.json()["effectiveCwd"], "/abs");
    assert!(server.store().workspace("fresh").await.unwrap().is_some());
    let reply = call(&app, "DELETE", "/conversations/new-tab/cwd", None).await;
    assert_eq!(
        reply.json(),
        json!({"conversationId": "new-tab", "cwd": null, "effectiveCwd": "/srv/default"})
    );
    let reply = call(&app, "GET", "/conversations/new-tab/cwd", None).await;
    assert_eq!(reply.json()["cwd"], Value::Null);

    let cases: [(&str, &str, Value, Value); 4] = [
        (
            "model",
            r#"{"model":"m-1"}"#,
            json!({"model": null}),
            json!({"model": "m-1"}),
        ),
        (
            "reasoning-effort",
            r#"{"effort":"max"}"#,
            json!({"effort": "high"}),
            json!({"effort": "max"}),
        ),
        (
            "compact-percent",
            r#"{"percent":70}"#,
            json!({"percent": null}),
            json!({"percent": 70}),
        ),
        (
            "title",
            r#"{"title":"  My tab "}"#,
            json!({"title": ""}),
            json!({"title": "My tab"}),
        ),
    ];
    for (setting, body, before, after) in cases {
        let id = format!("s-{setting}");
        let path = format!("/conversations/{id}/{setting}");
        assert_eq!(
            call(&app, "GET", &path, None).await.status,
            StatusCode::NOT_FOUND
        );
        server.store().ensure(&id, None).await.unwrap();
        let mut expected = before;
        expected["conversationId"] = json!(id);
        let reply = call(&app, "GET", &path, None).await;
        assert_eq!(reply.json(), expected, "{setting}");
        let reply = call(&app, "PUT", &path, Some(body)).await;
        let mut expected = after;
        expected["conversationId"] = json!(id);
        assert_eq!(reply.json(), expected, "{setting}");
        assert_eq!(
            call(&app, "GET", &path, None).await.json(),
            expected,
            "{setting}"
        );
    }
    // A null percent resets to the server default.
    let reply = call(
        &app,
        "PUT",
        "/conversations/s-compact-percent/compact-percent",
        Some(r#"{"percent":null}"#),
    )
    .await;
    assert_eq!(reply.json()["percent"], Value::Null);
    // Writes to a conversation that does not exist yet create it.
    let reply = call(
        &app,
        "PUT",
        "/conversations/brand-new/model",
        Some(r#"{"model":"m-2"}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(server.store().meta("brand-new").await.unwrap().is_some());
    server.stop().await;
}

#[tokio::test]
async fn workspaces_crud_and_delete_rules() {
    let server = TestServer::start("").await;
    let app = server.app();
    let reply = call(
        &app,
        "PUT",
        "/workspaces/proj",
        Some(r#"{"title":"Project","defaultCwd":"/p"}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["title"], "Project");
    assert_eq!(reply.json()["defaultCwd"], "/p");
    let reply = call(
        &app,
        "PUT",
        "/workspaces/proj",
        Some(r#"{"defaultCwd":""}"#),
    )
    .await;
    assert_eq!(reply.json().get("defaultCwd"), None);
    assert_eq!(reply.json()["title"], "Project");
    let reply = call(&app, "GET", "/workspaces/proj", None).await;
    assert_eq!(reply.json()["id"], "proj");
    let reply = call(&app, "GET", "/workspaces", None).await;
    let ids: Vec<String> = reply.json()["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["default", "proj"]);

    chat(
        &app,
        json!({"conversationId": "w1", "message": "hi", "workspaceId": "proj"}),
    )
    .await;
    let reply = call(&app, "DELETE", "/workspaces/proj", None).await;
    assert_eq!(
        reply.json(),
        json!({"workspaceId": "proj", "closedCount": 1})
    );
    let meta = server.store().meta("w1").await.unwrap().unwrap();
    assert_eq!(meta.workspace_id, "default");
    assert_eq!(
        call(&app, "GET", "/workspaces/proj", None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&app, "DELETE", "/workspaces/proj", None).await.status,
        StatusCode::NOT_FOUND
    );
    let reply = call(&app, "DELETE", "/workspaces/default", None).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.json()["code"], "conflict");
    server.stop().await;
}

#[tokio::test]
async fn system_prompt_template_variables_and_conversation_prompt() {
    let server = TestServer::start("").await;
    let app = server.app();
    let reply = call(&app, "GET", "/system-prompt", None).await;
    assert_eq!(
        reply.json(),
        json!({"template": DEFAULT_TEMPLATE, "isDefault": true})
    );
    let reply = call(
        &app,
        "PUT",
        "/system-prompt",
        Some(r#"{"template":"Be brief."}"#),
    )
    .await;
    assert_eq!(
        reply.json(),
        json!({"template": "Be brief.", "isDefault": false})
    );
    let reply = call(
        &app,
        "PUT",
        "/system-prompt",
        Some(r#"{"template":"[if x]"}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["field"], "template");
    let reply = call(&app, "PUT", "/system-prompt", Some(r#"{"template":null}"#)).await;
    assert_eq!(reply.json()["isDefault"], true);
    let reply = call(&app, "GET", "/system-prompt/variables", None).await;
    assert_eq!(
        reply.json(),
        json!({"variables": [{"name": "system:date", "description": "Today's date"}]})
    );

    server.store().ensure(PROMPTED, None).await.unwrap();
    server.store().ensure("unprompted", None).await.unwrap();
    let reply = call(
        &app,
        "GET",
        &format!("/conversations/{PROMPTED}/system-prompt"),
        None,
    )
    .await;
    assert_eq!(
        reply.json(),
        json!({
            "conversationId": PROMPTED,
            "cwd": "/srv/project",
            "sections": [{"name": "stable", "tier": "stable", "bytes": 17, "hash": "0123456789abcdef"}],
            "texts": ["You are Dispatch."]
        })
    );
    let reply = call(&app, "GET", "/conversations/unprompted/system-prompt", None).await;
    assert_eq!(
        reply.json(),
        json!({"conversationId": "unprompted", "cwd": null, "sections": [], "texts": []})
    );
    server.stop().await;
}

#[tokio::test]
async fn health_models_and_json_errors_for_unknown_routes_and_methods() {
    let server = TestServer::start("").await;
    let app = server.app();
    let reply = call(&app, "GET", "/health", None).await;
    let health = reply.json();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["wireVersion"], dispatch_wire::WIRE_VERSION);
    assert!(health["uptimeMs"].is_u64());
    let reply = call(&app, "GET", "/models", None).await;
    assert_eq!(reply.json()["defaultModel"], MODEL);
    assert_eq!(reply.json()["models"][0]["id"], MODEL);

    let reply = call(&app, "DELETE", "/health", None).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.json()["code"], "method-not-allowed");
    assert!(reply.headers.contains_key("allow"));
    let reply = call(&app, "GET", "/no/such/route", None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json()["error"], "no route for GET /no/such/route");

    // Without a token, only loopback host names are served (DNS rebinding).
    let reply = call_with(
        &app,
        "GET",
        "/health",
        None,
        &[("host", "evil.example:24203")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.json()["code"], "forbidden-host");
    for host in ["localhost:24203", "127.0.0.1:9", "[::1]:24203"] {
        let reply = call_with(&app, "GET", "/health", None, &[("host", host)]).await;
        assert_eq!(reply.status, StatusCode::OK, "{host}");
    }
    server.stop().await;
}

#[tokio::test]
async fn cors_headers_only_for_allowed_origins() {
    let server = TestServer::start("cors_origins = [\"http://allowed.test\"]").await;
    let app = server.app();
    let reply = call_with(
        &app,
        "GET",
        "/health",
        None,
        &[("origin", "http://allowed.test")],
    )
    .await;
    assert_eq!(
        reply.headers["access-control-allow-origin"],
        "http://allowed.test"
    );
    let reply = call_with(
        &app,
        "GET",
        "/health",
        None,
        &[("origin", "http://evil.test")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(!reply.headers.contains_key("access-control-allow-origin"));
    let preflight = call_with(
        &app,
        "OPTIONS",
        "/chat",
        None,
        &[
            ("origin", "http://allowed.test"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type,authorization",
            ),
        ],
    )
    .await;
    assert_eq!(preflight.status, StatusCode::OK);
    assert_eq!(
        preflight.headers["access-control-allow-origin"],
        "http://allowed.test"
    );
    let methods = preflight.headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("POST"), "{methods}");
    server.stop().await;

    let server = TestServer::start("").await;
    let reply = call_with(
        &server.app(),
        "GET",
        "/health",
        None,
        &[("origin", "http://allowed.test")],
    )
    .await;
    assert!(!reply.headers.contains_key("access-control-allow-origin"));
    server.stop().await;
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_with_its_schemas() {
    let server = TestServer::start("").await;
    let reply = call(&server.app(), "GET", "/openapi.json", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();
    assert_eq!(doc, dispatch_transport_http::openapi());
    assert_eq!(doc["openapi"], "3.1.0");
    let schema_ref = |name: &str| format!("#/components/schemas/{name}");
    // (method, path, request body, 200 response body)
    let table: &[(&str, &str, Option<&str>, &str)] = &[
        ("post", "/chat", Some("ChatRequest"), "AgentEvent"),
        ("get", "/models", None, "ModelsResponse"),
        ("get", "/conversations", None, "ConversationListResponse"),
        ("get", "/conversations/{id}", None, "HistoryResponse"),
        (
            "get",
            "/conversations/{id}/metrics",
            None,
            "MetricsResponse",
        ),
        (
            "get",
            "/conversations/{id}/last",
            None,
            "LastMessageResponse",
        ),
        ("get", "/conversations/{id}/status", None, "StatusResponse"),
        (
            "get",
            "/conversations/{id}/system-prompt",
            None,
            "ConversationSystemPromptResponse",
        ),
        ("get", "/conversations/{id}/cwd", None, "CwdResponse"),
        (
            "put",
            "/conversations/{id}/cwd",
            Some("SetCwdRequest"),
            "CwdResponse",
        ),
        ("delete", "/conversations/{id}/cwd", None, "CwdResponse"),
        ("get", "/conversations/{id}/model", None, "ModelResponse"),
        (
            "put",
            "/conversations/{id}/model",
            Some("SetModelRequest"),
            "ModelResponse",
        ),
        (
            "get",
            "/conversations/{id}/reasoning-effort",
            None,
            "ReasoningEffortResponse",
        ),
        (
            "put",
            "/conversations/{id}/reasoning-effort",
            Some("SetReasoningEffortRequest"),
            "ReasoningEffortResponse",
        ),
        (
            "get",
            "/conversations/{id}/compact-percent",
            None,
            "CompactPercentResponse",
        ),
        (
            "put",
            "/conversations/{id}/compact-percent",
            Some("SetCompactPercentRequest"),
            "CompactPercentResponse",
        ),
        ("get", "/conversations/{id}/title", None, "TitleResponse"),
        (
            "put",
            "/conversations/{id}/title",
            Some("SetTitleRequest"),
            "TitleResponse",
        ),
        (
            "post",
            "/conversations/{id}/stop",
            None,
            "ConversationActionResponse",
        ),
        (
            "post",
            "/conversations/{id}/close",
            None,
            "ConversationActionResponse",
        ),
        (
            "post",
            "/conversations/{id}/open",
            None,
            "ConversationActionResponse",
        ),
        (
            "post",
            "/conversations/{id}/queue",
            Some("QueueRequest"),
            "QueueResponse",
        ),
        ("get", "/workspaces", None, "WorkspaceListResponse"),
        ("get", "/workspaces/{id}", None, "Workspace"),
        (
            "put",
            "/workspaces/{id}",
            Some("PutWorkspaceRequest"),
            "Workspace",
        ),
        (
            "delete",
            "/workspaces/{id}",
            None,
            "DeleteWorkspaceResponse",
        ),
        ("get", "/system-prompt", None, "SystemPromptResponse"),
        (
            "put",
            "/system-prompt",
            Some("SetSystemPromptRequest"),
            "SystemPromptResponse",
        ),
        (
            "get",
            "/system-prompt/variables",
            None,
            "SystemPromptVariablesResponse",
        ),
        ("get", "/metrics/throughput", None, "ThroughputResponse"),
        ("get", "/health", None, "HealthResponse"),
    ];
    let mut documented = 0;
    for (_, item) in doc["paths"].as_object().unwrap() {
        documented += item.as_object().unwrap().len();
    }
    // Every route in the table, plus /openapi.json itself, and nothing else.
    assert_eq!(documented, table.len() + 1);
    assert!(doc["paths"]["/openapi.json"]["get"].is_object());
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for (method, path, request, response) in table {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing");
        let content = &op["responses"]["200"]["content"];
        let body_ref =
            content.as_object().unwrap().values().next().unwrap()["schema"]["$ref"].clone();
        assert_eq!(body_ref, json!(schema_ref(response)), "{method} {path}");
        assert!(schemas.contains_key(*response), "{response}");
        match request {
            Some(name) => {
                assert_eq!(
                    op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
                    json!(schema_ref(name)),
                    "{method} {path}"
                );
                assert!(schemas.contains_key(*name));
                assert!(op["responses"]["413"].is_object(), "{method} {path}");
            }
            None => assert!(op.get("requestBody").is_none(), "{method} {path}"),
        }
        for status in ["400", "401"] {
            if *path != "/health" || status == "401" {
                let error =
                    &op["responses"][status]["content"]["application/json"]["schema"]["$ref"];
                if !error.is_null() {
                    assert_eq!(error, &json!(schema_ref("ErrorResponse")));
                }
            }
        }
        assert!(op["responses"]["401"].is_object(), "{method} {path}");
        if path.contains("{id}") {
            let params = op["parameters"].as_array().unwrap();
            assert!(
                params
                    .iter()
                    .any(|p| p["name"] == "id" && p["in"] == "path"),
                "{method} {path}"
            );
        }
    }
    let history_params = doc["paths"]["/conversations/{id}"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .clone();
    let mut names: Vec<&str> = history_params
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["beforeSeq", "id", "limit", "sinceSeq"]);
    let limit = history_params
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["in"], "query");
    assert_eq!(limit["schema"]["minimum"], 1);
    assert!(doc["paths"]["/conversations/{id}"]["get"]["responses"]["404"].is_object());
    assert!(doc["paths"]["/chat"]["post"]["responses"]["409"].is_object());
    assert!(
        doc["paths"]["/chat"]["post"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header")
    );
    assert!(
        doc["paths"]["/chat"]["post"]["responses"]["200"]["content"]["application/x-ndjson"]
            .is_object()
    );
    // Every reference resolves.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "dangling $ref to {name}");
    }
    server.stop().await;
}
