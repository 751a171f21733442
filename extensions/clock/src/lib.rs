//! The `clock` core extension: provides [`CLOCK`] and [`SLEEPER`], the real time sources the
//! pure kernel is handed (monotonic time from `std::time::Instant`, wall time from
//! `SystemTime`, sleeping on tokio's timer).
//!
//! It must never be bypassed: every other crate takes time from these services (or a fake in
//! tests), so turns stay testable under virtual time.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use dispatch_kernel::abi::{CLOCK, Clock, Extension, Manifest, SLEEPER, Sleeper};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error};

/// Monotonic time from a fixed `Instant`, wall time from the system clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }

    fn unix_ms(&self) -> i64 {
        // A clock set before 1970 reads as the epoch rather than failing.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// Sleeps on tokio's timer (virtual under `tokio::time::pause`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleeper;

#[async_trait]
impl Sleeper for TokioSleeper {
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await
    }
}

/// Registers [`SystemClock`] under [`CLOCK`] and [`TokioSleeper`] under [`SLEEPER`].
#[derive(Debug, Default)]
pub struct ClockExtension;

#[async_trait]
impl Extension for ClockExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        host.provide(&CLOCK, Arc::new(SystemClock::new()))?;
        host.provide(&SLEEPER, Arc::new(TokioSleeper))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn wall_clock_is_after_2024_and_monotonic_does_not_go_back() {
        let clock = SystemClock::new();
        assert!(clock.unix_ms() > 1_704_067_200_000);
        let a = clock.monotonic();
        let b = clock.monotonic();
        assert!(b >= a);
    }

    #[test]
    fn is_compliant() {
        dispatch_test_support::assert_extension_compliance(
            Arc::new(ClockExtension),
            env!("CARGO_MANIFEST_DIR"),
            Vec::new(),
            Default::default(),
        );
    }

    #[tokio::test]
    async fn provides_the_clock_and_sleeper_services() {
        let mut host =
            dispatch_kernel::host::Host::new(vec![Arc::new(ClockExtension)], Default::default())
                .unwrap();
        host.activate().await.unwrap();
        let clock = host.services().get(&CLOCK).unwrap();
        assert!(clock.unix_ms() > 0);
        host.services()
            .get(&SLEEPER)
            .unwrap()
            .sleep(Duration::from_millis(1))
            .await;
        host.deactivate().await;
        assert!(host.services().get(&CLOCK).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn sleeper_sleeps_on_tokio_time() {
        let start = tokio::time::Instant::now();
        TokioSleeper.sleep(Duration::from_secs(3600)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(3600));
    }
}
