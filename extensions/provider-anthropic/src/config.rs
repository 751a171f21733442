//! The `[extensions.provider-anthropic]` table of `dispatch.toml`, and how it, the
//! environment and the credentials file resolve into provider instances.

use std::collections::BTreeMap;
use std::path::PathBuf;

use dispatch_provider_kit::{Credentials, Env, HttpSettings};
use dispatch_stdx::Secret;
use serde::Deserialize;

/// The instance that exists without configuration when Anthropic env or credentials are set.
pub const DEFAULT_INSTANCE: &str = "anthropic";

/// Where requests go when neither the instance nor `ANTHROPIC_BASE_URL` says.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// The `anthropic-version` header sent when the instance does not set one.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// The default instance's key variable.
pub const DEFAULT_KEY_ENV: &str = "ANTHROPIC_API_KEY";

/// The default instance's base URL variable.
pub const DEFAULT_BASE_URL_ENV: &str = "ANTHROPIC_BASE_URL";

/// ```toml
/// [extensions.provider-anthropic]
/// credentials_file = "/etc/dispatch/credentials.toml"   # default: $DISPATCH_CREDENTIALS, XDG
///
/// [extensions.provider-anthropic.instances.anthropic]
/// beta = ["interleaved-thinking-2025-05-14"]
///
/// [extensions.provider-anthropic.instances.claude-proxy]
/// base_url = "https://llm-proxy.internal"
/// api_key_env = "PROXY_KEY"
/// idle_timeout_secs = 600
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The credentials file; default [`Credentials::default_path`].
    pub credentials_file: Option<PathBuf>,
    /// Instances by name (the provider id each registers).
    pub instances: BTreeMap<String, InstanceConfig>,
}

/// One provider instance: an endpoint speaking the Anthropic Messages API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InstanceConfig {
    /// Requests go to `{base_url}/v1/messages`. Default: `ANTHROPIC_BASE_URL` for the
    /// `anthropic` instance, else [`DEFAULT_BASE_URL`].
    pub base_url: Option<String>,
    /// The environment variable holding the key (default `ANTHROPIC_API_KEY` for the
    /// `anthropic` instance); without it, the credentials file entry named after the instance.
    pub api_key_env: Option<String>,
    /// The `anthropic-version` header.
    pub version: String,
    /// The `anthropic-beta` header, comma-joined; none when empty.
    pub beta: Vec<String>,
    #[serde(flatten)]
    pub http: HttpSettings,
}

impl Default for InstanceConfig {
    fn default() -> InstanceConfig {
        InstanceConfig {
            base_url: None,
            api_key_env: None,
            version: DEFAULT_VERSION.to_owned(),
            beta: Vec::new(),
            http: HttpSettings::default(),
        }
    }
}

/// Where an instance's key came from, for the activation log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeySource {
    Env,
    CredentialsFile,
    None,
}

impl KeySource {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            KeySource::Env => "env",
            KeySource::CredentialsFile => "credentials-file",
            KeySource::None => "none",
        }
    }
}

/// An instance ready to build: its name, its settings with `base_url` resolved, its key.
pub(crate) struct Resolved {
    pub name: String,
    pub config: InstanceConfig,
    pub key: Option<Secret>,
    pub key_source: KeySource,
}

