#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Recording, invariant checks, prompt-cache emulation, the control API and the binary.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use dispatch_mock_llm::{Config, Item, MockLlm, PromptTokens, REDACTED, Response, Rule};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use support::{
    anthropic_request, assemble_anthropic, assemble_openai, openai_request, parse_sse, post,
};

#[tokio::test]
async fn requests_are_recorded_with_secrets_redacted() {
    let mock = MockLlm::start(Config::default()).await.unwrap();
    let request = openai_request(true);
    post(
        &format!("{}/chat/completions", mock.openai_base_url()),
        &request,
    )
    .await
    .text()
    .await
    .unwrap();
    reqwest::Client::new()
        .get(format!("{}/nowhere?x=1", mock.url()))
        .send()
        .await
        .unwrap();
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 2);
    let first = &recorded[0];
    assert_eq!(
        (first.seq, first.method.as_str(), first.path.as_str()),
        (0, "POST", "/v1/chat/completions")
    );
    assert_eq!(first.headers["authorization"], REDACTED);
    assert_eq!(first.headers["x-api-key"], REDACTED);
    assert_eq!(first.headers["anthropic-version"], "2023-06-01");
    assert_eq!(first.body.as_ref(), Some(&request));
    assert_eq!(
        first.body_bytes,
        serde_json::to_vec(&request).unwrap().len()
    );
    assert!(first.received_unix_ms > 1_600_000_000_000);
    assert_eq!(first.violations, vec![]);
    assert_eq!(
        (
            recorded[1].seq,
            recorded[1].method.as_str(),
            recorded[1].path.as_str()
        ),
        (1, "GET", "/nowhere?x=1")
    );
    assert_eq!(recorded[1].provider, None);
}

#[tokio::test]
async fn raw_bodies_are_recorded_byte_for_byte() {
    let mock = MockLlm::start(Config::default()).await.unwrap();
    let client = reqwest::Client::new();
    // Key order, spacing, escapes and a trailing newline that re-serializing would change.
    let raw = "{ \"stream\" :false,\n\t\"model\":\"m\",  \"messages\" : [ {\"role\":\"user\",\"content\":\"h\\u00e9 \u{e9} 1.0e0\"} ] }\n";
    let response = client
        .post(format!("{}/chat/completions", mock.openai_base_url()))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Not UTF-8: converted lossily, and not a JSON body.
    let response = client
        .post(format!("{}/v1/responses", mock.url()))
        .body(vec![b'{', 0xff, b'}'])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let recorded = mock.requests();
    assert_eq!(recorded[0].raw_body, raw);
    assert_eq!(recorded[0].body_bytes, raw.len());
    assert_eq!(recorded[0].body.as_ref().unwrap()["model"], "m");
    assert_ne!(recorded[0].body.as_ref().unwrap().to_string(), raw);
    assert_eq!(
        (
            recorded[1].raw_body.as_str(),
            recorded[1].body_bytes,
            &recorded[1].body
        ),
        ("{\u{fffd}}", 3, &None)
    );
    // The control API carries it unchanged too.
    let listed: Vec<dispatch_mock_llm::RecordedRequest> = client
        .get(format!("{}/_mock/requests", mock.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0].raw_body, raw);
}

#[tokio::test]
async fn invariant_violations_are_recorded() {
    let mock = MockLlm::start(Config::default()).await.unwrap();
    let openai = json!({"model": "m", "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":"}},
            {"id": "b", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        ]},
        {"role": "tool", "tool_call_id": "a", "content": "1"},
        {"role": "tool", "tool_call_id": "ghost", "content": "?"},
    ]});
    post(
        &format!("{}/chat/completions", mock.openai_base_url()),
        &openai,
    )
    .await
    .text()
    .await
    .unwrap();
    let cc = json!({"type": "ephemeral"});
    let anthropic = json!({"model": "m", "max_tokens": 10,
    "system": [{"type": "text", "text": "s", "cache_control": cc}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "go", "cache_control": cc}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}, "cache_control": cc}]},
        {"role": "user", "content": [
            {"type": "text", "text": "previous turn text"},
            {"type": "tool_result", "tool_use_id": "t1", "content": "r", "cache_control": cc},
        ]},
        {"role": "assistant", "content": [{"type": "text", "text": "x", "cache_control": cc}]},
    ]});
    post(&format!("{}/v1/messages", mock.url()), &anthropic)
        .await
        .text()
        .await
        .unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", mock.url()))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let rules: Vec<Vec<Rule>> = mock
        .requests()
        .iter()
        .map(|r| r.violations.iter().map(|v| v.rule).collect())
        .collect();
    assert_eq!(
        rules,
        vec![
            vec![
                Rule::ToolArgumentsNotObject,
                Rule::ToolCallResultCount,
                Rule::ToolResultWithoutCall
            ],
            vec![Rule::ToolResultAfterText, Rule::TooManyCacheBreakpoints],
            vec![Rule::InvalidBody],
        ]
    );
    assert_eq!(
        mock.requests()[0].violations[1].detail,
        "message 1: tool call b has 0 results"
    );
}

