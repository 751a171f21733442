//! Read-time repair: stored chunks → model-facing history any provider accepts. Pure; the
//! stored rows are never rewritten (append-only history stays as it happened, errors
//! included, and people still see it through windows).
//!
//! Rules, in order:
//! 1. Chunks are grouped into messages by `(messageId, role)`, in order of first appearance.
//! 2. Per chunk: `error` chunks are stripped (counted), `unknown` ones dropped; a chunk in a
//!    role that cannot carry it (a tool call outside an assistant message, a result outside
//!    a tool message, text in a tool message, reasoning outside an assistant message) is
//!    dropped and logged (a misplaced result counts as an orphan); a second tool call with
//!    an id already used is dropped; tool-call arguments become a JSON object: an object
//!    stays, a string holding an object becomes that object, anything else becomes
//!    `{"_malformed_arguments": <the first 200 characters of the raw text>}` (counted).
//! 3. Messages left without content are dropped (counted): an assistant message needs a
//!    tool call or non-blank text, a user message non-blank text, a tool message a result.
//! 4. Each tool call gets exactly one result, in one tool message right after its assistant
//!    message, in call order: the first result that follows the call anywhere later in
//!    history is moved there (into the tool message that already follows, if any); a call
//!    without one gets a synthesized error result ([`INTERRUPTED_OUTPUT`], counted). A result
//!    whose call is not in history before it, or a second result for a call, is dropped
//!    (counted as an orphan).
//!
//! The outcome passes [`check_provider_valid`].

use std::collections::{HashMap, HashSet};

pub use dispatch_kernel::abi::MALFORMED_ARGUMENTS_KEY;
use dispatch_kernel::abi::{Message, RepairReport, sanitize_arguments};
use dispatch_wire::{Chunk, Id, Role, StoredChunk};

/// The output of a synthesized result for a tool call that never finished.
pub const INTERRUPTED_OUTPUT: &str =
    "Interrupted: this tool call did not complete (the turn was stopped or the server restarted).";

/// Repairs stored chunks (ascending by seq, corrupt rows already skipped) into messages a
/// provider accepts, reporting what changed. `skipped_corrupt_rows` is left to the caller.
pub fn repair(chunks: Vec<StoredChunk>) -> (Vec<Message>, RepairReport) {
    let mut report = RepairReport::default();
    let messages = group(chunks, &mut report);
    let messages = drop_empty(messages, &mut report);
    let messages = pair(messages, &mut report);
    if let Err(problem) = check_provider_valid(&messages) {
        // A bug in the rules above; the history is still returned rather than bricking the
        // conversation, and the provider's answer will say more.
        debug_assert!(false, "repaired history is not provider-valid: {problem}");
        tracing::error!(problem = %problem, "Repaired history is not provider-valid");
    }
    (messages, report)
}

fn group(chunks: Vec<StoredChunk>, report: &mut RepairReport) -> Vec<Message> {
    let mut messages: Vec<Message> = Vec::new();
    let mut index_of: HashMap<(Id, Role), usize> = HashMap::new();
    let mut call_ids: HashSet<Id> = HashSet::new();
    for stored in chunks {
        let index = *index_of
            .entry((stored.message_id.clone(), stored.role))
            .or_insert_with(|| {
                messages.push(Message::new(
                    stored.message_id.clone(),
                    stored.role,
                    Vec::new(),
                ));
                messages.len() - 1
            });
        if let Some(chunk) = clean(stored.role, stored.seq, stored.chunk, &mut call_ids, report) {
            messages[index].chunks.push(chunk);
        }
    }
    messages
}

fn misplaced(seq: u64, role: Role, kind: &'static str) -> Option<Chunk> {
    tracing::warn!(seq, role = ?role, kind, "Dropped a chunk its message's role cannot carry");
    None
}

