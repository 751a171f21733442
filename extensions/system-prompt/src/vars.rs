//! The variables a template may use: what they are called, what they mean ([`catalog`]) and
//! how a `[type:name]` tag becomes a [`Var`]. Their values come from `resolve`.

use dispatch_wire::SystemPromptVariable;

/// A variable with a fixed name (everything but `file:<path>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Named {
    Date,
    Time,
    Datetime,
    Os,
    Hostname,
    Cwd,
    Model,
    Provider,
    ConversationId,
    Workspace,
    GitBranch,
    GitStatus,
    GitRoot,
}

impl Named {
    /// Every named variable, in catalog order.
    pub const ALL: [Named; 13] = [
        Named::Date,
        Named::Time,
        Named::Datetime,
        Named::Os,
        Named::Hostname,
        Named::Cwd,
        Named::Model,
        Named::Provider,
        Named::ConversationId,
        Named::Workspace,
        Named::GitBranch,
        Named::GitStatus,
        Named::GitRoot,
    ];

    /// As written in a template, without brackets.
    pub fn name(self) -> &'static str {
        match self {
            Named::Date => "system:date",
            Named::Time => "system:time",
            Named::Datetime => "system:datetime",
            Named::Os => "system:os",
            Named::Hostname => "system:hostname",
            Named::Cwd => "prompt:cwd",
            Named::Model => "prompt:model",
            Named::Provider => "prompt:provider",
            Named::ConversationId => "prompt:conversation_id",
            Named::Workspace => "prompt:workspace",
            Named::GitBranch => "git:branch",
            Named::GitStatus => "git:status",
            Named::GitRoot => "git:root",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Named::Date => "The date the prompt is built, in UTC: `2025-01-31`.",
            Named::Time => "The time the prompt is built, in UTC: `14:05 UTC`.",
            Named::Datetime => "The date and time the prompt is built: `2025-01-31 14:05 UTC`.",
            Named::Os => "The server's operating system and CPU architecture: `linux x86_64`.",
            Named::Hostname => "The server's host name.",
            Named::Cwd => "The turn's working directory.",
            Named::Model => "The model id the prompt is built for: `claude-sonnet-4-5`.",
            Named::Provider => "The provider instance serving the model.",
            Named::ConversationId => "The conversation's id.",
            Named::Workspace => "The conversation's workspace id.",
            Named::GitBranch => {
                "The git branch checked out in the working directory (the short commit hash \
                 when detached); empty outside a repository."
            }
            Named::GitStatus => {
                "`git status --porcelain` of the working directory, at most 50 lines; empty \
                 when clean or outside a repository."
            }
            Named::GitRoot => {
                "The top directory of the git repository holding the working directory; \
                 empty outside a repository."
            }
        }
    }
}

/// One variable of a template.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Var {
    Named(Named),
    /// `file:<path>`: the path as written, relative to the cwd or absolute.
    File(String),
}

impl std::fmt::Display for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Var::Named(named) => f.write_str(named.name()),
            Var::File(path) => write!(f, "file:{path}"),
        }
    }
}

const TYPES: &str = "system, prompt, git, file";

/// Parses `type:name` (a tag without its brackets); the error says what is wrong.
pub fn parse(tag: &str) -> Result<Var, String> {
    let Some((kind, name)) = tag.split_once(':') else {
        return Err(format!("`[{tag}]` is not a variable (`[type:name]`)"));
    };
    match kind {
        "file" if name.is_empty() => Err("`[file:]` needs a path".to_owned()),
        "file" => Ok(Var::File(name.to_owned())),
        "system" | "prompt" | "git" => Named::ALL
            .into_iter()
            .find(|named| named.name() == tag)
            .map(Var::Named)
            .ok_or_else(|| {
                let known: Vec<&str> = Named::ALL
                    .iter()
                    .filter_map(|named| named.name().strip_prefix(kind)?.strip_prefix(':'))
                    .collect();
                format!(
                    "unknown variable `{tag}` (known {kind} variables: {})",
                    known.join(", ")
                )
            }),
        _ => Err(format!(
            "unknown variable type `{kind}` in `[{tag}]` (known: {TYPES}; write `[[` for a \
             literal `[`)"
        )),
    }
}

/// Every variable a template may use, `file:<path>` once as a pattern.
pub fn catalog(max_file_bytes: usize) -> Vec<SystemPromptVariable> {
    let mut variables: Vec<SystemPromptVariable> = Named::ALL
        .into_iter()
        .map(|named| SystemPromptVariable {
            name: named.name().to_owned(),
            description: named.description().to_owned(),
        })
        .collect();
    variables.push(SystemPromptVariable {
        name: "file:<path>".to_owned(),
        description: format!(
            "The contents of a text file, the path relative to the working directory or \
             absolute; cut after {max_file_bytes} bytes with a note; empty when missing, \
             unreadable, not a regular file or binary."
        ),
    });
    variables
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    #[test]
    fn every_named_variable_parses_back_from_its_name() {
        for named in Named::ALL {
            assert_eq!(parse(named.name()), Ok(Var::Named(named)));
            assert_eq!(Var::Named(named).to_string(), named.name());
        }
        assert_eq!(parse("file:a/b c.md"), Ok(Var::File("a/b c.md".into())));
    }

    #[test]
    fn errors_name_what_is_known() {
        let errors: Vec<String> = ["system:dat", "git:log", "env:HOME", "file:", "nothing"]
            .into_iter()
            .map(|tag| parse(tag).err().unwrap_or_default())
            .collect();
        expect![[r#"
            unknown variable `system:dat` (known system variables: date, time, datetime, os, hostname)
            unknown variable `git:log` (known git variables: branch, status, root)
            unknown variable type `env` in `[env:HOME]` (known: system, prompt, git, file; write `[[` for a literal `[`)
            `[file:]` needs a path
            `[nothing]` is not a variable (`[type:name]`)"#]]
        .assert_eq(&errors.join("\n"));
    }

    #[test]
    fn the_catalog_lists_file_once_as_a_pattern() {
        let names: Vec<String> = catalog(65536).into_iter().map(|v| v.name).collect();
        expect![[r#"system:date system:time system:datetime system:os system:hostname prompt:cwd prompt:model prompt:provider prompt:conversation_id prompt:workspace git:branch git:status git:root file:<path>"#]]
        .assert_eq(&names.join(" "));
    }
}
