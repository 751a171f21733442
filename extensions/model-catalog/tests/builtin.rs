#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The embedded `catalog.toml`: it parses, every entry is sane, and the model ids our
//! fixtures and users send resolve to the right entries.

use std::collections::HashSet;

use dispatch_kernel::abi::ModelCatalog;
use dispatch_model_catalog::{BUILTIN_ORIGIN, Catalog, Source};
use expect_test::{Expect, expect};
use pretty_assertions::assert_eq;

#[test]
fn the_embedded_file_parses_and_every_entry_is_sane() {
    let source = Source::builtin().unwrap();
    assert_eq!(source.origin, BUILTIN_ORIGIN);
    source.validate().unwrap();
    assert!(source.models.len() >= 24, "{} entries", source.models.len());

    let kinds = ["anthropic", "openai", "deepseek"];
    let mut names = HashSet::new();
    for m in &source.models {
        assert!(m.context_window > 0, "{}: context_window", m.id);
        assert!(
            0 < m.max_output && m.max_output <= m.context_window,
            "{}: max_output",
            m.id
        );
        for price in [
            m.price.input,
            m.price.output,
            m.price.cache_read,
            m.price.cache_write,
        ] {
            assert!(price.is_finite() && price >= 0.0, "{}: price", m.id);
        }
        // Caching is a discount on input everywhere we list; output costs more than input.
        assert!(m.price.cache_read < m.price.input, "{}: cache_read", m.id);
        assert!(m.price.output > m.price.input, "{}: output", m.id);
        assert!(
            kinds.contains(&m.kind.as_str()),
            "{}: kind {}",
            m.id,
            m.kind
        );
        for name in std::iter::once(&m.id).chain(&m.aliases) {
            assert!(names.insert(name.clone()), "`{name}` appears twice");
        }
    }
}

#[test]
fn kinds_price_cache_writes_as_their_providers_do() {
    let catalog = Catalog::builtin().unwrap();
    for m in catalog.entries() {
        match m.kind.as_str() {
            // The 5-minute cache write costs 1.25x input.
            "anthropic" => assert!(
                (m.price.cache_write - 1.25 * m.price.input).abs() < 1e-9,
                "{}",
                m.id
            ),
            // No write surcharge.
            _ => assert_eq!(m.price.cache_write, 0.0, "{}", m.id),
        }
    }
}

#[track_caller]
fn check(ids: &[&str], expect: Expect) {
    let catalog = Catalog::builtin().unwrap();
    let actual: Vec<String> = ids
        .iter()
        .map(|id| {
            let entry = catalog.lookup(id).map_or("(unknown)", |m| m.id.as_str());
            format!("`{id}` -> {entry}\n")
        })
        .collect();
    expect.assert_eq(&actual.concat());
}

