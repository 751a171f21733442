//! Variable values for one render: the clock, the prompt context, files (`tokio::fs`) and
//! `git` (`tokio::process`). Nothing here fails: whatever cannot be read (a missing file, a
//! missing `git`, a directory outside a repository, a command past its timeout) resolves to
//! the empty string, and every value is trimmed of trailing whitespace.
//!
//! `git` runs as `git --no-pager -C <cwd> -c core.fsmonitor=false …` with `GIT_OPTIONAL_LOCKS=0`
//! and without the caller's `GIT_DIR`/`GIT_WORK_TREE`/`GIT_INDEX_FILE`, stdin closed, and is
//! killed after the configured timeout. `core.fsmonitor` is forced off because a repository's
//! own config could otherwise make `git status` run a program of its choosing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dispatch_kernel::abi::{Clock, PromptContext};
use tokio::io::AsyncReadExt;

use crate::vars::{Named, Var};

/// Most lines `git:status` keeps.
pub const GIT_STATUS_LINES: usize = 50;

pub(crate) struct Resolver {
    clock: Option<Arc<dyn Clock>>,
    max_file_bytes: usize,
    timeout: Duration,
}

impl Resolver {
    pub fn new(clock: Option<Arc<dyn Clock>>, max_file_bytes: usize, timeout: Duration) -> Self {
        Resolver {
            clock,
            max_file_bytes,
            timeout,
        }
    }

    /// The value of each of `vars` for `ctx`, resolved concurrently; the time variables
    /// share one clock reading.
    pub async fn resolve(
        &self,
        vars: &BTreeSet<Var>,
        ctx: &PromptContext,
    ) -> BTreeMap<Var, String> {
        let now_ms = match &self.clock {
            Some(clock) => clock.unix_ms(),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        };
        let values = vars.iter().map(|var| async move {
            let value = self.value(var, ctx, now_ms).await;
            (var.clone(), value.trim_end().to_owned())
        });
        futures::future::join_all(values)
            .await
            .into_iter()
            .collect()
    }

    async fn value(&self, var: &Var, ctx: &PromptContext, now_ms: i64) -> String {
        let named = match var {
            Var::File(path) => return self.read_file(&ctx.cwd.join(path)).await,
            Var::Named(named) => *named,
        };
        let utc = Utc::from_unix_ms(now_ms);
        match named {
            Named::Date => utc.date(),
            Named::Time => format!("{} UTC", utc.time()),
            Named::Datetime => format!("{} {} UTC", utc.date(), utc.time()),
            Named::Os => format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            Named::Hostname => self.hostname().await,
            Named::Cwd => ctx.cwd.display().to_string(),
            Named::Model => ctx.model.clone(),
            Named::Provider => ctx.provider.clone(),
            Named::ConversationId => ctx.conversation_id.to_string(),
            Named::Workspace => ctx.workspace_id.clone(),
            Named::GitBranch => match self
                .git(&ctx.cwd, &["symbolic-ref", "--short", "-q", "HEAD"])
                .await
            {
                Some(branch) => branch,
                // Detached: the commit instead.
                None => self
                    .git(&ctx.cwd, &["rev-parse", "--short", "HEAD"])
                    .await
                    .unwrap_or_default(),
            },
            Named::GitStatus => self
                .git(
                    &ctx.cwd,
                    &["status", "--porcelain=v1", "--untracked-files=normal"],
                )
                .await
                .map(|status| cap_lines(&status, GIT_STATUS_LINES))
                .unwrap_or_default(),
            Named::GitRoot => self
                .git(&ctx.cwd, &["rev-parse", "--show-toplevel"])
                .await
                .unwrap_or_default(),
        }
    }

    /// The stdout of a successful `git` run in `cwd`, or `None`.
    async fn git(&self, cwd: &Path, args: &[&str]) -> Option<String> {
        let mut command = tokio::process::Command::new("git");
        command
            .arg("--no-pager")
            .arg("-C")
            .arg(cwd)
            .args(["-c", "core.fsmonitor=false"])
            .args(args)
            .env("GIT_OPTIONAL_LOCKS", "0")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE");
        self.run(command).await
    }

