//! What a turn runs with: which provider instance and model, which reasoning effort, and
//! whether its text is acceptable. Pure functions, so the resolution order is tested as a
//! table; [`crate::models::ModelDirectory`] supplies the provider listings they read.
//!
//! Model resolution, in order:
//! 1. the selector: the request's model → the conversation's persisted model → the
//!    configured `default_model` → [`default_model`] (the first model listed by the first
//!    provider, providers sorted by id, `echo` skipped when any other provider exists) →
//!    `echo`;
//! 2. the provider: a selector `instance/model` names instance `instance` explicitly when a
//!    provider with that id is registered (the rest is the model id it is sent); otherwise
//!    `echo` goes to the `echo` provider; otherwise the first provider (by id) listing the
//!    id; otherwise the only non-echo provider when there is exactly one and it listed
//!    nothing (its list is unknown: the request may be right); otherwise the selector is
//!    refused naming the known models — a typo is a clear 400, not a provider error after
//!    minutes of retries.
//!
//! A consequence of splitting at the first `/`: an OpenRouter-style id such as
//! `anthropic/claude-x` goes to an `anthropic` instance when one is registered; write
//! `openrouter/anthropic/claude-x` to send it to OpenRouter. Defaults are always produced
//! in the explicit `instance/model` form for that reason.

use dispatch_kernel::abi::SessionError;
use dispatch_wire::ReasoningEffort;

/// The offline provider instance and its one model.
pub const ECHO: &str = "echo";

/// Longest message text accepted, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// How many known models an "unknown model" error names at most.
const KNOWN_IN_ERROR: usize = 40;

/// A registered provider instance and the ids of the models it listed (empty when it
/// listed none, failed or timed out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderModels {
    pub provider: String,
    pub models: Vec<String>,
}

impl ProviderModels {
    pub fn new(provider: &str, models: &[&str]) -> ProviderModels {
        ProviderModels {
            provider: provider.to_owned(),
            models: models.iter().map(|m| (*m).to_owned()).collect(),
        }
    }
}

/// Where a turn runs: a provider instance and the model id sent to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub provider: String,
    pub model: String,
}

/// Refuses empty (or whitespace-only) and oversized message text.
pub fn validate_text(text: &str) -> Result<(), SessionError> {
    if text.trim().is_empty() {
        return Err(SessionError::Invalid {
            field: "message",
            message: "must not be empty".to_owned(),
        });
    }
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(SessionError::Invalid {
            field: "message",
            message: format!(
                "is {} bytes; at most {MAX_MESSAGE_BYTES} are accepted",
                text.len()
            ),
        });
    }
    Ok(())
}

/// The reasoning effort of a turn: the request's → the conversation's → `high`.
pub fn reasoning_effort(
    request: Option<ReasoningEffort>,
    persisted: Option<ReasoningEffort>,
) -> ReasoningEffort {
    request.or(persisted).unwrap_or(ReasoningEffort::High)
}

/// The first selector given: the request's, the conversation's, the configured default.
/// `None` means [`default_model`] decides.
pub fn given_selector<'a>(
    request: Option<&'a str>,
    persisted: Option<&'a str>,
    configured: Option<&'a str>,
) -> Option<&'a str> {
    let given = |s: &Option<&'a str>| s.is_some_and(|s| !s.trim().is_empty());
    [request, persisted, configured]
        .into_iter()
        .find(given)
        .flatten()
}

/// The model a turn gets when nothing names one: the first model of the first provider
/// (sorted by id) that lists any, as `instance/model`, skipping `echo` when another
/// provider is registered; else `echo` (which needs no instance prefix).
pub fn default_model(lists: &[ProviderModels]) -> String {
    let others = lists.iter().any(|p| p.provider != ECHO);
    let mut sorted: Vec<&ProviderModels> = lists
        .iter()
        .filter(|p| !(others && p.provider == ECHO))
        .collect();
    sorted.sort_by(|a, b| a.provider.cmp(&b.provider));
    sorted
        .iter()
        .find_map(|p| {
            p.models.first().map(|model| {
                if p.provider == ECHO && model == ECHO {
                    ECHO.to_owned()
                } else {
                    format!("{}/{model}", p.provider)
                }
            })
        })
        .unwrap_or_else(|| ECHO.to_owned())
}

