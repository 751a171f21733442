//! Terse builders of history messages and chunks for tests (tool calls and results are
//! `run_shell` calls).

use dispatch_kernel::abi::Message;
use dispatch_wire::{Chunk, Id, Role};
use serde_json::Value;

pub fn id(s: &str) -> Id {
    Id::from(s)
}

pub fn user(message_id: &str, text: &str) -> Message {
    Message::user(id(message_id), text)
}

pub fn assistant(message_id: &str, chunks: Vec<Chunk>) -> Message {
    Message::new(id(message_id), Role::Assistant, chunks)
}

pub fn tool(message_id: &str, chunks: Vec<Chunk>) -> Message {
    Message::new(id(message_id), Role::Tool, chunks)
}

pub fn text(text: &str) -> Chunk {
    Chunk::Text { text: text.into() }
}

pub fn call(call_id: &str, input: Value) -> Chunk {
    Chunk::ToolCall {
        tool_call_id: id(call_id),
        tool_name: "run_shell".into(),
        input,
    }
}

pub fn result(call_id: &str, output: &str) -> Chunk {
    Chunk::ToolResult {
        tool_call_id: id(call_id),
        tool_name: "run_shell".into(),
        output: output.into(),
        is_error: false,
    }
}
