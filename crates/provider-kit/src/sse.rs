//! Server-sent events from a byte stream split anywhere (mid-line, mid-character).
//!
//! The WHATWG event-stream algorithm, for what providers use: `event:` and `data:` fields
//! (several `data:` lines join with `\n`), `:` comment lines and other fields ignored, one
//! optional space after the colon removed, `\n`, `\r\n` and `\r` line ends (a `\r\n` may be
//! split across chunks), a leading byte-order mark skipped, an event without data not
//! dispatched. At the end of the body an event whose lines are complete but whose blank line
//! never came is still dispatched; a partial last line is dropped (the body was cut).
//!
//! Hot path: bytes are parsed where they arrive; only a partial line is kept for the next
//! chunk. Each event costs its data `String` and, when named, its name `String`.

use std::collections::VecDeque;
use std::str::Utf8Error;

use dispatch_kernel::abi::ProviderError;
use futures::{Stream, StreamExt};

use crate::ErrorCtx;

/// One SSE event: its `event:` name (`message` when absent) and its `data:` lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// The incremental decoder: push chunks, take events.
#[derive(Debug, Default)]
pub struct Decoder {
    /// The partial line carried over from earlier chunks (never holds a line end).
    pending: Vec<u8>,
    lines: Lines,
    started: bool,
}

#[derive(Debug, Default)]
struct Lines {
    event: Option<String>,
    data: Option<String>,
    /// The previous chunk ended with `\r`: a `\n` opening the next one belongs to it.
    skip_lf: bool,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Decodes `bytes`, appending complete events to `out`.
    pub fn push(
        &mut self,
        mut bytes: &[u8],
        out: &mut VecDeque<SseEvent>,
    ) -> Result<(), Utf8Error> {
        if !self.started {
            // The BOM may itself be split; hold back until three bytes are known.
            self.pending.extend_from_slice(bytes);
            if self.pending.len() < BOM.len() && BOM.starts_with(&self.pending) {
                return Ok(());
            }
            self.started = true;
            let skip = if self.pending.starts_with(BOM) {
                BOM.len()
            } else {
                0
            };
            let held = std::mem::take(&mut self.pending);
            return self.push(&held[skip..], out);
        }
        if self.pending.is_empty() {
            let used = self.lines.feed(bytes, 0, out)?;
            bytes = &bytes[used..];
            self.pending.extend_from_slice(bytes);
        } else {
            let searched = self.pending.len();
            self.pending.extend_from_slice(bytes);
            let used = self.lines.feed(&self.pending, searched, out)?;
            self.pending.drain(..used);
        }
        Ok(())
    }

    /// The body ended: dispatches an event whose blank line never came; drops a partial
    /// line.
    pub fn finish(&mut self, out: &mut VecDeque<SseEvent>) {
        self.pending.clear();
        self.lines.dispatch(out);
    }
}

impl Lines {
    /// Consumes every complete line of `input` (searching for line ends from `search_from`,
    /// before which `input` has none); returns how many bytes were consumed.
    fn feed(
        &mut self,
        input: &[u8],
        search_from: usize,
        out: &mut VecDeque<SseEvent>,
    ) -> Result<usize, Utf8Error> {
        let mut start = 0;
        if self.skip_lf && !input.is_empty() {
            self.skip_lf = false;
            if input[0] == b'\n' {
                start = 1;
            }
        }
        let mut search = search_from.max(start);
        while let Some(offset) = input[search..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
        {
            let end = search + offset;
            let next = if input[end] == b'\r' {
                match input.get(end + 1) {
                    Some(b'\n') => end + 2,
                    Some(_) => end + 1,
                    None => {
                        self.skip_lf = true;
                        end + 1
                    }
                }
            } else {
                end + 1
            };
            self.line(&input[start..end], out)?;
            start = next;
            search = next;
        }
        Ok(start)
    }

    fn line(&mut self, line: &[u8], out: &mut VecDeque<SseEvent>) -> Result<(), Utf8Error> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let line = std::str::from_utf8(line)?;
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                let data = self
                    .data
                    .get_or_insert_with(|| String::with_capacity(value.len() + 1));
                data.push_str(value);
                data.push('\n');
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut VecDeque<SseEvent>) {
        let event = self.event.take();
        if let Some(mut data) = self.data.take() {
            data.pop();
            out.push_back(SseEvent {
                event: event
                    .filter(|e| !e.is_empty())
                    .unwrap_or_else(|| "message".to_owned()),
                data,
            });
        }
    }
}

