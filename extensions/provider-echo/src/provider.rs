//! [`EchoProvider`]: the `echo` instance and its one model. Its answer is a pure function of
//! the request, computed before the stream is returned; the stream only hands out ready
//! events, so it finishes at once and honours cancellation by ending early.

use async_trait::async_trait;
use dispatch_kernel::abi::{
    Provider, ProviderError, ProviderEvent, ProviderRequest, ProviderStream, StopReason,
};
use dispatch_wire::{Chunk, ModelInfo, ModelPricing, Role, Usage};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

/// The provider instance's id and its one model's id.
pub const ECHO_ID: &str = "echo";

/// The model's label in pickers: says what it is and how to get real answers.
pub const ECHO_DESCRIPTION: &str = "Offline echo: no model, repeats your message (configure OPENAI_API_KEY, ANTHROPIC_API_KEY or a local server for real answers)";

/// Generous, so auto-compaction never triggers on an echo conversation.
const CONTEXT_WINDOW: u64 = 1_000_000;
const MAX_OUTPUT: u64 = 65_536;

/// At most this many text deltas per answer: a long message streams in word groups instead
/// of tens of thousands of one-word events.
const MAX_DELTAS: usize = 256;

/// The offline provider: answers `echo: <the last user message>`, whatever model the
/// request names. No I/O, no timers, no state.
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoProvider;

impl EchoProvider {
    /// The one model it serves.
    pub fn model() -> ModelInfo {
        ModelInfo {
            id: ECHO_ID.to_owned(),
            provider: ECHO_ID.to_owned(),
            context_window: CONTEXT_WINDOW,
            max_output: MAX_OUTPUT,
            pricing: ModelPricing::default(),
            reasoning: false,
            known: true,
            description: Some(ECHO_DESCRIPTION.to_owned()),
        }
    }

    /// The answer to `request`: `echo: ` and the text of the last user message;
    /// `echo: (tool result received)` when the history ends with a tool result.
    pub fn reply(request: &ProviderRequest) -> String {
        let ends_with_result = request.messages.last().is_some_and(|last| {
            last.role == Role::Tool
                || last
                    .chunks
                    .iter()
                    .any(|c| matches!(c, Chunk::ToolResult { .. }))
        });
        if ends_with_result {
            return "echo: (tool result received)".to_owned();
        }
        let text = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.text())
            .unwrap_or_default();
        if text.trim().is_empty() {
            return "echo: (empty message)".to_owned();
        }
        format!("echo: {text}")
    }

    /// Every event of the answer to `request`, in order: text deltas (word by word, at most
    /// `MAX_DELTAS` (256)), the estimated [`Usage`], `Finish(EndTurn)`.
    ///
    /// No `Prefix` record: nothing is cached, so there is no prefix to explain.
    pub fn events(request: &ProviderRequest) -> Vec<ProviderEvent> {
        let reply = EchoProvider::reply(request);
        let words = words(&reply);
        let per_delta = words.len().div_ceil(MAX_DELTAS).max(1);
        let mut events: Vec<ProviderEvent> = words
            .chunks(per_delta)
            .map(|group| ProviderEvent::TextDelta(group.concat()))
            .collect();
        events.push(ProviderEvent::Usage(Usage {
            input_tokens: estimate_tokens(prompt_chars(request)),
            output_tokens: estimate_tokens(reply.chars().count()),
            ..Usage::default()
        }));
        events.push(ProviderEvent::Finish(StopReason::EndTurn));
        events
    }
}

/// Tokens for `chars` characters: one token per four characters, rounded up — the usual
/// rule of thumb for English text with BPE tokenizers. An estimate only: echo has no
/// tokenizer, and its turns are free, so the number only feeds context-size displays.
pub fn estimate_tokens(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(4)).unwrap_or(u64::MAX)
}

