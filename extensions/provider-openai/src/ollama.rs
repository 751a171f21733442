//! Ollama detection: at activation, when no instance named `ollama` is configured, one
//! short `GET <root>/v1/models` to the server `OLLAMA_HOST` names (default
//! `127.0.0.1:11434`). A server that answers 200 with a model list becomes the `ollama`
//! instance (chat API at `<root>/v1`, no key, local so free); anything else is logged at
//! debug and forgotten.
//!
//! Only loopback addresses are ever probed: a configured remote host is the user's to
//! declare as an instance, and activation must not reach across the network on its own.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use dispatch_provider_kit::error::error_chain;
use dispatch_provider_kit::{Env, is_loopback_url};
use reqwest::StatusCode;
use reqwest::header::ACCEPT;

use crate::config::{InstanceConfig, Resolved};

/// The instance name a detected server is registered under.
pub(crate) const OLLAMA_INSTANCE: &str = "ollama";

/// The variable the `ollama` CLI reads: `host`, `host:port` or a URL.
const HOST_ENV: &str = "OLLAMA_HOST";
const DEFAULT_HOST: &str = "127.0.0.1";
/// The port when `OLLAMA_HOST` has no scheme and no port (with a scheme, the scheme's).
const DEFAULT_PORT: u16 = 11434;

/// A loopback connect either succeeds or is refused at once; this only bounds a stuck
/// firewall rule.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
/// The whole probe, so a server that accepts but never answers costs boot one second.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The server's root URL (no trailing `/`) from `OLLAMA_HOST`, read as the `ollama` CLI
/// reads it; `None` (logged at debug) when it is not a loopback address or not a URL.
///
/// An unspecified address (`0.0.0.0`, `::`) is how a server is told to listen everywhere;
/// a client reaches it on loopback, so it is probed there.
pub(crate) fn root(env: &Env) -> Option<String> {
    let raw = env.get(HOST_ENV).unwrap_or(DEFAULT_HOST);
    let (text, default_port) = if raw.contains("://") {
        (raw.to_owned(), None)
    } else {
        (format!("http://{raw}"), Some(DEFAULT_PORT))
    };
    let mut url = match reqwest::Url::parse(&text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => url,
        Ok(_) | Err(_) => {
            tracing::debug!(
                ollama_host = raw,
                "OLLAMA_HOST is not a host or an http URL; not probing for Ollama"
            );
            return None;
        }
    };
    if url.port().is_none() && url.set_port(default_port).is_err() {
        return None;
    }
    let unspecified = url
        .host_str()
        .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|host| host.parse::<IpAddr>().ok())
        .filter(IpAddr::is_unspecified);
    if let Some(ip) = unspecified {
        let loopback = match ip {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        if url.set_ip_host(loopback).is_err() {
            return None;
        }
    }
    // Credentials in the variable would reach the log lines naming the server.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    let root = url.as_str().trim_end_matches('/').to_owned();
    if !is_loopback_url(&root) {
        tracing::debug!(
            url = %root,
            "OLLAMA_HOST is not a loopback address; not probing for Ollama (declare it as an instance)"
        );
        return None;
    }
    Some(root)
}

/// Adds the `ollama` instance to `instances` when none is configured (by name, or at the
/// same base URL) and a loopback server answers `GET /v1/models` with 200 and a model
/// list. Never fails: every other outcome is logged at debug.
pub(crate) async fn detect(env: &Env, instances: &mut Vec<Resolved>) {
    if instances.iter().any(|r| r.config.name == OLLAMA_INSTANCE) {
        tracing::debug!("An `ollama` instance is configured; not probing for Ollama");
        return;
    }
    let Some(root) = root(env) else {
        return;
    };
    let base_url = format!("{root}/v1");
    if let Some(same) = instances.iter().find(|r| r.config.base_url == base_url) {
        tracing::debug!(
            instance = %same.config.name,
            base_url = %base_url,
            "Ollama's address is a configured instance already; not probing it"
        );
        return;
    }
    match probe(&root).await {
        Ok(models) => {
            tracing::info!(base_url = %base_url, models, "Ollama detected at {root}, {models} models");
            instances.push(Resolved {
                config: InstanceConfig::new(OLLAMA_INSTANCE, &base_url),
                key: None,
                key_source: None,
            });
            instances.sort_by(|a, b| a.config.name.cmp(&b.config.name));
        }
        Err(reason) => {
            tracing::debug!(url = %root, reason = %reason, "No Ollama server detected");
        }
    }
}

