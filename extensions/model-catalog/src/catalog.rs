//! The [`Catalog`] service: merged entries, id matching, local instances, cost.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, PoisonError, RwLock};

use dispatch_kernel::abi::{ModelCatalog, Pricing};
use dispatch_wire::{Cost, ModelInfo, ModelPricing, Usage};

use crate::error::Result;
use crate::source::{ModelEntry, Price, Source};

/// Context window given to a model the catalog does not know.
pub const DEFAULT_CONTEXT_WINDOW: u64 = 32_768;

/// Output limit given to a model the catalog does not know.
pub const DEFAULT_MAX_OUTPUT: u64 = 8_192;

/// Unknown (provider, model) pairs remembered so each is warned about once; past this many
/// (a client trying arbitrary ids) further ones are warned about on every lookup rather
/// than growing the set.
const MAX_WARNED: usize = 1024;

/// Characters after which a dated or tagged id may continue past a catalog id
/// (`gpt-4o-2024-08-06`, `claude-3-5-sonnet@20240620`, `gpt-4o:online`).
const BOUNDARIES: [char; 3] = ['-', '@', ':'];

/// The model catalog: entries merged from [`Source`]s, plus the provider instances declared
/// local and the unknown models already warned about. Lookups never fail.
#[derive(Debug)]
pub struct Catalog {
    /// Sorted by id.
    entries: Vec<ModelEntry>,
    /// Every id and alias → index into `entries`.
    names: HashMap<String, usize>,
    /// The same with `.` read as `-` (`claude-sonnet-4.5`).
    dotless: HashMap<String, usize>,
    local: RwLock<HashSet<String>>,
    warned: Mutex<HashSet<(String, String)>>,
}

impl Catalog {
    /// The embedded `catalog.toml` alone.
    pub fn builtin() -> Result<Catalog> {
        Catalog::from_sources(vec![Source::builtin()?])
    }

    /// A catalog of catalog-format TOML `text` alone (no built-in entries); `origin` names
    /// it in errors. For tests that want a small, fixed catalog.
    pub fn parse(text: &str, origin: &str) -> Result<Catalog> {
        Catalog::from_sources(vec![Source::parse(text, origin)?])
    }

    /// Validates each source, then merges them: an entry replaces an earlier source's entry
    /// with the same id, and a later source's id or alias takes the name over from an
    /// earlier source's entry.
    pub fn from_sources(sources: Vec<Source>) -> Result<Catalog> {
        let mut merged: BTreeMap<String, ((usize, usize), ModelEntry)> = BTreeMap::new();
        for (rank, source) in sources.into_iter().enumerate() {
            source.validate()?;
            for (position, entry) in source.models.into_iter().enumerate() {
                merged.insert(entry.id.clone(), ((rank, position), entry));
            }
        }
        let (order, entries): (Vec<(usize, usize)>, Vec<ModelEntry>) = merged.into_values().unzip();
        // Names are claimed in source order, so later sources win.
        let mut by_source: Vec<usize> = (0..entries.len()).collect();
        by_source.sort_by_key(|&i| order[i]);
        let mut names = HashMap::new();
        let mut dotless = HashMap::new();
        for i in by_source {
            let entry = &entries[i];
            for name in std::iter::once(&entry.id).chain(&entry.aliases) {
                names.insert(name.clone(), i);
                dotless.insert(name.replace('.', "-"), i);
            }
        }
        Ok(Catalog {
            entries,
            names,
            dotless,
            local: RwLock::default(),
            warned: Mutex::default(),
        })
    }

    /// Every entry, sorted by id.
    pub fn entries(&self) -> &[ModelEntry] {
        &self.entries
    }

