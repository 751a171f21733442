//! Test helpers for Dispatch crates: a scripted [`Provider`](dispatch_kernel::abi::Provider),
//! fake tools that record when they ran, a clock and sleeper on tokio time (so tests run
//! under `start_paused = true` and virtual time advances by itself), an event log with
//! waiting helpers, recording sinks, a `run_turn` input builder and the universal turn
//! invariants every test checks, and the compliance harness every extension and tool runs first.
//!
//! Test code only: panicking on a broken expectation is the point, so the unwrap lints are
//! off here. Nothing in this crate does I/O or reads the real clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod compliance;
mod events;
pub mod fixtures;
pub mod history;
mod memory_storage;
mod provider;
mod sinks;
mod time;
mod tool;
mod turn;

pub use compliance::{
    Captured, ToolCompliance, assert_extension_compliance, assert_tool_compliance, captured_events,
};
pub use events::{EventLog, check_history, check_turn_invariants, is_type};
pub use memory_storage::MemoryStorage;
pub use provider::{Opening, Script, ScriptStep, ScriptedProvider, provider_ids};
pub use sinks::{FlatPricing, RecordingStepSink, VecSteering};
pub use time::{TokioClock, TokioSleeper};
pub use tool::{Behaviour, FakeTool, ToolCallRecord, max_overlap, overlaps};
pub use turn::{TestTurn, TurnRun, turn_input};
