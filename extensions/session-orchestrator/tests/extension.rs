#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Compliance of the extension with its supporting extensions (own test binary: the
//! harness installs a global tracing subscriber).

mod common;

use std::sync::Arc;

use common::{host_config, supporting};
use dispatch_session_orchestrator::SessionOrchestratorExtension;
use tempfile::TempDir;

#[test]
fn is_compliant() {
    let dir = TempDir::new().unwrap();
    dispatch_test_support::assert_extension_compliance(
        Arc::new(SessionOrchestratorExtension::default()),
        env!("CARGO_MANIFEST_DIR"),
        supporting(),
        host_config(dir.path(), ""),
    );
}
