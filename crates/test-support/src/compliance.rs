//! The compliance harness: the checks every extension and every tool runs first in its
//! tests (STYLE rule 14). An extension must have a valid manifest whose id is its folder,
//! activate inside its own span, and leave nothing registered after deactivation; a tool
//! must have a valid spec, answer a cancelled call with `Aborted` promptly, and keep its
//! output within its cap.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use dispatch_kernel::abi::{Extension, Tool, ToolCtx, ToolError};
use dispatch_kernel::host::{ExtensionState, Host, HostConfig, RegistryCounts};
use dispatch_wire::Id;
use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id as SpanId};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// Checks `ext` (whose crate root is `manifest_dir`, i.e. `env!("CARGO_MANIFEST_DIR")`),
/// activated after `supporting` extensions it depends on, with `config`:
/// - the manifest parses and its id equals the crate's folder name;
/// - it activates, and every event it logs while activating carries `ext=<id>`;
/// - deactivation (in reverse, with its supporters) leaves nothing registered by anyone.
///
/// Runs on its own current-thread runtime. The span check installs a capturing global
/// tracing subscriber once per test binary (a per-thread default misses events when tests
/// run in parallel), so a test binary using this harness must not install its own global
/// subscriber.
#[track_caller]
pub fn assert_extension_compliance(
    ext: Arc<dyn Extension>,
    manifest_dir: &str,
    supporting: Vec<Arc<dyn Extension>>,
    config: HostConfig,
) {
    let manifest = ext
        .manifest()
        .unwrap_or_else(|err| panic!("manifest does not parse: {err}"));
    let folder = Path::new(manifest_dir)
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default();
    assert_eq!(
        manifest.id, folder,
        "the manifest id must equal the crate's folder name"
    );

    let capture = SpanCapture::global();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut extensions = supporting;
    extensions.push(ext);
    let mut host =
        Host::new(extensions, config).unwrap_or_else(|err| panic!("host refused: {err}"));
    runtime.block_on(async {
        let report = host
            .activate()
            .await
            .unwrap_or_else(|err| panic!("boot failed: {err}"));
        let status = host
            .statuses()
            .into_iter()
            .find(|s| s.id == manifest.id)
            .unwrap();
        assert_eq!(status.state, ExtensionState::Active, "{report:?}");
        let during: Vec<Captured> = capture.events_of(&manifest.id);
        assert!(
            !during.is_empty(),
            "no event was seen inside the activation span of `{}`",
            manifest.id
        );
        for (message, ext) in &during {
            assert_eq!(
                ext.as_deref(),
                Some(manifest.id.as_str()),
                "event `{message}` outside the extension span"
            );
        }
        host.deactivate().await;
        assert_eq!(
            host.counts(None),
            RegistryCounts::default(),
            "registrations left after deactivation"
        );
    });
}

/// Every event logged in this process so far, with the `ext` of its innermost extension
/// span. Installs the capturing global subscriber on first use (see
/// [`assert_extension_compliance`]); for tests of span placement.
pub fn captured_events() -> Vec<Captured> {
    SpanCapture::global().events.lock().unwrap().clone()
}

/// Inputs for [`assert_tool_compliance`].
pub struct ToolCompliance {
    /// A valid input for the tool.
    pub input: serde_json::Value,
    /// The working directory the call runs in.
    pub cwd: Option<std::path::PathBuf>,
    /// The tool's output cap in bytes, when it has one; a normal call's output must fit.
    pub output_cap: Option<usize>,
}

