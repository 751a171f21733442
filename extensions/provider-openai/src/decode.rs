//! What both answer decoders share: reading an SSE event's data, parsing JSON into the
//! errors the kernel classifies, and strings borrowed from an event.

use std::borrow::Cow;

use dispatch_kernel::abi::ProviderError;
use dispatch_provider_kit::{ErrorCtx, SseEvent};
use serde::Deserialize;

/// The JSON data of an SSE event, `None` when it has none. An `event: error` is a stream
/// error whatever its data.
pub(crate) fn event_data<'a>(
    event: &'a SseEvent,
    ctx: &ErrorCtx,
) -> Result<Option<&'a str>, ProviderError> {
    let data = event.data.trim();
    if event.event == "error" {
        return Err(ctx.stream_error(data));
    }
    Ok((!data.is_empty()).then_some(data))
}

/// Parses an event's data or a whole answer; what does not parse is a fatal
/// `malformed_event` quoting its start.
pub(crate) fn parse<'a, T: Deserialize<'a>>(
    data: &'a str,
    ctx: &ErrorCtx,
) -> Result<T, ProviderError> {
    serde_json::from_str(data).map_err(|err| ctx.malformed(&format!("{err} in {}", preview(data))))
}

/// A string of an event, borrowed from its data, or owned when it has escapes.
#[derive(Deserialize)]
pub(crate) struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

/// The start of an unparsable event or body, for an error message.
fn preview(data: &str) -> String {
    const KEPT: usize = 120;
    if data.chars().count() <= KEPT {
        return format!("`{data}`");
    }
    let kept: String = data.chars().take(KEPT).collect();
    format!("`{kept}…`")
}

/// Feeds `events` (`event:` name, `data:`) to the assembler `new` makes (instance `inst`,
/// model `m`) the way `assemble` does, stopping at an error or `Finish`, then the end of
/// the body: one `Debug` line per provider event, then the error's.
#[cfg(test)]
pub(crate) fn replay<A: dispatch_provider_kit::Assembler>(
    new: fn(ErrorCtx) -> A,
    events: &[(&str, &str)],
) -> String {
    use std::collections::VecDeque;
    use std::sync::Arc;

    let mut assembler = new(ErrorCtx::new(
        Arc::from("inst"),
        "m",
        dispatch_provider_kit::Redactor::default(),
    ));
    let mut out = VecDeque::new();
    let mut result = Ok(());
    for (event, data) in events {
        let event = SseEvent {
            event: (*event).to_owned(),
            data: (*data).to_owned(),
        };
        result = assembler.event(event, &mut out);
        if result.is_err() || assembler.finished() {
            break;
        }
    }
    if result.is_ok() && !assembler.finished() {
        result = assembler.end(&mut out);
    }
    let mut lines: Vec<String> = out.iter().map(|e| format!("{e:?}")).collect();
    if let Err(err) = result {
        lines.push(format!(
            "Err({}, retryable={}, {:?})",
            err.message, err.retryable, err.code
        ));
    }
    lines.join("\n")
}
