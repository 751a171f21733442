//! Decode-speed samples for `GET /metrics/throughput`: a bounded in-memory ring fed by the
//! `TURN_SETTLED` hook, one sample per step that produced output tokens with a measured
//! decode time. Nothing is persisted: the samples cover the server's uptime.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dispatch_kernel::BoxError;
use dispatch_kernel::abi::TurnSettled;
use dispatch_kernel::host::Hook;
use dispatch_wire::ThroughputSample;

/// How many samples the ring keeps by default.
pub const DEFAULT_CAPACITY: usize = 1000;

/// The ring of recent samples, oldest first.
#[derive(Debug)]
pub struct Throughput {
    capacity: usize,
    samples: Mutex<VecDeque<ThroughputSample>>,
}

impl Default for Throughput {
    fn default() -> Throughput {
        Throughput::new(DEFAULT_CAPACITY)
    }
}

impl Throughput {
    pub fn new(capacity: usize) -> Throughput {
        let capacity = capacity.max(1);
        Throughput {
            capacity,
            samples: Mutex::new(VecDeque::with_capacity(capacity)),
        }
    }

    /// Adds one sample per step of the turn with output tokens and a decode time.
    pub fn record(&self, settled: &TurnSettled) {
        let metrics = &settled.metrics;
        let ended_at = metrics
            .started_at
            .saturating_add(i64::try_from(metrics.duration_ms).unwrap_or(i64::MAX));
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        for step in &metrics.steps {
            let output_tokens = step.usage.output_tokens;
            let Some(decode_ms) = step.decode_ms.filter(|ms| *ms > 0) else {
                continue;
            };
            if output_tokens == 0 {
                continue;
            }
            if samples.len() == self.capacity {
                samples.pop_front();
            }
            samples.push_back(ThroughputSample {
                model: metrics.model.clone(),
                conversation_id: settled.conversation_id.clone(),
                step_id: step.step_id.clone(),
                at: ended_at,
                output_tokens,
                ttft_ms: step.ttft_ms,
                decode_ms,
                tokens_per_second: output_tokens as f64 / decode_ms as f64 * 1000.0,
            });
        }
    }

    /// The newest `limit` samples (all when `None`) of `model` (any when `None`), newest
    /// last.
    pub fn recent(&self, model: Option<&str>, limit: Option<usize>) -> Vec<ThroughputSample> {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<ThroughputSample> = samples
            .iter()
            .rev()
            .filter(|s| model.is_none_or(|m| s.model == m))
            .take(limit.unwrap_or(usize::MAX))
            .cloned()
            .collect();
        out.reverse();
        out
    }
}

/// The `TURN_SETTLED` subscriber feeding a [`Throughput`].
pub struct ThroughputHook(pub Arc<Throughput>);

#[async_trait]
impl Hook<TurnSettled> for ThroughputHook {
    async fn handle(&self, payload: &TurnSettled) -> Result<(), BoxError> {
        self.0.record(payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use dispatch_wire::{FinishReason, Id, StepMetrics, TurnMetrics, Usage};

    use super::*;

    fn settled(model: &str, steps: &[(u64, Option<u64>)]) -> TurnSettled {
        TurnSettled {
            conversation_id: Id::from("c1"),
            workspace_id: "default".into(),
            provider: "p".into(),
            metrics: TurnMetrics {
                turn_id: Id::from("t1"),
                model: model.into(),
                finish_reason: FinishReason::Stop,
                started_at: 1_000,
                duration_ms: 500,
                usage: Usage::default(),
                cost: None,
                context_size: None,
                steps: steps
                    .iter()
                    .enumerate()
                    .map(|(i, (output, decode))| StepMetrics {
                        step_id: Id::from(format!("t1#{i}")),
                        step_index: u32::try_from(i).unwrap_or(0),
                        ttft_ms: Some(10),
                        decode_ms: *decode,
                        gen_total_ms: 100,
                        usage: Usage {
                            output_tokens: *output,
                            ..Usage::default()
                        },
                    })
                    .collect(),
                system_prompt: Vec::new(),
            },
        }
    }

    #[test]
    fn keeps_steps_with_output_and_decode_time_in_a_bounded_ring() {
        let ring = Throughput::new(3);
        ring.record(&settled(
            "a",
            &[(100, Some(1000)), (0, Some(5)), (7, None), (5, Some(0))],
        ));
        let samples = ring.recent(None, None);
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].tokens_per_second, 100.0);
        assert_eq!(samples[0].at, 1_500);
        ring.record(&settled("b", &[(1, Some(1)), (2, Some(1)), (3, Some(1))]));
        let all = ring.recent(None, None);
        assert_eq!(
            all.iter().map(|s| s.output_tokens).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(ring.recent(Some("a"), None).len(), 0);
        assert_eq!(
            ring.recent(Some("b"), Some(2))
                .iter()
                .map(|s| s.output_tokens)
                .collect::<Vec<_>>(),
            vec![2, 3]
        );
    }
}
