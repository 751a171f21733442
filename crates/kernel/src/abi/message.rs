use dispatch_wire::{Chunk, Id, Role};

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
