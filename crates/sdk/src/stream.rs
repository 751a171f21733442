//! [`EventStream`]: one turn's events, from `user-message` to `turn-sealed`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use dispatch_kernel::abi::{EventFrame, Subscription};
use dispatch_wire::{AgentEvent, Id};
use futures::Stream;
use futures::stream::{BoxStream, StreamExt};

/// The events of one turn, ending after its `turn-sealed`.
///
/// It reads the session's bounded subscription queue: a consumer that stops polling for long
/// enough is dropped by the session (the turn never waits for it), and the stream then ends
/// early without `turn-sealed`. Dropping the stream never aborts the turn; use
/// [`Runtime::abort`](crate::Runtime::abort).
pub struct EventStream {
    conversation_id: Id,
    turn_id: Id,
    frames: BoxStream<'static, Arc<EventFrame>>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("conversation_id", &self.conversation_id)
            .field("turn_id", &self.turn_id)
            .finish_non_exhaustive()
    }
}

impl EventStream {
    pub(crate) fn new(subscription: Subscription, turn_id: Id) -> EventStream {
        let conversation_id = subscription.conversation_id().clone();
        let wanted = turn_id.clone();
        let frames = futures::stream::unfold(Some((subscription, wanted)), |state| async move {
            let (mut subscription, wanted) = state?;
            loop {
                let Some(frame) = subscription.recv().await else {
                    if subscription.lagged() {
                        tracing::warn!(
                            turn = %wanted,
                            "Event stream fell behind and was dropped by the session"
                        );
                    }
                    return None;
                };
                // The subscription also carries later turns of the conversation.
                if frame.turn_id != wanted {
                    continue;
                }
                let sealed = matches!(frame.event, AgentEvent::TurnSealed { .. });
                let next = (!sealed).then_some((subscription, wanted));
                return Some((frame, next));
            }
        })
        .boxed();
        EventStream {
            conversation_id,
            turn_id,
            frames,
        }
    }

    pub fn conversation_id(&self) -> &Id {
        &self.conversation_id
    }

    pub fn turn_id(&self) -> &Id {
        &self.turn_id
    }

    /// The same events as [`EventFrame`]s, each carrying its JSON serialized once by the
    /// session (what RPC mode writes as lines).
    pub fn into_frames(self) -> BoxStream<'static, Arc<EventFrame>> {
        self.frames
    }
}

impl Stream for EventStream {
    type Item = AgentEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<AgentEvent>> {
        self.frames
            .poll_next_unpin(cx)
            .map(|frame| frame.map(|frame| frame.event.clone()))
    }
}
