#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `run_shell` end to end: real commands through a real local exec backend.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dispatch_exec_backend::{Allowances, ExecBackendExtension, LocalBackend, Resolver};
use dispatch_kernel::abi::{Tool, ToolCtx, ToolError, ToolOutput};
use dispatch_kernel::host::{Host, HostConfig};
use dispatch_test_support::{ToolCompliance, assert_extension_compliance, assert_tool_compliance};
use dispatch_tool_shell::{Config, RunShell, ToolShellExtension};
use dispatch_wire::OutputStream;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

type Emitted = Arc<Mutex<Vec<(OutputStream, String)>>>;

fn resolver() -> Arc<Resolver> {
    Arc::new(Resolver::new(
        Arc::new(LocalBackend::new()),
        Allowances::default(),
    ))
}

fn tool(config: Config) -> Arc<dyn Tool> {
    Arc::new(RunShell::new(resolver(), config))
}

fn ctx(cwd: &Path, cancel: CancellationToken) -> (ToolCtx, Emitted) {
    let emitted: Emitted = Arc::default();
    let seen = emitted.clone();
    let ctx = ToolCtx {
        conversation_id: "c".into(),
        turn_id: "t".into(),
        step_id: "t#0".into(),
        tool_call_id: "call".into(),
        cwd: Some(cwd.to_path_buf()),
        workspace_id: None,
        computer_id: None,
        cancel,
        output: Arc::new(move |stream, chunk: &str| {
            seen.lock().unwrap().push((stream, chunk.to_string()));
        }),
    };
    (ctx, emitted)
}

/// Runs `input` with the default config in `cwd`.
async fn run(cwd: &Path, input: Value) -> Result<ToolOutput, ToolError> {
    let (ctx, _) = ctx(cwd, CancellationToken::new());
    tool(Config::default()).call(input, ctx).await
}

fn temp() -> (TempDir, PathBuf) {
    let dir = TempDir::new().unwrap();
    let path = std::fs::canonicalize(dir.path()).unwrap();
    (dir, path)
}

fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state == 'Z' || state == 'X'),
    }
}

async fn wait_dead(pid: i32) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if is_dead(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[test]
fn is_compliant() {
    assert_extension_compliance(
        Arc::new(ToolShellExtension),
        env!("CARGO_MANIFEST_DIR"),
        vec![Arc::new(ExecBackendExtension)],
        HostConfig::default(),
    );
}

#[tokio::test]
async fn tool_is_compliant() {
    let (_dir, cwd) = temp();
    let config = Config {
        output_cap: 1000,
        ..Config::default()
    };
    let cap = config.max_result_bytes();
    assert_tool_compliance(
        tool(config),
        ToolCompliance {
            input: json!({"command": "seq 1 100000; seq 1 100000 >&2"}),
            cwd: Some(cwd),
            output_cap: Some(cap),
        },
    )
    .await;
}

#[tokio::test]
async fn runs_through_the_host_with_the_exec_service() {
    let (_dir, cwd) = temp();
    let mut host = Host::new(
        vec![Arc::new(ExecBackendExtension), Arc::new(ToolShellExtension)],
        HostConfig::default(),
    )
    .unwrap();
    host.activate().await.unwrap();
    let run_shell = host.catalog().tool("run_shell").unwrap();
    assert!(!run_shell.spec().concurrency_safe);
    let (ctx, _) = ctx(&cwd, CancellationToken::new());
    let out = run_shell
        .call(json!({"command": "pwd"}), ctx)
        .await
        .unwrap();
    assert_eq!(out.content, format!("{}\n[exit code 0]", cwd.display()));
    host.deactivate().await;
}

#[tokio::test]
async fn without_the_exec_service_the_call_fails_as_fatal() {
    let (_dir, cwd) = temp();
    let mut host = Host::new(vec![Arc::new(ToolShellExtension)], HostConfig::default()).unwrap();
    host.activate().await.unwrap();
    let run_shell = host.catalog().tool("run_shell").unwrap();
    let (ctx, _) = ctx(&cwd, CancellationToken::new());
    let err = run_shell
        .call(json!({"command": "true"}), ctx)
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::Fatal(_)), "{err:?}");
}

#[tokio::test]
async fn a_bad_config_is_refused_at_activation() {
    let mut config = HostConfig::default();
    config.extensions.insert(
        "tool-shell".into(),
        toml::from_str("default_timeout_ms = 700000").unwrap(),
    );
    let mut host = Host::new(vec![Arc::new(ToolShellExtension)], config).unwrap();
    let report = host.activate().await.unwrap();
    assert_eq!(report.disabled.len(), 1);
    assert_eq!(report.disabled[0].0, "tool-shell");
    assert!(
        report.disabled[0].1.contains("default_timeout_ms"),
        "{report:?}"
    );
    assert!(host.catalog().tool("run_shell").is_none());
}

#[tokio::test]
async fn reports_stdout_stderr_and_exit_codes() {
    let (_dir, cwd) = temp();
    let out = run(&cwd, json!({"command": "echo out; echo err >&2; exit 3"})).await;
    assert_eq!(
        out,
        Ok(ToolOutput::text("out\n[stderr]\nerr\n[exit code 3]"))
    );
    let out = run(&cwd, json!({"command": "printf partial; kill -KILL $$"})).await;
    assert_eq!(out, Ok(ToolOutput::text("partial\n[killed by signal 9]")));
    let out = run(&cwd, json!({"command": "true"})).await;
    assert_eq!(out, Ok(ToolOutput::text("[exit code 0]")));
}

