//! The template language: parsing ([`Template::parse`], which reports every problem with
//! its line) and pure rendering from already-resolved variable values
//! ([`Template::render`]). No I/O here: `resolve` fetches the values.
//!
//! Syntax:
//! - `[type:name]` inserts a variable (see [`crate::vars`]); `[[` is a literal `[` (a `]`
//!   needs no escape). Any other `[` opens a tag that must close on the same line.
//! - `[if type:name]…[else]…[endif]`, nestable; the condition holds when the variable's
//!   value is not blank (whitespace only counts as empty). `[else]` is optional.
//! - A line holding only `[section:<tier>]` or `[section:<tier> <name>]` starts a section;
//!   tiers are `stable`, `project`, `semi-stable`, `volatile`; the name defaults to the tier
//!   and must be unique. Text before the first marker is the `stable` section `base`.
//!   A marker may not sit inside an `[if]`, nor share its line with anything else.
//! - A line holding only an `[if …]`, `[else]` or `[endif]` tag (and spaces) disappears
//!   entirely, newline included, so block conditionals leave no blank lines.
//!
//! Rendering trims each section of its surrounding blank lines and trailing whitespace,
//! drops the sections left empty and orders the rest stable → project → semi-stable →
//! volatile, keeping template order within a tier.

use std::collections::{BTreeMap, BTreeSet};

use dispatch_wire::SectionTier;

use crate::error::{Error, Result};
use crate::vars::{self, Var};

/// Largest template accepted, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 256 * 1024;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    sections: Vec<SectionAst>,
}

/// One rendered section, before ordering is applied by [`Template::render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedSection {
    pub name: String,
    pub tier: SectionTier,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SectionAst {
    tier: SectionTier,
    name: String,
    line: usize,
    /// The `base` section holding the text before the first marker.
    implicit: bool,
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Text(String),
    Var(Var),
    If {
        var: Var,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Text(String),
    Var(Var),
    If(Var),
    Else,
    Endif,
    Section {
        tier: SectionTier,
        name: Option<String>,
    },
}

impl Token {
    fn is_control(&self) -> bool {
        match self {
            Token::If(_) | Token::Else | Token::Endif | Token::Section { .. } => true,
            Token::Text(_) | Token::Var(_) => false,
        }
    }
}

fn error(line: usize, message: impl Into<String>) -> Error {
    Error::Template {
        line,
        message: message.into(),
    }
}

impl Template {
    /// Parses `source`; the error names the first problem and its 1-based line.
    pub fn parse(source: &str) -> Result<Template> {
        if source.len() > MAX_TEMPLATE_BYTES {
            return Err(Error::TooLarge {
                bytes: source.len(),
                limit: MAX_TEMPLATE_BYTES,
            });
        }
        let mut builder = Builder::default();
        for (index, raw) in source.split_inclusive('\n').enumerate() {
            let line = index + 1;
            let (content, newline) = match raw.strip_suffix('\n') {
                Some(rest) => match rest.strip_suffix('\r') {
                    Some(rest) => (rest, "\r\n"),
                    None => (rest, "\n"),
                },
                None => (raw, ""),
            };
            let tokens = lex_line(content, line)?;
            let controls = tokens.iter().filter(|t| t.is_control()).count();
            let standalone = controls == 1
                && tokens.iter().all(|t| match t {
                    Token::Text(text) => text.trim().is_empty(),
                    other => other.is_control(),
                });
            if standalone {
                for token in tokens.into_iter().filter(Token::is_control) {
                    builder.feed(token, line)?;
                }
                continue;
            }
            if tokens.iter().any(|t| matches!(t, Token::Section { .. })) {
                return Err(error(
                    line,
                    "a `[section:…]` marker must be alone on its line",
                ));
            }
            for token in tokens {
                builder.feed(token, line)?;
            }
            if !newline.is_empty() {
                builder.feed(Token::Text(newline.to_owned()), line)?;
            }
        }
        builder.finish()
    }

    /// Every variable the template uses, conditions included.
    pub fn variables(&self) -> BTreeSet<Var> {
        fn walk(nodes: &[Node], out: &mut BTreeSet<Var>) {
            for node in nodes {
                match node {
                    Node::Text(_) => {}
                    Node::Var(var) => {
                        out.insert(var.clone());
                    }
                    Node::If {
                        var,
                        then,
                        otherwise,
                    } => {
                        out.insert(var.clone());
                        walk(then, out);
                        walk(otherwise, out);
                    }
                }
            }
        }
        let mut out = BTreeSet::new();
        for section in &self.sections {
            walk(&section.nodes, &mut out);
        }
        out
    }

    /// Renders with `values` (a variable without a value renders empty): the non-empty
    /// sections, trimmed, in tier order.
    pub fn render(&self, values: &BTreeMap<Var, String>) -> Vec<RenderedSection> {
        let mut rendered: Vec<RenderedSection> = self
            .sections
            .iter()
            .filter_map(|section| {
                let mut text = String::new();
                render_nodes(&section.nodes, values, &mut text);
                let text = trim_blank_lines(&text);
                (!text.is_empty()).then(|| RenderedSection {
                    name: section.name.clone(),
                    tier: section.tier,
                    text: text.to_owned(),
                })
            })
            .collect();
        rendered.sort_by_key(|section| section.tier);
        rendered
    }
}

fn render_nodes(nodes: &[Node], values: &BTreeMap<Var, String>, out: &mut String) {
    let value = |var: &Var| values.get(var).map_or("", String::as_str);
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Var(var) => out.push_str(value(var)),
            Node::If {
                var,
                then,
                otherwise,
            } => {
                let branch = if value(var).trim().is_empty() {
                    otherwise
                } else {
                    then
                };
                render_nodes(branch, values, out);
            }
        }
    }
}