#[test]
fn fixture_ids_resolve_to_their_entries() {
    check(
        &[
            "gpt-4o-mini-2024-07-18",
            "gpt-4o-2024-08-06",
            "claude-3-5-sonnet-20240620",
            "claude-haiku-4-5-20251001",
            "claude-sonnet-4-5-20250929",
            "claude-3-7-sonnet-20250219",
            "deepseek-reasoner",
            "anthropic/claude-sonnet-4.5",
            // Also in the captures, and not in the catalog (prices not checked): they
            // must come out unknown, never as a sibling.
            "gpt-5.5-2026-04-23",
            "gpt-3.5-turbo-0125",
            "openai/gpt-oss-120b",
        ],
        expect![[r#"
            `gpt-4o-mini-2024-07-18` -> gpt-4o-mini
            `gpt-4o-2024-08-06` -> gpt-4o
            `claude-3-5-sonnet-20240620` -> claude-3-5-sonnet
            `claude-haiku-4-5-20251001` -> claude-haiku-4-5
            `claude-sonnet-4-5-20250929` -> claude-sonnet-4-5
            `claude-3-7-sonnet-20250219` -> claude-3-7-sonnet
            `deepseek-reasoner` -> deepseek-reasoner
            `anthropic/claude-sonnet-4.5` -> claude-sonnet-4-5
            `gpt-5.5-2026-04-23` -> (unknown)
            `gpt-3.5-turbo-0125` -> (unknown)
            `openai/gpt-oss-120b` -> (unknown)
        "#]],
    );
}

#[test]
fn other_ids_resolve_exactly_by_alias_by_dots_and_by_boundaries() {
    check(
        &[
            // Exact ids that contain dots stay exact.
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-5.1",
            "gpt-5",
            // Aliases.
            "claude-opus-4-0",
            "claude-sonnet-4-0",
            // Dots as dashes, with or without an `org/` prefix and a date.
            "claude-opus-4.1",
            "claude-opus-4.1-20250805",
            "openrouter/anthropic/claude-haiku-4.5",
            "openai/gpt-4.1-mini",
            "openai/gpt-4o:online",
            // Dated snapshots never fall back to a shorter sibling.
            "gpt-4.1-nano-2025-04-14",
            "o3-mini-2025-01-31",
            "o4-mini-2025-04-16",
            "o3-2025-04-16",
            "gpt-5-mini-2025-08-07",
            "claude-opus-4-20250514",
            "claude-opus-4-5-20251101",
            "claude-3-5-haiku-20241022",
            "claude-3-5-sonnet@20240620",
            // Unknown: no boundary, or no entry.
            "gpt-4o2",
            "gpt-4",
            "gpt-4-turbo",
            "claude-3-opus-20240229",
            "ollama/qwen3:8b",
            "",
            "/",
        ],
        expect![[r#"
            `gpt-4.1` -> gpt-4.1
            `gpt-4.1-mini` -> gpt-4.1-mini
            `gpt-5.1` -> gpt-5.1
            `gpt-5` -> gpt-5
            `claude-opus-4-0` -> claude-opus-4
            `claude-sonnet-4-0` -> claude-sonnet-4
            `claude-opus-4.1` -> claude-opus-4-1
            `claude-opus-4.1-20250805` -> claude-opus-4-1
            `openrouter/anthropic/claude-haiku-4.5` -> claude-haiku-4-5
            `openai/gpt-4.1-mini` -> gpt-4.1-mini
            `openai/gpt-4o:online` -> gpt-4o
            `gpt-4.1-nano-2025-04-14` -> gpt-4.1-nano
            `o3-mini-2025-01-31` -> o3-mini
            `o4-mini-2025-04-16` -> o4-mini
            `o3-2025-04-16` -> o3
            `gpt-5-mini-2025-08-07` -> gpt-5-mini
            `claude-opus-4-20250514` -> claude-opus-4
            `claude-opus-4-5-20251101` -> claude-opus-4-5
            `claude-3-5-haiku-20241022` -> claude-3-5-haiku
            `claude-3-5-sonnet@20240620` -> claude-3-5-sonnet
            `gpt-4o2` -> (unknown)
            `gpt-4` -> (unknown)
            `gpt-4-turbo` -> (unknown)
            `claude-3-opus-20240229` -> (unknown)
            `ollama/qwen3:8b` -> (unknown)
            `` -> (unknown)
            `/` -> (unknown)
        "#]],
    );
}

#[test]
fn model_info_carries_the_requested_id_and_the_instance() {
    let catalog = Catalog::builtin().unwrap();
    let info = catalog.model("work-anthropic", "claude-sonnet-4-5-20250929");
    assert_eq!(info.id, "claude-sonnet-4-5-20250929");
    assert_eq!(info.provider, "work-anthropic");
    assert_eq!((info.context_window, info.max_output), (200_000, 64_000));
    assert_eq!(
        (
            info.pricing.input,
            info.pricing.output,
            info.pricing.cache_read,
            info.pricing.cache_write
        ),
        (3.0, 15.0, 0.30, 3.75)
    );
    assert!(info.reasoning && info.known);
    let reasoner = catalog.model("deepseek", "deepseek-reasoner");
    assert!(
        !reasoner.reasoning,
        "deepseek-reasoner takes no effort knob"
    );
    assert_eq!(reasoner.max_output, 65_536);
}

#[test]
fn list_gives_a_kinds_entries_sorted_for_the_instance() {
    let catalog = Catalog::builtin().unwrap();
    let deepseek = catalog.list("my-deepseek", "deepseek");
    let ids: Vec<(&str, &str)> = deepseek
        .iter()
        .map(|m| (m.id.as_str(), m.provider.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            ("deepseek-chat", "my-deepseek"),
            ("deepseek-reasoner", "my-deepseek")
        ]
    );
    let openai = catalog.list("openai", "openai");
    assert!(openai.iter().all(|m| m.known && m.provider == "openai"));
    let ids: Vec<&str> = openai.iter().map(|m| m.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted);
    assert!(ids.contains(&"gpt-4o-mini") && !ids.contains(&"claude-sonnet-4-5"));
    assert_eq!(catalog.list("x", "no-such-kind"), Vec::new());
}
