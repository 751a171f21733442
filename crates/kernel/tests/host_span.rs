#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The extension span, in its own test binary: a per-thread tracing subscriber only sees every
//! event when no other test runs concurrently in the process.

use std::sync::Arc;

use async_trait::async_trait;
use dispatch_kernel::abi::{Extension, Manifest};
use dispatch_kernel::host::{Host, HostApi};
use dispatch_kernel::{BoxError, Error};
use pretty_assertions::assert_eq;

struct Probe;

#[async_trait]
impl Extension for Probe {
    fn manifest(&self) -> Result<Manifest, Error> {
        Manifest::parse(
            "id = \"tool-probe\"\nversion = \"0.1.0\"\nkernel = \"^0.1\"\ntier = \"standard\"\n",
        )
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        tracing::info!("Probe activating");
        let _entered = host.span().clone().entered();
        tracing::info!("Probe inside its span");
        Ok(())
    }
}

mod span {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id};
    use tracing_subscriber::layer::{Context, Layer};
    use tracing_subscriber::registry::LookupSpan;

    /// (message, `ext` of the innermost span that has one).
    pub type CapturedEvent = (String, Option<String>);

    /// Records, for every event, the `ext` field of the innermost span that has one.
    #[derive(Clone, Default)]
    pub struct ExtCapture {
        spans: Arc<Mutex<HashMap<u64, String>>>,
        pub events: Arc<Mutex<Vec<CapturedEvent>>>,
    }

    struct ExtVisitor(Option<String>);

    impl Visit for ExtVisitor {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "ext" || field.name() == "message" {
                self.0 = Some(format!("{value:?}"));
            }
        }

        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "ext" || field.name() == "message" {
                self.0 = Some(value.to_string());
            }
        }
    }

    impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for ExtCapture {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
            let mut v = ExtVisitor(None);
            attrs.record(&mut v);
            if let Some(ext) =
                v.0.filter(|_| attrs.metadata().fields().field("ext").is_some())
            {
                self.spans.lock().unwrap().insert(id.into_u64(), ext);
            }
        }

        fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
            let mut v = ExtVisitor(None);
            event.record(&mut v);
            let spans = self.spans.lock().unwrap();
            let ext = ctx.event_scope(event).and_then(|scope| {
                scope
                    .into_iter()
                    .find_map(|s| spans.get(&s.id().into_u64()).cloned())
            });
            self.events
                .lock()
                .unwrap()
                .push((v.0.unwrap_or_default(), ext));
        }
    }
}

#[test]
fn activation_runs_inside_a_span_carrying_the_extension_id() {
    use tracing_subscriber::layer::SubscriberExt;
    let capture = span::ExtCapture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut host = Host::new(vec![Arc::new(Probe)], Default::default()).unwrap();
        host.activate().await.unwrap();
    });
    let events = capture.events.lock().unwrap().clone();
    let probe: Vec<_> = events
        .iter()
        .filter(|(m, _)| m.starts_with("Probe"))
        .cloned()
        .collect();
    assert_eq!(
        probe,
        [
            (
                "Probe activating".to_string(),
                Some("tool-probe".to_string())
            ),
            (
                "Probe inside its span".to_string(),
                Some("tool-probe".to_string())
            ),
        ]
    );
}