/// Drops the whitespace-only lines before the first line with text, and all trailing
/// whitespace.
fn trim_blank_lines(text: &str) -> &str {
    let text = text.trim_end();
    match text.find(|c: char| !c.is_whitespace()) {
        Some(first) => {
            let start = text[..first].rfind('\n').map_or(0, |newline| newline + 1);
            &text[start..]
        }
        None => "",
    }
}

/// Splits one line (without its newline) into text and tags.
fn lex_line(content: &str, line: usize) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut text = String::new();
    let mut rest = content;
    while let Some(open) = rest.find('[') {
        text.push_str(&rest[..open]);
        rest = &rest[open..];
        if let Some(after) = rest.strip_prefix("[[") {
            text.push('[');
            rest = after;
            continue;
        }
        let Some(close) = rest.find(']') else {
            return Err(error(
                line,
                format!(
                    "`{rest}` opens a tag that is not closed on this line (write `[[` for a \
                     literal `[`)"
                ),
            ));
        };
        if !text.is_empty() {
            tokens.push(Token::Text(std::mem::take(&mut text)));
        }
        tokens.push(parse_tag(&rest[1..close], line)?);
        rest = &rest[close + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        tokens.push(Token::Text(text));
    }
    Ok(tokens)
}

fn parse_tag(inner: &str, line: usize) -> Result<Token> {
    if inner == "else" {
        return Ok(Token::Else);
    }
    if inner == "endif" {
        return Ok(Token::Endif);
    }
    if inner == "if" {
        return Err(error(
            line,
            "`[if]` needs a variable: `[if file:AGENTS.md]`",
        ));
    }
    if let Some(condition) = inner.strip_prefix("if ") {
        return vars::parse(condition.trim())
            .map(Token::If)
            .map_err(|message| error(line, message));
    }
    if let Some(marker) = inner.strip_prefix("section:") {
        return parse_section(marker, line);
    }
    if inner.contains('[') {
        return Err(error(
            line,
            format!("`[{inner}]` holds a `[` (write `[[` for a literal `[`)"),
        ));
    }
    if !inner.contains(':') {
        return Err(error(
            line,
            format!("unknown tag `[{inner}]` (write `[[` for a literal `[`)"),
        ));
    }
    vars::parse(inner)
        .map(Token::Var)
        .map_err(|message| error(line, message))
}