/// `instance/model` naming a registered provider instance, if the selector is one.
pub fn explicit(selector: &str, provider_ids: &[&str]) -> Option<Selection> {
    let (instance, model) = selector.split_once('/')?;
    (!model.is_empty() && provider_ids.contains(&instance)).then(|| Selection {
        provider: instance.to_owned(),
        model: model.to_owned(),
    })
}

/// The provider of a selector that does not name its instance, from the listings.
pub fn by_listing(selector: &str, lists: &[ProviderModels]) -> Result<Selection, SessionError> {
    let mut sorted: Vec<&ProviderModels> = lists.iter().collect();
    sorted.sort_by(|a, b| a.provider.cmp(&b.provider));
    let pick = |provider: &str| Selection {
        provider: provider.to_owned(),
        model: selector.to_owned(),
    };
    if selector == ECHO && sorted.iter().any(|p| p.provider == ECHO) {
        return Ok(pick(ECHO));
    }
    if let Some(p) = sorted
        .iter()
        .find(|p| p.models.iter().any(|m| m == selector))
    {
        return Ok(pick(&p.provider));
    }
    let mut others = sorted.iter().filter(|p| p.provider != ECHO);
    if let (Some(only), None) = (others.next(), others.next()) {
        if only.models.is_empty() {
            return Ok(pick(&only.provider));
        }
    }
    Err(unknown_model(selector, &sorted))
}

/// The whole resolution over known listings (see the module docs).
pub fn resolve(
    request: Option<&str>,
    persisted: Option<&str>,
    configured: Option<&str>,
    lists: &[ProviderModels],
) -> Result<Selection, SessionError> {
    let selector = given_selector(request, persisted, configured)
        .map(str::to_owned)
        .unwrap_or_else(|| default_model(lists));
    let ids: Vec<&str> = lists.iter().map(|p| p.provider.as_str()).collect();
    match explicit(&selector, &ids) {
        Some(selection) => Ok(selection),
        None => by_listing(&selector, lists),
    }
}

