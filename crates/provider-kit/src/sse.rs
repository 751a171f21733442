//! Server-sent events from a byte stream, split anywhere (mid-line, mid-character).
//!
//! Decoding is `eventsource-stream`'s (the WHATWG algorithm: `event:`/`data:` fields,
//! multi-line data, `:` comment lines ignored, `\n`, `\r\n` and `\r` line ends, UTF-8 split
//! across chunks); this module maps its errors onto [`ProviderError`]s.

use dispatch_kernel::abi::ProviderError;
use eventsource_stream::{EventStreamError, Eventsource};
use futures::{Stream, StreamExt};

use crate::ErrorCtx;

/// One SSE event: its `event:` name (`message` when absent) and its `data:` lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Decodes `bytes` into events. A transport error becomes a retryable disconnect (or idle
/// timeout), invalid UTF-8 or an undecodable stream a fatal `malformed_event`.
pub fn decode<S, B>(
    bytes: S,
    ctx: ErrorCtx,
) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send + 'static
where
    S: Stream<Item = Result<B, reqwest::Error>> + Send + 'static,
    B: AsRef<[u8]> + Send + 'static,
{
    bytes.eventsource().map(move |item| match item {
        Ok(event) => Ok(SseEvent {
            event: event.event,
            data: event.data,
        }),
        Err(EventStreamError::Transport(err)) => Err(ctx.transport(&err)),
        Err(EventStreamError::Utf8(err)) => Err(ctx.malformed(&format!("invalid UTF-8: {err}"))),
        Err(EventStreamError::Parser(err)) => {
            Err(ctx.malformed(&format!("bad SSE framing: {err}")))
        }
    })
}

/// Decodes a complete body held in memory (recorded captures, tests); same rules as
/// [`decode`], for any chunking of `body` given as `chunks`.
pub fn decode_chunks(
    chunks: Vec<Vec<u8>>,
    ctx: ErrorCtx,
) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send + 'static {
    let bytes = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::convert::Infallible>));
    bytes.eventsource().map(move |item| match item {
        Ok(event) => Ok(SseEvent {
            event: event.event,
            data: event.data,
        }),
        Err(EventStreamError::Transport(never)) => match never {},
        Err(EventStreamError::Utf8(err)) => Err(ctx.malformed(&format!("invalid UTF-8: {err}"))),
        Err(EventStreamError::Parser(err)) => {
            Err(ctx.malformed(&format!("bad SSE framing: {err}")))
        }
    })
}
