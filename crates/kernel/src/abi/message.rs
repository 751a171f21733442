use dispatch_wire::{Chunk, Id, Role};
use serde_json::Value;

/// One message of model-facing history: the chunks of one role, in order.
///
/// Persisted as one `StoredChunk` per chunk sharing `id` as their `messageId`.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: Id,
    pub role: Role,
    pub chunks: Vec<Chunk>,
}

impl Message {
    pub fn new(id: Id, role: Role, chunks: Vec<Chunk>) -> Message {
        Message { id, role, chunks }
    }

    /// A user message holding one text chunk.
    pub fn user(id: Id, text: impl Into<String>) -> Message {
        Message::new(id, Role::User, vec![Chunk::Text { text: text.into() }])
    }

    /// The concatenated text chunks.
    pub fn text(&self) -> String {
        self.chunks
            .iter()
            .filter_map(|c| match c {
                Chunk::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The tool calls in this message: `(tool_call_id, tool_name, input)`.
    pub fn tool_calls(&self) -> impl Iterator<Item = (&Id, &str, &serde_json::Value)> {
        self.chunks.iter().filter_map(|c| match c {
            Chunk::ToolCall {
                tool_call_id,
                tool_name,
                input,
            } => Some((tool_call_id, tool_name.as_str(), input)),
            _ => None,
        })
    }
}

/// The key of the object replacing tool-call arguments that are not a JSON object.
pub const MALFORMED_ARGUMENTS_KEY: &str = "_malformed_arguments";

/// How much of malformed arguments is kept, in characters.
const MALFORMED_KEPT_CHARS: usize = 200;

/// Tool-call arguments as a JSON object, and whether they had to change: an object stays, a
/// string holding an object becomes that object, anything else becomes
/// `{"_malformed_arguments": <its first 200 characters>}`.
///
/// The one rule for arguments that did not parse (the kernel keeps them as a string so the
/// tool result can say why): the store applies it when loading history and providers when
/// serializing a request, so a malformed call never makes a provider answer 400.
pub fn sanitize_arguments(input: Value) -> (Value, bool) {
    match input {
        Value::Object(_) => (input, false),
        Value::String(raw) => match serde_json::from_str::<Value>(&raw) {
            Ok(parsed @ Value::Object(_)) => (parsed, true),
            Ok(_) | Err(_) => (malformed(&raw), true),
        },
        other @ (Value::Null | Value::Bool(_) | Value::Number(_) | Value::Array(_)) => {
            (malformed(&other.to_string()), true)
        }
    }
}

fn malformed(raw: &str) -> Value {
    let kept: String = raw.chars().take(MALFORMED_KEPT_CHARS).collect();
    let mut object = serde_json::Map::new();
    object.insert(MALFORMED_ARGUMENTS_KEY.to_owned(), Value::String(kept));
    Value::Object(object)
}