fn unknown_model(selector: &str, lists: &[&ProviderModels]) -> SessionError {
    if lists.is_empty() {
        return SessionError::Invalid {
            field: "model",
            message: format!("cannot run `{selector}`: no model provider is registered"),
        };
    }
    let known: Vec<String> = lists
        .iter()
        .flat_map(|p| p.models.iter().map(move |m| format!("{}/{m}", p.provider)))
        .collect();
    let mut listed = known
        .iter()
        .take(KNOWN_IN_ERROR)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if known.len() > KNOWN_IN_ERROR {
        listed.push_str(&format!(", and {} more", known.len() - KNOWN_IN_ERROR));
    }
    if known.is_empty() {
        let providers: Vec<&str> = lists.iter().map(|p| p.provider.as_str()).collect();
        listed = format!(
            "none listed; name one as <provider>/<model> with a provider among {}",
            providers.join(", ")
        );
    }
    SessionError::Invalid {
        field: "model",
        message: format!("unknown model `{selector}` (known: {listed})"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use pretty_assertions::assert_eq;

    use super::*;

    fn sel(provider: &str, model: &str) -> Result<Selection, String> {
        Ok(Selection {
            provider: provider.to_owned(),
            model: model.to_owned(),
        })
    }

    #[track_caller]
    fn check(
        request: Option<&str>,
        persisted: Option<&str>,
        configured: Option<&str>,
        lists: &[ProviderModels],
        expect: Result<Selection, String>,
    ) {
        let got = resolve(request, persisted, configured, lists).map_err(|e| match e {
            SessionError::Invalid { field, message } => format!("{field}: {message}"),
            other => format!("unexpected {other:?}"),
        });
        assert_eq!(got, expect);
    }

    fn world() -> Vec<ProviderModels> {
        vec![
            ProviderModels::new("openai", &["gpt-5", "gpt-4o"]),
            ProviderModels::new("echo", &["echo"]),
            ProviderModels::new("anthropic", &["claude-sonnet-4-5"]),
            ProviderModels::new("ollama", &[]),
        ]
    }

    #[test]
    fn model_resolution_table() {
        let w = world();
        // The request wins over the persisted model, which wins over the configured one.
        check(
            Some("gpt-5"),
            Some("claude-sonnet-4-5"),
            Some("echo"),
            &w,
            sel("openai", "gpt-5"),
        );
        check(
            None,
            Some("claude-sonnet-4-5"),
            Some("gpt-5"),
            &w,
            sel("anthropic", "claude-sonnet-4-5"),
        );
        check(None, None, Some("gpt-4o"), &w, sel("openai", "gpt-4o"));
        // Blank selectors count as absent.
        check(Some(" "), None, Some("gpt-4o"), &w, sel("openai", "gpt-4o"));
        // Nothing given: the first model of the first provider by id, echo skipped.
        check(None, None, None, &w, sel("anthropic", "claude-sonnet-4-5"));
        // instance/model picks the instance explicitly, even for a model nobody listed.
        check(
            Some("ollama/qwen3:8b"),
            None,
            None,
            &w,
            sel("ollama", "qwen3:8b"),
        );
        check(Some("openai/gpt-5"), None, None, &w, sel("openai", "gpt-5"));
        // An unregistered prefix is part of the model id (OpenRouter style): listed → found.
        let with_router = vec![
            ProviderModels::new("openrouter", &["meta/llama-4"]),
            ProviderModels::new("echo", &["echo"]),
        ];
        check(
            Some("meta/llama-4"),
            None,
            None,
            &with_router,
            sel("openrouter", "meta/llama-4"),
        );
        // Unlisted by the one non-echo provider, whose list is known: refused.
        check(
            Some("mystery"),
            None,
            None,
            &with_router,
            Err(
                "model: unknown model `mystery` (known: echo/echo, openrouter/meta/llama-4)"
                    .to_owned(),
            ),
        );
        // Exactly one non-echo provider that listed nothing (unreachable list): it gets it.
        let unlisted = vec![
            ProviderModels::new("proxy", &[]),
            ProviderModels::new("echo", &["echo"]),
        ];
        check(
            Some("mystery"),
            None,
            None,
            &unlisted,
            sel("proxy", "mystery"),
        );
        // echo goes to the echo provider even beside others.
        check(Some("echo"), None, None, &w, sel("echo", "echo"));
        // Only echo: the default is echo.
        check(
            None,
            None,
            None,
            &[ProviderModels::new("echo", &[])],
            sel("echo", "echo"),
        );
        // Unknown among several providers: refused, naming the known models.
        check(
            Some("gpt-9"),
            None,
            None,
            &w,
            Err(
                "model: unknown model `gpt-9` (known: anthropic/claude-sonnet-4-5, echo/echo, \
                 openai/gpt-5, openai/gpt-4o)"
                    .to_owned(),
            ),
        );
        // No provider at all.
        check(
            None,
            None,
            None,
            &[],
            Err("model: cannot run `echo`: no model provider is registered".to_owned()),
        );
    }

    #[test]
    fn the_default_skips_providers_listing_nothing_and_echo_only_when_others_exist() {
        let lists = vec![
            ProviderModels::new("b", &["m2"]),
            ProviderModels::new("a", &[]),
            ProviderModels::new("echo", &["echo"]),
        ];
        assert_eq!(default_model(&lists), "b/m2");
        assert_eq!(default_model(&[ProviderModels::new("a", &[])]), "echo");
        assert_eq!(
            default_model(&[ProviderModels::new("echo", &["echo"])]),
            "echo"
        );
    }

    #[test]
    fn an_explicit_selector_needs_a_model_part() {
        assert_eq!(explicit("openai/", &["openai"]), None);
        assert_eq!(explicit("gpt-5", &["openai"]), None);
    }

    #[test]
    fn effort_falls_back_to_high() {
        use ReasoningEffort::*;
        assert_eq!(reasoning_effort(Some(Low), Some(Max)), Low);
        assert_eq!(reasoning_effort(None, Some(Max)), Max);
        assert_eq!(reasoning_effort(None, None), High);
    }

    #[test]
    fn text_must_be_non_blank_and_at_most_a_mebibyte() {
        assert!(validate_text("hi").is_ok());
        let field = |r: Result<(), SessionError>| match r {
            Err(SessionError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(validate_text(" \n\t")), "message");
        assert_eq!(
            field(validate_text(&"x".repeat(MAX_MESSAGE_BYTES + 1))),
            "message"
        );
        assert!(validate_text(&"x".repeat(MAX_MESSAGE_BYTES)).is_ok());
    }
}