fn clean(
    role: Role,
    seq: u64,
    chunk: Chunk,
    call_ids: &mut HashSet<Id>,
    report: &mut RepairReport,
) -> Option<Chunk> {
    match chunk {
        Chunk::Error { .. } => {
            report.stripped_error_chunks += 1;
            None
        }
        Chunk::Unknown => {
            tracing::debug!(seq, "Dropped a chunk of a kind this build does not know");
            None
        }
        text @ Chunk::Text { .. } => match role {
            Role::User | Role::Assistant => Some(text),
            Role::Tool => misplaced(seq, role, "text"),
        },
        reasoning @ Chunk::Reasoning { .. } => match role {
            Role::Assistant => Some(reasoning),
            Role::User | Role::Tool => misplaced(seq, role, "reasoning"),
        },
        Chunk::ToolCall {
            tool_call_id,
            tool_name,
            input,
        } => match role {
            Role::Assistant => {
                if !call_ids.insert(tool_call_id.clone()) {
                    tracing::warn!(seq, tool_call_id = %tool_call_id, "Dropped a second tool call with a used id");
                    return None;
                }
                let (input, changed) = sanitize_arguments(input);
                if changed {
                    report.sanitized_arguments += 1;
                }
                Some(Chunk::ToolCall {
                    tool_call_id,
                    tool_name,
                    input,
                })
            }
            Role::User | Role::Tool => misplaced(seq, role, "tool-call"),
        },
        result @ Chunk::ToolResult { .. } => match role {
            Role::Tool => Some(result),
            Role::User | Role::Assistant => {
                report.dropped_orphan_results += 1;
                misplaced(seq, role, "tool-result")
            }
        },
    }
}

fn has_content(message: &Message) -> bool {
    let non_blank_text = || {
        message
            .chunks
            .iter()
            .any(|c| matches!(c, Chunk::Text { text } if !text.trim().is_empty()))
    };
    match message.role {
        Role::Assistant => message.tool_calls().next().is_some() || non_blank_text(),
        Role::User => non_blank_text(),
        Role::Tool => !message.chunks.is_empty(),
    }
}

fn drop_empty(messages: Vec<Message>, report: &mut RepairReport) -> Vec<Message> {
    messages
        .into_iter()
        .filter(|message| {
            let keep = has_content(message);
            if !keep {
                report.dropped_empty_messages += 1;
            }
            keep
        })
        .collect()
}

fn pair(mut messages: Vec<Message>, report: &mut RepairReport) -> Vec<Message> {
    let mut call_at: HashMap<Id, usize> = HashMap::new();
    for (i, message) in messages.iter().enumerate() {
        if message.role == Role::Assistant {
            for (id, _, _) in message.tool_calls() {
                call_at.insert(id.clone(), i);
            }
        }
    }
    // The first result following each call; tool messages are emptied (rebuilt below).
    let mut results: HashMap<Id, Chunk> = HashMap::new();
    for (j, message) in messages.iter_mut().enumerate() {
        if message.role != Role::Tool {
            continue;
        }
        for chunk in std::mem::take(&mut message.chunks) {
            let Chunk::ToolResult { tool_call_id, .. } = &chunk else {
                continue;
            };
            let answers_a_call = call_at.get(tool_call_id).is_some_and(|&i| i < j);
            if answers_a_call && !results.contains_key(tool_call_id) {
                results.insert(tool_call_id.clone(), chunk);
            } else {
                tracing::warn!(tool_call_id = %tool_call_id, "Dropped a tool result without a call before it, or a second one");
                report.dropped_orphan_results += 1;
            }
        }
    }

    let mut out = Vec::with_capacity(messages.len() + 1);
    let mut rest = messages.into_iter().peekable();
    while let Some(message) = rest.next() {
        match message.role {
            Role::Tool => {}
            Role::User => out.push(message),
            Role::Assistant => {
                let calls: Vec<(Id, String)> = message
                    .tool_calls()
                    .map(|(id, name, _)| (id.clone(), name.to_owned()))
                    .collect();
                if calls.is_empty() {
                    out.push(message);
                    continue;
                }
                let results_id = match rest.peek() {
                    Some(next) if next.role == Role::Tool => next.id.clone(),
                    Some(_) | None => Id::from(format!("{}:results", message.id)),
                };
                let chunks = calls
                    .into_iter()
                    .map(|(id, name)| {
                        results.remove(&id).unwrap_or_else(|| {
                            report.synthesized_results += 1;
                            Chunk::ToolResult {
                                tool_call_id: id,
                                tool_name: name,
                                output: INTERRUPTED_OUTPUT.to_owned(),
                                is_error: true,
                            }
                        })
                    })
                    .collect();
                out.push(message);
                out.push(Message::new(results_id, Role::Tool, chunks));
            }
        }
    }
    out
}

