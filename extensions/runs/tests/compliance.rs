//! The compliance harness (STYLE rule 14), in its own binary: it installs a global tracing
//! subscriber.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use dispatch_runs::RunsExtension;
use dispatch_test_support::assert_extension_compliance;

#[test]
fn the_runs_extension_is_compliant() {
    let dir = tempfile::TempDir::new().unwrap();
    assert_extension_compliance(
        Arc::new(RunsExtension::default()),
        env!("CARGO_MANIFEST_DIR"),
        common::supporting(),
        common::host_config(dir.path(), ""),
    );
}
