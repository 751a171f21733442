//! `spawn`: streaming, capture, exit codes, timeout, cancel and process-group kills.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dispatch_exec_backend::LocalBackend;
use dispatch_kernel::abi::{
    CapturedOutput, ExecBackend, ExecError, ExecOutputSink, ExitStatus, SpawnRequest,
};
use dispatch_wire::OutputStream;
use pretty_assertions::assert_eq;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use crate::{canonical, is_dead, wait_dead};

type Events = Arc<Mutex<Vec<(OutputStream, Vec<u8>)>>>;

fn sink() -> (ExecOutputSink, Events) {
    let events: Events = Arc::default();
    let seen = events.clone();
    let sink: ExecOutputSink = Arc::new(move |stream, bytes: &[u8]| {
        seen.lock().unwrap().push((stream, bytes.to_vec()));
    });
    (sink, events)
}

fn sh(script: &str, cwd: &Path) -> SpawnRequest {
    SpawnRequest {
        program: "sh".into(),
        args: vec!["-c".into(), script.into()],
        cwd: cwd.to_path_buf(),
        env: BTreeMap::new(),
        timeout: None,
        output_cap: 1 << 20,
    }
}

fn joined(events: &Events, stream: OutputStream) -> Vec<u8> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter(|(s, _)| *s == stream)
        .flat_map(|(_, b)| b.clone())
        .collect()
}

fn whole(bytes: &[u8]) -> CapturedOutput {
    CapturedOutput {
        bytes: bytes.to_vec(),
        cut_at: None,
        omitted: 0,
        total: bytes.len() as u64,
    }
}

