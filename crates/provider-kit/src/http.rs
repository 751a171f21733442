//! One HTTP client per provider instance: connection reuse, TLS through rustls with bundled
//! roots (no system OpenSSL), a connect timeout and an idle-gap timeout on every read of
//! the stream.

use std::time::Duration;

use serde::Deserialize;

/// Timeouts of a provider instance (`[extensions.provider-*.instances.<name>]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Seconds to establish a connection.
    pub connect_timeout_secs: u64,
    /// Seconds the server may stay silent in the middle of a response (reasoning models can
    /// think for a while before the first token; keep it generous).
    pub idle_timeout_secs: u64,
}

impl Default for HttpSettings {
    fn default() -> HttpSettings {
        HttpSettings {
            connect_timeout_secs: 10,
            idle_timeout_secs: 300,
        }
    }
}

/// Builds the instance's client.
pub fn client(settings: &HttpSettings) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(Duration::from_secs(settings.connect_timeout_secs.max(1)))
        .read_timeout(Duration::from_secs(settings.idle_timeout_secs.max(1)))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_keepalive(Duration::from_secs(30))
        .user_agent(concat!("dispatch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|err| format!("cannot build the HTTP client: {err}"))
}

/// Whether `url` points at this machine (`localhost`, `127.0.0.0/8`, `::1`): such a provider
/// instance is local (Ollama, llama.cpp, LM Studio) and priced at zero.
pub fn is_loopback_url(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = parsed.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        assert!(is_loopback_url("http://127.0.0.1:11434/v1"));
        assert!(is_loopback_url("http://localhost:8080"));
        assert!(is_loopback_url("http://[::1]:1234/v1"));
        assert!(!is_loopback_url("https://api.openai.com/v1"));
        assert!(!is_loopback_url("not a url"));
    }

    #[test]
    fn the_client_builds() {
        assert!(client(&HttpSettings::default()).is_ok());
    }
}