    /// The stdout of a successful run, or `None` (not found, failed, timed out, not UTF-8).
    async fn run(&self, mut command: tokio::process::Command) -> Option<String> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        match tokio::time::timeout(self.timeout, command.output()).await {
            Ok(Ok(output)) if output.status.success() => String::from_utf8(output.stdout).ok(),
            Ok(Ok(_)) => None,
            Ok(Err(err)) => {
                tracing::debug!(error = %err, command = ?command.as_std().get_program(), "Cannot run a command; its variable renders empty");
                None
            }
            Err(_) => {
                tracing::warn!(
                    command = ?command.as_std().get_program(),
                    timeout_ms = self.timeout.as_millis(),
                    "Command timed out; its variable renders empty"
                );
                None
            }
        }
    }

    async fn hostname(&self) -> String {
        for path in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
            if let Ok(name) = tokio::fs::read_to_string(path).await {
                let name = name.trim();
                if !name.is_empty() {
                    return name.to_owned();
                }
            }
        }
        self.run(tokio::process::Command::new("hostname"))
            .await
            .unwrap_or_default()
    }

    /// A text file's contents, cut after `max_file_bytes` with a note; empty when it is
    /// missing, unreadable, not a regular file, binary (a NUL byte) or not UTF-8.
    async fn read_file(&self, path: &Path) -> String {
        let max = self.max_file_bytes;
        let read = async {
            let metadata = tokio::fs::metadata(path).await.ok()?;
            if !metadata.is_file() {
                return None;
            }
            let file = tokio::fs::File::open(path).await.ok()?;
            let mut bytes = Vec::new();
            let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
            file.take(limit).read_to_end(&mut bytes).await.ok()?;
            Some((bytes, metadata.len()))
        };
        let Ok(Some((mut bytes, total))) = tokio::time::timeout(self.timeout, read).await else {
            return String::new();
        };
        let truncated = bytes.len() > max;
        bytes.truncate(max);
        if bytes.contains(&0) {
            return String::new();
        }
        let mut text = match String::from_utf8(bytes) {
            Ok(text) => text,
            // Cut inside a character: keep the whole ones.
            Err(err) if truncated && err.utf8_error().error_len().is_none() => {
                let valid = err.utf8_error().valid_up_to();
                let mut bytes = err.into_bytes();
                bytes.truncate(valid);
                String::from_utf8(bytes).unwrap_or_default()
            }
            Err(_) => return String::new(),
        };
        if let Some(rest) = text.strip_prefix('\u{feff}') {
            text = rest.to_owned();
        }
        if truncated {
            let shown = text.trim_end().len();
            text.truncate(shown);
            text.push_str(&format!(
                "\n[… cut: the first {shown} of {total} bytes of {} are shown]",
                path.display()
            ));
        }
        text
    }
}

/// `text` with at most `max` lines, then a note of how many were left out.
fn cap_lines(text: &str, max: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= max {
        return text.to_owned();
    }
    format!(
        "{}\n… and {} more",
        lines[..max].join("\n"),
        lines.len() - max
    )
}

/// A UTC calendar date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Utc {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
}

impl Utc {
    /// Howard Hinnant's `civil_from_days`, on the proleptic Gregorian calendar.
    fn from_unix_ms(ms: i64) -> Utc {
        let secs = ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let second_of_day = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Utc {
            year,
            month,
            day,
            hour: second_of_day / 3600,
            minute: second_of_day % 3600 / 60,
        }
    }

