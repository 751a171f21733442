//! Time on tokio's clock, so `#[tokio::test(start_paused = true)]` tests run in virtual time.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use dispatch_kernel::abi::{Clock, Sleeper};
use tokio::time::Instant;

/// A [`Clock`] on tokio time: monotonic from its creation, and a wall clock that starts at a
/// fixed epoch (`2023-11-14T22:13:20Z`) and advances with it, so timestamps are stable.
pub struct TokioClock {
    origin: Instant,
    epoch_ms: i64,
}

impl TokioClock {
    pub const EPOCH_MS: i64 = 1_700_000_000_000;

    pub fn new() -> TokioClock {
        TokioClock {
            origin: Instant::now(),
            epoch_ms: TokioClock::EPOCH_MS,
        }
    }
}

impl Default for TokioClock {
    fn default() -> TokioClock {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }

    fn unix_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.origin.elapsed().as_millis()).unwrap();
        self.epoch_ms + elapsed
    }
}

/// A [`Sleeper`] on `tokio::time::sleep` that records every duration it was asked for.
#[derive(Default)]
pub struct TokioSleeper {
    sleeps: Mutex<Vec<Duration>>,
}

impl TokioSleeper {
    pub fn new() -> TokioSleeper {
        TokioSleeper::default()
    }

    /// Every requested sleep, in order (idle timers included).
    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().unwrap().clone()
    }
}

#[async_trait]
impl Sleeper for TokioSleeper {
    async fn sleep(&self, duration: Duration) {
        self.sleeps.lock().unwrap().push(duration);
        tokio::time::sleep(duration).await;
    }
}
