#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue 6 acceptance, end to end: through the running `dispatch-server`, the mock model
//! calls each built-in tool in turn in a temporary project directory; the results are
//! streamed, persisted, and the files on disk are what the calls said. `web_search` talks to
//! a local Firecrawl-shaped mock on 127.0.0.1.

use std::path::Path;

use axum::Json;
use axum::routing::post;
use dispatch_mock_llm::{Item, Response};
use dispatch_system_tests::e2e::{Home, MockProc, ServerOptions, ServerProc};
use serde_json::{Value, json};

fn call(id: &str, name: &str, args: Value) -> Response {
    Response::stream(vec![Item::tool_call(id, name, &args.to_string(), 2)])
}

/// A Firecrawl-shaped search endpoint on 127.0.0.1:0.
async fn firecrawl() -> String {
    let app = axum::Router::new().route(
        "/v1/search",
        post(|Json(body): Json<Value>| async move {
            Json(json!({
                "success": true,
                "data": [{
                    "url": "https://example.invalid/rust",
                    "title": format!("Results for {}", body["query"].as_str().unwrap_or("?")),
                    "description": "A local mock result.",
                    "markdown": "A local mock result."
                }]
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_calls_every_tool_in_a_project_and_the_disk_matches() {
    let mock = MockProc::start();
    let search = firecrawl().await;
    let home = Home::new();
    let project = tempfile::tempdir().unwrap();
    let root = project.path().canonicalize().unwrap();
    std::fs::create_dir(root.join("src")).unwrap();
    std::fs::write(root.join("src/lib.rs"), "pub fn hello() {}\n").unwrap();
    std::fs::write(root.join(".gitignore"), "target/\n").unwrap();
    std::fs::create_dir(root.join("target")).unwrap();
    std::fs::write(
        root.join("target/hello.txt"),
        "hello from an ignored file\n",
    )
    .unwrap();
    std::fs::create_dir(root.join(".skills")).unwrap();
    std::fs::write(
        root.join(".skills/release.md"),
        "How to cut a release\n---\nBump the version, tag, push.\n",
    )
    .unwrap();
    let options = ServerOptions {
        config: format!("[extensions.tool-web-search]\nbase_url = \"{search}\"\n"),
        ..ServerOptions::default()
    };
    let server = ServerProc::start(&home, Some(&mock.url), &options);
    let api = server.api();

    mock.push(&[
        call(
            "c1",
            "write_file",
            json!({"path": "notes.txt", "content": "hello world\nsecond line\n"}),
        ),
        call("c2", "read_file", json!({"path": "notes.txt"})),
        call(
            "c3",
            "edit_file",
            json!({"path": "notes.txt", "oldString": "world", "newString": "dispatch"}),
        ),
        call("c4", "glob", json!({"pattern": "**/*.txt"})),
        call("c5", "grep", json!({"pattern": "hello"})),
        call(
            "c6",
            "run_shell",
            json!({"command": "echo shell-ran > shell.txt && cat notes.txt"}),
        ),
        call(
            "c7",
            "todo_write",
            json!({"todos": [
                {"id": "1", "content": "Write notes", "status": "completed"},
                {"id": "2", "content": "Ship it", "status": "in_progress"}
            ]}),
        ),
        call("c8", "load_skill", json!({"name": "release"})),
        call(
            "c9",
            "web_search",
            json!({"mode": "search", "query": "rust"}),
        ),
        call("c10", "read_file", json!({"path": "../outside.txt"})),
        Response::text("All tools ran."),
    ])
    .await;

    let chat = api
        .chat(json!({"message": "Use every tool", "cwd": root.to_str().unwrap()}))
        .await;
    let id = chat.conversation_id.clone();
    assert_eq!(chat.done()["finishReason"], "stop", "{:#?}", chat.events);
    assert_eq!(chat.text(), "All tools ran.");

    let results: Vec<&Value> = chat
        .events
        .iter()
        .filter(|e| e["type"] == "tool-result")
        .collect();
    let by_call = |call: &str| -> &Value {
        results
            .iter()
            .find(|r| r["toolCallId"] == call)
            .unwrap_or_else(|| panic!("no result for {call}: {results:#?}"))
    };
    for call in ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"] {
        assert_eq!(by_call(call)["isError"], false, "{:#}", by_call(call));
    }
    // Containment: the escape is refused, as an error the model reads.
    assert_eq!(by_call("c10")["isError"], true);
    assert!(
        by_call("c10")["output"]
            .as_str()
            .unwrap()
            .contains("outside"),
        "{}",
        by_call("c10")
    );

    // What the calls said is what is on disk.
    assert_eq!(
        read(&root.join("notes.txt")),
        "hello dispatch\nsecond line\n"
    );
    assert_eq!(read(&root.join("shell.txt")), "shell-ran\n");
    let output = |call: &str| by_call(call)["output"].as_str().unwrap().to_string();
    assert!(output("c2").contains("hello world"), "{}", output("c2"));
    assert!(output("c3").contains("-hello world"), "{}", output("c3"));
    assert!(output("c3").contains("+hello dispatch"), "{}", output("c3"));
    assert!(output("c4").contains("notes.txt"), "{}", output("c4"));
    assert!(
        !output("c4").contains("target/hello.txt"),
        ".gitignore respected: {}",
        output("c4")
    );
    assert!(output("c5").contains("notes.txt"), "{}", output("c5"));
    assert!(output("c5").contains("lib.rs"), "{}", output("c5"));
    assert!(!output("c5").contains("ignored file"), "{}", output("c5"));
    assert!(output("c6").contains("hello dispatch"), "{}", output("c6"));
    assert!(
        output("c8").contains("Bump the version"),
        "{}",
        output("c8")
    );
    assert!(
        output("c9").contains("Results for rust"),
        "{}",
        output("c9")
    );

    // Streamed: the shell's output arrived as tool-output before its result.
    let streamed: String = chat
        .events
        .iter()
        .filter(|e| e["type"] == "tool-output" && e["toolCallId"] == "c6")
        .map(|e| e["chunk"].as_str().unwrap())
        .collect();
    assert!(streamed.contains("hello dispatch"), "{streamed:?}");

    // Persisted: every call and result is in history.
    let (_, history) = api.get(&format!("/conversations/{id}")).await;
    let stored_results = history["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["chunk"]["type"] == "tool-result")
        .count();
    assert_eq!(stored_results, 10, "{history:#}");

    // The todo list is shown to clients.
    let (status, todos) = api.get(&format!("/conversations/{id}/todos")).await;
    assert_eq!(status, 200, "{todos}");
    assert_eq!(todos["todos"][1]["status"], "in_progress");

    // The skill is advertised in the tool's description the model saw.
    let requests = mock.chat_requests().await;
    let tools = requests[0]["body"]["tools"].as_array().unwrap();
    let skill_tool = tools
        .iter()
        .find(|t| t["function"]["name"] == "load_skill")
        .expect("load_skill offered");
    assert!(
        skill_tool["function"]["description"]
            .as_str()
            .unwrap()
            .contains("release"),
        "{skill_tool}"
    );
    for request in &requests {
        assert!(
            request["violations"]
                .as_array()
                .is_none_or(|v| v.is_empty()),
            "{request}"
        );
    }
}
