//! What Firecrawl answers (decoded leniently: every field may be missing) and how the model
//! reads it: compact markdown with a title, the URL and a snippet or excerpt per result,
//! cut to the configured size with a notice saying so.

use serde::Deserialize;
use serde_json::Value;

/// One result of `POST /v1/search`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SearchResult {
    pub url: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub markdown: Option<String>,
}

/// A scraped page (`POST /v1/scrape` data, one entry of a crawl's data).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Page {
    pub markdown: Option<String>,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Metadata {
    pub title: Option<String>,
    #[serde(rename = "sourceURL")]
    pub source_url: Option<String>,
    pub url: Option<String>,
}

/// `GET /v1/crawl/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CrawlStatus {
    pub status: String,
    pub total: Option<u64>,
    pub completed: Option<u64>,
    pub data: Vec<Page>,
    pub error: Option<String>,
}

/// A link of `POST /v1/map`: a string in v1, an object in later versions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Link {
    Url(String),
    Entry {
        url: String,
        #[serde(default)]
        title: Option<String>,
    },
}

/// The search results in a `/v1/search` body (`data` is a list; later versions nest it
/// under `data.web`).
pub fn search_results(body: &Value) -> Result<Vec<SearchResult>, serde_json::Error> {
    let data = match body.get("data") {
        Some(Value::Object(map)) => map.get("web").cloned().unwrap_or(Value::Null),
        Some(other) => other.clone(),
        None => Value::Null,
    };
    match data {
        Value::Null => Ok(Vec::new()),
        data => serde_json::from_value(data),
    }
}

pub fn search(query: &str, results: &[SearchResult]) -> String {
    if results.is_empty() {
        return format!("No web results for \"{query}\".");
    }
    let mut out = format!(
        "Web search: \"{query}\" ({})\n",
        count(results.len(), "result")
    );
    for (index, result) in results.iter().enumerate() {
        let url = result.url.as_deref().unwrap_or("(no URL)");
        let title = clean(result.title.as_deref()).unwrap_or_else(|| url.to_string());
        out.push_str(&format!("\n{}. {title}\n   {url}\n", index + 1));
        let snippet = clean(result.description.as_deref())
            .or_else(|| clean(result.markdown.as_deref()).map(|md| excerpt(&md, 300)));
        if let Some(snippet) = snippet {
            out.push_str(&format!("   {snippet}\n"));
        }
    }
    out
}

pub fn scrape(url: &str, page: &Page) -> String {
    let mut out = page_header(url, page, "#");
    match page.markdown.as_deref().map(str::trim) {
        Some(markdown) if !markdown.is_empty() => {
            out.push('\n');
            out.push_str(markdown);
            out.push('\n');
        }
        _ => out.push_str("\n(The page has no text content.)\n"),
    }
    out
}

/// A crawl's pages, each cut to a fair share of `max_bytes`; `note` says why the crawl is
/// shown before it completed.
pub fn crawl(url: &str, status: &CrawlStatus, note: Option<&str>, max_bytes: usize) -> String {
    let pages = &status.data;
    let mut out = format!("Crawl of {url}: {}", count(pages.len(), "page"));
    if let Some(total) = status.total.filter(|total| *total as usize != pages.len()) {
        out.push_str(&format!(" of {total}"));
    }
    let state = match status.status.as_str() {
        "" => "running",
        other => other,
    };
    out.push_str(&format!(" ({state})\n"));
    if let Some(note) = note {
        out.push_str(&format!("Note: {note}\n"));
    }
    let share = (max_bytes / pages.len().max(1)).max(500);
    for page in pages {
        out.push('\n');
        out.push_str(&page_header(url, page, "##"));
        if let Some(markdown) = clean(page.markdown.as_deref()) {
            out.push('\n');
            out.push_str(&excerpt(&markdown, share));
            out.push('\n');
        }
    }
    out
}

pub fn map(url: &str, links: &[Link]) -> String {
    if links.is_empty() {
        return format!("No links found on {url}.");
    }
    let mut out = format!("Links of {url} ({})\n\n", count(links.len(), "link"));
    for link in links {
        match link {
            Link::Url(link) => out.push_str(&format!("- {link}\n")),
            Link::Entry { url, title } => match clean(title.as_deref()) {
                Some(title) => out.push_str(&format!("- {url} ({title})\n")),
                None => out.push_str(&format!("- {url}\n")),
            },
        }
    }
    out
}

