#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Bad input on every endpoint: each case gets its exact 4xx, a JSON `ErrorResponse` with a
//! message, the offending field when there is one, and never a 5xx.

mod common;

use common::{TestServer, call, call_with};

/// (method, uri, body, headers, status, field)
type Case = (
    &'static str,
    String,
    Option<String>,
    Vec<(&'static str, &'static str)>,
    u16,
    Option<&'static str>,
);

fn case(
    method: &'static str,
    uri: &str,
    body: Option<&str>,
    status: u16,
    field: Option<&'static str>,
) -> Case {
    (
        method,
        uri.to_owned(),
        body.map(str::to_owned),
        Vec::new(),
        status,
        field,
    )
}

/// The cases every JSON body endpoint shares: not JSON, not an object, unknown field.
fn body_basics(method: &'static str, uri: &str) -> Vec<Case> {
    vec![
        case(method, uri, Some("{"), 400, None),
        case(method, uri, Some("not json"), 400, None),
        case(method, uri, Some("[]"), 400, None),
        case(method, uri, Some("\"text\""), 400, None),
        case(method, uri, Some(""), 400, None),
        case(
            method,
            uri,
            Some(r#"{"unexpected":1}"#),
            400,
            Some("unexpected"),
        ),
        // No JSON content type.
        (
            method,
            uri.to_owned(),
            None,
            vec![("content-type", "text/plain")],
            415,
            None,
        ),
    ]
}

const BAD_IDS: [&str; 3] = ["a%20b", "a%2Fb", "%C3%A9t%C3%A9"];

fn cases() -> Vec<Case> {
    let long_id = "x".repeat(129);
    let mut cases = Vec::new();

    // POST /chat
    cases.extend(body_basics("POST", "/chat"));
    for (body, field) in [
        (r#"{}"#, "message"),
        (r#"{"message":5}"#, "message"),
        (r#"{"message":null}"#, "message"),
        (r#"{"message":""}"#, "message"),
        (r#"{"message":"   "}"#, "message"),
        (r#"{"message":"hi","conversationId":5}"#, "conversationId"),
        (
            r#"{"message":"hi","conversationId":"a b"}"#,
            "conversationId",
        ),
        (r#"{"message":"hi","conversationId":""}"#, "conversationId"),
        (
            r#"{"message":"hi","reasoningEffort":"ultra"}"#,
            "reasoningEffort",
        ),
        (r#"{"message":"hi","reasoningEffort":3}"#, "reasoningEffort"),
        (r#"{"message":"hi","model":""}"#, "model"),
        (r#"{"message":"hi","model":[]}"#, "model"),
        (r#"{"message":"hi","cwd":""}"#, "cwd"),
        (
            r#"{"message":"hi","workspaceId":"Not A Slug"}"#,
            "workspaceId",
        ),
        (r#"{"message":"hi","computerId":"a/b"}"#, "computerId"),
        (r#"{"message":"hi","requestId":"has space"}"#, "requestId"),
        (r#"{"message":"hi","requestId":7}"#, "requestId"),
        (r#"{"message":"hi","messages":"typo"}"#, "messages"),
    ] {
        cases.push(case("POST", "/chat", Some(body), 400, Some(field)));
    }
    cases.push((
        "POST",
        "/chat".into(),
        Some(r#"{"message":"hi"}"#.into()),
        vec![("idempotency-key", "")],
        400,
        Some("Idempotency-Key"),
    ));
    let long_chat = format!(r#"{{"message":"hi","conversationId":"{long_id}"}}"#);
    cases.push(case(
        "POST",
        "/chat",
        Some(&long_chat),
        400,
        Some("conversationId"),
    ));
    // Oversized body (the test server's limit is 64 KiB).
    let huge = format!(r#"{{"message":"{}"}}"#, "a".repeat(70 * 1024));
    cases.push(case("POST", "/chat", Some(&huge), 413, None));
    cases.push(case("PUT", "/system-prompt", Some(&huge), 413, None));

    // GET /conversations
    for (query, field) in [
        ("status=weird", "status"),
        ("status=active,bogus", "status"),
        ("q=a%20b", "q"),
        ("workspaceId=BAD", "workspaceId"),
        ("bogus=1", "bogus"),
        ("q=a&q=b", "q"),
    ] {
        cases.push(case(
            "GET",
            &format!("/conversations?{query}"),
            None,
            400,
            Some(field),
        ));
    }
    cases.push(case("GET", "/conversations?q=%ZZ", None, 400, None));

    // GET /conversations/{id}
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=1.5", "limit"),
        ("limit=", "limit"),
        ("limit=99999999999999999999999", "limit"),
        ("sinceSeq=0", "sinceSeq"),
        ("sinceSeq=-3", "sinceSeq"),
        ("beforeSeq=x", "beforeSeq"),
        ("beforeSeq=0", "beforeSeq"),
        ("since_seq=1", "since_seq"),
        ("limit=1&limit=2", "limit"),
    ] {
        cases.push(case(
            "GET",
            &format!("/conversations/known?{query}"),
            None,
            400,
            Some(field),
        ));
    }
    cases.push(case(
        "GET",
        "/conversations/known/last?timeoutMs=0",
        None,
        400,
        Some("timeoutMs"),
    ));
    cases.push(case(
        "GET",
        "/conversations/known/last?timeoutMs=soon",
        None,
        400,
        Some("timeoutMs"),
    ));

    // Bad ids on every conversation route.
    let conversation_routes: [(&str, &str, Option<&str>); 22] = [
        ("GET", "", None),
        ("GET", "/metrics", None),
        ("GET", "/last", None),
        ("GET", "/status", None),
        ("GET", "/system-prompt", None),
        ("GET", "/cwd", None),
        ("PUT", "/cwd", Some(r#"{"cwd":"/x"}"#)),
        ("DELETE", "/cwd", None),
        ("GET", "/model", None),
        ("PUT", "/model", Some(r#"{"model":"m"}"#)),
        ("GET", "/reasoning-effort", None),
        ("PUT", "/reasoning-effort", Some(r#"{"effort":"low"}"#)),
        ("GET", "/compact-percent", None),
        ("PUT", "/compact-percent", Some(r#"{"percent":5}"#)),
        ("GET", "/title", None),
        ("PUT", "/title", Some(r#"{"title":"t"}"#)),
        ("POST", "/stop", None),
        ("POST", "/close", None),
        ("POST", "/open", None),
        ("POST", "/queue", Some(r#"{"text":"x"}"#)),
        ("GET", "/metrics", None),
        ("GET", "/status", None),
    ];
    for (method, suffix, body) in conversation_routes {
        for id in BAD_IDS.iter().copied().chain([long_id.as_str()]) {
            cases.push(case(
                method,
                &format!("/conversations/{id}{suffix}"),
                body,
                400,
                Some("conversationId"),
            ));
        }
    }

    // Settings bodies.
    cases.extend(body_basics("PUT", "/conversations/known/cwd"));
    for (body, field) in [
        (r#"{}"#, "cwd"),
        (r#"{"cwd":""}"#, "cwd"),
        (r#"{"cwd":5}"#, "cwd"),
        (r#"{"cwd":"/x","workspaceId":"BAD"}"#, "workspaceId"),
        (r#"{"cwd":"/x","workspaceId":3}"#, "workspaceId"),
    ] {
        cases.push(case(
            "PUT",
            "/conversations/known/cwd",
            Some(body),
            400,
            Some(field),
        ));
    }
    cases.extend(body_basics("PUT", "/conversations/known/model"));
    for (body, field) in [
        (r#"{}"#, "model"),
        (r#"{"model":""}"#, "model"),
        (r#"{"model":1}"#, "model"),
        (r#"{"model":null}"#, "model"),
    ] {
        cases.push(case(
            "PUT",
            "/conversations/known/model",
            Some(body),
            400,
            Some(field),
        ));
    }
    cases.extend(body_basics("PUT", "/conversations/known/reasoning-effort"));
    for (body, field) in [
        (r#"{}"#, "effort"),
        (r#"{"effort":"ultra"}"#, "effort"),
        (r#"{"effort":"HIGH"}"#, "effort"),
        (r#"{"effort":2}"#, "effort"),
    ] {
        cases.push(case(
            "PUT",
            "/conversations/known/reasoning-effort",
            Some(body),
            400,
            Some(field),
        ));
    }
    cases.extend(body_basics("PUT", "/conversations/known/compact-percent"));
    for body in [
        r#"{"percent":101}"#,
        r#"{"percent":-1}"#,
        r#"{"percent":1000}"#,
        r#"{"percent":"50"}"#,
        r#"{"percent":50.5}"#,
    ] {
        cases.push(case(
            "PUT",
            "/conversations/known/compact-percent",
            Some(body),
            400,
            Some("percent"),
        ));
    }
    cases.extend(body_basics("PUT", "/conversations/known/title"));
    for (body, field) in [
        (r#"{}"#, "title"),
        (r#"{"title":""}"#, "title"),
        (r#"{"title":"   "}"#, "title"),
        (r#"{"title":5}"#, "title"),
        (r#"{"titel":"x"}"#, "titel"),
    ] {
        cases.push(case(
            "PUT",
            "/conversations/known/title",
            Some(body),
            400,
            Some(field),
        ));
    }
    let long_title = format!(r#"{{"title":"{}"}}"#, "t".repeat(300));
    cases.push(case(
        "PUT",
        "/conversations/known/title",
        Some(&long_title),
        400,
        Some("title"),
    ));
    cases.extend(body_basics("POST", "/conversations/known/queue"));
    for (body, field) in [
        (r#"{}"#, "text"),
        (r#"{"text":""}"#, "text"),
        (r#"{"text":false}"#, "text"),
        (r#"{"text":"x","requestId":"a b"}"#, "requestId"),
    ] {
        cases.push(case(
            "POST",
            "/conversations/known/queue",
            Some(body),
            400,
            Some(field),
        ));
    }

    // Workspaces.
    for id in ["BAD", "-x", "a_b", "a%20b"] {
        cases.push(case(
            "GET",
            &format!("/workspaces/{id}"),
            None,
            400,
            Some("workspaceId"),
        ));
        cases.push(case(
            "PUT",
            &format!("/workspaces/{id}"),
            Some("{}"),
            400,
            Some("workspaceId"),
        ));
        cases.push(case(
            "DELETE",
            &format!("/workspaces/{id}"),
            None,
            400,
            Some("workspaceId"),
        ));
    }
    cases.extend(body_basics("PUT", "/workspaces/ok"));
    for (body, field) in [
        (r#"{"title":5}"#, "title"),
        (r#"{"title":""}"#, "title"),
        (r#"{"defaultCwd":5}"#, "defaultCwd"),
        (r#"{"default_cwd":"/x"}"#, "default_cwd"),
    ] {
        cases.push(case("PUT", "/workspaces/ok", Some(body), 400, Some(field)));
    }

    // System prompt.
    cases.extend(body_basics("PUT", "/system-prompt"));
    for (body, field) in [
        (r#"{"template":5}"#, "template"),
        (r#"{"template":"[if x]"}"#, "template"),
        (r#"{"tmpl":"x"}"#, "tmpl"),
    ] {
        cases.push(case("PUT", "/system-prompt", Some(body), 400, Some(field)));
    }

    // Throughput.
    for (query, field) in [("limit=0", "limit"), ("limit=x", "limit"), ("x=1", "x")] {
        cases.push(case(
            "GET",
            &format!("/metrics/throughput?{query}"),
            None,
            400,
            Some(field),
        ));
    }

    // Unknown routes and methods.
    cases.push(case("GET", "/nope", None, 404, None));
    cases.push(case("POST", "/conversations", Some("{}"), 405, None));
    cases.push(case(
        "PATCH",
        "/conversations/known/title",
        Some("{}"),
        405,
        None,
    ));
    cases.push(case("GET", "/chat", None, 405, None));
    cases
}

#[tokio::test]
async fn every_endpoint_answers_bad_input_with_a_4xx_naming_the_field() {
    let server = TestServer::start("max_body_bytes = 65536").await;
    server.store().ensure("known", None).await.unwrap();
    let app = server.app();
    let cases = cases();
    let mut failures = Vec::new();
    for (method, uri, body, headers, status, field) in &cases {
        let reply = call_with(&app, method, uri, body.as_deref(), headers).await;
        let label = format!(
            "{method} {uri} {}",
            body.as_deref()
                .unwrap_or_default()
                .chars()
                .take(80)
                .collect::<String>()
        );
        assert!(
            reply.status.as_u16() < 500,
            "{label}: a 5xx for client input: {}",
            reply.text()
        );
        let json: serde_json::Value = match serde_json::from_slice(&reply.body) {
            Ok(json) => json,
            Err(_) => {
                failures.push(format!("{label}: body is not JSON: {}", reply.text()));
                continue;
            }
        };
        let error = json["error"].as_str().unwrap_or_default();
        if reply.status.as_u16() != *status {
            failures.push(format!(
                "{label}: status {} (want {status}): {json}",
                reply.status
            ));
        } else if error.is_empty() {
            failures.push(format!("{label}: no error message: {json}"));
        } else if json["field"].as_str() != *field {
            failures.push(format!(
                "{label}: field {} (want {field:?}): {error}",
                json["field"]
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
    // The conversation addressed above was never changed by a rejected request.
    let meta = server.store().meta("known").await.unwrap().unwrap();
    assert_ne!(meta.title, "t");
    let _ = call(&app, "GET", "/health", None).await;
    server.stop().await;
}