    /// The entry a requested model id resolves to, trying in turn: the id and (for
    /// `org/model` ids) the part after the last `/` exactly, as ids or aliases; the same
    /// with `.` read as `-` on both sides; the longest id or alias that prefixes it and is
    /// followed by `-`, `@` or `:` in it; that prefix match with `.` read as `-` (a dot is
    /// never a cut point, so `gpt-5.5-2026-04-23` is unknown rather than `gpt-5`).
    pub fn lookup(&self, model: &str) -> Option<&ModelEntry> {
        let tail = model
            .rsplit_once('/')
            .map(|(_, tail)| tail)
            .filter(|tail| !tail.is_empty());
        let candidates: Vec<&str> = std::iter::once(model).chain(tail).collect();
        let dashed: Vec<String> = candidates.iter().map(|c| c.replace('.', "-")).collect();
        let exact = candidates
            .iter()
            .find_map(|c| self.names.get(*c))
            .or_else(|| dashed.iter().find_map(|c| self.dotless.get(c)));
        let index = exact
            .copied()
            .or_else(|| {
                candidates
                    .iter()
                    .find_map(|c| longest_prefix(&self.names, c, false))
            })
            .or_else(|| {
                candidates
                    .iter()
                    .find_map(|c| longest_prefix(&self.dotless, c, true))
            })?;
        self.entries.get(index)
    }

    fn is_local(&self, provider: &str) -> bool {
        self.local
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(provider)
    }

    fn warn_unknown(&self, provider: &str, model: &str) {
        let first = {
            let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
            let key = (provider.to_owned(), model.to_owned());
            if warned.len() < MAX_WARNED {
                warned.insert(key)
            } else {
                !warned.contains(&key)
            }
        };
        if first {
            tracing::warn!(
                provider,
                model,
                context_window = DEFAULT_CONTEXT_WINDOW,
                max_output = DEFAULT_MAX_OUTPUT,
                "Unknown model; using conservative limits and no prices"
            );
        }
    }
}

/// The longest key of `names` that is `id` cut just before one of its boundary characters;
/// with `dashed`, the cut part is looked up with `.` read as `-`. A dot is never a cut
/// point, so `gpt-5.5-2026-04-23` does not fall back to `gpt-5`.
fn longest_prefix(names: &HashMap<String, usize>, id: &str, dashed: bool) -> Option<usize> {
    id.char_indices()
        .rev()
        .filter(|(_, c)| BOUNDARIES.contains(c))
        .find_map(|(at, _)| {
            let prefix = &id[..at];
            if dashed {
                names.get(&prefix.replace('.', "-")).copied()
            } else {
                names.get(prefix).copied()
            }
        })
}

fn info(entry: &ModelEntry, id: &str, provider: &str, local: bool) -> ModelInfo {
    ModelInfo {
        description: None,
        id: id.to_owned(),
        provider: provider.to_owned(),
        context_window: entry.context_window,
        max_output: entry.max_output,
        pricing: if local {
            ModelPricing::default()
        } else {
            entry.price.to_wire()
        },
        reasoning: entry.reasoning,
        known: true,
    }
}

/// Dollars for `usage` at `price`: the uncached part of the prompt at the input price, the
/// cached parts at theirs, output (reasoning included) at the output price.
fn cost(price: Price, usage: &Usage) -> Cost {
    let dollars = |per_million: f64, tokens: u64| per_million * tokens as f64 / 1_000_000.0;
    let uncached = usage
        .input_tokens
        .saturating_sub(usage.cache_read_tokens)
        .saturating_sub(usage.cache_write_tokens);
    let input = dollars(price.input, uncached);
    let output = dollars(price.output, usage.output_tokens);
    let cache_read = dollars(price.cache_read, usage.cache_read_tokens);
    let cache_write = dollars(price.cache_write, usage.cache_write_tokens);
    Cost {
        input,
        output,
        cache_read,
        cache_write,
        total: input + output + cache_read + cache_write,
    }
}

impl Pricing for Catalog {
    fn cost(&self, provider: &str, model: &str, usage: &Usage) -> Option<Cost> {
        if self.is_local(provider) {
            return Some(Cost::default());
        }
        match self.lookup(model) {
            Some(entry) => Some(cost(entry.price, usage)),
            None => {
                self.warn_unknown(provider, model);
                None
            }
        }
    }
}

impl ModelCatalog for Catalog {
    fn model(&self, provider: &str, model: &str) -> ModelInfo {
        let local = self.is_local(provider);
        match self.lookup(model) {
            Some(entry) => info(entry, model, provider, local),
            None => {
                if !local {
                    self.warn_unknown(provider, model);
                }
                ModelInfo {
                    description: None,
                    id: model.to_owned(),
                    provider: provider.to_owned(),
                    context_window: DEFAULT_CONTEXT_WINDOW,
                    max_output: DEFAULT_MAX_OUTPUT,
                    pricing: ModelPricing::default(),
                    reasoning: false,
                    known: false,
                }
            }
        }
    }