struct Decoding<S, F> {
    bytes: std::pin::Pin<Box<S>>,
    on_error: F,
    ctx: ErrorCtx,
    decoder: Decoder,
    out: VecDeque<SseEvent>,
    ended: bool,
}

impl<S, B, E, F> Decoding<S, F>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
    F: Fn(E) -> ProviderError,
{
    async fn next(&mut self) -> Option<Result<SseEvent, ProviderError>> {
        loop {
            if let Some(event) = self.out.pop_front() {
                return Some(Ok(event));
            }
            if self.ended {
                return None;
            }
            match self.bytes.next().await {
                Some(Ok(chunk)) => {
                    if let Err(err) = self.decoder.push(chunk.as_ref(), &mut self.out) {
                        self.ended = true;
                        let detail = format!("invalid UTF-8: {err}");
                        return Some(Err(self.ctx.malformed(&detail)));
                    }
                }
                Some(Err(err)) => {
                    self.ended = true;
                    return Some(Err((self.on_error)(err)));
                }
                None => {
                    self.ended = true;
                    self.decoder.finish(&mut self.out);
                }
            }
        }
    }
}

fn decoding<S, B, E, F>(
    bytes: S,
    on_error: F,
    ctx: ErrorCtx,
) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send + 'static
where
    S: Stream<Item = Result<B, E>> + Send + 'static,
    B: AsRef<[u8]> + Send + 'static,
    E: Send + 'static,
    F: Fn(E) -> ProviderError + Send + 'static,
{
    let state = Decoding {
        bytes: Box::pin(bytes),
        on_error,
        ctx,
        decoder: Decoder::new(),
        out: VecDeque::new(),
        ended: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        let item = state.next().await?;
        Some((item, state))
    })
}

/// Decodes an HTTP body into events. A transport error becomes a retryable disconnect (or
/// idle timeout), invalid UTF-8 a fatal `malformed_event`; nothing follows an error.
pub fn decode<S, B>(
    bytes: S,
    ctx: ErrorCtx,
) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send + 'static
where
    S: Stream<Item = Result<B, reqwest::Error>> + Send + 'static,
    B: AsRef<[u8]> + Send + 'static,
{
    let transport = ctx.clone();
    decoding(
        bytes,
        move |err: reqwest::Error| transport.transport(&err),
        ctx,
    )
}

/// Decodes a body held in memory (recorded captures, tests, benches) given as `chunks`;
/// same rules as [`decode`].
pub fn decode_chunks(
    chunks: Vec<Vec<u8>>,
    ctx: ErrorCtx,
) -> impl Stream<Item = Result<SseEvent, ProviderError>> + Send + 'static {
    let bytes = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::convert::Infallible>));
    decoding(bytes, |never| match never {}, ctx)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use pretty_assertions::assert_eq;

    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut decoder = Decoder::new();
        let mut out = VecDeque::new();
        for chunk in chunks {
            decoder.push(chunk, &mut out).unwrap();
        }
        decoder.finish(&mut out);
        out.into_iter().collect()
    }

    fn event(name: &str, data: &str) -> SseEvent {
        SseEvent {
            event: name.to_owned(),
            data: data.to_owned(),
        }
    }

    #[test]
    fn fields_comments_and_line_ends() {
        let got = decode_all(&[b"\xEF\xBB\xBFevent: a\r\ndata:x\rdata: y\n\n: c\n\nid: 1\nretry: 5\ndata\n\nevent: empty\n\n"]);
        assert_eq!(got, vec![event("a", "x\ny"), event("message", "")]);
    }

    #[test]
    fn a_crlf_split_across_chunks_is_one_line_end() {
        let got = decode_all(&[b"data: a\r", b"", b"\n\r", b"\ndata: b\r\n\r\n"]);
        assert_eq!(got, vec![event("message", "a"), event("message", "b")]);
    }

    #[test]
    fn a_split_bom_is_skipped() {
        let got = decode_all(&[b"\xEF", b"\xBB", b"\xBFdata: z\n\n"]);
        assert_eq!(got, vec![event("message", "z")]);
    }

    #[test]
    fn at_the_end_complete_lines_dispatch_and_a_partial_line_is_dropped() {
        assert_eq!(
            decode_all(&[b"data: done\n"]),
            vec![event("message", "done")]
        );
        assert_eq!(
            decode_all(&[b"data: ok\n\ndata: {\"cut"]),
            vec![event("message", "ok")]
        );
    }

    #[test]
    fn invalid_utf8_in_a_line_is_an_error() {
        let mut decoder = Decoder::new();
        let mut out = VecDeque::new();
        assert!(decoder.push(b"data: \xFF\xFE\n\n", &mut out).is_err());
    }
}