/// An Anthropic request with a large cached system prompt and tools.
fn cached_request(tools: &[&str], turns: &[&str]) -> Value {
    let cc = json!({"type": "ephemeral"});
    let tools: Vec<Value> = tools
        .iter()
        .map(|name| json!({"name": name, "description": "d".repeat(400), "input_schema": {"type": "object"}}))
        .collect();
    let mut messages: Vec<Value> = turns
        .iter()
        .enumerate()
        .map(|(i, text)| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": [{"type": "text", "text": text}]}))
        .collect();
    messages.last_mut().unwrap()["content"][0]["cache_control"] = cc.clone();
    json!({
        "model": "claude-mock", "max_tokens": 100, "stream": true, "tools": tools,
        "system": [{"type": "text", "text": "You are a careful engineer. ".repeat(200), "cache_control": cc}],
        "messages": messages,
    })
}

async fn usage_of(mock: &MockLlm, body: &Value) -> Value {
    let text = post(&format!("{}/v1/messages", mock.url()), body)
        .await
        .text()
        .await
        .unwrap();
    assemble_anthropic(&parse_sse(&text)).usage.unwrap()
}

#[tokio::test]
async fn anthropic_prefix_cache_writes_then_reads_and_breaks_on_tool_changes() {
    let mock = MockLlm::start(Config::default()).await.unwrap();
    let tools = ["read_file", "write_file"];
    let first = cached_request(&tools, &["hello"]);
    let second = cached_request(&tools, &["hello", "hi", "more please"]);
    let written = usage_of(&mock, &first).await;
    assert_eq!(written["cache_read"], 0);
    assert!(written["cache_write"].as_u64().unwrap() > 1024, "{written}");
    let read = usage_of(&mock, &second).await;
    assert_eq!(
        read["cache_read"], written["cache_write"],
        "the first request's prefix is read"
    );
    assert!(
        read["cache_write"].as_u64().unwrap() > 0,
        "the new turns are written"
    );
    let tokens = |key: &str| read[key].as_u64().unwrap();
    let expected = PromptTokens {
        input_tokens: tokens("input"),
        cache_read_tokens: tokens("cache_read"),
        cache_write_tokens: tokens("cache_write"),
    };
    assert_eq!(mock.requests()[1].prompt, Some(expected));
    // A changed tool list changes the start of the prefix: nothing is read.
    let changed = usage_of(
        &mock,
        &cached_request(&["read_file", "grep"], &["hello", "hi", "more please"]),
    )
    .await;
    assert_eq!(changed["cache_read"], 0);
    // Prefixes below the minimum are not cached.
    let small = json!({"model": "claude-mock", "max_tokens": 10, "stream": true,
        "system": [{"type": "text", "text": "short", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..2 {
        let usage = usage_of(&mock, &small).await;
        assert_eq!(
            (usage["cache_read"].as_u64(), usage["cache_write"].as_u64()),
            (Some(0), Some(0))
        );
    }
    // After a reset nothing is cached any more.
    mock.reset();
    assert_eq!(usage_of(&mock, &second).await["cache_read"], 0);
    // Five breakpoints are flagged.
    let mut five = cached_request(&tools, &["a", "b", "c", "d"]);
    for message in five["messages"].as_array_mut().unwrap() {
        message["content"][0]["cache_control"] = json!({"type": "ephemeral"});
    }
    usage_of(&mock, &five).await;
    let violations = mock.requests().pop().unwrap().violations;
    assert_eq!(
        violations.iter().map(|v| v.rule).collect::<Vec<_>>(),
        vec![Rule::TooManyCacheBreakpoints]
    );
    assert_eq!(violations[0].detail, "5 blocks carry cache_control");
}

#[tokio::test]
async fn openai_reports_cached_tokens_for_a_repeated_prefix() {
    let mock = MockLlm::start(Config {
        min_cacheable_tokens: 0,
        ..Config::default()
    })
    .await
    .unwrap();
    let mut request = openai_request(true);
    request["messages"] = json!([{"role": "system", "content": "x".repeat(4000)}, {"role": "user", "content": "one"}]);
    let url = format!("{}/chat/completions", mock.openai_base_url());
    let usage = |text: String| assemble_openai(&parse_sse(&text)).usage.unwrap();
    let first = usage(post(&url, &request).await.text().await.unwrap());
    request["messages"][1]["content"] = json!("two");
    let second = usage(post(&url, &request).await.text().await.unwrap());
    assert_eq!(first["prompt_tokens_details"]["cached_tokens"], 0);
    let cached = second["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert_eq!(cached % 128, 0);
    assert!(
        cached >= 896 && cached < second["prompt_tokens"].as_u64().unwrap(),
        "{second}"
    );
}

#[tokio::test]
async fn control_api_queues_lists_and_resets() {
    let mock = MockLlm::start(Config::default()).await.unwrap();
    let client = reqwest::Client::new();
    let control = |path: &str| format!("{}/_mock/{path}", mock.url());
    let health: Value = client
        .get(control("health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));

    let one = json!({"stream": {"items": [{"type": "text", "text": "first"}]}});
    let many = json!([
        {"provider": "openai", "stream": {"items": [{"type": "tool_call", "name": "f", "arguments": {"a": 1}}]}},
        {"error": {"status": 429, "retry_after": 3}},
    ]);
    let added: Value = client
        .post(control("responses"))
        .json(&one)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(added, json!({"added": 1, "queued": 1}));
    let added: Value = client
        .post(control("responses"))
        .json(&many)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(added, json!({"added": 2, "queued": 3}));
    let queued: Value = client
        .get(control("responses"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(queued[0], one);
    assert_eq!(mock.queued().len(), 3);

    for bad in [
        "{not json",
        r#"{"stream": {"items": [{"type": "nope"}]}}"#,
        r#"{"error": {"status": 7}}"#,
        "[1]",
    ] {
        let response = client
            .post(control("responses"))
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_script", "{bad}");
    }

    let url = format!("{}/chat/completions", mock.openai_base_url());
    let text = post(&url, &openai_request(false))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(assemble_openai(&parse_sse(&text)).text, "first");
    let text = post(&url, &openai_request(false))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        assemble_openai(&parse_sse(&text)).tool_calls[0].2,
        r#"{"a":1}"#
    );
    assert_eq!(post(&url, &openai_request(false)).await.status(), 429);

    let requests: Value = client
        .get(control("requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(requests.as_array().unwrap().len(), 3);
    assert_eq!(requests[0]["headers"]["authorization"], REDACTED);
    assert_eq!(requests[0]["provider"], "openai");
    assert_eq!(
        serde_json::from_value::<Vec<dispatch_mock_llm::RecordedRequest>>(requests).unwrap(),
        mock.requests()
    );

    mock.push(Response::text("dropped on reset"));
    let reset = client.post(control("reset")).send().await.unwrap();
    assert_eq!(reset.status(), 200);
    assert_eq!((mock.requests().len(), mock.queued().len()), (0, 0));
}

#[tokio::test]
async fn models_are_listed_in_each_providers_shape() {
    let mock = MockLlm::start(Config {
        models: vec!["m1".into(), "m2".into()],
        ..Config::default()
    })
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let openai: Value = client
        .get(format!("{}/models", mock.openai_base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(openai["object"], "list");
    assert_eq!(
        openai["data"][1],
        json!({"id": "m2", "object": "model", "created": 0, "owned_by": "dispatch-mock-llm"})
    );
    let anthropic: Value = client
        .get(format!("{}/v1/models", mock.url()))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            anthropic["first_id"].as_str(),
            anthropic["data"][0]["type"].as_str()
        ),
        (Some("m1"), Some("model"))
    );
}

#[tokio::test]
async fn binary_serves_a_script_and_exits_on_sigterm() {
    let dir = tempfile::TempDir::new().unwrap();
    let script = dir.path().join("script.json");
    let json = serde_json::to_string(&vec![Response::stream(vec![
        Item::text("from "),
        Item::text("script"),
    ])])
    .unwrap();
    std::fs::write(&script, json).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dispatch-mock-llm"))
        .args(["--port", "0", "--strict", "--script"])
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(30), line)
        .await
        .unwrap()
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("dispatch-mock-llm listening on ")
        .unwrap()
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");

    let text = post(&format!("{url}/v1/messages"), &anthropic_request())
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(assemble_anthropic(&parse_sse(&text)).text, "from script");
    assert_eq!(
        post(&format!("{url}/v1/messages"), &anthropic_request())
            .await
            .status(),
        500,
        "strict: queue empty"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || child.wait()),
    )
    .await;
    assert!(exit.unwrap().unwrap().unwrap().success());
}
