#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The service on small catalogs: matching precedence, unknown models, local instances,
//! cost through `Pricing`, override order, and every way a source is refused.

use std::path::Path;
use std::sync::{Arc, Mutex};

use dispatch_kernel::abi::{ModelCatalog, Pricing};
use dispatch_model_catalog::{
    BUILTIN_ORIGIN, Catalog, CatalogError, DEFAULT_CONTEXT_WINDOW, DEFAULT_MAX_OUTPUT,
    INLINE_ORIGIN, ModelEntry, Price, Source,
};
use dispatch_wire::{Cost, ModelInfo, ModelPricing, Usage};
use expect_test::{Expect, expect};
use pretty_assertions::assert_eq;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// A catalog-format entry; `extra` lines are appended to the table.
fn entry(id: &str, context: u64, max_output: u64, input: f64, extra: &str) -> String {
    format!(
        "[[model]]\nid = \"{id}\"\nkind = \"openai\"\ncontext_window = {context}\n\
         max_output = {max_output}\nprice = {{ input = {input:?}, output = 2.0, cache_read = 0.5, cache_write = 0.0 }}\n{extra}\n"
    )
}

fn model(id: &str, input: f64) -> ModelEntry {
    ModelEntry {
        id: id.to_owned(),
        kind: "openai".to_owned(),
        context_window: 1000,
        max_output: 100,
        price: Price {
            input,
            output: 2.0,
            cache_read: 0.5,
            cache_write: 0.0,
        },
        reasoning: false,
        aliases: Vec::new(),
    }
}

fn source(origin: &str, models: Vec<ModelEntry>) -> Source {
    Source {
        origin: origin.to_owned(),
        models,
    }
}

fn resolved(catalog: &Catalog, id: &str) -> Option<String> {
    catalog.lookup(id).map(|m| m.id.clone())
}

#[test]
fn the_catalog_is_a_shareable_service() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Catalog>();
    let service: Arc<dyn ModelCatalog> = Arc::new(Catalog::builtin().unwrap());
    let pricing: &dyn Pricing = service.as_ref();
    assert!(
        pricing
            .cost("openai", "gpt-4o", &Usage::default())
            .is_some()
    );
}

#[test]
fn exact_ids_win_over_dots_read_as_dashes() {
    let text = [
        entry("m-4.1", 1000, 100, 1.0, ""),
        entry("m-4-1", 1000, 100, 2.0, ""),
        entry("n-4-5", 1000, 100, 3.0, ""),
    ]
    .concat();
    let catalog = Catalog::parse(&text, "test").unwrap();
    assert_eq!(resolved(&catalog, "m-4.1").as_deref(), Some("m-4.1"));
    assert_eq!(resolved(&catalog, "m-4-1").as_deref(), Some("m-4-1"));
    assert_eq!(resolved(&catalog, "n-4.5").as_deref(), Some("n-4-5"));
    assert_eq!(
        resolved(&catalog, "org/n-4.5-2025").as_deref(),
        Some("n-4-5")
    );
    assert_eq!(resolved(&catalog, "m-4.2").as_deref(), None);
    // The full id wins over the part after the last `/`.
    let text = [
        entry("org/m", 1000, 100, 1.0, ""),
        entry("m", 1000, 100, 2.0, ""),
    ]
    .concat();
    let catalog = Catalog::parse(&text, "test").unwrap();
    assert_eq!(resolved(&catalog, "org/m").as_deref(), Some("org/m"));
    assert_eq!(resolved(&catalog, "other/m").as_deref(), Some("m"));
}

