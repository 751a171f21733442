#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The real binary: boot, activation order in the log, clean shutdown on signals, config errors.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn server() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dispatch-server"));
    cmd.env_remove("DISPATCH_LOG").env_remove("DISPATCH_CONFIG");
    cmd
}

/// Spawns the server with `config`, waits for "Dispatch ready", sends `signal`, and returns
/// (exit status, all stderr lines).
fn boot_and_stop(config: &str, signal: &str) -> (std::process::ExitStatus, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dispatch.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = server()
        .arg("--config")
        .arg(&path)
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
    assert!(ready.contains("order=clock"), "{ready}");
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
    let out = server()
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
}

#[test]
fn an_empty_grant_boots_and_a_bad_config_file_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dispatch.toml");
    std::fs::write(
        &path,
        "[extensions.clock]\nanything = 1\n[host]\ncapabilities = []\n",
    )
    .unwrap();
    // clock needs no capability, so an empty grant still boots; a bad file does not.
    let out = server()
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

    std::fs::write(&path, "[host]\ncapabilities = [\"teleport\"]\n").unwrap();
    let out = server().arg("--config").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("invalid config file") && err.contains("teleport"),
        "{err}"
    );
}

#[test]
fn a_missing_explicit_config_is_an_error() {
    let out = server()
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
