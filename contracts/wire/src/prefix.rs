use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The prompt-prefix record of one provider request: what a provider's prompt cache keys
/// on, block by block, in the order the request sends it, with stable hashes of the exact
/// bytes sent.
///
/// A prompt cache reads the longest prefix an earlier request wrote, so comparing two
/// requests' records explains a cache miss: [`PromptPrefix::first_difference`] names the
/// first block whose prefix changed since the previous request of the same conversation
/// (a system-prompt section, the tools block, or a message index).
///
/// Hashes are xxh3-64 of the serialized bytes, as 16 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromptPrefix {
    /// The provider instance, e.g. `anthropic`, `openai`, `ollama`.
    pub provider: String,
    pub model: String,
    /// The request's blocks in wire order (for Anthropic: tools, system sections, messages).
    pub blocks: Vec<PrefixBlock>,
    /// Bytes of every block together.
    pub total_bytes: u64,
    /// The first block whose prefix differs from the previous request of the same
    /// conversation; absent for a conversation's first request and when this request
    /// extends the previous one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_difference: Option<PrefixBlockRef>,
}

/// One block of a request's prompt prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrefixBlock {
    #[serde(flatten)]
    pub at: PrefixBlockRef,
    /// Bytes of this block as sent.
    pub bytes: u64,
    /// Hash of this block's bytes.
    pub hash: String,
    /// Hash of every block up to and including this one.
    pub prefix_hash: String,
    /// Whether the request marks a cache breakpoint at the end of this block.
    #[serde(default)]
    pub breakpoint: bool,
}

/// Which block of a request: the tools block, a system-prompt section, or a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum PrefixBlockRef {
    /// Every tool definition, sorted by name.
    Tools { count: u32 },
    /// A system-prompt section, by position and name.
    System { index: u32, name: String },
    /// A message of the request, by position (0-based, in the provider's message list).
    Message { index: u32, role: String },
}
