//! API keys: from environment variables and a credentials file that must be private, and
//! the [`Redactor`] that keeps them out of every message.
//!
//! The credentials file is TOML, one table per provider instance:
//!
//! ```toml
//! [anthropic]
//! api_key = "sk-ant-..."
//!
//! [deepseek]
//! api_key = "sk-..."
//! ```
//!
//! Its path is `$DISPATCH_CREDENTIALS`, else `$XDG_CONFIG_HOME/dispatch/credentials.toml`,
//! else `~/.config/dispatch/credentials.toml`. A file readable by group or others is refused
//! with an error saying how to fix it; a missing file means no keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dispatch_stdx::Secret;
use serde::Deserialize;

/// What a secret is replaced with in messages.
pub const REDACTED: &str = "[REDACTED]";

/// A snapshot of environment variables. Extensions take one at construction, so tests pass
/// their own instead of mutating the process environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env(BTreeMap<String, String>);

impl Env {
    /// The process environment now (variables that are not UTF-8 are skipped).
    pub fn from_process() -> Env {
        Env(std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect())
    }

    pub fn new<K: Into<String>, V: Into<String>>(vars: impl IntoIterator<Item = (K, V)>) -> Env {
        Env(vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect())
    }

    /// A variable's value; empty or blank counts as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }
}

/// Why the credentials file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "credentials file {path} is readable by group or others (mode {mode:04o}); \
         run `chmod 600 {path}`"
    )]
    Permissions { path: String, mode: u32 },
    #[error("cannot read credentials file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("credentials file {path} is not valid: {message}")]
    Parse { path: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    api_key: String,
}

/// Keys by provider instance, from the credentials file.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    keys: BTreeMap<String, Secret>,
    path: Option<PathBuf>,
}

impl Credentials {
    /// Where the credentials file is looked for.
    pub fn default_path(env: &Env) -> Option<PathBuf> {
        if let Some(path) = env.get("DISPATCH_CREDENTIALS") {
            return Some(PathBuf::from(path));
        }
        let config = env
            .get("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| env.get("HOME").map(|home| Path::new(home).join(".config")))?;
        Some(config.join("dispatch").join("credentials.toml"))
    }

    /// Loads the file at `path`; a missing file is no keys.
    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        let shown = path.display().to_string();
        let metadata = match std::fs::metadata(path) {
            Ok(metadata) => metadata,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Credentials::default());
            }
            Err(source) => {
                return Err(CredentialsError::Read {
                    path: shown,
                    source,
                });
            }
        };
        check_private(&shown, &metadata)?;
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: shown.clone(),
            source,
        })?;
        let entries: BTreeMap<String, Entry> =
            toml::from_str(&text).map_err(|err| CredentialsError::Parse {
                path: shown.clone(),
                // toml's message quotes the offending line, which may hold a key.
                message: first_line(&err.to_string()),
            })?;
        Ok(Credentials {
            keys: entries
                .into_iter()
                .map(|(instance, entry)| (instance, Secret::new(entry.api_key.trim())))
                .filter(|(_, key)| !key.is_empty())
                .collect(),
            path: Some(path.to_owned()),
        })
    }

    /// Loads the file at [`Credentials::default_path`], if any.
    pub fn load_default(env: &Env) -> Result<Credentials, CredentialsError> {
        match Credentials::default_path(env) {
            Some(path) => Credentials::load(&path),
            None => Ok(Credentials::default()),
        }
    }

    pub fn api_key(&self, instance: &str) -> Option<&Secret> {
        self.keys.get(instance)
    }

    /// The file the keys came from, for log lines.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or_default().to_owned()
}

#[cfg(unix)]
fn check_private(path: &str, metadata: &std::fs::Metadata) -> Result<(), CredentialsError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CredentialsError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &str, _metadata: &std::fs::Metadata) -> Result<(), CredentialsError> {
    Ok(())
}

/// Replaces every known secret in a text with [`REDACTED`].
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<Secret>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

/// Secrets shorter than this are not searched for (they would match ordinary words).
const MIN_SECRET_LEN: usize = 4;

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = Secret>) -> Redactor {
        Redactor {
            secrets: secrets
                .into_iter()
                .filter(|s| s.expose().len() >= MIN_SECRET_LEN)
                .collect(),
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.expose()) {
                out = out.replace(secret.expose(), REDACTED);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;

    use pretty_assertions::assert_eq;

    use super::*;

    fn write(dir: &Path, mode: u32, text: &str) -> PathBuf {
        let path = dir.join("credentials.toml");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_private_file_gives_keys_by_instance() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            0o600,
            "[anthropic]\napi_key = \"sk-ant-1\"\n[deepseek]\napi_key = \" sk-ds \"\n",
        );
        let creds = Credentials::load(&path).unwrap();
        assert_eq!(creds.api_key("anthropic").unwrap().expose(), "sk-ant-1");
        assert_eq!(creds.api_key("deepseek").unwrap().expose(), "sk-ds");
        assert!(creds.api_key("openai").is_none());
    }

    #[test]
    fn a_group_or_world_readable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o640, 0o604, 0o644] {
            let path = write(dir.path(), mode, "[openai]\napi_key = \"sk-1\"\n");
            let err = Credentials::load(&path).unwrap_err().to_string();
            assert!(err.contains("readable by group or others"), "{err}");
            assert!(err.contains("chmod 600"), "{err}");
            assert!(!err.contains("sk-1"));
        }
    }

    #[test]
    fn missing_file_is_empty_and_bad_toml_never_echoes_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let creds = Credentials::load(&dir.path().join("nope.toml")).unwrap();
        assert!(creds.api_key("openai").is_none());
        let path = write(dir.path(), 0o600, "[openai]\napi_key = \"sk-leak\nx=1");
        let err = Credentials::load(&path).unwrap_err().to_string();
        assert!(err.contains("not valid"), "{err}");
        assert!(!err.contains("sk-leak"), "{err}");
    }

    #[test]
    fn default_path_order() {
        let env = Env::new([("HOME", "/h")]);
        assert_eq!(
            Credentials::default_path(&env).unwrap(),
            PathBuf::from("/h/.config/dispatch/credentials.toml")
        );
        let env = Env::new([("HOME", "/h"), ("XDG_CONFIG_HOME", "/x")]);
        assert_eq!(
            Credentials::default_path(&env).unwrap(),
            PathBuf::from("/x/dispatch/credentials.toml")
        );
        let env = Env::new([("DISPATCH_CREDENTIALS", "/c.toml"), ("HOME", "/h")]);
        assert_eq!(
            Credentials::default_path(&env).unwrap(),
            PathBuf::from("/c.toml")
        );
        assert_eq!(Credentials::default_path(&Env::default()), None);
    }

    #[test]
    fn redactor_hides_every_occurrence() {
        let r = Redactor::new([Secret::new("sk-abcdef"), Secret::new("ab")]);
        assert_eq!(
            r.redact("key sk-abcdef and sk-abcdef"),
            "key [REDACTED] and [REDACTED]"
        );
        assert_eq!(r.redact("ab stays"), "ab stays", "too short to search for");
        assert_eq!(format!("{r:?}"), "Redactor(1 secrets)");
    }
}
