//! Recording implementations of the turn's callbacks: step sink, steering source, pricing.

use std::sync::Mutex;

use async_trait::async_trait;
use dispatch_kernel::abi::{Pricing, SteeringSource, StepRecord, StepSink};
use dispatch_wire::{Cost, Id, QueuedMessage, Usage};

/// A [`StepSink`] that records every step it is handed. It can fail or hang at a step.
#[derive(Default)]
pub struct RecordingStepSink {
    records: Mutex<Vec<StepRecord>>,
    fail_at: Option<(u32, String)>,
    hang_at: Option<u32>,
}

impl RecordingStepSink {
    pub fn new() -> RecordingStepSink {
        RecordingStepSink::default()
    }

    /// Fails with `message` when handed step `index` (after recording it).
    pub fn failing_at(index: u32, message: &str) -> RecordingStepSink {
        RecordingStepSink {
            fail_at: Some((index, message.to_owned())),
            ..Default::default()
        }
    }

    /// Never returns when handed step `index` (after recording it).
    pub fn hanging_at(index: u32) -> RecordingStepSink {
        RecordingStepSink {
            hang_at: Some(index),
            ..Default::default()
        }
    }

    pub fn records(&self) -> Vec<StepRecord> {
        self.records.lock().unwrap().clone()
    }
}

#[async_trait]
impl StepSink for RecordingStepSink {
    async fn step_complete(&self, step: &StepRecord) -> Result<(), String> {
        self.records.lock().unwrap().push(step.clone());
        if self.hang_at == Some(step.step_index) {
            std::future::pending::<()>().await;
        }
        match &self.fail_at {
            Some((index, message)) if *index == step.step_index => Err(message.clone()),
            Some(_) | None => Ok(()),
        }
    }
}

/// A steering queue tests push into, even while a turn runs.
#[derive(Default)]
pub struct VecSteering {
    queue: Mutex<Vec<QueuedMessage>>,
    pushed: Mutex<u32>,
    drains: Mutex<u32>,
}

impl VecSteering {
    pub fn new() -> VecSteering {
        VecSteering::default()
    }

    /// Queues `text` with id `q-<n>` (n from 1) and returns the queued message.
    pub fn push(&self, text: &str) -> QueuedMessage {
        let n = {
            let mut pushed = self.pushed.lock().unwrap();
            *pushed += 1;
            *pushed
        };
        let message = QueuedMessage {
            id: Id::from(format!("q-{n}")),
            text: text.to_owned(),
            enqueued_at: 0,
        };
        self.queue.lock().unwrap().push(message.clone());
        message
    }

    /// How many times the turn drained the queue.
    pub fn drains(&self) -> u32 {
        *self.drains.lock().unwrap()
    }

    /// Messages still queued.
    pub fn pending(&self) -> Vec<QueuedMessage> {
        self.queue.lock().unwrap().clone()
    }
}

#[async_trait]
impl SteeringSource for VecSteering {
    async fn drain(&self) -> Vec<QueuedMessage> {
        *self.drains.lock().unwrap() += 1;
        std::mem::take(&mut *self.queue.lock().unwrap())
    }
}

/// Prices every model the same: dollars per uncached input, cache read and output token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlatPricing {
    pub input: f64,
    pub cache_read: f64,
    pub output: f64,
}

impl Pricing for FlatPricing {
    fn cost(&self, _provider: &str, _model: &str, usage: &Usage) -> Option<Cost> {
        let uncached = usage.input_tokens.saturating_sub(usage.cache_read_tokens) as f64;
        let input = uncached * self.input;
        let cache_read = usage.cache_read_tokens as f64 * self.cache_read;
        let output = usage.output_tokens as f64 * self.output;
        Some(Cost {
            input,
            output,
            cache_read,
            cache_write: 0.0,
            total: input + cache_read + output,
        })
    }
}
