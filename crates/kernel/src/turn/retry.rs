use std::time::Duration;

use crate::abi::RetryPolicy;

/// The stepped backoff of seed 002: 5s, 10s, 30s, 60s, 5m, 10m, 15m, 30m, then 30m again and
/// again until 8 hours of sleep were spent in the step. A server's `retry-after` replaces the
/// scheduled delay. Pure: the kernel does the sleeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackoffSchedule {
    pub delays: Vec<Duration>,
    /// Total sleep allowed per step before giving up.
    pub budget: Duration,
}

impl Default for BackoffSchedule {
    fn default() -> BackoffSchedule {
        let s = Duration::from_secs;
        BackoffSchedule {
            delays: vec![s(5), s(10), s(30), s(60), s(300), s(600), s(900), s(1800)],
            budget: s(8 * 3600),
        }
    }
}

impl RetryPolicy for BackoffSchedule {
    fn delay(
        &self,
        attempt: u32,
        slept: Duration,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let index = (attempt.max(1) as usize - 1).min(self.delays.len().checked_sub(1)?);
        let delay = retry_after.unwrap_or(self.delays[index]);
        (slept + delay <= self.budget).then_some(delay)
    }
}
