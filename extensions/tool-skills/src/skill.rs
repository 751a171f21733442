//! Skills as data: names, the two-line header, merging the folders and the `load_skill`
//! spec that lists them. Pure: no I/O, so every rule here is tested as data.
//!
//! A skill is `<name>.md` in a `.skills` folder. Line 1 is its summary and line 2 is `---`;
//! the rest is the body. A file whose line 2 is not `---` has no summary and its whole text
//! is the body.

use std::collections::BTreeMap;

use dispatch_kernel::abi::{Capability, ToolSpec};
use serde_json::{Value, json};

/// The tool's name.
pub const NAME: &str = "load_skill";

/// The folder, under the home directory and under the cwd, that holds skills.
pub const SKILLS_DIR: &str = ".skills";

/// Longest skill name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// A listed skill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skill {
    pub name: String,
    pub summary: Option<String>,
}

/// 1 to 64 bytes of `[A-Za-z0-9_.-]`, not starting with `.` and without `..` (so a name
/// never leaves its folder nor names a hidden file).
pub fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_BYTES).contains(&name.len())
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The skill a file name holds: `<name>.md` with a valid name.
pub fn name_of(file_name: &str) -> Option<&str> {
    file_name
        .strip_suffix(".md")
        .filter(|name| valid_name(name))
}

/// Splits off the first line: `(line without its \r\n, rest, whether a newline ended it)`.
fn split_line(text: &str) -> (&str, &str, bool) {
    match text.split_once('\n') {
        Some((line, rest)) => (line.strip_suffix('\r').unwrap_or(line), rest, true),
        None => (text, "", false),
    }
}

/// The summary in the first bytes of a skill file (`head`; `complete` when it is the whole
/// file), at most `max_chars` characters (cut with `…`). `None` without the `---` line, when
/// the head ends before line 2 does, or when line 1 is blank.
pub fn summary(head: &str, complete: bool, max_chars: usize) -> Option<String> {
    let (first, rest, _) = split_line(head);
    let (second, _, ended) = split_line(rest);
    if second.trim() != "---" || !(ended || complete) {
        return None;
    }
    let clean: String = first
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.is_empty() {
        return None;
    }
    if clean.chars().count() > max_chars {
        let cut: String = clean.chars().take(max_chars.saturating_sub(1)).collect();
        return Some(format!("{}…", cut.trim_end()));
    }
    Some(clean)
}

/// The body the model gets: the text without its first two lines when line 2 is `---`,
/// else the whole text.
pub fn body(text: &str) -> &str {
    let (_, rest, _) = split_line(text);
    let (second, body, _) = split_line(rest);
    if second.trim() == "---" { body } else { text }
}

/// Every skill of the folders, `layers` in precedence order (the cwd's first): a name takes
/// the first layer's skill. Sorted by name.
pub fn merge(layers: Vec<Vec<Skill>>) -> Vec<Skill> {
    let mut merged: BTreeMap<String, Skill> = BTreeMap::new();
    for skill in layers.into_iter().flatten() {
        merged.entry(skill.name.clone()).or_insert(skill);
    }
    merged.into_values().collect()
}

const ABOUT: &str = "Load a skill: instructions for a kind of task, kept as Markdown files in \
`~/.skills` and `<cwd>/.skills`. When the task at hand matches a skill, load it before you \
start and follow it.";