/// `text` within `cap` bytes: whole when it fits, else cut at a line (or char) boundary
/// and followed by a notice; the result never exceeds `cap`.
pub fn truncate(text: &str, cap: usize) -> String {
    if text.len() <= cap {
        return text.to_string();
    }
    let notice = format!(
        "\n\n[Output truncated to {} of {} bytes. Ask for less: a lower `limit`, a narrower \
         query, or `scrape` of one page.]",
        cap,
        text.len()
    );
    let room = cap.saturating_sub(notice.len());
    let mut cut = floor_char_boundary(text, room);
    if let Some(newline) = text[..cut].rfind('\n').filter(|at| *at >= cut / 2) {
        cut = newline;
    }
    let mut out = text[..cut].trim_end().to_string();
    out.push_str(&notice);
    if out.len() > cap {
        // Only when `cap` is smaller than the notice itself (config forbids it).
        out.truncate(floor_char_boundary(&out, cap));
    }
    out
}

fn page_header(fallback_url: &str, page: &Page, level: &str) -> String {
    let url = page
        .metadata
        .source_url
        .as_deref()
        .or(page.metadata.url.as_deref())
        .unwrap_or(fallback_url);
    match clean(page.metadata.title.as_deref()) {
        Some(title) => format!("{level} {title}\nURL: {url}\n"),
        None => format!("{level} {url}\n"),
    }
}

/// `text` trimmed, or `None` when blank.
fn clean(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// At most `max` bytes of `text`, cut at a char boundary and marked with `…`.
fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let cut = floor_char_boundary(text, max.saturating_sub('…'.len_utf8()));
    format!("{}…", text[..cut].trim_end())
}

fn floor_char_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use expect_test::{Expect, expect};
    use serde_json::json;

    use super::*;

    #[track_caller]
    fn check(actual: String, expect: Expect) {
        expect.assert_eq(&actual);
    }

    #[test]
    fn search_results_in_both_shapes() {
        let v1 = json!({"success": true, "data": [{"url": "https://a", "title": "A"}]});
        let v2 = json!({"success": true, "data": {"web": [{"url": "https://a", "title": "A"}]}});
        assert_eq!(search_results(&v1).unwrap(), search_results(&v2).unwrap());
        assert!(
            search_results(&json!({"success": true}))
                .unwrap()
                .is_empty()
        );
        check(
            search("nothing", &[]),
            expect![[r#"No web results for "nothing"."#]],
        );
    }

    #[test]
    fn search_falls_back_to_url_and_markdown() {
        let results = [SearchResult {
            url: Some("https://b.example".into()),
            title: Some("  ".into()),
            description: None,
            markdown: Some("x".repeat(400)),
        }];
        let text = search("b", &results);
        assert!(text.contains("\n1. https://b.example\n   https://b.example\n"));
        assert!(text.contains(&format!("   {}…\n", "x".repeat(297))));
    }

    #[test]
    fn map_links_of_both_shapes() {
        let links: Vec<Link> = serde_json::from_value(json!([
            "https://a.example/",
            {"url": "https://a.example/docs", "title": "Docs"},
            {"url": "https://a.example/x"}
        ]))
        .unwrap();
        check(
            map("https://a.example", &links),
            expect![[r#"
                Links of https://a.example (3 links)

                - https://a.example/
                - https://a.example/docs (Docs)
                - https://a.example/x
            "#]],
        );
    }

    #[test]
    fn truncation_keeps_within_the_cap_on_char_boundaries() {
        let text = "é".repeat(2000);
        let cut = truncate(&text, 1024);
        assert!(cut.len() <= 1024, "{}", cut.len());
        assert!(cut.ends_with("`scrape` of one page.]"));
        assert!(cut.starts_with("éé"));
        assert_eq!(truncate("short", 1024), "short");
        let lines: String = (0..200).map(|i| format!("line {i}\n")).collect();
        let cut = truncate(&lines, 1024);
        check(
            cut[cut.len() - 150..].to_string(),
            expect![[r#"
                ne 109
                line 110
                line 111
                line 112

                [Output truncated to 1024 of 1690 bytes. Ask for less: a lower `limit`, a narrower query, or `scrape` of one page.]"#]],
        );
    }
}
