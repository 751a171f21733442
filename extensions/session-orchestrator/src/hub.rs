//! One conversation's in-memory state: its subscribers, the replay buffer of its current
//! (or most recent) turn, the turn it runs, and its message queue.
//!
//! Locking: everything sits behind one `std::sync::Mutex` per conversation, held only for
//! short synchronous sections and never across an await. The kernel's `EventSink::emit` is
//! synchronous, so emitting is: serialize the event once (outside the lock), then under the
//! lock number the frame, append it to the replay buffer and `try_send` it to each
//! subscriber, forgetting those that are gone or full. A subscription is created under the
//! same lock (replay copied into its queue, then registered), so a late joiner sees every
//! frame exactly once: the replayed ones, then the live ones, with no gap between them.
//!
//! Replay cap: a turn's buffer keeps at most `replay_cap` frames of streamed content
//! (`text-delta`, `reasoning-delta`, `tool-output`); past the cap those are still delivered
//! live but no longer buffered, while every other event (tool calls and results, usage,
//! step boundaries, steering, errors, `done`, `turn-sealed`) is still buffered. Those are
//! bounded by the turn's steps and tool calls, which history holds anyway. A late joiner
//! then gets a replay with a gap in its frame indexes (`EventFrame::index` jumps), all
//! structural events and `turn-sealed`; the gap tells it to reload history (each finished
//! step is already committed) instead of trusting its partial text.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use dispatch_kernel::abi::{
    EventFrame, EventSink, SteeringSource, Subscriber, Subscription, Undeliverable,
};
use dispatch_wire::{AgentEvent, Id, QueuedMessage};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The turn a conversation is running (from its claim, before the model is even asked,
/// until it sealed and released the conversation).
#[derive(Debug)]
pub(crate) struct ActiveTurn {
    pub(crate) turn_id: Id,
    pub(crate) request_id: Option<String>,
    pub(crate) cancel: CancellationToken,
}

/// A turn's frames, kept for late joiners and re-attaching clients.
#[derive(Debug, Default)]
struct Replay {
    turn_id: Option<Id>,
    frames: Vec<Arc<EventFrame>>,
    next_index: u32,
    sealed: bool,
    /// Content frames not buffered because the cap was reached.
    skipped: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Inner {
    subscribers: Vec<Subscriber>,
    replay: Replay,
    pub(crate) turn: Option<ActiveTurn>,
    pub(crate) queue: Vec<QueuedMessage>,
}

impl Inner {
    /// Whether the held turn has published `turn-sealed` and is only finishing up (hooks,
    /// release): it can no longer be aborted, steered or joined, and it frees the
    /// conversation momentarily.
    pub(crate) fn sealing(&self) -> bool {
        self.turn.as_ref().is_some_and(|turn| {
            self.replay.sealed && self.replay.turn_id.as_ref() == Some(&turn.turn_id)
        })
    }
}

/// Which buffered frames a new subscription gets first.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ReplayOf<'a> {
    /// The running turn's frames (nothing when the buffered turn has sealed: its history
    /// is in the store).
    Running,
    /// This turn's frames, sealed or not (re-attach, the sender's own subscription).
    Turn(&'a Id),
}

pub(crate) struct Conversation {
    pub(crate) id: Id,
    inner: Mutex<Inner>,
    /// True while a turn holds the conversation; `settled` waits for false.
    active: watch::Sender<bool>,
    /// Counts turns releasing the conversation (also when handing it straight to a turn
    /// of queued messages, which keeps `active` true).
    releases: watch::Sender<u64>,
    replay_cap: usize,
    queue_capacity: usize,
}

impl Conversation {
    pub(crate) fn new(id: Id, replay_cap: usize, queue_capacity: usize) -> Conversation {
        Conversation {
            id,
            inner: Mutex::new(Inner::default()),
            active: watch::Sender::new(false),
            releases: watch::Sender::new(0),
            replay_cap,
            queue_capacity: queue_capacity.max(1),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every critical section leaves `Inner` consistent, so a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the conversation held (or free) by a turn; call with the lock held so the
    /// flag and `Inner::turn` change together.
    pub(crate) fn set_active(&self, active: bool) {
        self.active.send_replace(active);
    }

    /// Records that the held turn let go of the conversation; call with the lock held.
    pub(crate) fn mark_released(&self) {
        self.releases.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver whose `changed()` resolves at the next release; take it with the lock
    /// held, await it after unlocking, so no release is missed in between.
    pub(crate) fn next_release(&self) -> watch::Receiver<u64> {
        self.releases.subscribe()
    }

    pub(crate) fn is_active(&self) -> bool {
        *self.active.borrow()
    }

    /// Resolves once no turn holds the conversation.
    pub(crate) async fn settled(&self) {
        let mut rx = self.active.subscribe();
        // The sender lives as long as `self`, so `wait_for` cannot fail while we borrow it.
        let _ = rx.wait_for(|active| !*active).await;
    }

    /// A new subscription: the chosen replay, then live frames.
    pub(crate) fn subscribe(&self, replay: ReplayOf<'_>) -> Subscription {
        let mut inner = self.lock();
        self.subscribe_locked(&mut inner, replay)
    }

    pub(crate) fn subscribe_locked(&self, inner: &mut Inner, replay: ReplayOf<'_>) -> Subscription {
        let frames: &[Arc<EventFrame>] = match (replay, &inner.replay.turn_id) {
            (ReplayOf::Running, Some(_)) if !inner.replay.sealed => &inner.replay.frames,
            (ReplayOf::Turn(turn_id), Some(buffered)) if buffered == turn_id => {
                &inner.replay.frames
            }
            (ReplayOf::Running | ReplayOf::Turn(_), _) => &[],
        };
        let (subscriber, subscription) =
            Subscription::channel(self.id.clone(), frames.len() + self.queue_capacity);
        for frame in frames {
            // Sized to fit the whole replay, so this cannot be refused.
            let refused = subscriber.deliver(frame.clone()).is_err();
            if dispatch_stdx::never!(refused, "a fresh subscription refused its replay") {
                break;
            }
        }
        inner.subscribers.push(subscriber);
        subscription
    }

    /// Whether `turn_id`'s frames are buffered (running or finished, not evicted).
    pub(crate) fn has_replay_of(inner: &Inner, turn_id: &Id) -> bool {
        inner.replay.turn_id.as_ref() == Some(turn_id)
    }

    /// Starts buffering a new turn (the previous turn's frames are dropped).
    pub(crate) fn begin_turn(&self, turn_id: &Id) {
        let mut inner = self.lock();
        inner.replay = Replay {
            turn_id: Some(turn_id.clone()),
            ..Replay::default()
        };
    }

    /// Drops a finished turn's frames (memory), unless another turn is buffered by now.
    pub(crate) fn evict_replay(&self, turn_id: &Id) {
        let mut inner = self.lock();
        if inner.replay.turn_id.as_ref() == Some(turn_id) && inner.replay.sealed {
            inner.replay = Replay::default();
        }
    }

    /// Publishes one event of `turn_id`. Never blocks: a subscriber whose queue is full is
    /// marked lagged and dropped. Events of a turn that is not the buffered one (a tool
    /// abandoned by an earlier turn still writing output) or arriving after `turn-sealed`
    /// are dropped.
    pub(crate) fn emit(&self, turn_id: &Id, event: AgentEvent) {
        let json: Arc<str> = match serde_json::to_string(&event) {
            Ok(json) => json.into(),
            Err(err) => {
                tracing::error!(error = %err, event = event.type_name(), "Event not serializable; dropped");
                return;
            }
        };
        let content = matches!(
            event,
            AgentEvent::TextDelta { .. }
                | AgentEvent::ReasoningDelta { .. }
                | AgentEvent::ToolOutput { .. }
        );
        let seals = matches!(event, AgentEvent::TurnSealed { .. });
        let mut inner = self.lock();
        let replay = &mut inner.replay;
        if replay.turn_id.as_ref() != Some(turn_id) || replay.sealed {
            tracing::debug!(
                turn_id = %turn_id,
                event = event.type_name(),
                "Event of a turn no longer streaming; dropped"
            );
            return;
        }
        let frame = Arc::new(EventFrame {
            conversation_id: self.id.clone(),
            turn_id: turn_id.clone(),
            index: replay.next_index,
            event,
            json,
        });
        replay.next_index = replay.next_index.saturating_add(1);
        if content && replay.frames.len() >= self.replay_cap {
            if replay.skipped == 0 {
                tracing::info!(
                    turn_id = %turn_id,
                    replay_cap = self.replay_cap,
                    "Replay cap reached; later content is delivered live only"
                );
            }
            replay.skipped += 1;
        } else {
            replay.frames.push(frame.clone());
        }
        replay.sealed = seals;
        let conversation_id = &self.id;
        inner.subscribers.retain(|s| match s.deliver(frame.clone()) {
            Ok(()) => true,
            Err(Undeliverable::Gone) => false,
            Err(Undeliverable::Lagged) => {
                tracing::warn!(conversation_id = %conversation_id, "Subscriber fell behind; dropped");
                false
            }
        });
    }

    /// Ends every subscription (shutdown).
    pub(crate) fn drop_subscribers(&self) {
        self.lock().subscribers.clear();
    }

    #[cfg(test)]
    pub(crate) fn subscriber_count(&self) -> usize {
        self.lock().subscribers.len()
    }
}

/// The kernel's event sink for one turn.
pub(crate) struct TurnEvents {
    pub(crate) conversation: Arc<Conversation>,
    pub(crate) turn_id: Id,
}

impl EventSink for TurnEvents {
    fn emit(&self, event: AgentEvent) {
        self.conversation.emit(&self.turn_id, event);
    }
}

/// The conversation's queue as the kernel's steering source.
pub(crate) struct QueueSteering {
    pub(crate) conversation: Arc<Conversation>,
}

#[async_trait]
impl SteeringSource for QueueSteering {
    async fn drain(&self) -> Vec<QueuedMessage> {
        std::mem::take(&mut self.conversation.lock().queue)
    }
}

/// Every conversation this process has touched, by id. Entries stay (they are small once
/// their replay is evicted); see `Orchestrator::retain_replay`.
#[derive(Default)]
pub(crate) struct Conversations {
    map: Mutex<HashMap<Id, Arc<Conversation>>>,
}

impl Conversations {
    fn lock(&self) -> MutexGuard<'_, HashMap<Id, Arc<Conversation>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Conversation>> {
        self.lock().get(id).cloned()
    }

    pub(crate) fn get_or_create(
        &self,
        id: &Id,
        replay_cap: usize,
        queue_capacity: usize,
    ) -> Arc<Conversation> {
        self.lock()
            .entry(id.clone())
            .or_insert_with(|| Arc::new(Conversation::new(id.clone(), replay_cap, queue_capacity)))
            .clone()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Conversation>> {
        self.lock().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use pretty_assertions::assert_eq;

    use super::*;

    fn delta(turn: &Id, text: &str) -> AgentEvent {
        AgentEvent::TextDelta {
            conversation_id: Id::from("c"),
            turn_id: turn.clone(),
            step_id: Id::from(format!("{turn}#0")),
            delta: text.to_owned(),
        }
    }

    fn sealed(turn: &Id) -> AgentEvent {
        AgentEvent::TurnSealed {
            conversation_id: Id::from("c"),
            turn_id: turn.clone(),
            last_seq: Some(1),
        }
    }

    fn drain(subscription: &mut Subscription) -> Vec<(u32, String)> {
        std::iter::from_fn(|| subscription.try_recv())
            .map(|f| (f.index, f.json.to_string()))
            .collect()
    }

    #[test]
    fn frames_are_serialized_once_and_shared() {
        let c = Conversation::new(Id::from("c"), 100, 8);
        let turn = Id::from("t");
        c.begin_turn(&turn);
        let mut a = c.subscribe(ReplayOf::Running);
        let mut b = c.subscribe(ReplayOf::Running);
        c.emit(&turn, delta(&turn, "x"));
        let (fa, fb) = (a.try_recv().unwrap(), b.try_recv().unwrap());
        assert!(Arc::ptr_eq(&fa, &fb));
        assert_eq!(
            &*fa.json,
            r#"{"type":"text-delta","conversationId":"c","turnId":"t","stepId":"t#0","delta":"x"}"#
        );
    }

    #[test]
    fn a_late_joiner_gets_the_replay_then_live_frames() {
        let c = Conversation::new(Id::from("c"), 100, 8);
        let turn = Id::from("t");
        c.begin_turn(&turn);
        let mut early = c.subscribe(ReplayOf::Running);
        c.emit(&turn, delta(&turn, "a"));
        c.emit(&turn, delta(&turn, "b"));
        let mut late = c.subscribe(ReplayOf::Running);
        c.emit(&turn, delta(&turn, "c"));
        c.emit(&turn, sealed(&turn));
        let early = drain(&mut early);
        assert_eq!(early.iter().map(|f| f.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(drain(&mut late), early);
        // Sealed: a plain subscriber gets no replay, a re-attaching one gets all of it.
        let mut plain = c.subscribe(ReplayOf::Running);
        assert_eq!(drain(&mut plain), []);
        let mut again = c.subscribe(ReplayOf::Turn(&turn));
        assert_eq!(drain(&mut again), early);
    }

    #[test]
    fn past_the_cap_content_is_live_only_and_structure_still_buffered() {
        let c = Conversation::new(Id::from("c"), 2, 16);
        let turn = Id::from("t");
        c.begin_turn(&turn);
        let mut live = c.subscribe(ReplayOf::Running);
        for text in ["a", "b", "c", "d"] {
            c.emit(&turn, delta(&turn, text));
        }
        c.emit(&turn, sealed(&turn));
        assert_eq!(drain(&mut live).len(), 5);
        let mut replay = c.subscribe(ReplayOf::Turn(&turn));
        let indexes: Vec<u32> = drain(&mut replay).iter().map(|f| f.0).collect();
        assert_eq!(indexes, [0, 1, 4], "a gap where content was not buffered");
    }

    #[test]
    fn a_full_subscriber_is_marked_lagged_and_dropped_others_keep_going() {
        let c = Conversation::new(Id::from("c"), 100, 2);
        let turn = Id::from("t");
        c.begin_turn(&turn);
        let mut slow = c.subscribe(ReplayOf::Running);
        let mut fast = c.subscribe(ReplayOf::Running);
        for i in 0..5 {
            c.emit(&turn, delta(&turn, &i.to_string()));
            assert!(fast.try_recv().is_some());
        }
        assert!(slow.lagged());
        assert!(!fast.lagged());
        assert_eq!(drain(&mut slow).len(), 2, "what fit before it lagged");
        assert_eq!(c.subscriber_count(), 1);
    }

    #[test]
    fn events_of_another_turn_or_after_the_seal_are_dropped() {
        let c = Conversation::new(Id::from("c"), 100, 8);
        let (old, new) = (Id::from("old"), Id::from("new"));
        c.begin_turn(&new);
        let mut s = c.subscribe(ReplayOf::Running);
        c.emit(&old, delta(&old, "late"));
        c.emit(&new, sealed(&new));
        c.emit(&new, delta(&new, "after"));
        let got = drain(&mut s);
        assert_eq!(got.len(), 1);
        assert!(got[0].1.contains("turn-sealed"));
    }

    #[test]
    fn dropped_subscriptions_are_forgotten() {
        let c = Conversation::new(Id::from("c"), 100, 8);
        let turn = Id::from("t");
        c.begin_turn(&turn);
        drop(c.subscribe(ReplayOf::Running));
        c.emit(&turn, delta(&turn, "x"));
        assert_eq!(c.subscriber_count(), 0);
    }
}