    fn list(&self, provider: &str, kind: &str) -> Vec<ModelInfo> {
        let local = self.is_local(provider);
        self.entries
            .iter()
            .filter(|entry| entry.kind == kind)
            .map(|entry| info(entry, &entry.id, provider, local))
            .collect()
    }

    fn register_local(&self, provider: &str) {
        let added = self
            .local
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(provider.to_owned());
        if added {
            tracing::debug!(
                provider,
                "Provider instance declared local; its models are free"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use pretty_assertions::assert_eq;

    use super::*;

    const SONNET: Price = Price {
        input: 3.0,
        output: 15.0,
        cache_read: 0.30,
        cache_write: 3.75,
    };

    #[track_caller]
    fn check_cost(price: Price, usage: Usage, expect: [f64; 5]) {
        let got = cost(price, &usage);
        let got = [
            got.input,
            got.cache_read,
            got.cache_write,
            got.output,
            got.total,
        ];
        for (got, want) in got.iter().zip(expect) {
            assert!(
                (got - want).abs() < 1e-12,
                "got {got:?} want {expect:?} (input, cacheRead, cacheWrite, output, total)"
            );
        }
    }

    fn usage(input: u64, cache_read: u64, cache_write: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cache_read_tokens: cache_read,
            cache_write_tokens: cache_write,
            reasoning_tokens: 0,
        }
    }

    #[test]
    fn cost_bills_the_uncached_prompt_the_cache_parts_and_output() {
        check_cost(
            SONNET,
            usage(10_000, 8_000, 1_000, 500),
            [0.003, 0.0024, 0.003_75, 0.0075, 0.016_65],
        );
        // No cache: the whole prompt at the input price.
        check_cost(
            SONNET,
            usage(1_000_000, 0, 0, 1_000_000),
            [3.0, 0.0, 0.0, 15.0, 18.0],
        );
        // Reasoning tokens are part of output and not billed again.
        let mut with_reasoning = usage(0, 0, 0, 1_000);
        with_reasoning.reasoning_tokens = 800;
        check_cost(SONNET, with_reasoning, [0.0, 0.0, 0.0, 0.015, 0.015]);
        // Cache parts larger than the prompt (a provider's inconsistent report) do not
        // make the uncached part negative.
        check_cost(
            SONNET,
            usage(100, 1_000, 0, 0),
            [0.0, 0.0003, 0.0, 0.0, 0.0003],
        );
        check_cost(SONNET, Usage::default(), [0.0; 5]);
    }

    #[test]
    fn longest_prefix_stops_only_at_boundaries() {
        let names: HashMap<String, usize> = [("gpt-4o", 0), ("gpt-4o-mini", 1), ("o3", 2)]
            .into_iter()
            .map(|(name, i)| (name.to_owned(), i))
            .collect();
        let check = |id: &str| longest_prefix(&names, id, false);
        assert_eq!(check("gpt-4o-mini-2024-07-18"), Some(1));
        assert_eq!(check("gpt-4o-2024-08-06"), Some(0));
        assert_eq!(check("gpt-4o@2024"), Some(0));
        assert_eq!(check("gpt-4o:online"), Some(0));
        assert_eq!(check("gpt-4omni-1"), None);
        assert_eq!(check("gpt-4o"), None, "exact ids are not prefix matches");
        assert_eq!(check("o3-pro"), Some(2));
        assert_eq!(check("o3pro"), None);
        assert_eq!(check("-"), None);
        assert_eq!(check(""), None);
    }

    #[test]
    fn a_dot_read_as_a_dash_is_never_a_boundary() {
        let names: HashMap<String, usize> = [("gpt-5", 0), ("claude-sonnet-4-5", 1)]
            .into_iter()
            .map(|(name, i)| (name.to_owned(), i))
            .collect();
        let check = |id: &str| longest_prefix(&names, id, true);
        assert_eq!(check("claude-sonnet-4.5-20250929"), Some(1));
        assert_eq!(check("gpt-5.5-2026-04-23"), None);
        assert_eq!(check("gpt-5.5"), None);
        assert_eq!(check("gpt-5-2025-08-07"), Some(0));
    }
}
