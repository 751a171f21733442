#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The extension span, in its own test binary (it installs the global tracing subscriber).

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
            "id = \"tool-probe\"\nversion = \"0.1.0\"\nkernel = \"^0.4\"\ntier = \"standard\"\n",
        )
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        tracing::info!("Probe activating");
        let _entered = host.span().clone().entered();
        tracing::info!("Probe inside its span");
        Ok(())
    }
}

#[test]
fn activation_runs_inside_a_span_carrying_the_extension_id() {
    // Installs the capturing global subscriber before anything logs.
    assert!(
        dispatch_test_support::captured_events()
            .iter()
            .all(|(m, _)| !m.starts_with("Probe"))
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut host = Host::new(vec![Arc::new(Probe)], Default::default()).unwrap();
        host.activate().await.unwrap();
    });
    let probe: Vec<_> = dispatch_test_support::captured_events()
        .into_iter()
        .filter(|(m, _)| m.starts_with("Probe"))
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
