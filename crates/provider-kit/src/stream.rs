//! From decoded SSE events to the kernel's [`ProviderStream`]: a protocol's [`Assembler`]
//! turns each event into provider events; this module drives it, stops at the first error,
//! and ends the stream when the request's token fires (dropping the HTTP body, which closes
//! the connection).

use std::collections::VecDeque;

use dispatch_kernel::abi::{ProviderError, ProviderEvent, ProviderStream};
use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::SseEvent;

/// A protocol's stateful stream assembler (text, reasoning, tool calls by index, usage).
pub trait Assembler: Send + 'static {
    /// Handles one SSE event, pushing zero or more provider events onto `out`.
    fn event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<(), ProviderError>;

    /// The body ended cleanly. Push what is left (usage, `Finish`) when the response was
    /// complete; return an error (normally a retryable disconnect) when it was cut short.
    fn end(&mut self, out: &mut VecDeque<ProviderEvent>) -> Result<(), ProviderError>;

    /// Whether the response is complete (`Finish` pushed): later events are ignored.
    fn finished(&self) -> bool;
}

struct Drive<S, A> {
    events: std::pin::Pin<Box<S>>,
    assembler: A,
    out: VecDeque<ProviderEvent>,
    done: bool,
}

/// Drives `assembler` over `events` into a [`ProviderStream`]. After an error, `Finish`, or
/// `cancel`, the stream ends.
pub fn assemble<S, A>(events: S, assembler: A, cancel: CancellationToken) -> ProviderStream
where
    S: Stream<Item = Result<SseEvent, ProviderError>> + Send + 'static,
    A: Assembler,
{
    let drive = Drive {
        events: Box::pin(events),
        assembler,
        out: VecDeque::new(),
        done: false,
    };
    let stream = futures::stream::unfold(drive, |mut d| async move {
        loop {
            if let Some(event) = d.out.pop_front() {
                return Some((Ok(event), d));
            }
            if d.done {
                return None;
            }
            let step = match d.events.next().await {
                Some(Ok(event)) => d.assembler.event(event, &mut d.out),
                Some(Err(err)) => Err(err),
                None => {
                    d.done = true;
                    d.assembler.end(&mut d.out)
                }
            };
            if let Err(err) = step {
                d.done = true;
                d.out.clear();
                return Some((Err(err), d));
            }
            if d.assembler.finished() {
                d.done = true;
            }
        }
    });
    stream.take_until(cancel.cancelled_owned()).boxed()
}