fn parse_section(marker: &str, line: usize) -> Result<Token> {
    let mut words = marker.split_whitespace();
    let tier = match words.next() {
        Some("stable") => SectionTier::Stable,
        Some("project") => SectionTier::Project,
        Some("semi-stable") => SectionTier::SemiStable,
        Some("volatile") => SectionTier::Volatile,
        Some(other) => {
            return Err(error(
                line,
                format!(
                    "unknown section tier `{other}` (known: stable, project, semi-stable, \
                     volatile)"
                ),
            ));
        }
        None => return Err(error(line, "`[section:]` needs a tier")),
    };
    let name = words.next().map(str::to_owned);
    if let Some(extra) = words.next() {
        return Err(error(
            line,
            format!("unexpected `{extra}` in `[section:{marker}]` (`[section:<tier> <name>]`)"),
        ));
    }
    if let Some(name) = name.as_deref().filter(|name| {
        !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    }) {
        return Err(error(
            line,
            format!("section name `{name}` may hold only letters, digits, `-`, `_` and `.`"),
        ));
    }
    Ok(Token::Section { tier, name })
}

/// An open `[if]`.
struct Frame {
    var: Var,
    line: usize,
    then: Vec<Node>,
    /// The `[else]` branch once seen, with its line.
    otherwise: Option<(usize, Vec<Node>)>,
}

struct Builder {
    sections: Vec<SectionAst>,
    stack: Vec<Frame>,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            sections: vec![SectionAst {
                tier: SectionTier::Stable,
                name: "base".to_owned(),
                line: 1,
                implicit: true,
                nodes: Vec::new(),
            }],
            stack: Vec::new(),
        }
    }
}

impl Builder {
    fn target(&mut self) -> &mut Vec<Node> {
        if let Some(frame) = self.stack.last_mut() {
            return match &mut frame.otherwise {
                Some((_, nodes)) => nodes,
                None => &mut frame.then,
            };
        }
        if self.sections.is_empty() {
            // `sections` starts non-empty and is only emptied right before a push; recover
            // anyway.
            debug_assert!(false, "a template builder without a section");
            self.sections.push(SectionAst {
                tier: SectionTier::Stable,
                name: "base".to_owned(),
                line: 1,
                implicit: true,
                nodes: Vec::new(),
            });
        }
        let last = self.sections.len() - 1;
        &mut self.sections[last].nodes
    }

    fn push(&mut self, node: Node) {
        let target = self.target();
        if let (Node::Text(more), Some(Node::Text(text))) = (&node, target.last_mut()) {
            text.push_str(more);
            return;
        }
        target.push(node);
    }

