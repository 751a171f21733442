//! The `[extensions.provider-openai]` table, and its resolution (with the environment and
//! the credentials file) into one [`InstanceConfig`] and key per provider instance.

use std::collections::BTreeMap;
use std::path::PathBuf;

use dispatch_provider_kit::{Credentials, Env, HttpSettings, is_loopback_url};
use dispatch_stdx::Secret;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The default instance's name.
pub const DEFAULT_INSTANCE: &str = "openai";

/// The default instance's base URL when neither the config nor `OPENAI_BASE_URL` gives one.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// The environment variables that create the default instance.
const DEFAULT_KEY_ENV: &str = "OPENAI_API_KEY";
const DEFAULT_URL_ENV: &str = "OPENAI_BASE_URL";

/// `[extensions.provider-openai]`.
///
/// ```toml
/// [extensions.provider-openai]
/// credentials_file = "/home/me/.config/dispatch/credentials.toml"   # optional
///
/// detect_ollama = false   # default true
///
/// [extensions.provider-openai.instances.ollama]
/// base_url = "http://127.0.0.1:11434/v1"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Overrides the credentials file path (`$DISPATCH_CREDENTIALS`, else
    /// `$XDG_CONFIG_HOME/dispatch/credentials.toml`, else `~/.config/...`); relative to the
    /// data directory.
    pub credentials_file: Option<PathBuf>,
    /// Named instances, each registered as one provider.
    pub instances: BTreeMap<String, InstanceTable>,
    /// Default true: when no `ollama` instance is configured, probe the loopback server
    /// `OLLAMA_HOST` names (default `127.0.0.1:11434`) once at activation and register it
    /// as `ollama` when it answers.
    pub detect_ollama: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            credentials_file: None,
            instances: BTreeMap::new(),
            detect_ollama: true,
        }
    }
}

/// Which OpenAI API an instance speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// `POST {base_url}/chat/completions` (every OpenAI-compatible server).
    #[default]
    Chat,
    /// `POST {base_url}/responses` (OpenAI's Responses API).
    Responses,
}

impl Api {
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Chat => "chat",
            Api::Responses => "responses",
        }
    }
}

/// The chat-completions field that carries the output limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    /// What most OpenAI-compatible servers take.
    MaxTokens,
    /// What api.openai.com takes (its reasoning models refuse `max_tokens`).
    MaxCompletionTokens,
}

impl MaxTokensField {
    pub fn as_str(self) -> &'static str {
        match self {
            MaxTokensField::MaxTokens => "max_tokens",
            MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
        }
    }

    /// `max_completion_tokens` for api.openai.com, `max_tokens` elsewhere.
    pub fn default_for(base_url: &str) -> MaxTokensField {
        let official = reqwest::Url::parse(base_url)
            .ok()
            .and_then(|url| {
                url.host_str()
                    .map(|h| h.eq_ignore_ascii_case("api.openai.com"))
            })
            .unwrap_or(false);
        if official {
            MaxTokensField::MaxCompletionTokens
        } else {
            MaxTokensField::MaxTokens
        }
    }
}

/// `[extensions.provider-openai.instances.<name>]`, as written; every field is optional.
/// The [`HttpSettings`] fields (`connect_timeout_secs`, `idle_timeout_secs`) sit in the same
/// table; an unknown key is still an error (tested).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InstanceTable {
    /// Required except for the default `openai` instance.
    pub base_url: Option<String>,
    /// The environment variable holding the key (default `OPENAI_API_KEY` for `openai`).
    pub api_key_env: Option<String>,
    pub api: Api,
    /// Default: whether `base_url` is a loopback address.
    pub local: Option<bool>,
    /// Default: `max_completion_tokens` on api.openai.com, else `max_tokens`.
    pub max_tokens_field: Option<MaxTokensField>,
    /// Default true: ask for the usage chunk (`stream_options.include_usage`).
    pub include_usage: Option<bool>,
    /// Extra static headers sent with every request (e.g. OpenRouter's `HTTP-Referer`).
    pub headers: Headers,
    /// The catalog provider kind listing this instance's models when `/models` fails
    /// (default `openai`; `deepseek` for DeepSeek).
    pub catalog_kind: Option<String>,
    /// A static model list, used instead of `GET /models`.
    pub models: Option<Vec<String>>,
    #[serde(flatten)]
    pub http: HttpSettings,
}