/// Records `provider/model` of every warning logged on this thread while `f` runs.
fn warnings_during(f: impl FnOnce()) -> Vec<String> {
    #[derive(Clone, Default)]
    struct Warnings(Arc<Mutex<Vec<String>>>);

    #[derive(Default)]
    struct Fields {
        provider: String,
        model: String,
    }

    impl Visit for Fields {
        fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}

        fn record_str(&mut self, field: &Field, value: &str) {
            match field.name() {
                "provider" => self.provider = value.to_owned(),
                "model" => self.model = value.to_owned(),
                _ => {}
            }
        }
    }

    impl<S: tracing::Subscriber> Layer<S> for Warnings {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            if *event.metadata().level() == tracing::Level::WARN {
                let mut fields = Fields::default();
                event.record(&mut fields);
                let line = format!("{}/{}", fields.provider, fields.model);
                self.0.lock().unwrap().push(line);
            }
        }
    }

    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(warnings.clone());
    tracing::subscriber::with_default(subscriber, f);
    warnings.0.lock().unwrap().clone()
}

fn defaults(provider: &str, id: &str) -> ModelInfo {
    ModelInfo {
        description: None,
        id: id.to_owned(),
        provider: provider.to_owned(),
        context_window: DEFAULT_CONTEXT_WINDOW,
        max_output: DEFAULT_MAX_OUTPUT,
        pricing: ModelPricing::default(),
        reasoning: false,
        known: false,
    }
}

#[test]
fn an_unknown_model_gets_defaults_no_cost_and_one_warning() {
    let catalog = Catalog::builtin().unwrap();
    let usage = Usage {
        input_tokens: 1000,
        output_tokens: 10,
        ..Usage::default()
    };
    let warnings = warnings_during(|| {
        for _ in 0..3 {
            assert_eq!(
                catalog.model("openai", "my-finetune"),
                defaults("openai", "my-finetune")
            );
            assert_eq!(catalog.cost("openai", "my-finetune", &usage), None);
        }
        // Another instance or model is a new pair.
        catalog.model("azure", "my-finetune");
        catalog.model("openai", "gpt-4o-mini-2024-07-18");
        catalog.cost("openai", "other-model", &usage);
        catalog.model("openai", "other-model");
    });
    assert_eq!(
        warnings,
        [
            "openai/my-finetune",
            "azure/my-finetune",
            "openai/other-model"
        ]
    );
    assert_eq!(
        (DEFAULT_CONTEXT_WINDOW, DEFAULT_MAX_OUTPUT),
        (32_768, 8_192)
    );
}

#[test]
fn a_local_instance_serves_everything_for_free() {
    let catalog = Catalog::builtin().unwrap();
    let usage = Usage {
        input_tokens: 10_000,
        output_tokens: 500,
        cache_read_tokens: 8_000,
        cache_write_tokens: 1_000,
        reasoning_tokens: 0,
    };
    catalog.register_local("ollama");
    catalog.register_local("ollama");
    let warnings = warnings_during(|| {
        assert_eq!(
            catalog.model("ollama", "qwen3:8b"),
            defaults("ollama", "qwen3:8b")
        );
        assert_eq!(
            catalog.cost("ollama", "qwen3:8b", &usage),
            Some(Cost::default())
        );
        // A known id keeps its windows, not its prices.
        let known = catalog.model("ollama", "gpt-4o-mini");
        assert_eq!(
            (known.context_window, known.max_output, known.known),
            (128_000, 16_384, true)
        );
        assert_eq!(known.pricing, ModelPricing::default());
        assert_eq!(
            catalog.cost("ollama", "gpt-4o-mini", &usage),
            Some(Cost::default())
        );
        assert!(
            catalog
                .list("ollama", "openai")
                .iter()
                .all(|m| m.pricing == ModelPricing::default())
        );
    });
    assert_eq!(
        warnings,
        Vec::<String>::new(),
        "local models are not warned about"
    );
    // Other instances still pay.
    assert_eq!(catalog.model("openai", "gpt-4o-mini").pricing.input, 0.15);
    assert!(catalog.cost("openai", "gpt-4o-mini", &usage).unwrap().total > 0.0);
}

