#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The extension in a host: compliance first, then activation rules.

mod common;

use std::sync::Arc;

use common::host_parts;
use dispatch_kernel::abi::Extension;
use dispatch_kernel::host::Host;
use dispatch_test_support::assert_extension_compliance;
use dispatch_transport_http::TransportHttpExtension;
use dispatch_transport_kit::{LISTENER, ROUTES};
use tempfile::TempDir;

#[test]
fn is_compliant() {
    let dir = TempDir::new().unwrap();
    let (supporting, _, config) = host_parts(&dir, "bind = \"127.0.0.1:0\"");
    assert_extension_compliance(
        Arc::new(TransportHttpExtension::default()),
        env!("CARGO_MANIFEST_DIR"),
        supporting,
        config,
    );
}

/// Activates the extension with `table`; the error text when boot fails.
async fn boot(table: &str) -> Result<Host, String> {
    let dir = TempDir::new().unwrap();
    let (mut extensions, _, config) = host_parts(&dir, table);
    extensions.push(Arc::new(TransportHttpExtension::default()) as Arc<dyn Extension>);
    let mut host = Host::new(extensions, config).unwrap();
    match host.activate().await {
        Ok(_) => Ok(host),
        Err(err) => Err(err.to_string()),
    }
}

#[tokio::test]
async fn a_non_loopback_bind_without_a_token_is_refused() {
    for bind in ["0.0.0.0:24203", "0.0.0.0:0", "[::]:0"] {
        let err = boot(&format!("bind = \"{bind}\"")).await.err().unwrap();
        assert!(
            err.contains(&format!(
                "refusing to listen on {bind} without a token: set DISPATCH_TOKEN"
            )),
            "{err}"
        );
    }
}

#[tokio::test]
async fn loopback_names_and_short_forms_bind() {
    for bind in ["127.0.0.1:0", "localhost:0", ":0"] {
        let mut host = boot(&format!("bind = \"{bind}\"")).await.unwrap();
        let listener = host.services().get(&LISTENER).unwrap();
        assert!(listener.addr.ip().is_loopback(), "{bind}");
        assert_ne!(listener.addr.port(), 0, "{bind}");
        assert!(host.services().get(&ROUTES).is_ok());
        host.deactivate().await;
        assert!(host.services().get(&LISTENER).is_err());
    }
}

#[tokio::test]
async fn bad_config_fails_activation_with_a_clear_message() {
    for (table, expected) in [
        ("bind = \"127.0.0.1:0\"\nport = 1", "unknown field `port`"),
        ("bind = \"nonsense\"", "invalid bind address `nonsense`"),
        (
            "bind = \"127.0.0.1:0\"\nmax_body_bytes = 0",
            "max_body_bytes",
        ),
        (
            "bind = \"127.0.0.1:0\"\ncors_origins = [\"not an origin\"]",
            "invalid CORS origin",
        ),
        (
            "bind = \"127.0.0.1:0\"\nweb_dir = \"/definitely/not/here\"",
            "has no index.html",
        ),
    ] {
        let err = boot(table).await.err().unwrap();
        assert!(err.contains(expected), "{table}: {err}");
    }
}

#[tokio::test]
async fn a_taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = boot(&format!("bind = \"{addr}\"")).await.err().unwrap();
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}
