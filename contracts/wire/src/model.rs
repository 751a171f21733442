use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How hard a model should think. Providers map it onto their own knobs (e.g. an Anthropic
/// thinking budget). Validated on input: an unknown value is a 400, so no `Unknown` here.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ReasoningEffort {
    Low,
    Medium,
    High,
    Xhigh,
    Max,
}

impl ReasoningEffort {
    pub const ALL: [ReasoningEffort; 5] = [
        ReasoningEffort::Low,
        ReasoningEffort::Medium,
        ReasoningEffort::High,
        ReasoningEffort::Xhigh,
        ReasoningEffort::Max,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High => "high",
            ReasoningEffort::Xhigh => "xhigh",
            ReasoningEffort::Max => "max",
        }
    }

    pub fn parse(s: &str) -> Option<ReasoningEffort> {
        ReasoningEffort::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// Prices in US dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelPricing {
    pub input: f64,
    pub output: f64,
    #[serde(default)]
    pub cache_read: f64,
    #[serde(default)]
    pub cache_write: f64,
}

/// What the server knows about a model it can talk to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    /// The id used to select it, e.g. `claude-sonnet-4-5` or `ollama/qwen3:8b`.
    pub id: String,
    /// The provider instance serving it, e.g. `anthropic`, `openai`, `ollama`.
    pub provider: String,
    /// Tokens of context (prompt + output) the model accepts.
    pub context_window: u64,
    pub max_output: u64,
    pub pricing: ModelPricing,
    /// Whether the model accepts a reasoning effort.
    #[serde(default)]
    pub reasoning: bool,
    /// Whether the catalog knew the model (false: conservative defaults were used).
    #[serde(default)]
    pub known: bool,
    /// A human label for pickers, e.g. "Offline echo (no model; repeats your message)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}