#[test]
fn cost_of_a_known_model_in_dollars() {
    let catalog = Catalog::builtin().unwrap();
    let usage = Usage {
        input_tokens: 10_000,
        output_tokens: 500,
        cache_read_tokens: 8_000,
        cache_write_tokens: 1_000,
        reasoning_tokens: 200,
    };
    let cost = catalog
        .cost("anthropic", "claude-sonnet-4-5-20250929", &usage)
        .unwrap();
    let got = [
        cost.input,
        cost.cache_read,
        cost.cache_write,
        cost.output,
        cost.total,
    ];
    let want = [0.003, 0.0024, 0.003_75, 0.0075, 0.016_65];
    for (got, want) in got.iter().zip(want) {
        assert!((got - want).abs() < 1e-12, "{cost:?}");
    }
    // OpenAI: no write surcharge; cached input at the cached price.
    let usage = Usage {
        input_tokens: 2_000_000,
        output_tokens: 1_000_000,
        cache_read_tokens: 1_000_000,
        ..Usage::default()
    };
    let cost = catalog.cost("openai", "gpt-4o", &usage).unwrap();
    assert!((cost.input - 2.5).abs() < 1e-12, "{cost:?}");
    assert!((cost.cache_read - 1.25).abs() < 1e-12, "{cost:?}");
    assert!((cost.output - 10.0).abs() < 1e-12, "{cost:?}");
    assert!((cost.total - 13.75).abs() < 1e-12, "{cost:?}");
}

#[test]
fn later_sources_override_earlier_ones_by_id() {
    let mut with_alias = model("a", 1.0);
    with_alias.aliases = vec!["a-old".to_owned()];
    let mut taker = model("d", 4.0);
    taker.aliases = vec!["c".to_owned()];
    let catalog = Catalog::from_sources(vec![
        source(
            BUILTIN_ORIGIN,
            vec![with_alias, model("b", 1.0), model("c", 1.0)],
        ),
        source("file.toml", vec![model("a", 2.0), model("b", 2.0)]),
        source(INLINE_ORIGIN, vec![model("a", 3.0), taker]),
    ])
    .unwrap();
    let input = |id: &str| catalog.model("p", id).pricing.input;
    assert_eq!((input("a"), input("b"), input("d")), (3.0, 2.0, 4.0));
    // The replaced entry's aliases went with it.
    assert_eq!(
        resolved(&catalog, "a-old").as_deref(),
        Some("a"),
        "prefix match"
    );
    assert_eq!(input("a-old"), 3.0);
    // A later source's alias takes the name over; the earlier entry is still listed.
    assert_eq!(resolved(&catalog, "c").as_deref(), Some("d"));
    let ids: Vec<String> = catalog
        .list("p", "openai")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, ["a", "b", "c", "d"]);

    // Built-in entries are overridden the same way.
    let catalog = Catalog::from_sources(vec![
        Source::builtin().unwrap(),
        source(INLINE_ORIGIN, vec![model("gpt-4o", 9.0)]),
    ])
    .unwrap();
    assert_eq!(
        catalog.model("openai", "gpt-4o-2024-08-06").pricing.input,
        9.0
    );
    assert_eq!(catalog.model("openai", "gpt-4o-mini").pricing.input, 0.15);
}

#[track_caller]
fn check_err(result: Result<Catalog, CatalogError>, expect: Expect) {
    match result {
        Ok(_) => panic!("the catalog was accepted"),
        Err(err) => expect.assert_eq(&err.to_string()),
    }
}

