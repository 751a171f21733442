//! The `list` and `models` tables, as pure functions of the server's answers (and, for
//! `list`, of the current time).

use dispatch_wire::{ConversationMeta, ConversationStatus, ModelInfo, ModelsResponse};

use crate::resolve::unique_prefixes;

/// Longest title shown in `list`, in characters.
const TITLE_MAX: usize = 60;

/// Left-aligned columns two spaces apart; the last column is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            line.push_str(cell);
            if i < last {
                let pad = width - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `3m ago`, from two epoch-millisecond times; a time in the future (clock skew) is "now".
pub fn relative(now_ms: i64, then_ms: i64) -> String {
    let secs = (now_ms - then_ms).max(0) / 1000;
    match secs {
        0..=9 => "just now".to_owned(),
        10..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86_399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

fn status(status: ConversationStatus) -> &'static str {
    match status {
        ConversationStatus::Active => "active",
        ConversationStatus::Idle => "idle",
        ConversationStatus::Closed => "closed",
        ConversationStatus::Unknown => "?",
    }
}

/// `dispatch list`: most recent first; ids shortened to a prefix unique among `all_ids`.
pub fn conversations(rows: &[ConversationMeta], all_ids: &[&str], now_ms: i64) -> String {
    let mut rows: Vec<&ConversationMeta> = rows.iter().collect();
    rows.sort_by_key(|c| std::cmp::Reverse(c.last_activity_at));
    let ids: Vec<&str> = rows.iter().map(|c| &*c.id).collect();
    let short = unique_prefixes(&ids, all_ids);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .zip(short)
        .map(|(c, id)| {
            let title: String = c.title.split_whitespace().collect::<Vec<_>>().join(" ");
            let title = if title.chars().count() > TITLE_MAX {
                let mut cut: String = title.chars().take(TITLE_MAX - 1).collect();
                cut.push('…');
                cut
            } else {
                title
            };
            vec![
                id,
                status(c.status).to_owned(),
                c.workspace_id.clone(),
                relative(now_ms, c.last_activity_at),
                title,
            ]
        })
        .collect();
    table(&["ID", "STATUS", "WORKSPACE", "ACTIVE", "TITLE"], &cells)
}

/// `200k`, `1M`, `32768` → `32.8k`: token counts at a glance.
fn tokens(n: u64) -> String {
    if n >= 1_000_000 && n % 1_000_000 == 0 {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000_000 {
        format!("{:.1}M", n as f64 / 1e6)
    } else if n >= 1000 && n % 1000 == 0 {
        format!("{}k", n / 1000)
    } else if n >= 1000 {
        format!("{:.1}k", n as f64 / 1e3)
    } else {
        n.to_string()
    }
}

fn price(dollars_per_million: f64) -> String {
    if dollars_per_million > 0.0 {
        format!("${dollars_per_million:.2}")
    } else {
        "-".to_owned()
    }
}

/// `dispatch models`: the catalog, then which model a turn uses when none is named.
pub fn models(answer: &ModelsResponse) -> String {
    let cells: Vec<Vec<String>> = answer
        .models
        .iter()
        .map(|m: &ModelInfo| {
            vec![
                m.id.clone(),
                m.provider.clone(),
                tokens(m.context_window),
                tokens(m.max_output),
                price(m.pricing.input),
                price(m.pricing.output),
                m.description.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "ID",
            "PROVIDER",
            "CONTEXT",
            "MAX OUT",
            "$/M IN",
            "$/M OUT",
            "DESCRIPTION",
        ],
        &cells,
    );
    if let Some(default) = &answer.default_model {
        out.push_str(&format!("\ndefault model: {default}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use dispatch_wire::ModelPricing;
    use expect_test::expect;

    use super::*;

    const NOW: i64 = 1_760_000_000_000;

    fn meta(id: &str, status: ConversationStatus, ago_ms: i64, title: &str) -> ConversationMeta {
        ConversationMeta {
            id: id.into(),
            title: title.to_owned(),
            created_at: 0,
            last_activity_at: NOW - ago_ms,
            status,
            workspace_id: "default".to_owned(),
            model: None,
            compacted_from: None,
        }
    }

    #[test]
    fn list_table() {
        let rows = [
            meta(
                "0199a5c2-0000-7000-8000-000000000001",
                ConversationStatus::Idle,
                3 * 60_000,
                "fix the\nparser",
            ),
            meta(
                "0199a5c2-0000-7000-8000-000000000002",
                ConversationStatus::Active,
                2_000,
                "a title far longer than sixty characters, which the table cuts short",
            ),
            meta(
                "77aa0000-0000-7000-8000-000000000003",
                ConversationStatus::Closed,
                3 * 86_400_000,
                "",
            ),
        ];
        let ids: Vec<&str> = rows.iter().map(|c| &*c.id).collect();
        expect![[r#"
            ID                                    STATUS  WORKSPACE  ACTIVE    TITLE
            0199a5c2-0000-7000-8000-000000000002  active  default    just now  a title far longer than sixty characters, which the table c…
            0199a5c2-0000-7000-8000-000000000001  idle    default    3m ago    fix the parser
            77aa0000                              closed  default    3d ago
        "#]]
        .assert_eq(&conversations(&rows, &ids, NOW));
    }

    #[test]
    fn relative_times() {
        let shown: Vec<String> = [-5_000, 0, 42_000, 3_599_000, 7_200_000, 90_000_000]
            .iter()
            .map(|ago| relative(NOW, NOW - ago))
            .collect();
        expect![[r#"["just now", "just now", "42s ago", "59m ago", "2h ago", "1d ago"]"#]]
            .assert_eq(&format!("{shown:?}"));
    }

    #[test]
    fn models_table() {
        let answer = ModelsResponse {
            models: vec![
                ModelInfo {
                    id: "claude-sonnet-4-5".to_owned(),
                    provider: "anthropic".to_owned(),
                    context_window: 200_000,
                    max_output: 64_000,
                    pricing: ModelPricing {
                        input: 3.0,
                        output: 15.0,
                        cache_read: 0.3,
                        cache_write: 3.75,
                    },
                    reasoning: true,
                    known: true,
                    description: None,
                },
                ModelInfo {
                    id: "echo".to_owned(),
                    provider: "echo".to_owned(),
                    context_window: 1_000_000,
                    max_output: 32_768,
                    pricing: ModelPricing::default(),
                    reasoning: false,
                    known: true,
                    description: Some("Offline echo (no model; repeats your message)".to_owned()),
                },
            ],
            default_model: Some("echo".to_owned()),
        };
        expect![[r#"
            ID                 PROVIDER   CONTEXT  MAX OUT  $/M IN  $/M OUT  DESCRIPTION
            claude-sonnet-4-5  anthropic  200k     64k      $3.00   $15.00
            echo               echo       1M       32.8k    -       -        Offline echo (no model; repeats your message)

            default model: echo
        "#]]
        .assert_eq(&models(&answer));
    }
}