/// Characters of everything a real model would read: the system sections, the tool specs
/// (name, description, schema) and each message's chunks (text, reasoning, tool calls as
/// name and JSON input, tool results). Error chunks are left out, as providers leave them.
fn prompt_chars(request: &ProviderRequest) -> usize {
    let system: usize = request.system.iter().map(|s| s.text.chars().count()).sum();
    let tools: usize = request
        .tools
        .iter()
        .map(|t| {
            t.name.chars().count()
                + t.description.chars().count()
                + t.input_schema.to_string().chars().count()
        })
        .sum();
    let messages: usize = request
        .messages
        .iter()
        .flat_map(|m| &m.chunks)
        .map(|chunk| match chunk {
            Chunk::Text { text } | Chunk::Reasoning { text, .. } => text.chars().count(),
            Chunk::ToolCall {
                tool_name, input, ..
            } => tool_name.chars().count() + input.to_string().chars().count(),
            Chunk::ToolResult { output, .. } => output.chars().count(),
            Chunk::Error { .. } | Chunk::Unknown => 0,
        })
        .sum();
    system + tools + messages
}

/// `text` cut before each word that follows whitespace: every piece is a word and the
/// whitespace after it, so the pieces concatenate back to `text`.
fn words(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut after_space = false;
    for (at, c) in text.char_indices() {
        let space = c.is_whitespace();
        if !space && after_space && at > start {
            pieces.push(&text[start..at]);
            start = at;
        }
        after_space = space;
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

#[async_trait]
impl Provider for EchoProvider {
    fn id(&self) -> &str {
        ECHO_ID
    }

    async fn models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        Ok(vec![EchoProvider::model()])
    }

    /// The answer as a stream of ready events, cut short when `cancel` fires (already
    /// fired: no event at all, and the kernel reports the abort).
    async fn stream(
        &self,
        request: &ProviderRequest,
        cancel: CancellationToken,
    ) -> Result<ProviderStream, ProviderError> {
        let events = EchoProvider::events(request);
        Ok(futures::stream::iter(events.into_iter().map(Ok))
            .take_until(cancel.cancelled_owned())
            .boxed())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::fmt::Write;
    use std::sync::Arc;

    use dispatch_kernel::abi::{Message, SystemSection, ToolSpec};
    use dispatch_test_support::history::{assistant, call, result, text, tool, user};
    use expect_test::{Expect, expect};
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;

    /// Streams `request` through the provider and renders each event on a line.
    #[track_caller]
    fn check(request: ProviderRequest, expect: Expect) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let events: Vec<_> = runtime.block_on(async {
            let stream = EchoProvider
                .stream(&request, CancellationToken::new())
                .await
                .unwrap();
            stream.collect().await
        });
        let mut shown = String::new();
        for event in events {
            match event.unwrap() {
                ProviderEvent::TextDelta(delta) => writeln!(shown, "text {delta:?}"),
                ProviderEvent::Usage(usage) => writeln!(
                    shown,
                    "usage in={} out={}",
                    usage.input_tokens, usage.output_tokens
                ),
                other => writeln!(shown, "{other:?}"),
            }
            .unwrap();
        }
        expect.assert_eq(&shown);
    }

    fn request(messages: Vec<Message>) -> ProviderRequest {
        ProviderRequest::new(ECHO_ID, messages)
    }

    #[test]
    fn a_user_message_is_echoed_word_by_word() {
        // "hello there,  world\nbye" is 23 characters: 6 tokens in; the 29-character reply
        // is 8 out.
        check(
            request(vec![user("m1", "hello there,  world\nbye")]),
            expect![[r#"
                text "echo: "
                text "hello "
                text "there,  "
                text "world\n"
                text "bye"
                usage in=6 out=8
                Finish(EndTurn)
            "#]],
        );
    }

    #[test]
    fn the_last_user_message_is_echoed_and_the_whole_prompt_counted() {
        let tools: Arc<[ToolSpec]> = Arc::from(vec![ToolSpec {
            name: "grep".into(),
            description: "Search".into(),
            input_schema: json!({"type": "object"}),
            concurrency_safe: true,
            capabilities: Vec::new(),
        }]);
        let mut request = request(vec![
            user("m1", "first"),
            assistant("m2", vec![text("echo: first")]),
            user("m3", "second"),
        ])
        .with_system("You are terse.");
        request.tools = tools;
        // System 14 + tool 4+6+17 + messages 5+11+6 = 63 characters: 16 tokens.
        check(
            request,
            expect![[r#"
                text "echo: "
                text "second"
                usage in=16 out=3
                Finish(EndTurn)
            "#]],
        );
    }

    #[test]
    fn a_tool_result_is_acknowledged() {
        check(
            request(vec![
                user("m1", "list files"),
                assistant("m2", vec![call("c1", json!({"command": "ls"}))]),
                tool("m3", vec![result("c1", "a.txt")]),
            ]),
            expect![[r#"
                text "echo: "
                text "(tool "
                text "result "
                text "received)"
                usage in=10 out=7
                Finish(EndTurn)
            "#]],
        );
    }

    #[test]
    fn an_empty_history_or_message_still_answers() {
        check(
            request(Vec::new()),
            expect![[r#"
                text "echo: "
                text "(empty "
                text "message)"
                usage in=0 out=6
                Finish(EndTurn)
            "#]],
        );
        check(
            request(vec![user("m1", "  ")]),
            expect![[r#"
                text "echo: "
                text "(empty "
                text "message)"
                usage in=1 out=6
                Finish(EndTurn)
            "#]],
        );
    }

    #[test]
    fn a_long_message_streams_in_at_most_256_deltas() {
        let long = "word ".repeat(1000);
        let events = EchoProvider::events(&request(vec![user("m1", &long)]));
        let deltas: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                ProviderEvent::TextDelta(d) => Some(d.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(deltas.len(), 251, "1001 words, 4 per delta");
        assert_eq!(deltas.concat(), format!("echo: {long}"));
    }

    #[test]
    fn the_same_request_gives_the_same_events() {
        let request = request(vec![user("m1", "same")]).with_system("s");
        assert_eq!(
            EchoProvider::events(&request),
            EchoProvider::events(&request)
        );
        let sections: Arc<[SystemSection]> = Arc::from(vec![
            SystemSection::new("stable", "ab"),
            SystemSection::new("volatile", "cd"),
        ]);
        let mut split = request.clone();
        split.system = sections;
        assert_eq!(prompt_chars(&split), prompt_chars(&request) + 3);
    }

    #[test]
    fn words_concatenate_back() {
        for text in [
            "",
            " lead",
            "a",
            "a b",
            "tab\tand\nnewline  ",
            "émoji 🎉 ok",
        ] {
            assert_eq!(words(text).concat(), text, "{text:?}");
        }
        assert_eq!(words("émoji 🎉 ok"), ["émoji ", "🎉 ", "ok"]);
    }

    #[test]
    fn tokens_round_up() {
        assert_eq!(
            [0, 1, 4, 5, 8].map(estimate_tokens),
            [0, 1, 1, 2, 2],
            "a quarter per character, rounded up"
        );
    }

    #[tokio::test]
    async fn a_cancelled_request_streams_nothing() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let request = request(vec![user("m1", "hello")]);
        let events: Vec<_> = EchoProvider
            .stream(&request, cancel)
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(events, []);
    }

    #[tokio::test]
    async fn cancelling_mid_stream_ends_it() {
        let cancel = CancellationToken::new();
        let request = request(vec![user("m1", "one two three")]);
        let mut stream = EchoProvider.stream(&request, cancel.clone()).await.unwrap();
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first, ProviderEvent::TextDelta("echo: ".into()));
        cancel.cancel();
        assert_eq!(stream.next().await, None, "no Finish after cancellation");
    }

    #[tokio::test]
    async fn it_lists_its_one_model() {
        let models = EchoProvider.models().await.unwrap();
        assert_eq!(
            models,
            [ModelInfo {
                id: "echo".into(),
                provider: "echo".into(),
                context_window: 1_000_000,
                max_output: 65_536,
                pricing: ModelPricing {
                    input: 0.0,
                    output: 0.0,
                    cache_read: 0.0,
                    cache_write: 0.0,
                },
                reasoning: false,
                known: true,
                description: Some(ECHO_DESCRIPTION.into()),
            }]
        );
        assert_eq!(EchoProvider.id(), "echo");
    }
}