/// Models listed by `GET <root>/v1/models`, or why the server does not look like one.
async fn probe(root: &str) -> Result<usize, String> {
    // Its own client: short timeouts, and no proxy (a loopback address never goes through
    // one, whatever `HTTP_PROXY` says).
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(PROBE_TIMEOUT)
        .user_agent(concat!("dispatch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| error_chain(&err))?;
    let response = client
        .get(format!("{root}/v1/models"))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|err| error_chain(&err))?;
    let status = response.status();
    if status != StatusCode::OK {
        return Err(format!("`GET /v1/models` answered {status}"));
    }
    let body = response.bytes().await.map_err(|err| error_chain(&err))?;
    count_models(&body)
}

/// The number of models an OpenAI model listing names. Ollama with no model pulled answers
/// `{"object":"list","data":null}` (a nil Go slice): a server, with zero models.
fn count_models(body: &[u8]) -> Result<usize, String> {
    let listing: serde_json::Value = serde_json::from_slice(body)
        .map_err(|err| format!("`GET /v1/models` is not JSON: {err}"))?;
    match (&listing["data"], &listing["object"]) {
        (serde_json::Value::Array(models), _) => Ok(models.len()),
        (serde_json::Value::Null, serde_json::Value::String(object)) if object == "list" => Ok(0),
        _ => Err("`GET /v1/models` is not a model list".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::fmt::Write;

    use expect_test::{Expect, expect};

    use super::*;

    #[track_caller]
    fn check(values: &[&str], expect: Expect) {
        let mut shown = String::new();
        let default = root(&Env::default());
        writeln!(shown, "(unset) -> {default:?}").unwrap();
        for value in values {
            let root = root(&Env::new([(HOST_ENV, *value)]));
            writeln!(shown, "{value} -> {root:?}").unwrap();
        }
        expect.assert_eq(&shown);
    }

    #[test]
    fn model_listings_are_counted() {
        let mut shown = String::new();
        for body in [
            r#"{"object":"list","data":[{"id":"qwen3:8b"},{"id":"llama3.2"}]}"#,
            r#"{"data":[]}"#,
            r#"{"object":"list","data":null}"#,
            r#"{"data":null}"#,
            r#"{"models":[]}"#,
            "[]",
            "<html>",
        ] {
            writeln!(shown, "{body} -> {:?}", count_models(body.as_bytes())).unwrap();
        }
        expect![[r#"
            {"object":"list","data":[{"id":"qwen3:8b"},{"id":"llama3.2"}]} -> Ok(2)
            {"data":[]} -> Ok(0)
            {"object":"list","data":null} -> Ok(0)
            {"data":null} -> Err("`GET /v1/models` is not a model list")
            {"models":[]} -> Err("`GET /v1/models` is not a model list")
            [] -> Err("`GET /v1/models` is not a model list")
            <html> -> Err("`GET /v1/models` is not JSON: expected value at line 1 column 1")
        "#]]
        .assert_eq(&shown);
    }

    #[test]
    fn ollama_host_is_read_like_the_cli_and_only_loopback_is_kept() {
        check(
            &[
                "127.0.0.1:11500",
                "localhost",
                "http://localhost",
                "https://127.0.0.1",
                "http://127.0.0.1:8080/ollama/",
                "http://user:secret@localhost:1234/?q=1#f",
                "[::1]:11434",
                "0.0.0.0",
                "0.0.0.0:12345",
                "[::]:11434",
                "10.0.0.5:11434",
                "http://ollama.example.com",
                "ftp://127.0.0.1",
                "not a host",
            ],
            expect![[r#"
                (unset) -> Some("http://127.0.0.1:11434")
                127.0.0.1:11500 -> Some("http://127.0.0.1:11500")
                localhost -> Some("http://localhost:11434")
                http://localhost -> Some("http://localhost")
                https://127.0.0.1 -> Some("https://127.0.0.1")
                http://127.0.0.1:8080/ollama/ -> Some("http://127.0.0.1:8080/ollama")
                http://user:secret@localhost:1234/?q=1#f -> Some("http://localhost:1234")
                [::1]:11434 -> Some("http://[::1]:11434")
                0.0.0.0 -> Some("http://127.0.0.1:11434")
                0.0.0.0:12345 -> Some("http://127.0.0.1:12345")
                [::]:11434 -> Some("http://[::1]:11434")
                10.0.0.5:11434 -> None
                http://ollama.example.com -> None
                ftp://127.0.0.1 -> None
                not a host -> None
            "#]],
        );
    }
}
