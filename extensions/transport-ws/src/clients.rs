//! Every connected client's outbound queue ([`Outbox`]) and the registry broadcasts go
//! through ([`Clients`]).
//!
//! Nothing here ever waits for a client: a message either fits in the client's bounded
//! queue now or the client is closed with `WS_CLOSE_LAGGED`, so one slow socket can never
//! stall a turn, a hook emitter or the other clients.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::ws::{CloseFrame, Utf8Bytes};
use dispatch_wire::{WS_CLOSE_LAGGED, WsServerMessage};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

use crate::frame;

/// The close reason sent with `WS_CLOSE_LAGGED`.
pub const LAGGED_REASON: &str = "client too slow; reload history and resubscribe";

/// One client's bounded queue of text frames, drained by its writer task, and the switch
/// that closes the connection.
#[derive(Debug)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Utf8Bytes>,
    /// Cancelled when the connection is closing, for whatever reason; a child of the
    /// extension's token.
    closing: CancellationToken,
    /// The close frame to send, set by whoever closed first.
    close: OnceLock<CloseFrame>,
}

impl Outbox {
    /// A queue of `capacity` messages and its receiving end (for the writer).
    pub(crate) fn new(
        capacity: usize,
        closing: CancellationToken,
    ) -> (Arc<Outbox>, mpsc::Receiver<Utf8Bytes>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let outbox = Outbox {
            tx,
            closing,
            close: OnceLock::new(),
        };
        (Arc::new(outbox), rx)
    }

    /// Queues a frame without waiting. A full queue closes the connection with
    /// `WS_CLOSE_LAGGED`. False when the frame was not queued (full or closing).
    pub(crate) fn push(&self, text: Utf8Bytes) -> bool {
        if self.closing.is_cancelled() {
            return false;
        }
        match self.tx.try_send(text) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                tracing::info!(
                    queue = self.tx.max_capacity(),
                    "Client too slow; closing its socket with 4008"
                );
                self.close(WS_CLOSE_LAGGED, LAGGED_REASON);
                false
            }
            Err(TrySendError::Closed(_)) => {
                self.closing.cancel();
                false
            }
        }
    }

    /// Serializes `message` and queues it (see [`Outbox::push`]).
    pub(crate) fn send(&self, message: &WsServerMessage) -> bool {
        frame::encode(message).is_some_and(|text| self.push(text))
    }

    /// Closes the connection with `code` (the first close wins); queued frames are dropped.
    pub(crate) fn close(&self, code: u16, reason: &'static str) {
        let _ = self.close.set(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        });
        self.closing.cancel();
    }

    /// Marks the connection closing without a close frame of ours (the peer went away or
    /// closed first).
    pub(crate) fn hang_up(&self) {
        self.closing.cancel();
    }

    pub(crate) fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    /// The close frame to send, if someone closed with a code.
    pub(crate) fn close_frame(&self) -> Option<CloseFrame> {
        self.close.get().cloned()
    }
}

/// Every connected client, for broadcasts and shutdown.
#[derive(Debug, Default)]
pub(crate) struct Clients {
    next: AtomicU64,
    map: Mutex<HashMap<u64, Arc<Outbox>>>,
}

impl Clients {
    /// Registers a client; the id removes it again.
    pub(crate) fn add(&self, outbox: Arc<Outbox>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, outbox);
        id
    }

    pub(crate) fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Sends `message` to every client, serialized once. A client whose queue is full is
    /// closed with `WS_CLOSE_LAGGED`; the others are not affected.
    pub(crate) fn broadcast(&self, message: &WsServerMessage) {
        let Some(text) = frame::encode(message) else {
            return;
        };
        for outbox in self.snapshot() {
            outbox.push(text.clone());
        }
    }

    /// Closes every client with `code`.
    pub(crate) fn close_all(&self, code: u16, reason: &'static str) {
        for outbox in self.snapshot() {
            outbox.close(code, reason);
        }
    }

    /// The clients now, so pushes happen outside the lock.
    fn snapshot(&self) -> Vec<Arc<Outbox>> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Outbox>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_full_queue_closes_with_lagged_and_other_clients_are_unaffected() {
        let clients = Clients::default();
        let (slow, _slow_rx) = Outbox::new(2, CancellationToken::new());
        let (fast, mut fast_rx) = Outbox::new(2, CancellationToken::new());
        clients.add(slow.clone());
        clients.add(fast.clone());

        let message = WsServerMessage::ConversationOpen {
            conversation_id: "c_1".into(),
            workspace_id: "default".into(),
        };
        for _ in 0..3 {
            clients.broadcast(&message);
            // The fast client drains as it goes.
            assert!(fast_rx.try_recv().is_ok());
        }
        assert!(slow.closing().is_cancelled());
        assert_eq!(slow.close_frame().unwrap().code, WS_CLOSE_LAGGED);
        assert_eq!(slow.close_frame().unwrap().reason.as_str(), LAGGED_REASON);
        assert!(!fast.closing().is_cancelled());
        // A closed client takes nothing more, and the first close code stays.
        assert!(!slow.push(Utf8Bytes::from_static("x")));
        slow.close(1001, "later");
        assert_eq!(slow.close_frame().unwrap().code, WS_CLOSE_LAGGED);
    }
}
