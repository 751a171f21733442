#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The exec backend against real processes and real files in temporary directories.

mod containment;
mod fs;
mod resolver;
mod spawn;

use std::path::Path;
use std::time::{Duration, Instant};

/// Whether `pid` is gone (or a zombie: dead, waiting for a reaper this container may lack).
pub fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state == 'Z' || state == 'X'),
    }
}

/// Polls until `pid` is dead, for at most five seconds.
pub async fn wait_dead(pid: i32) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if is_dead(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

pub fn canonical(path: &Path) -> std::path::PathBuf {
    std::fs::canonicalize(path).unwrap()
}
