use std::time::Duration;

use async_trait::async_trait;

use crate::host::ServiceKey;

/// The kernel's only source of time, injected so tests control it.
pub trait Clock: Send + Sync {
    /// Monotonic time since an arbitrary fixed origin; for durations.
    fn monotonic(&self) -> Duration;
    /// Wall-clock milliseconds since the Unix epoch; for timestamps on the wire.
    fn unix_ms(&self) -> i64;
}

/// The kernel's only way to wait, injected. Callers race it against their cancellation
/// token, so an implementation need not watch for cancellation itself.
#[async_trait]
pub trait Sleeper: Send + Sync {
    async fn sleep(&self, duration: Duration);
}

/// The host's clock, provided by the `clock` core extension.
pub const CLOCK: ServiceKey<dyn Clock> = ServiceKey::new("kernel.clock");

/// The host's sleeper, provided by the `clock` core extension.
pub const SLEEPER: ServiceKey<dyn Sleeper> = ServiceKey::new("kernel.sleeper");
