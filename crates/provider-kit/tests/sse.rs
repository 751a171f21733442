#![allow(clippy::unwrap_used, clippy::expect_used)]
//! SSE decoding is independent of where the body is split, and the assembled stream stops
//! at errors, `Finish` and cancellation.

use std::collections::VecDeque;
use std::sync::Arc;

use dispatch_kernel::abi::{ProviderError, ProviderEvent, StopReason};
use dispatch_provider_kit::sse::decode_chunks;
use dispatch_provider_kit::{Assembler, ErrorCtx, Redactor, SseEvent, assemble};
use futures::StreamExt;
use proptest::prelude::*;
use tokio_util::sync::CancellationToken;

const BODY: &str = ": keep-alive comment\n\nevent: message_start\r\ndata: {\"a\":\"héllo 🦀\"}   \r\n\r\n\
data: line one\ndata: line two\n\n: OPENROUTER PROCESSING\n\nevent: error\ndata: {\"error\":{}}\n\n";

fn ctx() -> ErrorCtx {
    ErrorCtx::new(Arc::from("p"), "m", Redactor::default())
}

fn expected() -> Vec<SseEvent> {
    vec![
        SseEvent {
            event: "message_start".into(),
            data: "{\"a\":\"héllo 🦀\"}   ".into(),
        },
        SseEvent {
            event: "message".into(),
            data: "line one\nline two".into(),
        },
        SseEvent {
            event: "error".into(),
            data: "{\"error\":{}}".into(),
        },
    ]
}

async fn decode_split(body: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
    let mut chunks = Vec::new();
    let mut start = 0;
    for &cut in cuts {
        let cut = cut.min(body.len()).max(start);
        chunks.push(body[start..cut].to_vec());
        start = cut;
    }
    chunks.push(body[start..].to_vec());
    decode_chunks(chunks, ctx())
        .map(|e| e.unwrap())
        .collect()
        .await
}

#[tokio::test]
async fn one_chunk_and_one_byte_chunks_agree() {
    let body = BODY.as_bytes();
    assert_eq!(decode_split(body, &[]).await, expected());
    let every: Vec<usize> = (1..body.len()).collect();
    assert_eq!(decode_split(body, &every).await, expected());
}

proptest! {
    #[test]
    fn any_split_decodes_the_same(mut cuts in proptest::collection::vec(0..BODY.len(), 0..12)) {
        cuts.sort_unstable();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let got = rt.block_on(decode_split(BODY.as_bytes(), &cuts));
        prop_assert_eq!(got, expected());
    }
}

/// Text deltas from `data`, `Finish` at event `stop`, an error at event `error`.
#[derive(Default)]
struct Toy {
    finished: bool,
}

impl Assembler for Toy {
    fn event(
        &mut self,
        event: SseEvent,
        out: &mut VecDeque<ProviderEvent>,
    ) -> Result<(), ProviderError> {
        match event.event.as_str() {
            "stop" => {
                out.push_back(ProviderEvent::Finish(StopReason::EndTurn));
                self.finished = true;
            }
            "error" => return Err(ProviderError::fatal(event.data)),
            _ => out.push_back(ProviderEvent::TextDelta(event.data)),
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut VecDeque<ProviderEvent>) -> Result<(), ProviderError> {
        Err(ProviderError::retryable("cut"))
    }

    fn finished(&self) -> bool {
        self.finished
    }
}

fn sse(body: &str) -> Vec<Vec<u8>> {
    vec![body.as_bytes().to_vec()]
}

#[tokio::test]
async fn assembled_streams_end_at_finish_error_eof_and_cancel() {
    let run = |body: &'static str, cancel: CancellationToken| async move {
        let events = Box::pin(decode_chunks(sse(body), ctx()));
        assemble(events, Toy::default(), cancel)
            .collect::<Vec<_>>()
            .await
    };
    let got = run(
        "data: a\n\nevent: stop\ndata: x\n\ndata: after\n\n",
        CancellationToken::new(),
    )
    .await;
    assert_eq!(
        got,
        vec![
            Ok(ProviderEvent::TextDelta("a".into())),
            Ok(ProviderEvent::Finish(StopReason::EndTurn))
        ],
        "nothing after Finish"
    );
    let got = run(
        "data: a\n\nevent: error\ndata: boom\n\ndata: b\n\n",
        CancellationToken::new(),
    )
    .await;
    assert_eq!(
        got,
        vec![
            Ok(ProviderEvent::TextDelta("a".into())),
            Err(ProviderError::fatal("boom"))
        ]
    );
    let got = run("data: a\n\n", CancellationToken::new()).await;
    assert_eq!(got.last(), Some(&Err(ProviderError::retryable("cut"))));
    let cancel = CancellationToken::new();
    cancel.cancel();
    assert_eq!(run("data: a\n\n", cancel).await, vec![]);
}
