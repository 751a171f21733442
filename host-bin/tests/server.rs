#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The real binary: boot, activation order in the log, clean shutdown on signals, config errors.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The server binary with a hermetic environment: no inherited Dispatch variables, and a
/// HOME/XDG data home inside a fresh temporary directory (kept alive by the caller).
fn server_in(home: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dispatch-server"));
    cmd.env_remove("DISPATCH_LOG")
        .env_remove("DISPATCH_CONFIG")
        .env_remove("DISPATCH_DATA_DIR")
        .env_remove("DISPATCH_CREDENTIALS")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_BASE_URL")
        .env_remove("DISPATCH_TOKEN")
        .env_remove("OLLAMA_HOST")
        .arg("--bind")
        .arg("127.0.0.1:0")
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("share"))
        .env("XDG_CONFIG_HOME", home.join("config"));
    cmd
}

/// Spawns the server with `config`, waits for "Dispatch ready", sends `signal`, and returns
/// (exit status, all stderr lines).
fn boot_and_stop(config: &str, signal: &str) -> (std::process::ExitStatus, Vec<String>) {
    boot_and_stop_with(config, signal, &[])
}

/// [`boot_and_stop`] with extra environment variables.
fn boot_and_stop_with(
    config: &str,
    signal: &str,
    env: &[(&str, &str)],
) -> (std::process::ExitStatus, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dispatch.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = server_in(dir.path())
        .envs(env.iter().copied())
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("NO_COLOR", "1")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("server did not get ready");
        let ready = line.contains("Dispatch ready");
        lines.push(line);
        if ready {
            break;
        }
    }
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    lines.extend(rx.iter());
    (exit, lines)
}

#[test]
fn boots_logs_activation_order_and_stops_cleanly_on_sigterm() {
    let (exit, lines) = boot_and_stop("[host]\nlog = \"info\"\n", "TERM");
    assert!(exit.success(), "exit {exit:?}\n{}", lines.join("\n"));
    let ready = lines.iter().find(|l| l.contains("Dispatch ready")).unwrap();
    assert!(
        ready.contains(
            "order=clock -> storage-sqlite -> conversation-store -> model-catalog -> \
             provider-openai -> provider-anthropic"
        ),
        "{ready}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("SIGTERM") && l.contains("Dispatch shutting down"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Extension deactivated") && l.contains("clock"))
    );
    assert!(
        lines.last().unwrap().contains("Dispatch stopped"),
        "{lines:?}"
    );
}

#[test]
fn stops_cleanly_on_sigint() {
    let (exit, lines) = boot_and_stop("", "INT");
    assert!(exit.success(), "exit {exit:?}");
    assert!(lines.iter().any(|l| l.contains("SIGINT")));
}

#[test]
fn lists_extensions_with_version_tier_and_state() {
    let home = tempfile::tempdir().unwrap();
    let out = server_in(home.path())
        .arg("--list-extensions")
        .arg("--config")
        .arg("/dev/null")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["ID", "VERSION", "TIER", "STATE"]);
    assert_eq!(rows[1], ["clock", "0.1.0", "core", "enabled"]);
    assert_eq!(rows[2], ["storage-sqlite", "0.1.0", "core", "enabled"]);
    assert_eq!(rows[3], ["conversation-store", "0.1.0", "core", "enabled"]);
    assert_eq!(rows[4], ["model-catalog", "0.1.0", "core", "enabled"]);
    assert_eq!(rows[5], ["provider-openai", "0.1.0", "standard", "enabled"]);
    assert_eq!(
        rows[6],
        ["provider-anthropic", "0.1.0", "standard", "enabled"]
    );
    assert_eq!(rows[7], ["provider-echo", "0.1.0", "core", "enabled"]);
    assert_eq!(rows[8], ["system-prompt", "0.1.0", "core", "enabled"]);
    assert_eq!(
        rows[9],
        ["session-orchestrator", "0.1.0", "core", "enabled"]
    );
    assert_eq!(rows[10], ["transport-http", "0.1.0", "core", "enabled"]);
    assert_eq!(rows[11], ["transport-ws", "0.1.0", "core", "enabled"]);
    assert_eq!(rows[12], ["runs", "0.1.0", "standard", "enabled"]);
    assert_eq!(rows[13], ["exec-backend", "0.1.0", "core", "enabled"]);
    let standard = [
        "tool-fs",
        "tool-shell",
        "tool-todo",
        "tool-skills",
        "tool-web-search",
        "tool-testkit",
    ];
    for (row, id) in rows[14..].iter().zip(standard) {
        assert_eq!(row, &[id, "0.1.0", "standard", "enabled"]);
    }
    assert_eq!(rows.len(), 20);
}

#[test]
fn a_core_extension_denied_a_capability_stops_boot_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dispatch.toml");
    std::fs::write(&path, "[host]\ncapabilities = []\n").unwrap();
    let out = server_in(dir.path())
        .arg("--list-extensions")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("core extension `storage-sqlite` cannot run")
            && err.contains("needs capability `fs`, which the host config does not grant"),
        "{err}"
    );

    // Granting it per extension is enough; standard extensions without their grants are
    // disabled and the server goes on.
    std::fs::write(
        &path,
        "[host]\ncapabilities = []\n[host.grants]\nstorage-sqlite = [\"fs\"]\nmodel-catalog = [\"fs\"]\n\
         system-prompt = [\"fs\", \"shell\"]\ntransport-http = [\"network\"]\n\
         transport-ws = [\"network\"]\nexec-backend = [\"fs\", \"shell\"]\n",
    )
    .unwrap();
    let out = server_in(dir.path())
        .arg("--list-extensions")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("provider-openai") && l.contains("disabled")),
        "{text}"
    );
}

#[test]
fn provider_instances_come_from_the_environment_and_keys_never_reach_the_log() {
    let (exit, lines) = boot_and_stop_with(
        "[host]\nlog = \"debug\"\n",
        "TERM",
        &[
            ("ANTHROPIC_API_KEY", "sk-ant-do-not-log-me"),
            ("OPENAI_API_KEY", "sk-openai-do-not-log-me"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
        ],
    );
    assert!(exit.success(), "exit {exit:?}");
    let log = lines.join("\n");
    assert!(log.contains("instance=anthropic"), "{log}");
    assert!(log.contains("instance=openai"), "{log}");
    assert!(!log.contains("do-not-log-me"), "{log}");
}

#[test]
fn a_bad_config_file_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dispatch.toml");
    std::fs::write(&path, "[host]\ncapabilities = [\"teleport\"]\n").unwrap();
    let out = server_in(dir.path())
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("invalid config file") && err.contains("teleport"),
        "{err}"
    );
}

#[test]
fn a_missing_explicit_config_is_an_error() {
    let home = tempfile::tempdir().unwrap();
    let out = server_in(home.path())
        .arg("--config")
        .arg("/nonexistent/dispatch.toml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("cannot read config file /nonexistent/dispatch.toml")
    );
}