/// Checks a tool: a valid spec (name, description, an object input schema), an `Aborted`
/// error within a second when called with a cancelled token, and (with `output_cap`) a
/// normal call whose output fits the cap.
pub async fn assert_tool_compliance(tool: Arc<dyn Tool>, check: ToolCompliance) {
    let spec = tool.spec();
    assert!(
        (1..=64).contains(&spec.name.len())
            && spec
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "invalid tool name `{}`",
        spec.name
    );
    assert!(
        !spec.description.trim().is_empty(),
        "tool `{}` has no description",
        spec.name
    );
    assert_eq!(
        spec.input_schema.get("type"),
        Some(&serde_json::json!("object")),
        "input schema must be an object"
    );
    assert!(
        spec.input_schema
            .get("properties")
            .is_none_or(|p| p.is_object()),
        "input schema `properties` must be an object"
    );

    let cancelled = ctx(check.cwd.clone());
    cancelled.cancel.cancel();
    let aborted = tokio::time::timeout(
        Duration::from_secs(1),
        tool.call(check.input.clone(), cancelled),
    )
    .await;
    assert!(
        matches!(aborted, Ok(Err(ToolError::Aborted))),
        "tool `{}` must answer a cancelled call with Aborted promptly, got {aborted:?}",
        spec.name
    );

    if let Some(cap) = check.output_cap {
        let output = tool.call(check.input, ctx(check.cwd)).await;
        if let Ok(output) = &output {
            assert!(
                output.content.len() <= cap,
                "output of {} bytes exceeds the cap of {cap}",
                output.content.len()
            );
        }
    }
}

fn ctx(cwd: Option<std::path::PathBuf>) -> ToolCtx {
    ToolCtx {
        conversation_id: Id::from("c_compliance"),
        turn_id: Id::from("t_compliance"),
        step_id: Id::from("t_compliance#0"),
        tool_call_id: Id::from("call_compliance"),
        cwd,
        workspace_id: None,
        computer_id: None,
        cancel: CancellationToken::new(),
        output: Arc::new(|_, _| {}),
    }
}

/// An event's message and the `ext` of its innermost span that has one.
pub type Captured = (String, Option<String>);

/// Records each event's message and the `ext` field of its innermost span that has one.
#[derive(Clone, Default)]
struct SpanCapture {
    spans: Arc<Mutex<HashMap<u64, String>>>,
    events: Arc<Mutex<Vec<Captured>>>,
}

impl SpanCapture {
    /// The process-wide capture, installed as the global subscriber on first use.
    fn global() -> &'static SpanCapture {
        static CAPTURE: OnceLock<SpanCapture> = OnceLock::new();
        CAPTURE.get_or_init(|| {
            let capture = SpanCapture::default();
            let subscriber = tracing_subscriber::registry().with(capture.clone());
            if tracing::subscriber::set_global_default(subscriber).is_err() {
                panic!("the compliance harness needs the global tracing subscriber, but one is already set");
            }
            capture
        })
    }

    /// Events inside a span whose `ext` is `id`, or logged while such a span was entered.
    fn events_of(&self, id: &str) -> Vec<Captured> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter(|(_, ext)| ext.as_deref() == Some(id))
            .cloned()
            .collect()
    }
}

#[derive(Default)]
struct FieldVisitor {
    ext: Option<String>,
    message: Option<String>,
}

impl Visit for FieldVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "ext" => self.ext = Some(format!("{value:?}")),
            "message" => self.message = Some(format!("{value:?}")),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "ext" => self.ext = Some(value.to_owned()),
            "message" => self.message = Some(value.to_owned()),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SpanCapture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &SpanId, _: Context<'_, S>) {
        let mut visitor = FieldVisitor::default();
        attrs.record(&mut visitor);
        if let Some(ext) = visitor.ext {
            self.spans.lock().unwrap().insert(id.into_u64(), ext);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut visitor = FieldVisitor::default();
        event.record(&mut visitor);
        let spans = self.spans.lock().unwrap();
        let ext = ctx.event_scope(event).and_then(|scope| {
            scope
                .into_iter()
                .find_map(|s| spans.get(&s.id().into_u64()).cloned())
        });
        self.events
            .lock()
            .unwrap()
            .push((visitor.message.unwrap_or_default(), ext));
    }
}
