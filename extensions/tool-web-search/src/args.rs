//! The tool's input: its JSON Schema and the validation of one call's arguments into a
//! [`Request`], with messages that name the offending field.

use reqwest::Url;
use serde_json::{Value, json};

use dispatch_kernel::abi::ToolError;

/// Results of a search unless `limit` says otherwise, and the most it may ask for.
pub const SEARCH_LIMIT: (u64, u64) = (5, 20);
/// Pages of a crawl unless `limit` says otherwise, and the most it may ask for.
pub const CRAWL_LIMIT: (u64, u64) = (10, 50);

/// The argument names the schema declares; anything else is refused.
const KNOWN: [&str; 5] = ["limit", "mode", "query", "search", "url"];

/// One validated call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Search { query: String, limit: u64 },
    Scrape { url: String },
    Crawl { url: String, limit: u64 },
    Map { url: String, search: Option<String> },
}

/// The input schema: one flat object with a `mode` discriminator (flat rather than `oneOf`,
/// which several providers refuse in tool schemas).
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "mode": {
                "type": "string",
                "enum": ["search", "scrape", "crawl", "map"],
                "description": "search: web search for `query`. scrape: one page at `url` as markdown. crawl: up to `limit` pages of the site at `url`. map: the links of the site at `url`, optionally filtered by `search`."
            },
            "query": {
                "type": "string",
                "description": "search: what to search the web for."
            },
            "url": {
                "type": "string",
                "description": "scrape, crawl, map: an http or https URL."
            },
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": CRAWL_LIMIT.1,
                "description": "search: results, 1-20 (default 5). crawl: pages, 1-50 (default 10)."
            },
            "search": {
                "type": "string",
                "description": "map: only links related to this text."
            }
        },
        "required": ["mode"],
        "additionalProperties": false
    })
}

/// The request `input` describes, or a model error naming the field at fault.
pub fn parse(input: &Value) -> Result<Request, ToolError> {
    let Some(object) = input.as_object() else {
        return Err(model("the arguments must be a JSON object"));
    };
    if let Some(unknown) = object.keys().find(|key| !KNOWN.contains(&key.as_str())) {
        return Err(model(format!(
            "unknown argument `{unknown}`; web_search takes mode, query, url, limit and search"
        )));
    }
    let mode = parse_mode(input)?;
    match mode {
        Mode::Search => {
            let query = string(input, "query")?.ok_or_else(|| {
                model("missing required argument `query` (mode `search` needs it)")
            })?;
            if query.trim().is_empty() {
                return Err(model("`query` is empty"));
            }
            Ok(Request::Search {
                query: query.trim().to_string(),
                limit: limit(input, "search", SEARCH_LIMIT)?,
            })
        }
        Mode::Scrape => Ok(Request::Scrape {
            url: url(input, "scrape")?,
        }),
        Mode::Crawl => Ok(Request::Crawl {
            url: url(input, "crawl")?,
            limit: limit(input, "crawl", CRAWL_LIMIT)?,
        }),
        Mode::Map => Ok(Request::Map {
            url: url(input, "map")?,
            search: string(input, "search")?
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        }),
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Search,
    Scrape,
    Crawl,
    Map,
}

fn parse_mode(input: &Value) -> Result<Mode, ToolError> {
    let mode = string(input, "mode")?.ok_or_else(|| {
        model("missing required argument `mode` (one of search, scrape, crawl, map)")
    })?;
    match mode {
        "search" => Ok(Mode::Search),
        "scrape" => Ok(Mode::Scrape),
        "crawl" => Ok(Mode::Crawl),
        "map" => Ok(Mode::Map),
        other => Err(model(format!(
            "`mode` must be one of search, scrape, crawl, map; got `{other}`"
        ))),
    }
}

fn string<'a>(input: &'a Value, name: &str) -> Result<Option<&'a str>, ToolError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(model(format!("`{name}` must be a string"))),
    }
}

