//! [`EventLog`] and the invariants every turn's events and history must satisfy.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use dispatch_kernel::abi::{EventSink, Message};
use dispatch_wire::{AgentEvent, Chunk, FinishReason, Id, Role};
use tokio::sync::Notify;

/// An [`EventSink`] that keeps every event and lets a test wait for one.
#[derive(Default)]
pub struct EventLog {
    events: Mutex<Vec<AgentEvent>>,
    notify: Notify,
}

impl EventLog {
    pub fn new() -> EventLog {
        EventLog::default()
    }

    pub fn events(&self) -> Vec<AgentEvent> {
        self.events.lock().unwrap().clone()
    }

    /// The `type` tag of every event, in order.
    pub fn types(&self) -> Vec<&'static str> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(AgentEvent::type_name)
            .collect()
    }

    /// The events with this `type` tag.
    pub fn of_type(&self, type_name: &str) -> Vec<AgentEvent> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter(|e| e.type_name() == type_name)
            .cloned()
            .collect()
    }

    pub fn count(&self, type_name: &str) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.type_name() == type_name)
            .count()
    }

    /// Waits (tokio time) until an event matching `predicate` was emitted and returns the
    /// first such event, or `None` after `timeout`.
    pub async fn wait_for(
        &self,
        predicate: impl Fn(&AgentEvent) -> bool,
        timeout: Duration,
    ) -> Option<AgentEvent> {
        let wait = async {
            loop {
                let notified = self.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(found) = self.events.lock().unwrap().iter().find(|e| predicate(e)) {
                    return found.clone();
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.ok()
    }
}

impl EventSink for EventLog {
    fn emit(&self, event: AgentEvent) {
        self.events.lock().unwrap().push(event);
        self.notify.notify_waiters();
    }
}

/// A predicate for [`EventLog::wait_for`]: the event has this `type` tag.
pub fn is_type(type_name: &'static str) -> impl Fn(&AgentEvent) -> bool {
    move |e| e.type_name() == type_name
}

/// Asserts the invariants of every turn's event stream:
/// - the first event is `turn-start`, there is exactly one `done` and it is the last event;
/// - every event carries the turn's conversation and turn ids;
/// - every `tool-call` has exactly one `tool-result`, after it, and no two open calls share
///   an id; tool output only comes between a call and its result;
/// - step ids are `turnId#i`, never go back, and `step-complete` indexes go 0, 1, 2, ...;
/// - `provider-retry` never follows content of its step (no duplicated partial output);
/// - a turn that ends with `error` has an `error` event, and `done.steps` covers every step.
#[track_caller]
pub fn check_turn_invariants(events: &[AgentEvent]) {
    let Some(AgentEvent::TurnStart {
        conversation_id,
        turn_id,
        ..
    }) = events.first()
    else {
        panic!("the first event must be turn-start: {:?}", events.first());
    };
    let dones = events
        .iter()
        .filter(|e| matches!(e, AgentEvent::Done { .. }))
        .count();
    assert_eq!(dones, 1, "exactly one done: {:?}", types(events));
    let Some(AgentEvent::Done {
        finish_reason,
        steps,
        ..
    }) = events.last()
    else {
        panic!("done must be the last event: {:?}", types(events));
    };

    let mut open: HashSet<Id> = HashSet::new();
    let mut step_index: Option<u32> = None;
    let mut completed_steps: u32 = 0;
    let mut content_in_step: HashSet<Id> = HashSet::new();
    let mut errors = 0;
    for event in events {
        assert_eq!(
            event.conversation_id(),
            Some(conversation_id),
            "conversation id of {event:?}"
        );
        if let Some(turn) = event_turn_id(event) {
            assert_eq!(turn, turn_id, "turn id of {event:?}");
        }
        if let Some(step_id) = event_step_id(event) {
            let index = parse_step_id(turn_id, step_id);
            assert!(
                step_index.is_none_or(|i| index >= i),
                "step ids go back at {event:?}"
            );
            step_index = Some(index);
        }
        match event {
            AgentEvent::ToolCall { tool_call_id, .. } => {
                let fresh = open.insert(tool_call_id.clone());
                assert!(
                    fresh,
                    "tool-call {tool_call_id} announced while a call with its id is open"
                );
            }
            AgentEvent::ToolOutput { tool_call_id, .. } => {
                assert!(
                    open.contains(tool_call_id),
                    "tool-output outside its call: {event:?}"
                );
            }
            AgentEvent::ToolResult { tool_call_id, .. } => {
                assert!(
                    open.remove(tool_call_id),
                    "tool-result without an open call: {event:?}"
                );
            }
            AgentEvent::StepComplete {
                step_index: index, ..
            } => {
                assert_eq!(
                    *index, completed_steps,
                    "step-complete indexes must go 0, 1, 2, ..."
                );
                completed_steps += 1;
            }
            AgentEvent::ProviderRetry { step_id, .. } => {
                assert!(
                    !content_in_step.contains(step_id),
                    "provider-retry after content: {event:?}"
                );
            }
            AgentEvent::Error { .. } => errors += 1,
            AgentEvent::UserMessage { .. }
            | AgentEvent::TurnStart { .. }
            | AgentEvent::TextDelta { .. }
            | AgentEvent::ReasoningDelta { .. }
            | AgentEvent::Usage { .. }
            | AgentEvent::Steering { .. }
            | AgentEvent::Done { .. }
            | AgentEvent::TurnSealed { .. }
            | AgentEvent::Unknown => {}
        }
        if let AgentEvent::TextDelta { step_id, .. }
        | AgentEvent::ReasoningDelta { step_id, .. }
        | AgentEvent::ToolCall { step_id, .. } = event
        {
            content_in_step.insert(step_id.clone());
        }
    }
    assert!(
        open.is_empty(),
        "tool calls without a tool-result: {:?}",
        open
    );
    assert!(
        *steps >= completed_steps,
        "done.steps {steps} < {completed_steps} step-complete events"
    );
    if *finish_reason == FinishReason::Error {
        assert!(
            errors > 0,
            "a turn ending with error has an error event: {:?}",
            types(events)
        );
    }
}

/// Asserts that history is well formed: no empty message, every tool call of an assistant
/// message is answered in the tool message right after it, and every tool result answers a
/// call of the assistant message right before it.
#[track_caller]
pub fn check_history(messages: &[Message]) {
    for (i, message) in messages.iter().enumerate() {
        assert!(!message.chunks.is_empty(), "empty message {}", message.id);
        let calls: Vec<&Id> = message.tool_calls().map(|(id, _, _)| id).collect();
        match message.role {
            Role::Assistant if !calls.is_empty() => {
                let next = messages.get(i + 1);
                let answered: Vec<&Id> = next
                    .filter(|m| m.role == Role::Tool)
                    .map(|m| result_ids(m))
                    .unwrap_or_default();
                assert_eq!(
                    answered, calls,
                    "tool calls of {} without their results",
                    message.id
                );
            }
            Role::Tool => {
                let previous = i.checked_sub(1).and_then(|p| messages.get(p));
                let asked: Vec<&Id> = previous
                    .filter(|m| m.role == Role::Assistant)
                    .map(|m| m.tool_calls().map(|(id, _, _)| id).collect())
                    .unwrap_or_default();
                assert_eq!(
                    result_ids(message),
                    asked,
                    "tool results of {} without their calls",
                    message.id
                );
            }
            Role::Assistant | Role::User => {}
        }
    }
}

fn result_ids(message: &Message) -> Vec<&Id> {
    message
        .chunks
        .iter()
        .filter_map(|c| {
            if let Chunk::ToolResult { tool_call_id, .. } = c {
                Some(tool_call_id)
            } else {
                None
            }
        })
        .collect()
}

fn types(events: &[AgentEvent]) -> Vec<&'static str> {
    events.iter().map(AgentEvent::type_name).collect()
}

fn parse_step_id(turn_id: &Id, step_id: &Id) -> u32 {
    let index = step_id
        .strip_prefix(&**turn_id)
        .and_then(|rest| rest.strip_prefix('#'))
        .and_then(|index| index.parse().ok());
    index.unwrap_or_else(|| panic!("step id {step_id} is not {turn_id}#<index>"))
}

fn event_turn_id(event: &AgentEvent) -> Option<&Id> {
    match event {
        AgentEvent::UserMessage { turn_id, .. }
        | AgentEvent::TurnStart { turn_id, .. }
        | AgentEvent::TextDelta { turn_id, .. }
        | AgentEvent::ReasoningDelta { turn_id, .. }
        | AgentEvent::ToolCall { turn_id, .. }
        | AgentEvent::ToolOutput { turn_id, .. }
        | AgentEvent::ToolResult { turn_id, .. }
        | AgentEvent::Usage { turn_id, .. }
        | AgentEvent::StepComplete { turn_id, .. }
        | AgentEvent::ProviderRetry { turn_id, .. }
        | AgentEvent::Steering { turn_id, .. }
        | AgentEvent::Error { turn_id, .. }
        | AgentEvent::Done { turn_id, .. }
        | AgentEvent::TurnSealed { turn_id, .. } => Some(turn_id),
        AgentEvent::Unknown => None,
    }
}

fn event_step_id(event: &AgentEvent) -> Option<&Id> {
    match event {
        AgentEvent::TextDelta { step_id, .. }
        | AgentEvent::ReasoningDelta { step_id, .. }
        | AgentEvent::ToolCall { step_id, .. }
        | AgentEvent::ToolOutput { step_id, .. }
        | AgentEvent::ToolResult { step_id, .. }
        | AgentEvent::Usage { step_id, .. }
        | AgentEvent::StepComplete { step_id, .. }
        | AgentEvent::ProviderRetry { step_id, .. }
        | AgentEvent::Steering { step_id, .. } => Some(step_id),
        AgentEvent::Error { step_id, .. } => step_id.as_ref(),
        AgentEvent::UserMessage { .. }
        | AgentEvent::TurnStart { .. }
        | AgentEvent::Done { .. }
        | AgentEvent::TurnSealed { .. }
        | AgentEvent::Unknown => None,
    }
}

#[cfg(test)]
mod tests {
    use std::panic::catch_unwind;

    use dispatch_wire::{FinishReason, Usage};

    use super::*;

    fn ids() -> (Id, Id) {
        (Id::from("c"), Id::from("t"))
    }

    fn start() -> AgentEvent {
        let (conversation_id, turn_id) = ids();
        AgentEvent::TurnStart {
            conversation_id,
            turn_id,
            model: "m".into(),
            started_at: 0,
        }
    }

    fn call(id: &str) -> AgentEvent {
        let (conversation_id, turn_id) = ids();
        AgentEvent::ToolCall {
            conversation_id,
            turn_id,
            step_id: Id::from("t#0"),
            tool_call_id: Id::from(id),
            tool_name: "x".into(),
            input: serde_json::json!({}),
        }
    }

    fn result(id: &str) -> AgentEvent {
        let (conversation_id, turn_id) = ids();
        AgentEvent::ToolResult {
            conversation_id,
            turn_id,
            step_id: Id::from("t#0"),
            tool_call_id: Id::from(id),
            tool_name: "x".into(),
            output: "ok".into(),
            is_error: false,
            duration_ms: 0,
        }
    }

    fn done() -> AgentEvent {
        let (conversation_id, turn_id) = ids();
        AgentEvent::Done {
            conversation_id,
            turn_id,
            finish_reason: FinishReason::Stop,
            usage: Usage::default(),
            cost: None,
            duration_ms: 0,
            context_size: None,
            steps: 1,
        }
    }

    fn holds(events: &[AgentEvent]) -> bool {
        catch_unwind(|| check_turn_invariants(events)).is_ok()
    }

    #[test]
    fn turn_invariants_accept_a_good_turn_and_catch_broken_ones() {
        assert!(holds(&[start(), call("a"), result("a"), done()]));
        assert!(!holds(&[call("a"), result("a"), done()]), "no turn-start");
        assert!(!holds(&[start(), call("a"), result("a")]), "no done");
        assert!(!holds(&[start(), done(), done()]), "two dones");
        assert!(!holds(&[start(), done(), call("a")]), "event after done");
        assert!(!holds(&[start(), call("a"), done()]), "call without result");
        assert!(
            !holds(&[start(), result("a"), done()]),
            "result without call"
        );
        assert!(
            !holds(&[start(), call("a"), result("a"), result("a"), done()]),
            "two results"
        );
    }

    #[test]
    fn history_check_catches_dangling_tool_calls() {
        let call = Chunk::ToolCall {
            tool_call_id: Id::from("a"),
            tool_name: "x".into(),
            input: serde_json::json!({}),
        };
        let result = Chunk::ToolResult {
            tool_call_id: Id::from("a"),
            tool_name: "x".into(),
            output: "ok".into(),
            is_error: false,
        };
        let assistant = Message::new(Id::from("m1"), Role::Assistant, vec![call]);
        let tool = Message::new(Id::from("m2"), Role::Tool, vec![result]);
        assert!(catch_unwind(|| check_history(&[assistant.clone(), tool.clone()])).is_ok());
        assert!(catch_unwind(|| check_history(&[assistant])).is_err());
        assert!(catch_unwind(|| check_history(&[tool])).is_err());
    }
}
