//! The `todo_write` tool: validates the whole new list ([`parse_todos`]), stores it in place
//! of the old one and answers with a compact rendering ([`render`]) the model reads and the
//! frontends show as the tool result.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use dispatch_kernel::abi::{Tool, ToolCtx, ToolError, ToolOutput, ToolSpec};
use dispatch_wire::{TodoItem, TodoStatus};
use serde_json::{Value, json};

use crate::config::Config;
use crate::store::TodoStore;

/// The tool's name.
pub const NAME: &str = "todo_write";

/// Longest accepted item id, in bytes.
pub const MAX_ID_BYTES: usize = 64;

const STATUSES: [&str; 4] = ["pending", "in_progress", "completed", "cancelled"];
const PRIORITIES: [&str; 3] = ["high", "medium", "low"];

const DESCRIPTION: &str = "Write the todo list of this conversation: plan multi-step work, \
then keep the list current as you go. Each call replaces the whole list, so always send every \
item (unchanged ones too), in order. Mark an item in_progress when you start it and completed \
as soon as it is done; keep at most one item in_progress; use cancelled for work that is no \
longer needed. Skip the list for trivial one-step tasks. The user sees the list.";

/// `todo_write`.
pub struct TodoWriteTool {
    spec: ToolSpec,
    store: Arc<TodoStore>,
    config: Config,
}

impl TodoWriteTool {
    pub fn new(store: Arc<TodoStore>, config: Config) -> TodoWriteTool {
        TodoWriteTool {
            spec: spec(&config),
            store,
            config,
        }
    }
}

fn spec(config: &Config) -> ToolSpec {
    ToolSpec {
        name: NAME.into(),
        description: DESCRIPTION.into(),
        input_schema: json!({
            "type": "object",
            "properties": {
                "todos": {
                    "type": "array",
                    "description": "The whole list, in order; it replaces the previous one.",
                    "maxItems": config.max_items,
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": {
                                "type": "string",
                                "description": "Unique within the list; keep an item's id when it changes."
                            },
                            "content": {
                                "type": "string",
                                "description": "What to do, in one imperative line."
                            },
                            "status": { "type": "string", "enum": STATUSES },
                            "priority": { "type": "string", "enum": PRIORITIES }
                        },
                        "required": ["id", "content", "status"]
                    }
                }
            },
            "required": ["todos"]
        }),
        concurrency_safe: false,
        capabilities: Vec::new(),
    }
}

#[async_trait]
impl Tool for TodoWriteTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, input: Value, ctx: ToolCtx) -> Result<ToolOutput, ToolError> {
        if ctx.cancel.is_cancelled() {
            return Err(ToolError::Aborted);
        }
        let todos = parse_todos(&input, &self.config)?;
        // Not raced against the token: the write is short and, once handed to the writer,
        // commits anyway, so the result says what really happened.
        let record = self
            .store
            .replace(&ctx.conversation_id, todos)
            .await
            .map_err(|err| ToolError::Fatal(format!("the todo list was not saved: {err}")))?;
        Ok(ToolOutput::text(render(&record.todos)))
    }
}

/// The new list from the tool input, or a message naming the first bad item by index.
/// Item ids may be strings or integers (models often number them); content is trimmed;
/// unknown item fields are ignored.
pub fn parse_todos(input: &Value, config: &Config) -> Result<Vec<TodoItem>, ToolError> {
    let model = |message: String| ToolError::Model(message);
    let items = match input.get("todos") {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(model("`todos` must be an array of items".into())),
        None => return Err(model("missing required argument `todos`".into())),
    };
    if items.len() > config.max_items {
        return Err(model(format!(
            "`todos` has {} items, the limit is {}",
            items.len(),
            config.max_items
        )));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut todos = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let at = format!("todos[{index}]");
        let Value::Object(fields) = item else {
            return Err(model(format!(
                "{at} must be an object with `id`, `content` and `status`"
            )));
        };
        let id = match fields.get("id") {
            Some(Value::String(id)) => id.trim().to_owned(),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
            Some(_) => return Err(model(format!("{at}.id must be a string"))),
            None => return Err(model(format!("{at} is missing `id`"))),
        };
        if id.is_empty() {
            return Err(model(format!("{at}.id is empty")));
        }
        if id.len() > MAX_ID_BYTES {
            return Err(model(format!(
                "{at}.id is {} bytes, the limit is {MAX_ID_BYTES}",
                id.len()
            )));
        }
        if let Some(first) = seen.insert(id.clone(), index) {
            return Err(model(format!(
                "{at}.id `{id}` repeats todos[{first}].id; ids must be unique"
            )));
        }
        let content = match fields.get("content") {
            Some(Value::String(content)) => content.trim().to_owned(),
            Some(_) => return Err(model(format!("{at}.content must be a string"))),
            None => return Err(model(format!("{at} is missing `content`"))),
        };
        if content.is_empty() {
            return Err(model(format!("{at}.content is empty")));
        }
        if content.len() > config.max_content_bytes {
            return Err(model(format!(
                "{at}.content is {} bytes, the limit is {}",
                content.len(),
                config.max_content_bytes
            )));
        }
        let status = match fields.get("status") {
            Some(Value::String(status)) => match status.as_str() {
                "pending" => TodoStatus::Pending,
                "in_progress" => TodoStatus::InProgress,
                "completed" => TodoStatus::Completed,
                "cancelled" => TodoStatus::Cancelled,
                other => {
                    return Err(model(format!(
                        "{at}.status `{other}` is not one of {}",
                        STATUSES.join(", ")
                    )));
                }
            },
            Some(_) => return Err(model(format!("{at}.status must be a string"))),
            None => return Err(model(format!("{at} is missing `status`"))),
        };
        let priority = match fields.get("priority") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) if PRIORITIES.contains(&p.as_str()) => Some(p.clone()),
            Some(other) => {
                return Err(model(format!(
                    "{at}.priority {other} is not one of {}",
                    PRIORITIES.join(", ")
                )));
            }
        };
        todos.push(TodoItem {
            id,
            content,
            status,
            priority,
        });
    }
    Ok(todos)
}