fn url(input: &Value, mode: &str) -> Result<String, ToolError> {
    let raw = string(input, "url")?
        .ok_or_else(|| {
            model(format!(
                "missing required argument `url` (mode `{mode}` needs it)"
            ))
        })?
        .trim();
    let parsed = Url::parse(raw)
        .map_err(|err| model(format!("`url` is not a valid URL (`{raw}`): {err}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(model(format!(
            "`url` must be an http or https URL, got `{raw}`"
        )));
    }
    Ok(raw.to_string())
}

fn limit(input: &Value, mode: &str, (default, max): (u64, u64)) -> Result<u64, ToolError> {
    match input.get("limit") {
        None | Some(Value::Null) => Ok(default),
        Some(value) => value
            .as_u64()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                model(format!(
                    "`limit` must be an integer 1..={max} for mode `{mode}`, got {value}"
                ))
            }),
    }
}

fn model(message: impl Into<String>) -> ToolError {
    ToolError::Model(message.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use expect_test::{Expect, expect};

    use super::*;

    #[track_caller]
    fn check(input: Value, expect: Expect) {
        let actual = match parse(&input) {
            Ok(request) => format!("{request:?}"),
            Err(err) => format!("error: {err}"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn valid_calls() {
        check(
            json!({"mode": "search", "query": " rust async "}),
            expect![[r#"Search { query: "rust async", limit: 5 }"#]],
        );
        check(
            json!({"mode": "search", "query": "q", "limit": 20, "url": null}),
            expect![[r#"Search { query: "q", limit: 20 }"#]],
        );
        check(
            json!({"mode": "scrape", "url": "https://example.com/a"}),
            expect![[r#"Scrape { url: "https://example.com/a" }"#]],
        );
        check(
            json!({"mode": "crawl", "url": "http://example.com"}),
            expect![[r#"Crawl { url: "http://example.com", limit: 10 }"#]],
        );
        check(
            json!({"mode": "map", "url": "http://example.com", "search": "docs"}),
            expect![[r#"Map { url: "http://example.com", search: Some("docs") }"#]],
        );
        check(
            json!({"mode": "map", "url": "http://example.com", "search": " "}),
            expect![[r#"Map { url: "http://example.com", search: None }"#]],
        );
    }

    #[test]
    fn invalid_calls_name_the_field() {
        check(
            json!([1]),
            expect!["error: the arguments must be a JSON object"],
        );
        check(
            json!({}),
            expect!["error: missing required argument `mode` (one of search, scrape, crawl, map)"],
        );
        check(
            json!({"mode": "browse"}),
            expect!["error: `mode` must be one of search, scrape, crawl, map; got `browse`"],
        );
        check(
            json!({"mode": "search"}),
            expect!["error: missing required argument `query` (mode `search` needs it)"],
        );
        check(
            json!({"mode": "search", "query": "  "}),
            expect!["error: `query` is empty"],
        );
        check(
            json!({"mode": "search", "query": "q", "limit": 21}),
            expect!["error: `limit` must be an integer 1..=20 for mode `search`, got 21"],
        );
        check(
            json!({"mode": "crawl", "url": "https://a.example", "limit": 0}),
            expect!["error: `limit` must be an integer 1..=50 for mode `crawl`, got 0"],
        );
        check(
            json!({"mode": "scrape"}),
            expect!["error: missing required argument `url` (mode `scrape` needs it)"],
        );
        check(
            json!({"mode": "scrape", "url": "file:///etc/passwd"}),
            expect!["error: `url` must be an http or https URL, got `file:///etc/passwd`"],
        );
        check(
            json!({"mode": "map", "url": "example.com"}),
            expect!["error: `url` is not a valid URL (`example.com`): relative URL without a base"],
        );
        check(
            json!({"mode": "scrape", "url": 3}),
            expect!["error: `url` must be a string"],
        );
        check(
            json!({"mode": "search", "qurey": "x"}),
            expect![
                "error: unknown argument `qurey`; web_search takes mode, query, url, limit and search"
            ],
        );
    }

    #[test]
    fn the_schema_names_every_known_argument() {
        let schema = schema();
        let names: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(names, KNOWN);
    }
}