    fn feed(&mut self, token: Token, line: usize) -> Result<()> {
        match token {
            Token::Text(text) => self.push(Node::Text(text)),
            Token::Var(var) => self.push(Node::Var(var)),
            Token::If(var) => self.stack.push(Frame {
                var,
                line,
                then: Vec::new(),
                otherwise: None,
            }),
            Token::Else => match self.stack.last_mut() {
                None => return Err(error(line, "`[else]` without an open `[if]`")),
                Some(frame) => match &frame.otherwise {
                    Some((else_line, _)) => {
                        return Err(error(
                            line,
                            format!(
                                "a second `[else]` for the `[if {}]` of line {} (the first is \
                                 on line {else_line})",
                                frame.var, frame.line
                            ),
                        ));
                    }
                    None => frame.otherwise = Some((line, Vec::new())),
                },
            },
            Token::Endif => {
                let Some(frame) = self.stack.pop() else {
                    return Err(error(line, "`[endif]` without an open `[if]`"));
                };
                self.push(Node::If {
                    var: frame.var,
                    then: frame.then,
                    otherwise: frame.otherwise.map(|(_, nodes)| nodes).unwrap_or_default(),
                });
            }
            Token::Section { tier, name } => {
                if let Some(frame) = self.stack.last() {
                    return Err(error(
                        line,
                        format!(
                            "a `[section:…]` marker inside the `[if {}]` of line {}",
                            frame.var, frame.line
                        ),
                    ));
                }
                let blank_base = match self.sections.as_slice() {
                    [base] => {
                        base.implicit
                            && base
                                .nodes
                                .iter()
                                .all(|n| matches!(n, Node::Text(t) if t.trim().is_empty()))
                    }
                    _ => false,
                };
                if blank_base {
                    self.sections.clear();
                }
                let name = name.unwrap_or_else(|| tier_name(tier).to_owned());
                if let Some(earlier) = self.sections.iter().find(|s| s.name == name) {
                    return Err(error(
                        line,
                        format!(
                            "section `{name}` is already defined on line {} (name it: \
                             `[section:{} <name>]`)",
                            earlier.line,
                            tier_name(tier)
                        ),
                    ));
                }
                self.sections.push(SectionAst {
                    tier,
                    name,
                    line,
                    implicit: false,
                    nodes: Vec::new(),
                });
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Template> {
        if let Some(frame) = self.stack.last() {
            return Err(error(
                frame.line,
                format!("`[if {}]` is never closed by an `[endif]`", frame.var),
            ));
        }
        Ok(Template {
            sections: self.sections,
        })
    }
}

/// The tier as written in a marker.
pub fn tier_name(tier: SectionTier) -> &'static str {
    match tier {
        SectionTier::Stable => "stable",
        SectionTier::Project => "project",
        SectionTier::SemiStable => "semi-stable",
        SectionTier::Volatile => "volatile",
        SectionTier::Unknown => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    /// Parses `template`, renders it with `vars` (`name=value` pairs, `\n` in a value
    /// written as `\n`) and compares the sections (or the error) with `expected`.
    #[track_caller]
    fn check(template: &str, vars: &[(&str, &str)], expected: Expect) {
        let actual = match Template::parse(template) {
            Err(err) => format!("error: {err}"),
            Ok(parsed) => {
                let values: BTreeMap<Var, String> = vars
                    .iter()
                    .map(|(name, value)| {
                        let var = vars::parse(name).unwrap_or_else(|err| panic!("{err}"));
                        (var, value.replace("\\n", "\n"))
                    })
                    .collect();
                parsed
                    .render(&values)
                    .iter()
                    .map(|s| format!("=== {} ({}) ===\n{}\n", s.name, tier_name(s.tier), s.text))
                    .collect()
            }
        };
        expected.assert_eq(&actual);
    }

    #[test]
    fn variables_render_their_values_and_missing_ones_render_empty() {
        check(
            "Today is [system:date] on [system:os].\nModel: [prompt:model]; branch: <[git:branch]>",
            &[("system:date", "2025-01-31"), ("system:os", "linux x86_64")],
            expect![[r#"
                === base (stable) ===
                Today is 2025-01-31 on linux x86_64.
                Model: ; branch: <>
            "#]],
        );
    }

    #[test]
    fn file_variables_take_any_path() {
        check(
            "[file:docs/My Notes.md]|[file:/etc/motd]",
            &[
                ("file:docs/My Notes.md", "notes"),
                ("file:/etc/motd", "motd"),
            ],
            expect![[r#"
                === base (stable) ===
                notes|motd
            "#]],
        );
    }

    #[test]
    fn escapes_give_a_literal_bracket() {
        check(
            "[[system:date] is [system:date]; a list: [[x] done, [[[[ ]",
            &[("system:date", "D")],
            expect![[r#"
                === base (stable) ===
                [system:date] is D; a list: [x] done, [[ ]
            "#]],
        );
    }

    #[test]
    fn inline_conditionals_pick_a_branch_by_blankness() {
        let template = "A[if git:branch] on [git:branch][else] (no git)[endif]B";
        check(
            template,
            &[("git:branch", "main")],
            expect![[r#"
                === base (stable) ===
                A on mainB
            "#]],
        );
        check(
            template,
            &[("git:branch", " \\n ")],
            expect![[r#"
                === base (stable) ===
                A (no git)B
            "#]],
        );
    }

    #[test]
    fn block_conditionals_nest_and_leave_no_blank_lines() {
        let template = "\
Intro
[if file:AGENTS.md]
Project instructions:
[file:AGENTS.md]
[else]
  [if file:CLAUDE.md]
Claude instructions:
[file:CLAUDE.md]
  [else]
No instructions.
  [endif]
[endif]
Outro
";
        check(
            template,
            &[("file:AGENTS.md", "Use tabs.")],
            expect![[r#"
                === base (stable) ===
                Intro
                Project instructions:
                Use tabs.
                Outro
            "#]],
        );
        check(
            template,
            &[("file:CLAUDE.md", "Use spaces.")],
            expect![[r#"
                === base (stable) ===
                Intro
                Claude instructions:
                Use spaces.
                Outro
            "#]],
        );
        check(
            template,
            &[],
            expect![[r#"
                === base (stable) ===
                Intro
                No instructions.
                Outro
            "#]],
        );
    }

    #[test]
    fn sections_are_ordered_by_tier_then_template_order_and_empty_ones_dropped() {
        check(
            "\
You are an agent.

[section:volatile]
Date: [system:date]
[section:semi-stable]
Model: [prompt:model]
[section:project]

cwd: [prompt:cwd]

[section:stable rules]
Be brief.
[section:project agents]
[if file:AGENTS.md][file:AGENTS.md][endif]
[section:semi-stable git]
[git:status]
",
            &[
                ("system:date", "2025-01-31"),
                ("prompt:model", "m1"),
                ("prompt:cwd", "/src"),
                ("git:status", " M a.rs\\n?? b.rs"),
            ],
            expect![[r#"
                === base (stable) ===
                You are an agent.
                === rules (stable) ===
                Be brief.
                === project (project) ===
                cwd: /src
                === semi-stable (semi-stable) ===
                Model: m1
                === git (semi-stable) ===
                 M a.rs
                ?? b.rs
                === volatile (volatile) ===
                Date: 2025-01-31
            "#]],
        );
    }

    #[test]
    fn blank_text_before_the_first_marker_makes_no_base_section() {
        check(
            "\n  \n[section:stable base]\nPersona\n[section:stable]\nRules\n",
            &[],
            expect![[r#"
                === base (stable) ===
                Persona
                === stable (stable) ===
                Rules
            "#]],
        );
    }

    #[test]
    fn sections_keep_inner_indentation_and_blank_lines() {
        check(
            "[section:project]\n\n\n    indented\n\n  second\n\n\n",
            &[],
            expect![[r#"
                === project (project) ===
                    indented

                  second
            "#]],
        );
    }

    #[test]
    fn an_empty_template_renders_no_sections() {
        check("", &[], expect![[""]]);
        check("[if git:root]x[endif]\n\n", &[], expect![[""]]);
    }

    #[test]
    fn crlf_lines_keep_their_endings_and_standalone_tags_vanish() {
        let parsed = Template::parse("a\r\n[if git:root]\r\nb\r\n[endif]\r\nc\r\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let values = BTreeMap::from([(Var::Named(vars::Named::GitRoot), "/r".to_owned())]);
        assert_eq!(parsed.render(&values)[0].text, "a\r\nb\r\nc");
    }

    #[test]
    fn variables_lists_every_use_once() {
        let parsed = Template::parse(
            "[system:date][if file:A.md][file:A.md][else][git:branch][endif]\n[section:volatile]\n[system:date]",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = parsed.variables().iter().map(Var::to_string).collect();
        expect![["system:date git:branch file:A.md"]].assert_eq(&names.join(" "));
    }

    #[test]
    fn errors_name_their_line() {
        let cases = [
            "ok\n[system:dat]",
            "[prompt:cwd] [env:HOME]",
            "a\nb\n[if file:A.md]\nopen",
            "[if file:A.md]\nx\n[else]\ny\n[else]\n[endif]",
            "x\n[endif]",
            "[else]",
            "[if]",
            "[if nothing]x[endif]",
            "a [link](url)",
            "an unclosed [system:date",
            "[a [b]",
            "text [section:project]",
            "[if git:root]\n[section:project]\n[endif]",
            "[section:project]\nx\n[section:project]",
            "[section:semistable]",
            "[section:]",
            "[section:stable a b]",
            "[section:stable a/b]",
            "[file:]",
        ];
        let errors: Vec<String> = cases
            .iter()
            .map(|case| match Template::parse(case) {
                Ok(_) => format!("{case:?} parsed"),
                Err(err) => err.to_string(),
            })
            .collect();
        expect![[r#"
            line 2: unknown variable `system:dat` (known system variables: date, time, datetime, os, hostname)
            line 1: unknown variable type `env` in `[env:HOME]` (known: system, prompt, git, file; write `[[` for a literal `[`)
            line 3: `[if file:A.md]` is never closed by an `[endif]`
            line 5: a second `[else]` for the `[if file:A.md]` of line 1 (the first is on line 3)
            line 2: `[endif]` without an open `[if]`
            line 1: `[else]` without an open `[if]`
            line 1: `[if]` needs a variable: `[if file:AGENTS.md]`
            line 1: `[nothing]` is not a variable (`[type:name]`)
            line 1: unknown tag `[link]` (write `[[` for a literal `[`)
            line 1: `[system:date` opens a tag that is not closed on this line (write `[[` for a literal `[`)
            line 1: `[a [b]` holds a `[` (write `[[` for a literal `[`)
            line 1: a `[section:…]` marker must be alone on its line
            line 2: a `[section:…]` marker inside the `[if git:root]` of line 1
            line 3: section `project` is already defined on line 1 (name it: `[section:project <name>]`)
            line 1: unknown section tier `semistable` (known: stable, project, semi-stable, volatile)
            line 1: `[section:]` needs a tier
            line 1: unexpected `b` in `[section:stable a b]` (`[section:<tier> <name>]`)
            line 1: section name `a/b` may hold only letters, digits, `-`, `_` and `.`
            line 1: `[file:]` needs a path"#]]
        .assert_eq(&errors.join("\n"));
    }

    #[test]
    fn a_template_over_the_limit_is_refused() {
        let big = "x".repeat(MAX_TEMPLATE_BYTES + 1);
        expect![["the template is 262145 bytes; the limit is 262144"]].assert_eq(
            &Template::parse(&big)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
        );
        assert!(Template::parse(&"x".repeat(MAX_TEMPLATE_BYTES)).is_ok());
    }

    #[test]
    fn the_default_template_parses_and_renders() {
        check(
            crate::DEFAULT_TEMPLATE,
            &[
                ("prompt:cwd", "/home/me/app"),
                ("git:root", "/home/me/app"),
                ("file:AGENTS.md", "Run `make test` before committing."),
                ("system:os", "linux x86_64"),
                ("prompt:model", "claude-sonnet-4-5"),
                ("prompt:provider", "anthropic"),
                ("git:branch", "main"),
                ("system:date", "2025-01-31"),
            ],
            expect![[r#"
                === base (stable) ===
                You are Dispatch, a coding agent. You work in the user's project through your tools.

                - Read the relevant code before changing it; keep changes small and in the project's style.
                - Never guess file contents, APIs or command output: check with your tools.
                - After a change, build or run the tests when you can, and say what you ran.
                - Ask before anything destructive or hard to undo (deleting files, force-pushing, dropping data).
                - Be concise: say what you did, what you found and what is left.
                === project (project) ===
                Working directory: /home/me/app
                Repository root: /home/me/app

                Project instructions (AGENTS.md):
                Run `make test` before committing.
                === semi-stable (semi-stable) ===
                Environment: linux x86_64
                Model: claude-sonnet-4-5 (anthropic)
                Git branch: main
                === volatile (volatile) ===
                Today's date: 2025-01-31 (UTC)
            "#]],
        );
        check(
            crate::DEFAULT_TEMPLATE,
            &[
                ("prompt:cwd", "/tmp"),
                ("file:CLAUDE.md", "Claude notes."),
                ("system:os", "linux x86_64"),
                ("prompt:model", "m"),
                ("prompt:provider", "p"),
                ("system:date", "2025-01-31"),
            ],
            expect![[r#"
                === base (stable) ===
                You are Dispatch, a coding agent. You work in the user's project through your tools.

                - Read the relevant code before changing it; keep changes small and in the project's style.
                - Never guess file contents, APIs or command output: check with your tools.
                - After a change, build or run the tests when you can, and say what you ran.
                - Ask before anything destructive or hard to undo (deleting files, force-pushing, dropping data).
                - Be concise: say what you did, what you found and what is left.
                === project (project) ===
                Working directory: /tmp

                Project instructions (CLAUDE.md):
                Claude notes.
                === semi-stable (semi-stable) ===
                Environment: linux x86_64
                Model: m (p)
                === volatile (volatile) ===
                Today's date: 2025-01-31 (UTC)
            "#]],
        );
    }
}
