//! [`ScriptedProvider`]: a provider whose responses are a queue of scripts.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use dispatch_kernel::abi::{
    Provider, ProviderError, ProviderEvent, ProviderRequest, ProviderStream, StopReason,
};
use dispatch_wire::Usage;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

/// What `stream()` itself does before any event.
#[derive(Debug, Clone, PartialEq)]
pub enum Opening {
    /// Returns the scripted stream.
    Stream,
    /// Fails with this error.
    Fail(ProviderError),
    /// Never returns.
    Hang,
    /// Waits (tokio time), then returns the stream.
    Delay(Duration),
}

/// One step of a scripted stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptStep {
    Event(ProviderEvent),
    /// Yields this error mid-stream; the stream ends after it.
    Error(ProviderError),
    /// Ends the stream (without `Finish`, unless one came before).
    End,
    /// Never yields again.
    Hang,
    /// Waits (tokio time) before the next step.
    Delay(Duration),
    /// Panics inside `poll_next`.
    Panic(String),
}

/// One scripted response. A stream whose steps run out ends there (a disconnect unless a
/// `finish` came).
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub opening: Opening,
    pub steps: Vec<ScriptStep>,
}

impl Default for Script {
    fn default() -> Script {
        Script::new()
    }
}

impl Script {
    pub fn new() -> Script {
        Script {
            opening: Opening::Stream,
            steps: Vec::new(),
        }
    }

    /// `stream()` fails with `err`.
    pub fn fail(err: ProviderError) -> Script {
        Script {
            opening: Opening::Fail(err),
            steps: Vec::new(),
        }
    }

    /// `stream()` never returns.
    pub fn hang_on_stream() -> Script {
        Script {
            opening: Opening::Hang,
            steps: Vec::new(),
        }
    }

    /// A plain answer: one text delta, then `Finish(EndTurn)`.
    pub fn reply(text: &str) -> Script {
        Script::new().text(text).finish(StopReason::EndTurn)
    }

    /// Tool calls `(id, name, arguments)`, then `Finish(ToolCalls)`.
    pub fn calls(calls: &[(&str, &str, &str)]) -> Script {
        calls
            .iter()
            .fold(Script::new(), |s, (id, name, args)| {
                s.tool_call(id, name, args)
            })
            .finish(StopReason::ToolCalls)
    }

    pub fn opening(mut self, opening: Opening) -> Script {
        self.opening = opening;
        self
    }

    pub fn step(mut self, step: ScriptStep) -> Script {
        self.steps.push(step);
        self
    }

    pub fn event(self, event: ProviderEvent) -> Script {
        self.step(ScriptStep::Event(event))
    }

    pub fn text(self, delta: &str) -> Script {
        self.event(ProviderEvent::TextDelta(delta.to_owned()))
    }

    pub fn reasoning(self, delta: &str) -> Script {
        self.event(ProviderEvent::ReasoningDelta(delta.to_owned()))
    }

    pub fn signature(self, signature: &str) -> Script {
        self.event(ProviderEvent::ReasoningSignature(signature.to_owned()))
    }

    pub fn redacted(self, data: &str) -> Script {
        self.event(ProviderEvent::RedactedReasoning(data.to_owned()))
    }

    pub fn tool_call(self, id: &str, name: &str, arguments: &str) -> Script {
        self.event(ProviderEvent::ToolCall {
            id: id.to_owned(),
            name: name.to_owned(),
            arguments: arguments.to_owned(),
        })
    }

    pub fn usage(self, input_tokens: u64, output_tokens: u64) -> Script {
        self.event(ProviderEvent::Usage(Usage {
            input_tokens,
            output_tokens,
            ..Usage::default()
        }))
    }

    pub fn finish(self, reason: StopReason) -> Script {
        self.event(ProviderEvent::Finish(reason))
    }

    pub fn error(self, err: ProviderError) -> Script {
        self.step(ScriptStep::Error(err))
    }

    pub fn end(self) -> Script {
        self.step(ScriptStep::End)
    }

    pub fn hang(self) -> Script {
        self.step(ScriptStep::Hang)
    }

    pub fn delay(self, duration: Duration) -> Script {
        self.step(ScriptStep::Delay(duration))
    }

    pub fn panic(self, message: &str) -> Script {
        self.step(ScriptStep::Panic(message.to_owned()))
    }
}

/// A provider answering each `stream()` call with the next script. Records every request
/// and the cancel token it got. With no script left, `stream()` fails with a fatal error.
#[derive(Default)]
pub struct ScriptedProvider {
    scripts: Mutex<VecDeque<Script>>,
    requests: Mutex<Vec<ProviderRequest>>,
    tokens: Mutex<Vec<CancellationToken>>,
}

impl ScriptedProvider {
    pub fn new(scripts: impl IntoIterator<Item = Script>) -> ScriptedProvider {
        ScriptedProvider {
            scripts: Mutex::new(scripts.into_iter().collect()),
            ..Default::default()
        }
    }

    /// Queues another response.
    pub fn push(&self, script: Script) {
        self.scripts.lock().unwrap().push_back(script);
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<ProviderRequest> {
        self.requests.lock().unwrap().clone()
    }

    pub fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// For each request, whether its cancel token has fired.
    pub fn cancelled(&self) -> Vec<bool> {
        self.tokens
            .lock()
            .unwrap()
            .iter()
            .map(CancellationToken::is_cancelled)
            .collect()
    }

    /// Scripts not used yet.
    pub fn remaining(&self) -> usize {
        self.scripts.lock().unwrap().len()
    }
}

#[async_trait]
impl Provider for ScriptedProvider {
    fn id(&self) -> &str {
        "scripted"
    }

    async fn stream(
        &self,
        request: &ProviderRequest,
        cancel: CancellationToken,
    ) -> Result<ProviderStream, ProviderError> {
        let n = {
            let mut requests = self.requests.lock().unwrap();
            requests.push(request.clone());
            requests.len()
        };
        self.tokens.lock().unwrap().push(cancel);
        let script = self.scripts.lock().unwrap().pop_front();
        let Some(script) = script else {
            return Err(ProviderError::fatal(format!(
                "ScriptedProvider: no script for request {n}"
            )));
        };
        match script.opening {
            Opening::Stream => {}
            Opening::Fail(err) => return Err(err),
            Opening::Hang => std::future::pending::<()>().await,
            Opening::Delay(duration) => tokio::time::sleep(duration).await,
        }
        Ok(scripted_stream(script.steps))
    }
}

fn scripted_stream(steps: Vec<ScriptStep>) -> ProviderStream {
    let steps: VecDeque<ScriptStep> = steps.into();
    futures::stream::unfold(steps, |mut steps| async move {
        loop {
            match steps.pop_front()? {
                ScriptStep::Event(event) => return Some((Ok(event), steps)),
                ScriptStep::Error(err) => return Some((Err(err), VecDeque::new())),
                ScriptStep::End => return None,
                ScriptStep::Hang => std::future::pending::<()>().await,
                ScriptStep::Delay(duration) => tokio::time::sleep(duration).await,
                ScriptStep::Panic(message) => panic!("{message}"),
            }
        }
    })
    .boxed()
}

/// The ids of every provider `host` has registered, sorted.
pub fn provider_ids(host: &dispatch_kernel::host::Host) -> Vec<String> {
    host.catalog()
        .providers()
        .iter()
        .map(|p| p.id().to_owned())
        .collect()
}