/// The spec of `load_skill`: with `None`, the one registered at activation (any name); with
/// the turn's skills (sorted, non-empty), the one the tools filter puts in the turn, whose
/// description lists them and whose `name` is an enum of them. Same skills, same bytes.
pub fn spec(skills: Option<&[Skill]>) -> ToolSpec {
    let (description, name) = match skills {
        None => (
            format!("{ABOUT} The available skills are listed here at the start of each turn."),
            json!({
                "type": "string",
                "description": "The skill's name: its file name without `.md`."
            }),
        ),
        Some(skills) => {
            let mut description = format!("{ABOUT}\n\nAvailable skills:");
            for skill in skills {
                match &skill.summary {
                    Some(summary) => {
                        description.push_str(&format!("\n- {}: {summary}", skill.name))
                    }
                    None => description.push_str(&format!("\n- {}", skill.name)),
                }
            }
            let names: Vec<Value> = skills
                .iter()
                .map(|s| Value::from(s.name.as_str()))
                .collect();
            (
                description,
                json!({
                    "type": "string",
                    "description": "The skill to load.",
                    "enum": names
                }),
            )
        }
    };
    ToolSpec {
        name: NAME.into(),
        description,
        input_schema: json!({
            "type": "object",
            "properties": { "name": name },
            "required": ["name"],
            "additionalProperties": false
        }),
        concurrency_safe: true,
        capabilities: vec![Capability::Fs],
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    /// A file's listing (summary) and loading (body), side by side.
    #[track_caller]
    fn check(text: &str, expected: Expect) {
        let actual = format!(
            "summary: {:?}\nbody: {:?}",
            summary(text, true, 20),
            body(text)
        );
        expected.assert_eq(&actual);
    }

    #[test]
    fn the_header_gives_the_summary_and_is_stripped_from_the_body() {
        check(
            "Deploy the app\n---\nSteps:\n1. build\n",
            expect![[r#"
                summary: Some("Deploy the app")
                body: "Steps:\n1. build\n""#]],
        );
        check(
            "  Windows lines \r\n--- \r\nbody\r\n",
            expect![[r#"
                summary: Some("Windows lines")
                body: "body\r\n""#]],
        );
        check(
            "Only a header\n---",
            expect![[r#"
                summary: Some("Only a header")
                body: """#]],
        );
        check(
            "A summary far longer than twenty characters\n---\nx",
            expect![[r#"
                summary: Some("A summary far longe…")
                body: "x""#]],
        );
        check(
            "\n---\nblank summary",
            expect![[r#"
                summary: None
                body: "blank summary""#]],
        );
    }

    #[test]
    fn a_file_without_the_separator_is_all_body() {
        check(
            "Title\nno separator\n---\n",
            expect![[r#"
                summary: None
                body: "Title\nno separator\n---\n""#]],
        );
        check(
            "one line",
            expect![[r#"
                summary: None
                body: "one line""#]],
        );
        check(
            "",
            expect![[r#"
                summary: None
                body: """#]],
        );
    }

    #[test]
    fn a_head_cut_inside_line_two_has_no_summary() {
        assert_eq!(summary("S\n---", false, 20), None);
        assert_eq!(summary("S\n---\n", false, 20), Some("S".into()));
    }

    #[test]
    fn names_stay_inside_their_folder() {
        for good in ["deploy", "a.b", "A_b-9", &"x".repeat(64)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            ".hidden",
            "a..b",
            "sp ace",
            &"x".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert_eq!(name_of("deploy.md"), Some("deploy"));
        assert_eq!(name_of("notes.txt"), None);
        assert_eq!(name_of(".md"), None);
        assert_eq!(name_of(".x.md"), None);
    }

    fn skill(name: &str, summary: Option<&str>) -> Skill {
        Skill {
            name: name.into(),
            summary: summary.map(str::to_owned),
        }
    }

    #[test]
    fn the_cwd_shadows_home_and_the_list_is_sorted() {
        let cwd = vec![
            skill("zeta", Some("cwd zeta")),
            skill("deploy", Some("cwd deploy")),
        ];
        let home = vec![skill("deploy", Some("home deploy")), skill("alpha", None)];
        let merged = merge(vec![cwd, home]);
        expect![[r#"
            [
                Skill {
                    name: "alpha",
                    summary: None,
                },
                Skill {
                    name: "deploy",
                    summary: Some(
                        "cwd deploy",
                    ),
                },
                Skill {
                    name: "zeta",
                    summary: Some(
                        "cwd zeta",
                    ),
                },
            ]
        "#]]
        .assert_debug_eq(&merged);
    }

    #[test]
    fn the_spec_lists_the_skills_in_description_and_enum() {
        let skills = [skill("alpha", None), skill("deploy", Some("Ship it"))];
        let spec = spec(Some(&skills));
        expect![[r#"
            Load a skill: instructions for a kind of task, kept as Markdown files in `~/.skills` and `<cwd>/.skills`. When the task at hand matches a skill, load it before you start and follow it.

            Available skills:
            - alpha
            - deploy: Ship it"#]]
        .assert_eq(&spec.description);
        expect![[r#"{"additionalProperties":false,"properties":{"name":{"description":"The skill to load.","enum":["alpha","deploy"],"type":"string"}},"required":["name"],"type":"object"}"#]]
        .assert_eq(&spec.input_schema.to_string());
        assert!(spec.concurrency_safe);
    }
}
