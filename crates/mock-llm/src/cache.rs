//! Prompt-cache emulation and token estimates (the model is described in the crate docs).

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hasher};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Anthropic looks for earlier cache entries at most this many blocks before a breakpoint.
const LOOKBACK_BLOCKS: usize = 20;
/// OpenAI caches prompt prefixes in steps of 128 tokens.
const OPENAI_BLOCK_BYTES: usize = 128 * 4;

/// The deterministic token estimate: one token per started 4 bytes.
pub fn estimate_tokens(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4)
}

/// How one request's prompt splits into uncached, cache-read and cache-written tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokens {
    /// Prompt tokens neither read from nor written to the cache (Anthropic's `input_tokens`).
    pub input_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
}

/// Prefixes written by earlier requests, as hashes of `(model, prefix bytes)`.
#[derive(Debug, Default)]
pub(crate) struct PromptCache {
    anthropic: HashSet<u64>,
    openai: HashSet<u64>,
}

/// One content block's end in the canonical prefix.
struct Boundary {
    end: usize,
    hash: u64,
    breakpoint: bool,
}

impl PromptCache {
    /// Accounts an Anthropic request; `commit` stores its breakpoint prefixes for later reads.
    pub(crate) fn anthropic(
        &mut self,
        body: &Value,
        min_tokens: u64,
        commit: bool,
    ) -> PromptTokens {
        let mut hasher = DefaultHasher::new();
        hasher.write(body["model"].as_str().unwrap_or_default().as_bytes());
        hasher.write_u8(0);
        let mut end = 0;
        let mut boundaries = Vec::new();
        for (unit, breakpoint) in anthropic_units(body) {
            let bytes = unit.to_string();
            hasher.write(bytes.as_bytes());
            end += bytes.len();
            boundaries.push(Boundary {
                end,
                hash: hasher.clone().finish(),
                breakpoint,
            });
        }
        let cacheable = |b: &Boundary| estimate_tokens(b.end) >= min_tokens.max(1);
        let breakpoints: Vec<usize> = (0..boundaries.len())
            .filter(|&i| boundaries[i].breakpoint && cacheable(&boundaries[i]))
            .collect();
        let read_end = breakpoints
            .iter()
            .filter_map(|&bp| {
                boundaries[bp.saturating_sub(LOOKBACK_BLOCKS - 1)..=bp]
                    .iter()
                    .rev()
                    .find(|b| cacheable(b) && self.anthropic.contains(&b.hash))
                    .map(|b| b.end)
            })
            .max()
            .unwrap_or(0);
        let write_end = breakpoints
            .iter()
            .map(|&bp| boundaries[bp].end)
            .max()
            .unwrap_or(0);
        if commit {
            self.anthropic
                .extend(breakpoints.iter().map(|&bp| boundaries[bp].hash));
        }
        let read = estimate_tokens(read_end);
        let write = estimate_tokens(write_end).saturating_sub(read);
        PromptTokens {
            input_tokens: estimate_tokens(end) - read - write,
            cache_read_tokens: read,
            cache_write_tokens: write,
        }
    }

    /// Accounts an OpenAI chat request with automatic caching of every 128-token prefix block
    /// (`enabled` false: everything is uncached input).
    pub(crate) fn openai(
        &mut self,
        body: &Value,
        min_tokens: u64,
        enabled: bool,
        commit: bool,
    ) -> PromptTokens {
        let mut bytes = Vec::new();
        for key in ["tools", "messages"] {
            for entry in body[key].as_array().into_iter().flatten() {
                bytes.extend_from_slice(json!({ key: entry }).to_string().as_bytes());
            }
        }
        self.openai_prefix(body, &bytes, min_tokens, enabled, commit)
    }

    /// Accounts an OpenAI Responses request like [`PromptCache::openai`], over its units in
    /// order: each tool, the `instructions`, then each `input` item (a string `input` is one).
    pub(crate) fn openai_responses(
        &mut self,
        body: &Value,
        min_tokens: u64,
        enabled: bool,
        commit: bool,
    ) -> PromptTokens {
        let mut bytes = Vec::new();
        let mut unit = |key: &str, value: &Value| {
            bytes.extend_from_slice(json!({ key: value }).to_string().as_bytes());
        };
        for tool in body["tools"].as_array().into_iter().flatten() {
            unit("tools", tool);
        }
        if !body["instructions"].is_null() {
            unit("instructions", &body["instructions"]);
        }
        match &body["input"] {
            Value::Array(items) => items.iter().for_each(|item| unit("input", item)),
            Value::Null => {}
            other => unit("input", other),
        }
        self.openai_prefix(body, &bytes, min_tokens, enabled, commit)
    }

    /// OpenAI's automatic caching over the canonical prompt `bytes` of a request for
    /// `body["model"]`.
    fn openai_prefix(
        &mut self,
        body: &Value,
        bytes: &[u8],
        min_tokens: u64,
        enabled: bool,
        commit: bool,
    ) -> PromptTokens {
        let total = estimate_tokens(bytes.len());
        if !enabled {
            return PromptTokens {
                input_tokens: total,
                ..PromptTokens::default()
            };
        }
        let mut hasher = DefaultHasher::new();
        hasher.write(body["model"].as_str().unwrap_or_default().as_bytes());
        hasher.write_u8(0);
        let mut cached = 0;
        let mut seen = Vec::new();
        for (index, block) in bytes.chunks_exact(OPENAI_BLOCK_BYTES).enumerate() {
            hasher.write(block);
            let hash = hasher.clone().finish();
            let tokens = estimate_tokens((index + 1) * OPENAI_BLOCK_BYTES);
            if tokens >= min_tokens && self.openai.contains(&hash) {
                cached = tokens;
            }
            seen.push(hash);
        }
        if commit {
            self.openai.extend(seen);
        }
        PromptTokens {
            input_tokens: total - cached,
            cache_read_tokens: cached,
            cache_write_tokens: 0,
        }
    }
}