/// Waits (bounded) for the first line of streamed stdout and parses it as a pid.
async fn streamed_pid(events: &Events) -> i32 {
    let start = Instant::now();
    loop {
        let out = String::from_utf8(joined(events, OutputStream::Stdout)).unwrap();
        if let Some((line, _)) = out.split_once('\n') {
            return line.trim().parse().unwrap();
        }
        assert!(start.elapsed() < Duration::from_secs(5), "no pid streamed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn streams_and_captures_both_streams() {
    let dir = TempDir::new().unwrap();
    let (sink, events) = sink();
    let status = LocalBackend::new()
        .spawn(
            sh("printf out; printf err >&2", dir.path()),
            sink,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        status,
        ExitStatus {
            code: Some(0),
            signal: None,
            timed_out: false,
            cancelled: false,
            stdout: whole(b"out"),
            stderr: whole(b"err"),
            duration: status.duration,
        }
    );
    assert_eq!(joined(&events, OutputStream::Stdout), b"out");
    assert_eq!(joined(&events, OutputStream::Stderr), b"err");
}

#[tokio::test]
async fn reports_exit_codes_signals_env_and_cwd() {
    let dir = TempDir::new().unwrap();
    let backend = LocalBackend::new();
    let run = |request: SpawnRequest| {
        let backend = backend.clone();
        async move {
            backend
                .spawn(request, sink().0, CancellationToken::new())
                .await
                .unwrap()
        }
    };
    let status = run(sh("exit 3", dir.path())).await;
    assert_eq!((status.code, status.signal), (Some(3), None));

    let status = run(sh("kill -TERM $$", dir.path())).await;
    assert_eq!((status.code, status.signal), (None, Some(15)));

    let mut request = sh("printf %s \"$DISPATCH_TEST_VAR\"; pwd >&2", dir.path());
    request
        .env
        .insert("DISPATCH_TEST_VAR".into(), "é value".into());
    let status = run(request).await;
    assert_eq!(status.stdout.bytes, "é value".as_bytes());
    assert_eq!(
        String::from_utf8(status.stderr.bytes).unwrap().trim_end(),
        canonical(dir.path()).to_str().unwrap()
    );
}

#[tokio::test]
async fn output_over_the_cap_keeps_head_and_tail() {
    let dir = TempDir::new().unwrap();
    let mut request = sh("seq 1 100000", dir.path());
    request.output_cap = 1000;
    let (sink, events) = sink();
    let status = LocalBackend::new()
        .spawn(request, sink, CancellationToken::new())
        .await
        .unwrap();
    let full: String = (1..=100_000).map(|n| format!("{n}\n")).collect();
    let full = full.as_bytes();
    assert_eq!(
        joined(&events, OutputStream::Stdout),
        full,
        "all of it streamed"
    );
    assert_eq!(
        status.stdout,
        CapturedOutput {
            bytes: [&full[..500], &full[full.len() - 500..]].concat(),
            cut_at: Some(500),
            omitted: full.len() as u64 - 1000,
            total: full.len() as u64,
        }
    );
}

#[tokio::test]
async fn refuses_bad_requests() {
    let dir = TempDir::new().unwrap();
    let backend = LocalBackend::new();
    let missing = dir.path().join("nope");
    let err = backend
        .spawn(sh("true", &missing), sink().0, CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err, ExecError::NotFound { path: missing });

    let mut request = sh("true", dir.path());
    request.program = "/definitely/not/a/program".into();
    let err = backend
        .spawn(request.clone(), sink().0, CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ExecError::NotFound {
            path: "/definitely/not/a/program".into()
        }
    );

    request.program = String::new();
    let err = backend
        .spawn(request, sink().0, CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err, ExecError::Invalid("the program is empty".into()));

    let cancel = CancellationToken::new();
    cancel.cancel();
    let err = backend
        .spawn(sh("true", dir.path()), sink().0, cancel)
        .await
        .unwrap_err();
    assert_eq!(err, ExecError::Cancelled);
}

#[tokio::test]
async fn timeout_kills_the_group_including_a_grandchild() {
    let dir = TempDir::new().unwrap();
    let mut request = sh("sleep 300 & echo $!; wait", dir.path());
    request.timeout = Some(Duration::from_millis(500));
    let started = Instant::now();
    let status = LocalBackend::new()
        .spawn(request, sink().0, CancellationToken::new())
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(status.timed_out && !status.cancelled);
    assert_eq!((status.code, status.signal), (None, Some(9)));
    let pid: i32 = String::from_utf8(status.stdout.bytes)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_dead(pid).await,
        "grandchild {pid} survived the timeout"
    );
}

#[tokio::test]
async fn cancel_kills_the_group_including_a_grandchild() {
    let dir = TempDir::new().unwrap();
    let backend = Arc::new(LocalBackend::new());
    let cancel = CancellationToken::new();
    let (sink, events) = sink();
    let request = sh("sleep 300 & echo $!; wait", dir.path());
    let task = tokio::spawn({
        let cancel = cancel.clone();
        async move { backend.spawn(request, sink, cancel).await }
    });
    let pid = streamed_pid(&events).await;
    assert!(!is_dead(pid));
    cancel.cancel();
    let status = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("spawn returned promptly")
        .unwrap()
        .unwrap();
    assert!(status.cancelled && !status.timed_out);
    assert!(wait_dead(pid).await, "grandchild {pid} survived the cancel");
}

#[tokio::test]
async fn returns_promptly_when_a_grandchild_holds_the_pipes() {
    let dir = TempDir::new().unwrap();
    let backend = LocalBackend::new();
    // The grandchild inherits stdout and stderr and outlives its parent.
    let started = Instant::now();
    let status = backend
        .spawn(
            sh("(sleep 300 & echo $!); echo done", dir.path()),
            sink().0,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stalled on pipes"
    );
    assert_eq!(status.code, Some(0));
    let out = String::from_utf8(status.stdout.bytes).unwrap();
    let (pid, rest) = out.split_once('\n').unwrap();
    assert_eq!(rest, "done\n");
    // Left-over members of the group are killed once the command ended.
    assert!(wait_dead(pid.parse().unwrap()).await);

    // A background child with its output redirected does not hold the pipes either way.
    let started = Instant::now();
    let status = backend
        .spawn(
            sh("sleep 300 >/dev/null 2>&1 & echo $!", dir.path()),
            sink().0,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let pid = String::from_utf8(status.stdout.bytes).unwrap();
    assert!(wait_dead(pid.trim().parse().unwrap()).await);
}

#[tokio::test]
async fn a_process_that_left_the_group_cannot_stall_spawn() {
    let dir = TempDir::new().unwrap();
    // `setsid` puts the grandchild in a session of its own, out of reach of the group kill,
    // still holding both pipes: only the drain grace bounds the wait.
    let started = Instant::now();
    let status = LocalBackend::new()
        .spawn(
            sh("setsid sleep 300 & echo $!", dir.path()),
            sink().0,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let pid: i32 = String::from_utf8(status.stdout.bytes)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(elapsed < Duration::from_secs(2), "stalled for {elapsed:?}");
    assert_eq!(status.code, Some(0));
    assert!(wait_dead(pid).await);
}

#[tokio::test]
async fn dropping_the_spawn_future_kills_the_group() {
    let dir = TempDir::new().unwrap();
    let backend = Arc::new(LocalBackend::new());
    let (sink, events) = sink();
    let request = sh("sleep 300 & echo $!; wait", dir.path());
    let task =
        tokio::spawn(async move { backend.spawn(request, sink, CancellationToken::new()).await });
    let pid = streamed_pid(&events).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert!(wait_dead(pid).await, "grandchild {pid} survived the drop");
}
