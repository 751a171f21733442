use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Token usage of one provider request (a step) or the sum over a turn.
///
/// One meaning for every provider:
/// - `inputTokens` is the **whole prompt**, cached or not (OpenAI's `prompt_tokens`;
///   Anthropic's `input_tokens + cache_read_input_tokens + cache_creation_input_tokens`);
/// - `cacheReadTokens` and `cacheWriteTokens` are the parts of `inputTokens` read from or
///   written to the provider's prompt cache, so `inputTokens - cacheReadTokens -
///   cacheWriteTokens` were billed at the plain input price;
/// - `outputTokens` is everything generated, reasoning included; `reasoningTokens` is the
///   part of it spent on reasoning, when the provider reports it.
///
/// Within one stream, a provider's later report replaces an earlier one (never summed);
/// across steps of a turn, step usages add up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_tokens: u64,
    #[serde(default)]
    pub cache_write_tokens: u64,
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Field-wise sum, for adding steps into a turn total.
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
    }

    pub fn is_zero(&self) -> bool {
        *self == Usage::default()
    }
}

/// Money spent, in US dollars, split the way providers bill it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cost {
    /// Uncached input tokens at the input price.
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
    pub total: f64,
}

impl Cost {
    pub fn add(&mut self, other: &Cost) {
        self.input += other.input;
        self.output += other.output;
        self.cache_read += other.cache_read;
        self.cache_write += other.cache_write;
        self.total += other.total;
    }
}