    fn date(self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    fn time(self) -> String {
        format!("{:02}:{:02}", self.hour, self.minute)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::PathBuf;

    use expect_test::expect;

    use super::*;

    #[test]
    fn unix_ms_become_utc_dates() {
        let render = |ms: i64| {
            let utc = Utc::from_unix_ms(ms);
            format!("{} {}", utc.date(), utc.time())
        };
        let cases: Vec<String> = [
            0,
            1_700_000_000_000,
            951_782_400_000 - 1, // 2000-02-29 00:00 minus a millisecond
            951_782_400_000,
            4_107_542_400_000, // 2100-03-01
            -1,
        ]
        .into_iter()
        .map(render)
        .collect();
        expect![[r#"
            1970-01-01 00:00
            2023-11-14 22:13
            2000-02-28 23:59
            2000-02-29 00:00
            2100-03-01 00:00
            1969-12-31 23:59"#]]
        .assert_eq(&cases.join("\n"));
    }

    #[test]
    fn status_is_capped_with_a_note() {
        assert_eq!(cap_lines("a\nb", 2), "a\nb");
        assert_eq!(cap_lines("a\nb\nc\nd", 2), "a\nb\n… and 2 more");
    }

    fn ctx(cwd: PathBuf) -> PromptContext {
        PromptContext {
            conversation_id: "c1".into(),
            cwd,
            model: "m1".into(),
            provider: "p1".into(),
            workspace_id: "default".into(),
        }
    }

    struct FixedClock;

    impl Clock for FixedClock {
        fn monotonic(&self) -> Duration {
            Duration::ZERO
        }
        fn unix_ms(&self) -> i64 {
            1_700_000_000_000
        }
    }

    async fn resolve(resolver: &Resolver, cwd: &Path, names: &[&str]) -> String {
        let vars: BTreeSet<Var> = names
            .iter()
            .map(|name| crate::vars::parse(name).unwrap())
            .collect();
        let values = resolver.resolve(&vars, &ctx(cwd.to_path_buf())).await;
        names
            .iter()
            .map(|name| {
                let value = &values[&crate::vars::parse(name).unwrap()];
                format!("{name}={value:?}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test]
    async fn context_and_clock_variables() {
        let dir = tempfile::tempdir().unwrap();
        let resolver = Resolver::new(Some(Arc::new(FixedClock)), 100, Duration::from_secs(2));
        let names = [
            "system:date",
            "system:time",
            "system:datetime",
            "prompt:model",
            "prompt:provider",
            "prompt:conversation_id",
            "prompt:workspace",
        ];
        expect![[r#"
            system:date="2023-11-14"
            system:time="22:13 UTC"
            system:datetime="2023-11-14 22:13 UTC"
            prompt:model="m1"
            prompt:provider="p1"
            prompt:conversation_id="c1"
            prompt:workspace="default""#]]
        .assert_eq(&resolve(&resolver, dir.path(), &names).await);
        let os = resolve(&resolver, dir.path(), &["system:os", "system:hostname"]).await;
        assert!(
            os.starts_with(&format!("system:os=\"{} ", std::env::consts::OS)),
            "{os}"
        );
        assert!(!os.ends_with("system:hostname=\"\""), "{os}");
    }

    #[tokio::test]
    async fn files_are_read_relative_or_absolute_capped_and_text_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("short.md"), "\u{feff}hello\n\n").unwrap();
        std::fs::write(root.join("long.md"), "é".repeat(30)).unwrap();
        std::fs::write(root.join("binary.bin"), b"ab\0cd").unwrap();
        std::fs::write(root.join("latin1.txt"), b"caf\xe9").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        let absolute = root.join("short.md");
        let resolver = Resolver::new(None, 11, Duration::from_secs(2));
        let names = [
            "file:short.md",
            &format!("file:{}", absolute.display()),
            "file:long.md",
            "file:binary.bin",
            "file:latin1.txt",
            "file:missing.md",
            "file:sub",
        ];
        let rendered = resolve(&resolver, root, &names)
            .await
            .replace(&root.display().to_string(), "$DIR");
        expect![[r#"
            file:short.md="hello"
            file:$DIR/short.md="hello"
            file:long.md="ééééé\n[… cut: the first 10 of 60 bytes of $DIR/long.md are shown]"
            file:binary.bin=""
            file:latin1.txt=""
            file:missing.md=""
            file:sub="""#]]
        .assert_eq(&rendered);
    }

    #[tokio::test]
    async fn git_variables_are_empty_outside_a_repository_and_for_a_missing_cwd() {
        let dir = tempfile::tempdir().unwrap();
        let resolver = Resolver::new(None, 100, Duration::from_secs(2));
        let names = ["git:branch", "git:status", "git:root"];
        expect![[r#"
            git:branch=""
            git:status=""
            git:root="""#]]
        .assert_eq(&resolve(&resolver, dir.path(), &names).await);
        expect![[r#"
            git:branch=""
            git:status=""
            git:root="""#]]
        .assert_eq(&resolve(&resolver, &dir.path().join("nope"), &names).await);
    }
}