/// Whether a history is acceptable to every provider: no empty message (an assistant one
/// has a tool call or non-blank text, a user one non-blank text); no error or unknown
/// chunk; each chunk in a role that carries it; tool-call ids unique and arguments JSON
/// objects; every assistant message with tool calls followed by one tool message holding
/// exactly one result per call and nothing else; every tool message following such an
/// assistant message. `Err` says what is wrong first.
pub fn check_provider_valid(messages: &[Message]) -> Result<(), String> {
    let mut call_ids: HashSet<&Id> = HashSet::new();
    for (i, message) in messages.iter().enumerate() {
        let id = &message.id;
        if !has_content(message) {
            return Err(format!("message {id} ({:?}) has no content", message.role));
        }
        for chunk in &message.chunks {
            let allowed = match chunk {
                Chunk::Error { .. } | Chunk::Unknown => false,
                Chunk::Text { .. } => matches!(message.role, Role::User | Role::Assistant),
                Chunk::Reasoning { .. } => message.role == Role::Assistant,
                Chunk::ToolCall {
                    tool_call_id,
                    input,
                    ..
                } => {
                    if !input.is_object() {
                        return Err(format!("tool call {tool_call_id} has non-object arguments"));
                    }
                    if !call_ids.insert(tool_call_id) {
                        return Err(format!("tool call id {tool_call_id} is used twice"));
                    }
                    message.role == Role::Assistant
                }
                Chunk::ToolResult { .. } => message.role == Role::Tool,
            };
            if !allowed {
                return Err(format!(
                    "message {id} ({:?}) carries a chunk it must not: {chunk:?}",
                    message.role
                ));
            }
        }
        match message.role {
            Role::Assistant => {
                let mut calls: Vec<&Id> = message.tool_calls().map(|(id, _, _)| id).collect();
                if calls.is_empty() {
                    continue;
                }
                let Some(next) = messages.get(i + 1).filter(|m| m.role == Role::Tool) else {
                    return Err(format!(
                        "tool calls of {id} are not followed by a tool message"
                    ));
                };
                let mut answered: Vec<&Id> = next
                    .chunks
                    .iter()
                    .filter_map(|c| match c {
                        Chunk::ToolResult { tool_call_id, .. } => Some(tool_call_id),
                        Chunk::Text { .. }
                        | Chunk::Reasoning { .. }
                        | Chunk::ToolCall { .. }
                        | Chunk::Error { .. }
                        | Chunk::Unknown => None,
                    })
                    .collect();
                calls.sort();
                answered.sort();
                if calls != answered {
                    return Err(format!(
                        "tool calls of {id} {calls:?} are answered by {answered:?}"
                    ));
                }
            }
            Role::Tool => {
                let follows_calls = i
                    .checked_sub(1)
                    .and_then(|p| messages.get(p))
                    .is_some_and(|p| p.role == Role::Assistant && p.tool_calls().next().is_some());
                if !follows_calls {
                    return Err(format!(
                        "tool message {id} does not follow an assistant message with tool calls"
                    ));
                }
            }
            Role::User => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use expect_test::{Expect, expect};
    use serde_json::json;

    use serde_json::Value;

    use super::*;

    /// Builds stored chunks from `(messageId, role, chunk)`, seqs from 1.
    fn rows(spec: Vec<(&str, Role, Chunk)>) -> Vec<StoredChunk> {
        spec.into_iter()
            .enumerate()
            .map(|(i, (id, role, chunk))| StoredChunk {
                seq: i as u64 + 1,
                message_id: Id::from(id),
                role,
                turn_id: None,
                step_id: None,
                created_at: 0,
                chunk,
            })
            .collect()
    }

    fn text(t: &str) -> Chunk {
        Chunk::Text { text: t.into() }
    }

    fn call(id: &str, input: Value) -> Chunk {
        Chunk::ToolCall {
            tool_call_id: id.into(),
            tool_name: "run".into(),
            input,
        }
    }

    fn result(id: &str, output: &str) -> Chunk {
        Chunk::ToolResult {
            tool_call_id: id.into(),
            tool_name: "run".into(),
            output: output.into(),
            is_error: false,
        }
    }

    fn error() -> Chunk {
        Chunk::Error {
            message: "boom".into(),
            code: None,
        }
    }

    fn render(messages: &[Message], report: &RepairReport) -> String {
        let mut out = String::new();
        for m in messages {
            let chunks: Vec<String> = m
                .chunks
                .iter()
                .map(|c| match c {
                    Chunk::Text { text } => format!("text {text:?}"),
                    Chunk::Reasoning { text, .. } => format!("reasoning {text:?}"),
                    Chunk::ToolCall {
                        tool_call_id,
                        input,
                        ..
                    } => format!("call {tool_call_id} {input}"),
                    Chunk::ToolResult {
                        tool_call_id,
                        output,
                        is_error,
                        ..
                    } => format!("result {tool_call_id} {output:?} error={is_error}"),
                    Chunk::Error { message, .. } => format!("error {message:?}"),
                    Chunk::Unknown => "unknown".into(),
                })
                .collect();
            out.push_str(&format!("{:?} {}: {}\n", m.role, m.id, chunks.join(" | ")));
        }
        out.push_str(&format!("{report:?}\n"));
        out
    }

    #[track_caller]
    fn check(input: Vec<(&str, Role, Chunk)>, expect: Expect) {
        let (messages, report) = repair(rows(input));
        check_provider_valid(&messages).unwrap();
        expect.assert_eq(&render(&messages, &report));
    }

    #[test]
    fn a_clean_history_is_unchanged() {
        check(
            vec![
                ("u1", Role::User, text("list files")),
                (
                    "a1",
                    Role::Assistant,
                    Chunk::Reasoning {
                        text: "hm".into(),
                        signature: None,
                        redacted: None,
                    },
                ),
                ("a1", Role::Assistant, call("c1", json!({"cmd": "ls"}))),
                ("a1", Role::Assistant, call("c2", json!({}))),
                ("t1", Role::Tool, result("c1", "a b")),
                ("t1", Role::Tool, result("c2", "")),
                ("a2", Role::Assistant, text("done")),
            ],
            expect![[r#"
                User u1: text "list files"
                Assistant a1: reasoning "hm" | call c1 {"cmd":"ls"} | call c2 {}
                Tool t1: result c1 "a b" error=false | result c2 "" error=false
                Assistant a2: text "done"
                RepairReport { synthesized_results: 0, stripped_error_chunks: 0, dropped_empty_messages: 0, sanitized_arguments: 0, skipped_corrupt_rows: 0, dropped_orphan_results: 0 }
            "#]],
        );
    }

    #[test]
    fn error_chunks_are_stripped_and_error_only_messages_dropped() {
        check(
            vec![
                ("u1", Role::User, text("hi")),
                ("a1", Role::Assistant, text("partial")),
                ("a1", Role::Assistant, error()),
                ("u2", Role::User, text("again")),
                ("a2", Role::Assistant, error()),
                ("a3", Role::Assistant, text("  ")),
            ],
            expect![[r#"
                User u1: text "hi"
                Assistant a1: text "partial"
                User u2: text "again"
                RepairReport { synthesized_results: 0, stripped_error_chunks: 2, dropped_empty_messages: 2, sanitized_arguments: 0, skipped_corrupt_rows: 0, dropped_orphan_results: 0 }
            "#]],
        );
    }

    #[test]
    fn orphaned_calls_get_an_interrupted_result_merged_into_their_tool_message() {
        check(
            vec![
                ("u1", Role::User, text("go")),
                ("a1", Role::Assistant, call("c1", json!({}))),
                ("a1", Role::Assistant, call("c2", json!({}))),
                ("t1", Role::Tool, result("c2", "ok")),
                ("u2", Role::User, text("next")),
                ("a2", Role::Assistant, call("c3", json!({}))),
            ],
            expect![[r#"
                User u1: text "go"
                Assistant a1: call c1 {} | call c2 {}
                Tool t1: result c1 "Interrupted: this tool call did not complete (the turn was stopped or the server restarted)." error=true | result c2 "ok" error=false
                User u2: text "next"
                Assistant a2: call c3 {}
                Tool a2:results: result c3 "Interrupted: this tool call did not complete (the turn was stopped or the server restarted)." error=true
                RepairReport { synthesized_results: 2, stripped_error_chunks: 0, dropped_empty_messages: 0, sanitized_arguments: 0, skipped_corrupt_rows: 0, dropped_orphan_results: 0 }
            "#]],
        );
    }

    #[test]
    fn orphan_duplicate_and_early_results_are_dropped_late_ones_moved() {
        check(
            vec![
                ("t0", Role::Tool, result("c1", "too early")),
                ("t0", Role::Tool, result("zz", "no call")),
                ("a1", Role::Assistant, call("c1", json!({}))),
                ("u1", Role::User, text("steer")),
                ("t1", Role::Tool, result("c1", "late")),
                ("t1", Role::Tool, result("c1", "twice")),
                ("a2", Role::Assistant, text("ok")),
            ],
            expect![[r#"
                Assistant a1: call c1 {}
                Tool a1:results: result c1 "late" error=false
                User u1: text "steer"
                Assistant a2: text "ok"
                RepairReport { synthesized_results: 0, stripped_error_chunks: 0, dropped_empty_messages: 0, sanitized_arguments: 0, skipped_corrupt_rows: 0, dropped_orphan_results: 3 }
            "#]],
        );
    }

    #[test]
    fn arguments_become_objects() {
        let long = "x".repeat(300);
        check(
            vec![
                (
                    "a1",
                    Role::Assistant,
                    call("c1", json!("{\"path\": \"a\"}")),
                ),
                ("a1", Role::Assistant, call("c2", json!("{\"path\": "))),
                ("a1", Role::Assistant, call("c3", json!([1, 2]))),
                ("a1", Role::Assistant, call("c4", json!(long))),
                ("a1", Role::Assistant, call("c5", json!("\"quoted\""))),
                ("t1", Role::Tool, result("c1", "1")),
                ("t1", Role::Tool, result("c2", "2")),
                ("t1", Role::Tool, result("c3", "3")),
                ("t1", Role::Tool, result("c4", "4")),
                ("t1", Role::Tool, result("c5", "5")),
            ],
            expect![[r#"
                Assistant a1: call c1 {"path":"a"} | call c2 {"_malformed_arguments":"{\"path\": "} | call c3 {"_malformed_arguments":"[1,2]"} | call c4 {"_malformed_arguments":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"} | call c5 {"_malformed_arguments":"\"quoted\""}
                Tool t1: result c1 "1" error=false | result c2 "2" error=false | result c3 "3" error=false | result c4 "4" error=false | result c5 "5" error=false
                RepairReport { synthesized_results: 0, stripped_error_chunks: 0, dropped_empty_messages: 0, sanitized_arguments: 5, skipped_corrupt_rows: 0, dropped_orphan_results: 0 }
            "#]],
        );
    }

    #[test]
    fn unknown_misplaced_and_duplicate_call_chunks_are_dropped() {
        check(
            vec![
                ("u1", Role::User, text("hi")),
                ("u1", Role::User, Chunk::Unknown),
                ("u1", Role::User, call("cu", json!({}))),
                ("u1", Role::User, result("cx", "misplaced")),
                ("a1", Role::Assistant, call("c1", json!({}))),
                ("t1", Role::Tool, result("c1", "ok")),
                ("t1", Role::Tool, text("stray")),
                ("a2", Role::Assistant, call("c1", json!({}))),
                ("a2", Role::Assistant, text("reuse")),
            ],
            expect![[r#"
                User u1: text "hi"
                Assistant a1: call c1 {}
                Tool t1: result c1 "ok" error=false
                Assistant a2: text "reuse"
                RepairReport { synthesized_results: 0, stripped_error_chunks: 0, dropped_empty_messages: 0, sanitized_arguments: 0, skipped_corrupt_rows: 0, dropped_orphan_results: 1 }
            "#]],
        );
    }

    #[test]
    fn interleaved_chunks_of_one_message_are_grouped() {
        check(
            vec![
                ("a1", Role::Assistant, text("one ")),
                ("u1", Role::User, text("hi")),
                ("a1", Role::Assistant, text("two")),
            ],
            expect![[r#"
                Assistant a1: text "one " | text "two"
                User u1: text "hi"
                RepairReport { synthesized_results: 0, stripped_error_chunks: 0, dropped_empty_messages: 0, sanitized_arguments: 0, skipped_corrupt_rows: 0, dropped_orphan_results: 0 }
            "#]],
        );
    }

    fn msg(id: &str, role: Role, chunks: Vec<Chunk>) -> Message {
        Message::new(Id::from(id), role, chunks)
    }

    #[test]
    fn the_validity_check_catches_each_kind_of_invalid_history() {
        let valid = vec![
            msg("u", Role::User, vec![text("hi")]),
            msg("a", Role::Assistant, vec![call("c1", json!({}))]),
            msg("t", Role::Tool, vec![result("c1", "ok")]),
        ];
        assert_eq!(check_provider_valid(&valid), Ok(()));
        let invalid: Vec<(&str, Vec<Message>)> = vec![
            ("empty user", vec![msg("u", Role::User, vec![])]),
            (
                "blank assistant",
                vec![msg("a", Role::Assistant, vec![text(" ")])],
            ),
            (
                "reasoning only",
                vec![msg(
                    "a",
                    Role::Assistant,
                    vec![Chunk::Reasoning {
                        text: "x".into(),
                        signature: None,
                        redacted: None,
                    }],
                )],
            ),
            (
                "error chunk",
                vec![msg("a", Role::Assistant, vec![text("x"), error()])],
            ),
            (
                "unknown chunk",
                vec![msg("u", Role::User, vec![text("x"), Chunk::Unknown])],
            ),
            (
                "string args",
                vec![
                    msg("a", Role::Assistant, vec![call("c1", json!("{}"))]),
                    msg("t", Role::Tool, vec![result("c1", "ok")]),
                ],
            ),
            (
                "unanswered call",
                vec![msg("a", Role::Assistant, vec![call("c1", json!({}))])],
            ),
            (
                "call answered late",
                vec![
                    msg("a", Role::Assistant, vec![call("c1", json!({}))]),
                    msg("u", Role::User, vec![text("x")]),
                    msg("t", Role::Tool, vec![result("c1", "ok")]),
                ],
            ),
            (
                "two results",
                vec![
                    msg("a", Role::Assistant, vec![call("c1", json!({}))]),
                    msg(
                        "t",
                        Role::Tool,
                        vec![result("c1", "ok"), result("c1", "again")],
                    ),
                ],
            ),
            (
                "foreign result",
                vec![
                    msg("a", Role::Assistant, vec![call("c1", json!({}))]),
                    msg("t", Role::Tool, vec![result("c1", "ok"), result("c9", "?")]),
                ],
            ),
            (
                "orphan tool message",
                vec![
                    msg("u", Role::User, vec![text("x")]),
                    msg("t", Role::Tool, vec![result("c1", "ok")]),
                ],
            ),
            (
                "duplicate call id",
                vec![
                    msg(
                        "a",
                        Role::Assistant,
                        vec![call("c1", json!({})), call("c1", json!({}))],
                    ),
                    msg(
                        "t",
                        Role::Tool,
                        vec![result("c1", "ok"), result("c1", "ok")],
                    ),
                ],
            ),
            (
                "call in a user message",
                vec![msg("u", Role::User, vec![text("x"), call("c1", json!({}))])],
            ),
            (
                "text in a tool message",
                vec![
                    msg("a", Role::Assistant, vec![call("c1", json!({}))]),
                    msg("t", Role::Tool, vec![result("c1", "ok"), text("x")]),
                ],
            ),
        ];
        for (name, history) in invalid {
            assert!(check_provider_valid(&history).is_err(), "{name} passed");
        }
    }

    #[test]
    fn sanitizing_keeps_objects_and_truncates_by_characters() {
        assert_eq!(
            sanitize_arguments(json!({"a": 1})),
            (json!({"a": 1}), false)
        );
        assert_eq!(
            sanitize_arguments(json!(null)),
            (json!({"_malformed_arguments": "null"}), true)
        );
        let (value, changed) = sanitize_arguments(json!("é".repeat(250)));
        assert!(changed);
        assert_eq!(
            value[MALFORMED_ARGUMENTS_KEY]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            200
        );
    }
}