/// The list as the model reads it: a count line, then one line per item,
/// `[x]` completed, `[>]` in progress, `[ ]` pending, `[-]` cancelled.
pub fn render(todos: &[TodoItem]) -> String {
    if todos.is_empty() {
        return "Todo list cleared (0 items).".into();
    }
    let count = |status: TodoStatus| todos.iter().filter(|t| t.status == status).count();
    let counts: Vec<String> = [
        (TodoStatus::Completed, "completed"),
        (TodoStatus::InProgress, "in progress"),
        (TodoStatus::Pending, "pending"),
        (TodoStatus::Cancelled, "cancelled"),
    ]
    .into_iter()
    .filter_map(|(status, label)| match count(status) {
        0 => None,
        n => Some(format!("{n} {label}")),
    })
    .collect();
    let noun = if todos.len() == 1 { "item" } else { "items" };
    let mut out = format!(
        "Todo list updated: {} {noun} ({}).",
        todos.len(),
        counts.join(", ")
    );
    for todo in todos {
        let mark = match todo.status {
            TodoStatus::Completed => "[x]",
            TodoStatus::InProgress => "[>]",
            TodoStatus::Pending => "[ ]",
            TodoStatus::Cancelled => "[-]",
            TodoStatus::Unknown => "[?]",
        };
        let content = todo.content.replace(['\r', '\n'], " ");
        out.push_str(&format!("\n{mark} {} {content}", todo.id));
        if let Some(priority) = &todo.priority {
            out.push_str(&format!(" ({priority})"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    /// Parses `input` with the default limits (or `max_items` 3) and renders the list, or
    /// the error the model would read.
    #[track_caller]
    fn check(input: Value, expected: Expect) {
        let config = Config {
            max_items: 3,
            ..Config::default()
        };
        let actual = match parse_todos(&input, &config) {
            Ok(todos) => render(&todos),
            Err(err) => format!("error: {err}"),
        };
        expected.assert_eq(&actual);
    }

    #[test]
    fn renders_every_status_with_counts() {
        check(
            json!({"todos": [
                {"id": "1", "content": "Add flag", "status": "completed"},
                {"id": 2, "content": " Write tests\nfor it ", "status": "in_progress", "priority": "high"},
                {"id": "3", "content": "Docs", "status": "pending", "activeForm": "ignored"},
            ]}),
            expect![[r#"
                Todo list updated: 3 items (1 completed, 1 in progress, 1 pending).
                [x] 1 Add flag
                [>] 2 Write tests for it (high)
                [ ] 3 Docs"#]],
        );
        check(
            json!({"todos": [{"id": "a", "content": "Drop it", "status": "cancelled", "priority": null}]}),
            expect![[r#"
                Todo list updated: 1 item (1 cancelled).
                [-] a Drop it"#]],
        );
        check(
            json!({"todos": []}),
            expect!["Todo list cleared (0 items)."],
        );
    }

    #[test]
    fn bad_input_is_named_by_item_index() {
        check(
            json!({}),
            expect!["error: missing required argument `todos`"],
        );
        check(
            json!({"todos": "x"}),
            expect!["error: `todos` must be an array of items"],
        );
        let four = json!({"todos": [
            {"id": "1", "content": "a", "status": "pending"},
            {"id": "2", "content": "b", "status": "pending"},
            {"id": "3", "content": "c", "status": "pending"},
            {"id": "4", "content": "d", "status": "pending"},
        ]});
        check(four, expect!["error: `todos` has 4 items, the limit is 3"]);
        check(
            json!({"todos": [1]}),
            expect!["error: todos[0] must be an object with `id`, `content` and `status`"],
        );
        check(
            json!({"todos": [{"content": "a", "status": "pending"}]}),
            expect!["error: todos[0] is missing `id`"],
        );
        check(
            json!({"todos": [{"id": " ", "content": "a", "status": "pending"}]}),
            expect!["error: todos[0].id is empty"],
        );
        check(
            json!({"todos": [{"id": true, "content": "a", "status": "pending"}]}),
            expect!["error: todos[0].id must be a string"],
        );
        check(
            json!({"todos": [
                {"id": "1", "content": "a", "status": "pending"},
                {"id": 1, "content": "b", "status": "pending"},
            ]}),
            expect!["error: todos[1].id `1` repeats todos[0].id; ids must be unique"],
        );
        check(
            json!({"todos": [{"id": "1", "content": "  ", "status": "pending"}]}),
            expect!["error: todos[0].content is empty"],
        );
        check(
            json!({"todos": [{"id": "1", "content": "x".repeat(1001), "status": "pending"}]}),
            expect!["error: todos[0].content is 1001 bytes, the limit is 1000"],
        );
        check(
            json!({"todos": [{"id": "1", "content": "a", "status": "done"}]}),
            expect![
                "error: todos[0].status `done` is not one of pending, in_progress, completed, cancelled"
            ],
        );
        check(
            json!({"todos": [{"id": "1", "content": "a"}]}),
            expect!["error: todos[0] is missing `status`"],
        );
        check(
            json!({"todos": [{"id": "1", "content": "a", "status": "pending", "priority": "urgent"}]}),
            expect![[r#"error: todos[0].priority "urgent" is not one of high, medium, low"#]],
        );
    }
}