/// The request's content blocks in Anthropic's cache order (tools, system, messages), each as a
/// canonical JSON unit without its `cache_control`, with whether it carries a breakpoint.
fn anthropic_units(body: &Value) -> Vec<(Value, bool)> {
    let unit = |key: &str, block: &Value| {
        let mut block = block.clone();
        let breakpoint = block
            .as_object_mut()
            .and_then(|b| b.remove("cache_control"))
            .is_some();
        (json!({ key: block }), breakpoint)
    };
    let mut units: Vec<(Value, bool)> = body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|tool| unit("tool", tool))
        .collect();
    match &body["system"] {
        Value::String(text) => units.push(unit("system", &json!({"type": "text", "text": text}))),
        Value::Array(blocks) => units.extend(blocks.iter().map(|block| unit("system", block))),
        _ => {}
    }
    for message in body["messages"].as_array().into_iter().flatten() {
        let role = message["role"].as_str().unwrap_or_default();
        match &message["content"] {
            Value::String(text) => units.push(unit(role, &json!({"type": "text", "text": text}))),
            Value::Array(blocks) => units.extend(blocks.iter().map(|block| unit(role, block))),
            other => units.push(unit(role, other)),
        }
    }
    units
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    fn request(system: &str, turns: &[&str], breakpoint_on_last: bool) -> Value {
        let mut messages: Vec<Value> = turns
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let role = if i % 2 == 0 { "user" } else { "assistant" };
                json!({"role": role, "content": [{"type": "text", "text": text}]})
            })
            .collect();
        if breakpoint_on_last {
            if let Some(last) = messages.last_mut() {
                last["content"][0]["cache_control"] = json!({"type": "ephemeral"});
            }
        }
        json!({
            "model": "m",
            "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
            "messages": messages,
        })
    }

    #[track_caller]
    fn check(cache: &mut PromptCache, body: &Value, expect: (u64, u64, u64)) {
        let got = cache.anthropic(body, 0, true);
        assert_eq!(
            (
                got.input_tokens,
                got.cache_read_tokens,
                got.cache_write_tokens
            ),
            expect
        );
    }

    #[test]
    fn moving_breakpoint_reads_the_previous_prefix_through_lookback() {
        let mut cache = PromptCache::default();
        let system = "s".repeat(400);
        let first = request(&system, &["hello"], true);
        let second = request(&system, &["hello", "hi there", "next question"], true);
        let first_total = estimate_tokens(
            anthropic_units(&first)
                .iter()
                .map(|(u, _)| u.to_string().len())
                .sum(),
        );
        let second_total = estimate_tokens(
            anthropic_units(&second)
                .iter()
                .map(|(u, _)| u.to_string().len())
                .sum(),
        );
        check(&mut cache, &first, (0, 0, first_total));
        check(
            &mut cache,
            &second,
            (0, first_total, second_total - first_total),
        );
        check(&mut cache, &second, (0, second_total, 0));
        let changed = request(&"t".repeat(400), &["hello"], true);
        check(&mut cache, &changed, (0, 0, first_total));
    }

    #[test]
    fn openai_reads_whole_blocks_seen_before() {
        let mut cache = PromptCache::default();
        let body =
            json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(3000)}]});
        let first = cache.openai(&body, 0, true, true);
        let second = cache.openai(&body, 0, true, true);
        assert_eq!(first.cache_read_tokens, 0);
        assert_eq!(second.cache_read_tokens, 5 * 128);
        assert_eq!(
            second.input_tokens + second.cache_read_tokens,
            first.input_tokens
        );
        assert_eq!(cache.openai(&body, 1024, true, true).cache_read_tokens, 0);
    }

    #[test]
    fn responses_prefix_covers_tools_instructions_and_input() {
        let mut cache = PromptCache::default();
        let body = |instructions: &str, last: &str| {
            json!({"model": "m", "instructions": instructions,
                "tools": [{"type": "function", "name": "f", "parameters": {}}],
                "input": [{"role": "user", "content": "x".repeat(3000)}, {"role": "user", "content": last}]})
        };
        let first = cache.openai_responses(&body("be brief", "one"), 0, true, true);
        let second = cache.openai_responses(&body("be brief", "two"), 0, true, true);
        assert_eq!(first.cache_read_tokens, 0);
        // The tool, the instructions and the long input fill six whole blocks (3121 bytes).
        assert_eq!(second.cache_read_tokens, 6 * 128);
        assert_eq!(
            second.input_tokens + second.cache_read_tokens,
            first.input_tokens
        );
        // New instructions change the prefix before the input: nothing is read.
        let third = cache.openai_responses(&body("be verbose", "two"), 0, true, true);
        assert_eq!(third.cache_read_tokens, 0);
        // A string input is one unit.
        let text = json!({"model": "m", "input": "hello"});
        assert_eq!(
            cache.openai_responses(&text, 0, false, true).input_tokens,
            estimate_tokens(json!({"input": "hello"}).to_string().len())
        );
    }
}