/// One instance, resolved: everything the provider needs except its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    /// The provider id, e.g. `openai`, `ollama`, `openrouter`.
    pub name: String,
    /// Without a trailing `/`; `/chat/completions`, `/responses` and `/models` are appended.
    pub base_url: String,
    pub api: Api,
    /// Local instances cost nothing and need no key.
    pub local: bool,
    pub max_tokens_field: MaxTokensField,
    pub include_usage: bool,
    pub headers: Headers,
    pub catalog_kind: String,
    pub models: Option<Vec<String>>,
    pub http: HttpSettings,
}

/// Extra request headers, name to value, as configured. `Debug` shows the names only: an
/// extra header may carry a credential (e.g. an `api-key` header), and only the instance's
/// key is known to its redactor.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Headers(BTreeMap<String, String>);

impl Headers {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Every header, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl InstanceConfig {
    /// An instance with every default derived from `base_url` (chat API).
    pub fn new(name: &str, base_url: &str) -> InstanceConfig {
        let base_url = base_url.trim().trim_end_matches('/').to_owned();
        InstanceConfig {
            name: name.to_owned(),
            local: is_loopback_url(&base_url),
            max_tokens_field: MaxTokensField::default_for(&base_url),
            base_url,
            api: Api::Chat,
            include_usage: true,
            headers: Headers::default(),
            catalog_kind: "openai".to_owned(),
            models: None,
            http: HttpSettings::default(),
        }
    }

    /// Applies a table's explicit settings over the defaults.
    fn from_table(name: &str, base_url: &str, table: &InstanceTable) -> InstanceConfig {
        let mut config = InstanceConfig::new(name, base_url);
        config.api = table.api;
        if let Some(local) = table.local {
            config.local = local;
        }
        if let Some(field) = table.max_tokens_field {
            config.max_tokens_field = field;
        }
        if let Some(include_usage) = table.include_usage {
            config.include_usage = include_usage;
        }
        config.headers = table.headers.clone();
        if let Some(kind) = &table.catalog_kind {
            config.catalog_kind = kind.clone();
        }
        config.models = table.models.clone();
        config.http = table.http;
        config
    }
}

/// One instance to register: its settings and its key (`None` = send no `Authorization`).
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub config: InstanceConfig,
    pub key: Option<Secret>,
    /// Where the key came from, for the log line (`env OPENAI_API_KEY`, `credentials file`).
    pub key_source: Option<String>,
}

/// The instances `config` declares, plus the default `openai` instance when the environment
/// or the credentials file asks for it, sorted by name.
pub(crate) fn resolve(
    config: &Config,
    env: &Env,
    credentials: &Credentials,
) -> Result<Vec<Resolved>> {
    let mut tables = config.instances.clone();
    let wants_default = env.get(DEFAULT_KEY_ENV).is_some()
        || env.get(DEFAULT_URL_ENV).is_some()
        || credentials.api_key(DEFAULT_INSTANCE).is_some();
    if wants_default {
        tables.entry(DEFAULT_INSTANCE.to_owned()).or_default();
    }
    tables
        .iter()
        .map(|(name, table)| resolve_one(name, table, env, credentials))
        .collect()
}