/// The instances to register: every configured one, plus `anthropic` when
/// `ANTHROPIC_API_KEY` or `ANTHROPIC_BASE_URL` is set or the credentials file has an
/// `[anthropic]` key. Sorted by name.
pub(crate) fn resolve(config: &Config, env: &Env, credentials: &Credentials) -> Vec<Resolved> {
    let mut instances = config.instances.clone();
    let default_wanted = env.get(DEFAULT_KEY_ENV).is_some()
        || env.get(DEFAULT_BASE_URL_ENV).is_some()
        || credentials.api_key(DEFAULT_INSTANCE).is_some();
    if default_wanted {
        instances.entry(DEFAULT_INSTANCE.to_owned()).or_default();
    }
    instances
        .into_iter()
        .map(|(name, mut config)| {
            let is_default = name == DEFAULT_INSTANCE;
            let base_url = config
                .base_url
                .clone()
                .filter(|url| !url.trim().is_empty())
                .or_else(|| {
                    is_default
                        .then(|| env.get(DEFAULT_BASE_URL_ENV).map(str::to_owned))
                        .flatten()
                })
                .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
            config.base_url = Some(base_url.trim().trim_end_matches('/').to_owned());
            let key_env = config
                .api_key_env
                .clone()
                .or_else(|| is_default.then(|| DEFAULT_KEY_ENV.to_owned()));
            let from_env = key_env
                .as_deref()
                .and_then(|var| env.get(var))
                .map(Secret::new);
            let (key, key_source) = match from_env {
                Some(key) => (Some(key), KeySource::Env),
                None => match credentials.api_key(&name) {
                    Some(key) => (Some(key.clone()), KeySource::CredentialsFile),
                    None => (None, KeySource::None),
                },
            };
            Resolved {
                name,
                config,
                key,
                key_source,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::os::unix::fs::PermissionsExt;

    use pretty_assertions::assert_eq;

    use super::*;

    fn credentials(text: &str) -> (tempfile::TempDir, Credentials) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let creds = Credentials::load(&path).unwrap();
        (dir, creds)
    }

    /// `(name, base_url, key, key source)` of each resolved instance.
    #[track_caller]
    fn check(config: &str, env: &[(&str, &str)], creds: &str, expect: &[(&str, &str, &str, &str)]) {
        let config: Config = toml::from_str(config).unwrap();
        let (_dir, creds) = credentials(creds);
        let got: Vec<(String, String, String, &str)> =
            resolve(&config, &Env::new(env.iter().copied()), &creds)
                .into_iter()
                .map(|r| {
                    (
                        r.name,
                        r.config.base_url.unwrap_or_default(),
                        r.key.map(|k| k.expose().to_owned()).unwrap_or_default(),
                        r.key_source.as_str(),
                    )
                })
                .collect();
        let expect: Vec<(String, String, String, &str)> = expect
            .iter()
            .map(|(n, u, k, s)| ((*n).to_owned(), (*u).to_owned(), (*k).to_owned(), *s))
            .collect();
        assert_eq!(got, expect);
    }

    #[test]
    fn the_table_parses_with_flattened_http_settings_and_refuses_unknown_keys() {
        let config: Config = toml::from_str(
            r#"
            credentials_file = "/c.toml"
            [instances.anthropic]
            beta = ["a", "b"]
            idle_timeout_secs = 7
            [instances.proxy]
            base_url = "http://127.0.0.1:9"
            api_key_env = "PROXY_KEY"
            version = "2024-01-01"
            connect_timeout_secs = 3
            "#,
        )
        .unwrap();
        assert_eq!(config.credentials_file, Some(PathBuf::from("/c.toml")));
        let anthropic = &config.instances["anthropic"];
        assert_eq!(anthropic.beta, ["a", "b"]);
        assert_eq!(anthropic.version, DEFAULT_VERSION);
        assert_eq!(
            anthropic.http,
            HttpSettings {
                idle_timeout_secs: 7,
                ..HttpSettings::default()
            }
        );
        let proxy = &config.instances["proxy"];
        assert_eq!(proxy.http.connect_timeout_secs, 3);
        assert_eq!(proxy.version, "2024-01-01");
        assert_eq!(toml::from_str::<Config>("").unwrap(), Config::default());
        assert!(toml::from_str::<Config>("credential_file = \"x\"").is_err());
        assert!(toml::from_str::<Config>("[instances.a]\nbase = \"x\"").is_err());
        assert!(toml::from_str::<Config>("[instances.a]\nidle_timeout = 1").is_err());
    }

    #[test]
    fn the_default_instance_appears_with_env_or_credentials() {
        check("", &[], "", &[]);
        check(
            "",
            &[("ANTHROPIC_API_KEY", "sk-env")],
            "",
            &[("anthropic", DEFAULT_BASE_URL, "sk-env", "env")],
        );
        check(
            "",
            &[("ANTHROPIC_BASE_URL", "http://127.0.0.1:1/")],
            "",
            &[("anthropic", "http://127.0.0.1:1", "", "none")],
        );
        check(
            "",
            &[],
            "[anthropic]\napi_key = \"sk-file\"\n",
            &[("anthropic", DEFAULT_BASE_URL, "sk-file", "credentials-file")],
        );
        check(
            "",
            &[("ANTHROPIC_API_KEY", "sk-env")],
            "[anthropic]\napi_key = \"sk-file\"\n",
            &[("anthropic", DEFAULT_BASE_URL, "sk-env", "env")],
        );
        check(
            "[instances.anthropic]\n",
            &[],
            "",
            &[("anthropic", DEFAULT_BASE_URL, "", "none")],
        );
    }

    #[test]
    fn configured_instances_take_their_own_env_and_file_entries() {
        check(
            r#"
            [instances.anthropic]
            base_url = "http://configured"
            [instances.proxy]
            base_url = "http://proxy/"
            api_key_env = "PROXY_KEY"
            [instances.other]
            "#,
            &[
                ("ANTHROPIC_BASE_URL", "http://from-env"),
                ("ANTHROPIC_API_KEY", "sk-a"),
                ("PROXY_KEY", "sk-p"),
            ],
            "[other]\napi_key = \"sk-o\"\n[proxy]\napi_key = \"sk-unused\"\n",
            &[
                ("anthropic", "http://configured", "sk-a", "env"),
                ("other", DEFAULT_BASE_URL, "sk-o", "credentials-file"),
                ("proxy", "http://proxy", "sk-p", "env"),
            ],
        );
        // Only the default instance reads ANTHROPIC_* variables.
        check(
            "[instances.other]\n",
            &[("ANTHROPIC_API_KEY", "sk-a")],
            "",
            &[
                ("anthropic", DEFAULT_BASE_URL, "sk-a", "env"),
                ("other", DEFAULT_BASE_URL, "", "none"),
            ],
        );
    }
}
