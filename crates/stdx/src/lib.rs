//! Small helpers every Dispatch crate may use: [`or_cancel`], [`never!`], [`Secret`].
//!
//! This crate must stay free of I/O and of any dependency beyond tokio-util and tracing;
//! anything larger belongs in its own crate.

use std::any::Any;
use std::fmt;
use std::future::Future;

use tokio_util::sync::CancellationToken;

/// The token was cancelled before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// Races `fut` against `token`: `Err(Cancelled)` as soon as the token fires, dropping `fut`.
///
/// Every await on a provider, a tool or a sleep goes through this, so no cancellation waits
/// on a future that ignores it.
pub async fn or_cancel<F: Future>(
    token: &CancellationToken,
    fut: F,
) -> Result<F::Output, Cancelled> {
    if token.is_cancelled() {
        return Err(Cancelled);
    }
    token.run_until_cancelled(fut).await.ok_or(Cancelled)
}

/// A broken invariant: asserts in debug builds, logs an error in release and evaluates to
/// `true` so the caller can take its recovery branch.
///
/// ```text
/// if never!(seq == 0, "seq must be 1-based") { return Err(...) }
/// ```
#[macro_export]
macro_rules! never {
    ($cond:expr, $($arg:tt)+) => {{
        let broken: bool = $cond;
        if broken {
            debug_assert!(false, $($arg)+);
            ::tracing::error!("Invariant broken: {}", format_args!($($arg)+));
        }
        broken
    }};
}

/// The message of a caught panic payload (`&str` or `String`), for logs and error results.
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// A secret value (API key, token) whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it (an HTTP header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"[redacted]\")")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("sk-live-123");
        assert_eq!(format!("{s} {s:?}"), "[redacted] Secret(\"[redacted]\")");
        assert_eq!(s.expose(), "sk-live-123");
    }

    #[tokio::test]
    async fn or_cancel_returns_value_or_cancelled() {
        let token = CancellationToken::new();
        assert_eq!(or_cancel(&token, async { 7 }).await, Ok(7));
        token.cancel();
        assert_eq!(
            or_cancel(&token, std::future::pending::<()>()).await,
            Err(Cancelled)
        );
    }

    #[test]
    fn panic_messages_are_read_from_str_and_string_payloads() {
        let a = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        let b = std::panic::catch_unwind(|| panic!("formatted {}", 1)).unwrap_err();
        let c = std::panic::catch_unwind(|| std::panic::panic_any(7_u8)).unwrap_err();
        assert_eq!(panic_message(&*a), "plain");
        assert_eq!(panic_message(&*b), "formatted 1");
        assert_eq!(panic_message(&*c), "non-string panic payload");
    }

    #[test]
    fn never_reports_broken_invariants() {
        let broken = std::panic::catch_unwind(|| never!(1 + 1 == 2, "math"));
        // Debug builds assert; release builds log and return true.
        assert!(broken.is_err() || matches!(broken, Ok(true)));
        assert!(!never!(false, "fine"));
    }
}
