//! Persistence of a turn's steps as they complete (`on_step_complete`).
//!
//! The kernel polls the sink once more after an abort and then drops it, so the write must
//! be handed over on the first poll: each step's append runs in its own task, spawned
//! synchronously when the sink is first polled, and the sink only waits for its result. A
//! write whose waiter was dropped still commits; [`StepWriter::flush`] waits for every
//! write before the turn seals, and reports the failures the kernel never saw. Once a step is
//! committed (or had nothing to commit), `STEP_COMPLETED` is emitted with its record, inside
//! the write's in-flight window so every step is announced before the turn seals.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use dispatch_kernel::abi::{
    ConversationStore, STEP_COMPLETED, StepCompleted, StepRecord, StepSink,
};
use dispatch_kernel::host::Bus;
use dispatch_wire::{Id, StepMetrics};
use tokio::sync::{oneshot, watch};
use tracing::Instrument;

/// What the turn's step writes produced.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// The last committed seq of the conversation (the user message's, then each step's).
    pub(crate) last_seq: u64,
    pub(crate) steps: Vec<StepMetrics>,
    /// Write failures nobody was told about (the kernel had stopped waiting).
    pub(crate) unreported: Vec<String>,
}

pub(crate) struct StepWriter {
    store: Arc<dyn ConversationStore>,
    conversation_id: Id,
    turn_id: Id,
    written: Arc<Mutex<Written>>,
    in_flight: Arc<watch::Sender<usize>>,
    /// Where committed steps are announced, and the conversation's workspace.
    announce: (Bus, String),
}

impl StepWriter {
    pub(crate) fn new(
        store: Arc<dyn ConversationStore>,
        conversation_id: Id,
        turn_id: Id,
        last_seq: u64,
        announce: (Bus, String),
    ) -> StepWriter {
        StepWriter {
            store,
            conversation_id,
            turn_id,
            written: Arc::new(Mutex::new(Written {
                last_seq,
                ..Written::default()
            })),
            in_flight: Arc::new(watch::Sender::new(0)),
            announce,
        }
    }

    fn completed(&self, step: &StepRecord) -> StepCompleted {
        StepCompleted {
            conversation_id: self.conversation_id.clone(),
            workspace_id: self.announce.1.clone(),
            record: Arc::new(step.clone()),
        }
    }

    /// Waits until every step write has finished, then returns what they produced.
    pub(crate) async fn flush(&self) -> Written {
        let mut rx = self.in_flight.subscribe();
        // `self.in_flight` is alive, so the channel cannot close while we wait.
        let _ = rx.wait_for(|n| *n == 0).await;
        std::mem::take(&mut *lock(&self.written))
    }
}

fn lock(written: &Mutex<Written>) -> std::sync::MutexGuard<'_, Written> {
    written.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl StepSink for StepWriter {
    async fn step_complete(&self, step: &StepRecord) -> Result<(), String> {
        lock(&self.written).steps.push(StepMetrics {
            step_id: step.step_id.clone(),
            step_index: step.step_index,
            ttft_ms: step.timing.ttft.map(millis),
            decode_ms: step.timing.decode.map(millis),
            gen_total_ms: millis(step.timing.total),
            usage: step.usage.unwrap_or_default(),
        });
        if step.messages.is_empty() {
            self.announce
                .0
                .emit(&STEP_COMPLETED, self.completed(step))
                .await;
            return Ok(());
        }
        let bus = self.announce.0.clone();
        let completed = self.completed(step);
        let (tx, rx) = oneshot::channel();
        let store = self.store.clone();
        let written = self.written.clone();
        let (conversation_id, turn_id, step_id) = (
            self.conversation_id.clone(),
            self.turn_id.clone(),
            step.step_id.clone(),
        );
        let messages = step.messages.clone();
        let guard = InFlight::enter(self.in_flight.clone());
        let write = async move {
            let _guard = guard;
            let result = store
                .append(&conversation_id, Some(&turn_id), Some(&step_id), &messages)
                .await
                .map(|chunks| chunks.last().map(|c| c.seq))
                .map_err(|err| err.to_string());
            if let Ok(Some(seq)) = &result {
                let mut written = lock(&written);
                written.last_seq = written.last_seq.max(*seq);
            }
            let committed = result.is_ok();
            match tx.send(result) {
                Ok(()) => {}
                Err(Ok(_)) => {
                    tracing::info!(step_id = %step_id, "Step persisted after the turn stopped waiting")
                }
                Err(Err(err)) => {
                    tracing::error!(step_id = %step_id, error = %err, "Step not persisted");
                    lock(&written)
                        .unreported
                        .push(format!("Could not persist step {step_id}: {err}"));
                }
            }
            if committed {
                bus.emit(&STEP_COMPLETED, completed).await;
            }
        };
        tokio::spawn(write.in_current_span());
        match rx.await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err("the step writer task ended without an answer".to_owned()),
        }
    }
}

/// Counts a write in flight until dropped (also when its task panics or is dropped).
struct InFlight(Arc<watch::Sender<usize>>);

impl InFlight {
    fn enter(counter: Arc<watch::Sender<usize>>) -> InFlight {
        counter.send_modify(|n| *n += 1);
        InFlight(counter)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