#[tokio::test]
async fn streams_output_in_order_without_splitting_characters() {
    let (_dir, cwd) = temp();
    let (ctx, emitted) = ctx(&cwd, CancellationToken::new());
    // The sleeps order chunks across the two pipes; the split `é` arrives in two reads.
    let command = "printf 'a\\n'; sleep 0.2; printf 'b\\n' >&2; sleep 0.2; \
                   printf '\\303'; sleep 0.2; printf '\\251\\n'";
    let out = tool(Config::default())
        .call(json!({"command": command}), ctx)
        .await
        .unwrap();
    assert_eq!(out.content, "a\n\u{e9}\n[stderr]\nb\n[exit code 0]");
    let emitted = emitted.lock().unwrap().clone();
    assert_eq!(
        emitted,
        vec![
            (OutputStream::Stdout, "a\n".to_string()),
            (OutputStream::Stderr, "b\n".to_string()),
            (OutputStream::Stdout, "\u{e9}\n".to_string()),
        ]
    );
}

#[tokio::test]
async fn caps_output_keeping_head_and_tail() {
    let (_dir, cwd) = temp();
    let config = Config {
        output_cap: 100,
        ..Config::default()
    };
    let (ctx, _) = ctx(&cwd, CancellationToken::new());
    let out = tool(config)
        .call(json!({"command": "seq 1 1000"}), ctx)
        .await
        .unwrap();
    let full: String = (1..=1000).map(|n| format!("{n}\n")).collect();
    let expect = format!(
        "{}\n[… {} bytes cut …]\n{}[exit code 0]",
        &full[..50],
        full.len() - 100,
        &full[full.len() - 50..]
    );
    assert_eq!(out.content, expect);
}

#[tokio::test]
async fn sets_environment_variables_and_checks_them() {
    let (_dir, cwd) = temp();
    let out = run(
        &cwd,
        json!({"command": "printf '%s' \"$GREETING\"", "env": {"GREETING": "hi there"}}),
    )
    .await;
    assert_eq!(out, Ok(ToolOutput::text("hi there\n[exit code 0]")));
    let err = run(&cwd, json!({"command": "true", "env": {"A": 1}})).await;
    assert_eq!(
        err,
        Err(ToolError::Model(
            "`env.A` must be a string without NUL bytes".into()
        ))
    );
    let err = run(&cwd, json!({"command": "true", "env": {"A=B": "x"}})).await;
    assert!(matches!(err, Err(ToolError::Model(_))));
}

#[tokio::test]
async fn rejects_bad_arguments() {
    let (_dir, cwd) = temp();
    assert_eq!(
        run(&cwd, json!({})).await,
        Err(ToolError::Model(
            "missing required argument `command`".into()
        ))
    );
    assert_eq!(
        run(&cwd, json!({"command": "  "})).await,
        Err(ToolError::Model("`command` is empty".into()))
    );
    assert_eq!(
        run(&cwd, json!({"command": "true", "timeout_ms": 600001})).await,
        Err(ToolError::Model(
            "`timeout_ms` must be between 1 and 600000, got 600001".into()
        ))
    );
}

#[tokio::test]
async fn runs_in_a_contained_cwd_only() {
    let (_dir, cwd) = temp();
    std::fs::create_dir(cwd.join("sub")).unwrap();
    let out = run(&cwd, json!({"command": "pwd", "cwd": "sub"})).await;
    assert_eq!(
        out,
        Ok(ToolOutput::text(format!(
            "{}\n[exit code 0]",
            cwd.join("sub").display()
        )))
    );
    for outside in ["..", "/"] {
        match run(&cwd, json!({"command": "pwd", "cwd": outside})).await {
            Err(ToolError::Model(message)) => assert!(message.contains("outside"), "{message}"),
            other => panic!("`{outside}` was not refused: {other:?}"),
        }
    }
    match run(&cwd, json!({"command": "pwd", "cwd": "missing"})).await {
        Err(ToolError::Model(message)) => assert!(message.contains("no such file"), "{message}"),
        other => panic!("a missing cwd was not refused: {other:?}"),
    }
}

#[tokio::test]
async fn timeout_kills_and_reports_the_partial_output() {
    let (_dir, cwd) = temp();
    let started = Instant::now();
    let out = run(
        &cwd,
        json!({"command": "sleep 300 & echo $!; wait", "timeout_ms": 300}),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let Err(ToolError::Model(text)) = out else {
        panic!("expected a timeout error, got {out:?}");
    };
    let (pid, status) = text.split_once('\n').unwrap();
    assert_eq!(status, "[killed: timed out after 0.3s]");
    assert!(wait_dead(pid.parse().unwrap()).await);
}

#[tokio::test]
async fn abort_kills_a_grandchild_and_returns_aborted() {
    let (_dir, cwd) = temp();
    let cancel = CancellationToken::new();
    let (ctx, emitted) = ctx(&cwd, cancel.clone());
    let run_shell = tool(Config::default());
    let call = tokio::spawn(async move {
        run_shell
            .call(json!({"command": "sleep 300 & echo $!; wait"}), ctx)
            .await
    });
    let start = Instant::now();
    let pid: i32 = loop {
        let first = emitted.lock().unwrap().first().cloned();
        if let Some((_, line)) = first {
            break line.trim().parse().unwrap();
        }
        assert!(start.elapsed() < Duration::from_secs(5), "no pid streamed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(!is_dead(pid));
    cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("the call returned promptly")
        .unwrap();
    assert_eq!(result, Err(ToolError::Aborted));
    assert!(wait_dead(pid).await, "grandchild {pid} survived the abort");
}