#[test]
fn entries_with_bad_values_are_refused_naming_source_entry_and_field() {
    let one = |id: &str, context: u64, max_output: u64, input: f64, extra: &str| {
        Catalog::parse(&entry(id, context, max_output, input, extra), "models.toml")
    };
    check_err(
        one("m", 1000, 100, -1.0, ""),
        expect!["model catalog models.toml: model `m`: `price.input` (-1) is negative"],
    );
    check_err(
        Catalog::parse(
            "[[model]]\nid = \"m\"\nkind = \"openai\"\ncontext_window = 10\nmax_output = 5\n\
             price = { input = 1.0, output = 2.0, cache_read = 0.5, cache_write = -0.1 }",
            "models.toml",
        ),
        expect!["model catalog models.toml: model `m`: `price.cache_write` (-0.1) is negative"],
    );
    check_err(
        Catalog::parse(
            "[[model]]\nid = \"m\"\nkind = \"openai\"\ncontext_window = 10\nmax_output = 5\n\
             price = { input = nan, output = 2.0, cache_read = 0.5, cache_write = 0.0 }",
            "models.toml",
        ),
        expect!["model catalog models.toml: model `m`: `price.input` (NaN) is not a finite number"],
    );
    check_err(
        one("m", 1000, 2000, 1.0, ""),
        expect![
            "model catalog models.toml: model `m`: `max_output` (2000) exceeds `context_window` (1000)"
        ],
    );
    check_err(
        one("m", 0, 0, 1.0, ""),
        expect!["model catalog models.toml: model `m`: `context_window` is zero"],
    );
    check_err(
        one("m", 1000, 0, 1.0, ""),
        expect!["model catalog models.toml: model `m`: `max_output` is zero"],
    );
    check_err(
        one("", 1000, 100, 1.0, ""),
        expect!["model catalog models.toml: model ``: `id` is empty"],
    );
    check_err(
        one("m", 1000, 100, 1.0, "aliases = [\"\"]"),
        expect!["model catalog models.toml: model `m`: `aliases` holds an empty name"],
    );
}

#[test]
fn a_name_twice_in_one_source_is_refused() {
    check_err(
        Catalog::parse(
            &[entry("m", 10, 5, 1.0, ""), entry("m", 10, 5, 2.0, "")].concat(),
            "models.toml",
        ),
        expect![
            "model catalog models.toml: model `m`: `id` repeats `m`, already used in the same source"
        ],
    );
    check_err(
        Catalog::parse(
            &[
                entry("m", 10, 5, 1.0, ""),
                entry("n", 10, 5, 2.0, "aliases = [\"m\"]"),
            ]
            .concat(),
            "models.toml",
        ),
        expect![
            "model catalog models.toml: model `n`: `aliases` repeats `m`, already used in the same source"
        ],
    );
    check_err(
        Catalog::from_sources(vec![
            source(BUILTIN_ORIGIN, vec![model("m", 1.0)]),
            source(INLINE_ORIGIN, vec![model("x", 1.0), model("x", 2.0)]),
        ]),
        expect![
            "model catalog [[extensions.model-catalog.model]]: model `x`: `id` repeats `x`, already used in the same source"
        ],
    );
}

#[test]
fn sources_that_do_not_parse_or_cannot_be_read_are_refused() {
    check_err(
        Catalog::parse("[[model]]\nid = \"m\"\n", "models.toml"),
        expect![[r#"
            model catalog models.toml does not parse: TOML parse error at line 1, column 1
              |
            1 | [[model]]
              | ^^^^^^^^^
            missing field `kind`
        "#]],
    );
    check_err(
        Catalog::parse(&entry("m", 10, 5, 1.0, "colour = \"red\""), "models.toml"),
        expect![[r#"
            model catalog models.toml does not parse: TOML parse error at line 7, column 1
              |
            7 | colour = "red"
              | ^^^^^^
            unknown field `colour`, expected one of `id`, `kind`, `context_window`, `max_output`, `price`, `reasoning`, `aliases`
        "#]],
    );
    check_err(
        Catalog::parse("[[model]\n", "models.toml"),
        expect![[r#"
            model catalog models.toml does not parse: TOML parse error at line 1, column 9
              |
            1 | [[model]
              |         ^
            unclosed array table, expected `]`
        "#]],
    );
    let missing = Path::new("/nonexistent/dispatch-model-catalog/models.toml");
    let err = Source::read(missing).unwrap_err();
    assert!(
        matches!(&err, CatalogError::Read { path, .. } if path == missing),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(
            "cannot read the model catalog file /nonexistent/dispatch-model-catalog/models.toml: "
        ),
        "{err}"
    );
}