fn resolve_one(
    name: &str,
    table: &InstanceTable,
    env: &Env,
    credentials: &Credentials,
) -> Result<Resolved> {
    let invalid = |message: String| Error::Config {
        instance: name.to_owned(),
        message,
    };
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid(
            "an instance name must be letters, digits, `-` and `_`".to_owned(),
        ));
    }
    let is_default = name == DEFAULT_INSTANCE;
    let base_url = match (&table.base_url, is_default) {
        (Some(url), _) => url.clone(),
        (None, true) => env
            .get(DEFAULT_URL_ENV)
            .unwrap_or(DEFAULT_BASE_URL)
            .to_owned(),
        (None, false) => return Err(invalid("`base_url` is required".to_owned())),
    };
    let parsed = reqwest::Url::parse(base_url.trim())
        .map_err(|err| invalid(format!("`base_url` {base_url:?} is not a URL: {err}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "`base_url` {base_url:?} must be an http or https URL"
        )));
    }
    for (header, value) in table.headers.iter() {
        let valid = reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_ok()
            && reqwest::header::HeaderValue::from_str(value).is_ok();
        if !valid {
            return Err(invalid(format!(
                "header `{header}` is not a valid HTTP header"
            )));
        }
    }
    let config = InstanceConfig::from_table(name, &base_url, table);
    let key_env = table
        .api_key_env
        .clone()
        .or_else(|| is_default.then(|| DEFAULT_KEY_ENV.to_owned()));
    let from_env = key_env.as_deref().and_then(|var| {
        env.get(var)
            .map(|key| (Secret::new(key), format!("env {var}")))
    });
    let (key, key_source) = match from_env {
        Some((key, source)) => (Some(key), Some(source)),
        None => match credentials.api_key(name) {
            Some(key) => (Some(key.clone()), Some("credentials file".to_owned())),
            None => (None, None),
        },
    };
    Ok(Resolved {
        config,
        key,
        key_source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use pretty_assertions::assert_eq;

    use super::*;

    fn parse(text: &str) -> Config {
        toml::from_str(text).unwrap()
    }

    fn names(resolved: &[Resolved]) -> Vec<&str> {
        resolved.iter().map(|r| r.config.name.as_str()).collect()
    }

    #[test]
    fn nothing_configured_means_no_instance() {
        let resolved = resolve(&Config::default(), &Env::default(), &Credentials::default());
        assert_eq!(names(&resolved.unwrap()), Vec::<&str>::new());
    }

    #[test]
    fn the_default_instance_comes_from_the_environment() {
        let env = Env::new([("OPENAI_API_KEY", "sk-env-key")]);
        let resolved = resolve(&Config::default(), &env, &Credentials::default()).unwrap();
        assert_eq!(names(&resolved), ["openai"]);
        let openai = &resolved[0];
        assert_eq!(openai.config.base_url, DEFAULT_BASE_URL);
        assert!(!openai.config.local);
        assert_eq!(
            openai.config.max_tokens_field,
            MaxTokensField::MaxCompletionTokens
        );
        assert_eq!(openai.key.as_ref().unwrap().expose(), "sk-env-key");
        assert_eq!(openai.key_source.as_deref(), Some("env OPENAI_API_KEY"));

        let env = Env::new([("OPENAI_BASE_URL", "http://localhost:8080/v1/")]);
        let resolved = resolve(&Config::default(), &env, &Credentials::default()).unwrap();
        let openai = &resolved[0].config;
        assert_eq!(openai.base_url, "http://localhost:8080/v1");
        assert!(openai.local, "a loopback URL is local");
        assert_eq!(openai.max_tokens_field, MaxTokensField::MaxTokens);
        assert!(resolved[0].key.is_none());
    }

    #[test]
    fn named_instances_take_their_settings() {
        let config = parse(
            r#"
            [instances.ollama]
            base_url = "http://127.0.0.1:11434/v1"
            [instances.openrouter]
            base_url = "https://openrouter.ai/api/v1"
            api_key_env = "OPENROUTER_API_KEY"
            headers = { "HTTP-Referer" = "https://example.com" }
            include_usage = false
            idle_timeout_secs = 30
            [instances.deepseek]
            base_url = "https://api.deepseek.com"
            catalog_kind = "deepseek"
            [instances.gpt]
            base_url = "https://api.openai.com/v1"
            api = "responses"
            local = true
            max_tokens_field = "max_tokens"
            models = ["gpt-5"]
            "#,
        );
        let env = Env::new([("OPENROUTER_API_KEY", "sk-or")]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        std::fs::write(&path, "[deepseek]\napi_key = \"sk-ds\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let credentials = Credentials::load(&path).unwrap();
        let resolved = resolve(&config, &env, &credentials).unwrap();
        assert_eq!(
            names(&resolved),
            ["deepseek", "gpt", "ollama", "openrouter"]
        );

        let deepseek = &resolved[0];
        assert_eq!(deepseek.config.catalog_kind, "deepseek");
        assert_eq!(deepseek.key.as_ref().unwrap().expose(), "sk-ds");
        assert_eq!(deepseek.key_source.as_deref(), Some("credentials file"));

        let gpt = &resolved[1].config;
        assert_eq!(gpt.api, Api::Responses);
        assert!(gpt.local);
        assert_eq!(gpt.max_tokens_field, MaxTokensField::MaxTokens);
        assert_eq!(gpt.models, Some(vec!["gpt-5".to_owned()]));

        let ollama = &resolved[2];
        assert!(ollama.config.local);
        assert!(ollama.key.is_none());
        assert_eq!(ollama.config.http, HttpSettings::default());

        let openrouter = &resolved[3];
        assert!(!openrouter.config.local);
        assert!(!openrouter.config.include_usage);
        assert_eq!(openrouter.key.as_ref().unwrap().expose(), "sk-or");
        assert_eq!(
            openrouter.config.headers.get("HTTP-Referer"),
            Some("https://example.com")
        );
        assert_eq!(openrouter.config.http.idle_timeout_secs, 30);
        assert_eq!(openrouter.config.http.connect_timeout_secs, 10);
    }

    #[test]
    fn ollama_detection_is_on_unless_switched_off() {
        assert!(Config::default().detect_ollama);
        assert!(parse("").detect_ollama);
        assert!(!parse("detect_ollama = false").detect_ollama);
    }

    #[test]
    fn debug_shows_header_names_only() {
        let config = parse(
            "[instances.azure]\nbase_url = \"https://x.example/v1\"\nheaders = { api-key = \"sk-hidden\" }\n",
        );
        let resolved = resolve(&config, &Env::default(), &Credentials::default()).unwrap();
        for shown in [format!("{config:?}"), format!("{resolved:?}")] {
            assert!(shown.contains("api-key"), "{shown}");
            assert!(!shown.contains("sk-hidden"), "{shown}");
        }
    }

    #[test]
    fn bad_tables_are_refused() {
        let unknown: std::result::Result<Config, _> =
            toml::from_str("[instances.x]\nbase_url = \"http://a\"\nbase_ur = 1\n");
        assert!(unknown.unwrap_err().to_string().contains("base_ur"));
        let typo: std::result::Result<Config, _> =
            toml::from_str("[instances.x]\nbase_url = \"http://a\"\nidle_timeout = 1\n");
        assert!(typo.unwrap_err().to_string().contains("idle_timeout"));
        let top: std::result::Result<Config, _> = toml::from_str("credential_file = \"x\"\n");
        assert!(top.is_err());

        for (table, expect) in [
            ("[instances.x]\n", "`base_url` is required"),
            ("[instances.x]\nbase_url = \"nope\"\n", "is not a URL"),
            (
                "[instances.x]\nbase_url = \"ftp://h/v1\"\n",
                "http or https",
            ),
            (
                "[instances.x]\nbase_url = \"http://h\"\nheaders = { \"a b\" = \"c\" }\n",
                "not a valid HTTP header",
            ),
            (
                "[instances.\"a/b\"]\nbase_url = \"http://h\"\n",
                "instance name",
            ),
        ] {
            let err = resolve(&parse(table), &Env::default(), &Credentials::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expect), "{table}: {err}");
        }
    }
}
