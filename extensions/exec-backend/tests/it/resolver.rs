//! The resolver: computer ids, registration, allowances from config, and compliance.

use std::path::PathBuf;
use std::sync::Arc;

use dispatch_exec_backend::{Allowances, ExecBackendExtension, LocalBackend, Resolver};
use dispatch_kernel::abi::{EXEC, ExecBackend, ExecError, ExecResolver};
use dispatch_kernel::host::{Host, HostConfig};
use pretty_assertions::assert_eq;

fn config(source: &str) -> HostConfig {
    let mut config = HostConfig::default();
    config
        .extensions
        .insert("exec-backend".into(), toml::from_str(source).unwrap());
    config
}

#[test]
fn is_compliant() {
    dispatch_test_support::assert_extension_compliance(
        Arc::new(ExecBackendExtension),
        env!("CARGO_MANIFEST_DIR"),
        Vec::new(),
        config(r#"allow = ["/srv"]"#),
    );
}

#[test]
fn resolves_computers() {
    let resolver = Resolver::new(Arc::new(LocalBackend::new()), Allowances::default());
    assert_eq!(resolver.backend(None).unwrap().id(), "local");
    assert_eq!(resolver.backend(Some("local")).unwrap().id(), "local");
    assert_eq!(
        resolver.backend(Some("box")).err(),
        Some(ExecError::UnknownComputer("box".into()))
    );

    let remote = LocalBackend::with_home(Some("/remote/home".into()));
    resolver.register("box", Arc::new(remote));
    assert_eq!(
        resolver.backend(Some("box")).unwrap().home(),
        Some(PathBuf::from("/remote/home"))
    );
    // `local` is reserved for this machine.
    resolver.register("local", Arc::new(LocalBackend::with_home(None)));
    assert_eq!(
        resolver.backend(None).unwrap().home(),
        LocalBackend::new().home()
    );
}

#[tokio::test]
async fn provides_allowances_from_config() {
    let mut host = Host::new(
        vec![Arc::new(ExecBackendExtension)],
        config(
            r#"
            allow = ["/srv/shared"]
            [workspaces.blog]
            allow = ["/srv/drafts", "/srv/shared"]
            "#,
        ),
    )
    .unwrap();
    host.activate().await.unwrap();
    let exec = host.services().get(&EXEC).unwrap();
    let paths = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
    assert_eq!(exec.allowed_roots(None), paths(&["/srv/shared"]));
    assert_eq!(exec.allowed_roots(Some("other")), paths(&["/srv/shared"]));
    assert_eq!(
        exec.allowed_roots(Some("blog")),
        paths(&["/srv/shared", "/srv/drafts"])
    );
    host.deactivate().await;
}

#[tokio::test]
async fn a_relative_allowance_fails_activation() {
    let mut host = Host::new(
        vec![Arc::new(ExecBackendExtension)],
        config(r#"allow = ["notes"]"#),
    )
    .unwrap();
    let err = host.activate().await.unwrap_err();
    assert!(err.to_string().contains("notes"), "{err}");
}
