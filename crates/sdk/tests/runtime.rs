#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The embedding API against a real runtime: prompt streams, busy, abort, state, messages,
//! models and shutdown.

mod common;

use common::{collect, hang, runtime, runtime_with_mock, text, types, until};
use dispatch_sdk::{AgentEvent, FinishReason, PromptOptions, Runtime, SdkError};
use pretty_assertions::assert_eq;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_streams_one_turn_and_ends_after_turn_sealed() {
    let env = runtime().await;
    let conversation = Runtime::new_conversation_id();
    let stream = env
        .runtime
        .prompt(&conversation, "hello world")
        .await
        .unwrap();
    assert_eq!(stream.conversation_id().as_ref(), conversation);
    let events = collect(stream).await;
    assert_eq!(
        types(&events),
        [
            "user-message",
            "turn-start",
            "text-delta",
            "text-delta",
            "text-delta",
            "usage",
            "step-complete",
            "done",
            "turn-sealed"
        ]
    );
    assert_eq!(text(&events), "echo: hello world");
    assert!(matches!(
        &events[7],
        AgentEvent::Done {
            finish_reason: FinishReason::Stop,
            ..
        }
    ));

    // A second turn in the same conversation streams only its own events.
    let events = collect(env.runtime.prompt(&conversation, "again").await.unwrap()).await;
    assert_eq!(text(&events), "echo: again");
    assert_eq!(events.last().unwrap().type_name(), "turn-sealed");
    env.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_messages_models_and_set_model() {
    let env = runtime().await;
    let rt = &env.runtime;
    let conversation = Runtime::new_conversation_id();

    let state = rt.state(&conversation).await.unwrap();
    assert_eq!(
        state,
        dispatch_sdk::RpcState {
            conversation_id: conversation.clone(),
            model: Some("echo".to_owned()),
            is_running: false,
            message_count: 0,
        }
    );
    assert!(rt.messages(&conversation).await.unwrap().is_empty());

    let models = rt.models().await;
    assert_eq!(models.default_model.as_deref(), Some("echo"));
    assert!(models.models.iter().any(|m| m.id == "echo"));

    collect(rt.prompt(&conversation, "one").await.unwrap()).await;
    let chunks = rt.messages(&conversation).await.unwrap();
    let roles: Vec<String> = chunks
        .iter()
        .map(|c| {
            serde_json::to_value(c.role)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(roles, ["user", "assistant"]);
    let state = rt.state(&conversation).await.unwrap();
    assert_eq!(state.message_count, 2);
    assert!(!state.is_running);

    rt.set_model(&conversation, "echo/echo").await.unwrap();
    assert_eq!(
        rt.state(&conversation).await.unwrap().model.as_deref(),
        Some("echo/echo")
    );
    let events = collect(rt.prompt(&conversation, "two").await.unwrap()).await;
    assert!(matches!(&events[1], AgentEvent::TurnStart { model, .. } if model == "echo"));

    // An unknown model is refused by the next prompt, with the session's code.
    rt.set_model(&conversation, "nowhere/nothing")
        .await
        .unwrap();
    let err = rt.prompt(&conversation, "three").await.unwrap_err();
    assert_eq!(err.code(), "invalid", "{err}");
    env.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_conversation_refuses_and_abort_seals_the_turn() {
    let env = runtime_with_mock().await;
    env.mock.as_ref().unwrap().push(hang());
    let rt = &env.runtime;
    let conversation = Runtime::new_conversation_id();

    let mut stream = rt.prompt(&conversation, "hang please").await.unwrap();
    until(&mut stream, |e| matches!(e, AgentEvent::ToolCall { .. })).await;
    assert!(rt.is_running(&conversation));
    assert!(rt.state(&conversation).await.unwrap().is_running);

    let err = rt.prompt(&conversation, "me too").await.unwrap_err();
    assert!(matches!(err, SdkError::Busy { .. }), "{err:?}");
    assert_eq!(err.code(), "busy");

    // Another conversation is not affected.
    let other = Runtime::new_conversation_id();
    let events = collect(
        rt.prompt_with(
            &other,
            "elsewhere",
            PromptOptions {
                model: Some("echo".to_owned()),
                ..PromptOptions::default()
            },
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(text(&events), "echo: elsewhere");

    assert!(rt.abort(&conversation).await.unwrap());
    let rest = collect(stream).await;
    assert!(
        rest.iter().any(|e| matches!(
            e,
            AgentEvent::Done {
                finish_reason: FinishReason::Aborted,
                ..
            }
        )),
        "{rest:#?}"
    );
    assert_eq!(rest.last().unwrap().type_name(), "turn-sealed");
    assert!(!rt.is_running(&conversation));
    assert!(!rt.abort(&conversation).await.unwrap());
    env.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_set_builds_and_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("none.toml");
    let rt = Runtime::builder()
        .data_dir(dir.path())
        .extension_config(
            "transport-http",
            toml::from_str("bind = \"127.0.0.1:0\"").unwrap(),
        )
        .extension_config(
            "provider-openai",
            toml::from_str(&format!(
                "detect_ollama = false\ncredentials_file = \"{}\"",
                creds.display()
            ))
            .unwrap(),
        )
        .build()
        .await
        .unwrap();
    let activated = &rt.report().activated;
    for id in [
        "session-orchestrator",
        "transport-http",
        "runs",
        "tool-todo",
    ] {
        assert!(activated.iter().any(|a| a == id), "{id} in {activated:?}");
    }
    assert!(rt.services().get(&dispatch_kernel::abi::SESSION).is_ok());
    assert_eq!(rt.shutdown().await, Vec::<(String, String)>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_extension_that_cannot_run_is_a_build_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Runtime::builder()
        .data_dir(dir.path())
        .grants(dispatch_sdk::CapabilityGrants {
            default: Some(Default::default()),
            per_extension: Default::default(),
        })
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::Host(_)), "{err:?}");
    assert!(err.to_string().contains("storage-sqlite"), "{err}");
}
