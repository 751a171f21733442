//! What both request encoders share: the encoded body with its prompt-prefix builder, a
//! JSON writer, and the reasoning-effort mapping.

use dispatch_provider_kit::PrefixBuilder;
use dispatch_wire::ReasoningEffort;
use serde::Serialize;

/// A serialized request body and the prompt-prefix record of its blocks.
pub(crate) struct Encoded {
    pub body: Vec<u8>,
    pub prefix: PrefixBuilder,
}

/// Appends `value` as compact JSON.
pub(crate) fn push_json<T: Serialize + ?Sized>(
    body: &mut Vec<u8>,
    value: &T,
) -> serde_json::Result<()> {
    serde_json::to_writer(body, value)
}

/// OpenAI's effort names: `xhigh` and `max` have no equivalent beyond `high`.
pub(crate) fn effort_name(effort: ReasoningEffort) -> &'static str {
    match effort {
        ReasoningEffort::Low => "low",
        ReasoningEffort::Medium => "medium",
        ReasoningEffort::High | ReasoningEffort::Xhigh | ReasoningEffort::Max => "high",
    }
}

/// The start of an unparsable event or body, for an error message.
pub(crate) fn preview(data: &str) -> String {
    const KEPT: usize = 120;
    if data.chars().count() <= KEPT {
        return format!("`{data}`");
    }
    let kept: String = data.chars().take(KEPT).collect();
    format!("`{kept}…`")
}
