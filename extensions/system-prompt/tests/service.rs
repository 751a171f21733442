#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The service in a real host on a real SQLite file: built once and reused byte for byte,
//! rebuilt on a cwd change or after invalidation, the template persisted across restarts,
//! invalid templates refused with their line, files and git read from the environment.

mod common;

use std::path::Path;

use common::{canonical, ctx, git, show, start, try_start};
use dispatch_kernel::abi::SystemPromptError;
use dispatch_system_prompt::DEFAULT_TEMPLATE;
use expect_test::expect;
use pretty_assertions::assert_eq;
use tempfile::TempDir;

fn project(root: &TempDir, name: &str, agents: Option<&str>) -> std::path::PathBuf {
    let dir = root.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    if let Some(agents) = agents {
        std::fs::write(dir.join("AGENTS.md"), agents).unwrap();
    }
    dir
}

#[tokio::test]
async fn the_default_prompt_is_built_once_and_then_reused_byte_for_byte() {
    let root = TempDir::new().unwrap();
    let db = root.path().join("dispatch.db");
    let cwd = project(&root, "app", Some("Run `make test` before committing.\n"));
    let server = start(&db).await;

    let first = server.service.prompt(&ctx("c1", &cwd)).await.unwrap();
    assert!(first.rebuilt);
    assert_eq!(first.cwd, cwd);
    expect![[r#"
        === base (Stable) ===
        You are Dispatch, a coding agent. You work in the user's project through your tools.

        - Read the relevant code before changing it; keep changes small and in the project's style.
        - Never guess file contents, APIs or command output: check with your tools.
        - After a change, build or run the tests when you can, and say what you ran.
        - Ask before anything destructive or hard to undo (deleting files, force-pushing, dropping data).
        - Be concise: say what you did, what you found and what is left.
        === project (Project) ===
        Working directory: $DIR

        Project instructions (AGENTS.md):
        Run `make test` before committing.
        === semi-stable (SemiStable) ===
        Environment: $OS
        Model: claude-sonnet-4-5 (anthropic)
        === volatile (Volatile) ===
        Today's date: 2023-11-14 (UTC)
    "#]]
    .assert_eq(&show(&first, &cwd));

    // The environment changes, the prompt does not: it is served as stored.
    std::fs::write(cwd.join("AGENTS.md"), "Changed.").unwrap();
    let mut other = ctx("c1", &cwd);
    other.model = "gpt-5".into();
    let second = server.service.prompt(&other).await.unwrap();
    assert!(!second.rebuilt);
    assert_eq!(second.sections, first.sections);
    assert_eq!(second.records, first.records);
    assert_eq!(
        server.service.stored("c1").await.unwrap(),
        Some(dispatch_kernel::abi::BuiltPrompt {
            rebuilt: false,
            ..first.clone()
        })
    );
    assert_eq!(server.service.stored("c2").await.unwrap(), None);
    server.stop().await;

    // After a restart it comes from the database, still byte for byte.
    let server = start(&db).await;
    let third = server.service.prompt(&ctx("c1", &cwd)).await.unwrap();
    assert!(!third.rebuilt);
    assert_eq!(third.sections, first.sections);
    assert_eq!(third.records, first.records);
    server.stop().await;
}

#[tokio::test]
async fn a_cwd_change_rebuilds_with_the_new_directory_s_files() {
    let root = TempDir::new().unwrap();
    let a = project(&root, "a", Some("Rules of A."));
    let b = project(&root, "b", Some("Rules of B."));
    let server = start(&root.path().join("dispatch.db")).await;

    let first = server.service.prompt(&ctx("c1", &a)).await.unwrap();
    let rebuilt = server.service.prompt(&ctx("c1", &b)).await.unwrap();
    assert!(rebuilt.rebuilt);
    assert_eq!(rebuilt.cwd, b);
    let project_text = |p: &dispatch_kernel::abi::BuiltPrompt| {
        p.sections
            .iter()
            .find(|s| &*s.name == "project")
            .map(|s| s.text.to_string())
            .unwrap()
    };
    assert!(project_text(&first).contains("Rules of A."));
    assert!(project_text(&rebuilt).contains("Rules of B."));
    assert!(!project_text(&rebuilt).contains("Rules of A."));
    // Only the sections that depend on the cwd changed.
    let hashes = |p: &dispatch_kernel::abi::BuiltPrompt| -> Vec<(String, String)> {
        p.records
            .iter()
            .map(|r| (r.name.clone(), r.hash.clone()))
            .collect()
    };
    let (before, after) = (hashes(&first), hashes(&rebuilt));
    assert_eq!(before.len(), after.len());
    for ((name, old), (_, new)) in before.iter().zip(&after) {
        assert_eq!(old == new, name != "project", "{name}");
    }
    // The same cwd again (written with a trailing slash) is reused.
    let mut slash = b.clone().into_os_string();
    slash.push("/");
    let again = server
        .service
        .prompt(&ctx("c1", Path::new(&slash)))
        .await
        .unwrap();
    assert!(!again.rebuilt);
    assert_eq!(again.sections, rebuilt.sections);
    server.stop().await;
}

#[tokio::test]
async fn invalidation_forgets_the_stored_prompt() {
    let root = TempDir::new().unwrap();
    let db = root.path().join("dispatch.db");
    let cwd = project(&root, "app", Some("Old rules."));
    let server = start(&db).await;
    server.service.prompt(&ctx("c1", &cwd)).await.unwrap();
    std::fs::write(cwd.join("AGENTS.md"), "New rules.").unwrap();

    server.service.invalidate("c1").await.unwrap();
    server.service.invalidate("never-built").await.unwrap();
    assert_eq!(server.service.stored("c1").await.unwrap(), None);
    server.stop().await;

    // Gone from the database as well as from memory.
    let server = start(&db).await;
    assert_eq!(server.service.stored("c1").await.unwrap(), None);
    let rebuilt = server.service.prompt(&ctx("c1", &cwd)).await.unwrap();
    assert!(rebuilt.rebuilt);
    assert!(
        rebuilt
            .sections
            .iter()
            .any(|s| s.text.contains("New rules."))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_set_template_persists_across_restarts_until_reset() {
    let root = TempDir::new().unwrap();
    let db = root.path().join("dispatch.db");
    let cwd = project(&root, "app", None);
    let server = start(&db).await;
    let initial = server.service.template().await.unwrap();
    assert_eq!(
        (initial.template.as_str(), initial.is_default),
        (DEFAULT_TEMPLATE, true)
    );
    server.service.prompt(&ctx("old", &cwd)).await.unwrap();

    let custom = "Custom persona on [system:os].\n[section:volatile]\n[system:datetime]\n";
    let set = server.service.set_template(Some(custom)).await.unwrap();
    assert_eq!((set.template.as_str(), set.is_default), (custom, false));
    // A conversation built before keeps its prompt; a new one uses the new template.
    let old = server.service.prompt(&ctx("old", &cwd)).await.unwrap();
    assert!(!old.rebuilt);
    assert!(old.sections[0].text.starts_with("You are Dispatch"));
    let new = server.service.prompt(&ctx("new", &cwd)).await.unwrap();
    expect![[r#"
        === base (Stable) ===
        Custom persona on $OS.
        === volatile (Volatile) ===
        2023-11-14 22:13 UTC
    "#]]
    .assert_eq(&show(&new, &cwd));
    server.stop().await;

    let server = start(&db).await;
    let loaded = server.service.template().await.unwrap();
    assert_eq!(
        (loaded.template.as_str(), loaded.is_default),
        (custom, false)
    );
    let reset = server.service.set_template(None).await.unwrap();
    assert_eq!(
        (reset.template.as_str(), reset.is_default),
        (DEFAULT_TEMPLATE, true)
    );
    server.stop().await;

    let server = start(&db).await;
    assert!(server.service.template().await.unwrap().is_default);
    server.stop().await;
}

#[tokio::test]
async fn an_invalid_template_is_refused_with_its_line_and_the_old_one_kept() {
    let root = TempDir::new().unwrap();
    let db = root.path().join("dispatch.db");
    let server = start(&db).await;
    let good = "Good [prompt:cwd]\n";
    server.service.set_template(Some(good)).await.unwrap();

    let refused = [
        "Fine\n[if file:AGENTS.md]\nnever closed\n".to_owned(),
        "Fine\n\n[system:weather]\n".to_owned(),
        "x".repeat(dispatch_system_prompt::MAX_TEMPLATE_BYTES + 1),
    ];
    let errors: Vec<String> = refusals(&server, &refused).await;
    expect![[r#"
        invalid template: line 2: `[if file:AGENTS.md]` is never closed by an `[endif]`
        invalid template: line 3: unknown variable `system:weather` (known system variables: date, time, datetime, os, hostname)
        invalid template: the template is 262145 bytes; the limit is 262144"#]]
    .assert_eq(&errors.join("\n"));
    assert_eq!(server.service.template().await.unwrap().template, good);
    server.stop().await;

    let server = start(&db).await;
    assert_eq!(server.service.template().await.unwrap().template, good);
    server.stop().await;
}

async fn refusals(server: &common::Server, templates: &[String]) -> Vec<String> {
    let mut errors = Vec::new();
    for template in templates {
        match server.service.set_template(Some(template)).await {
            Err(err @ SystemPromptError::InvalidTemplate(_)) => errors.push(err.to_string()),
            other => panic!("expected InvalidTemplate, got {other:?}"),
        }
    }
    errors
}

#[tokio::test]
async fn missing_and_unreadable_files_render_empty() {
    let root = TempDir::new().unwrap();
    let cwd = project(&root, "app", None);
    std::fs::write(cwd.join("present.md"), "here").unwrap();
    std::fs::write(cwd.join("binary.dat"), [0u8, 159, 146, 150]).unwrap();
    let server = start(&root.path().join("dispatch.db")).await;
    server
        .service
        .set_template(Some(
            "<[file:missing.md]>\n\
             [if file:missing.md]has it[else]no missing.md[endif]\n\
             <[file:binary.dat]> <[file:present.md]> <[file:../app/present.md]>\n",
        ))
        .await
        .unwrap();
    let built = server.service.prompt(&ctx("c1", &cwd)).await.unwrap();
    expect![[r#"
        === base (Stable) ===
        <>
        no missing.md
        <> <here> <here>
    "#]]
    .assert_eq(&show(&built, &cwd));
    server.stop().await;
}

#[tokio::test]
async fn git_variables_read_a_real_repository() {
    let root = TempDir::new().unwrap();
    let repo = project(&root, "repo", None);
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("new.txt"), "x").unwrap();
    std::fs::create_dir(repo.join("sub")).unwrap();
    let server = start(&root.path().join("dispatch.db")).await;
    server
        .service
        .set_template(Some(
            "branch=[git:branch]\nroot=[git:root]\n[if git:status]status:\n[git:status][endif]\n",
        ))
        .await
        .unwrap();

    // An unborn branch still has its name; the root is found from a subdirectory.
    let built = server
        .service
        .prompt(&ctx("c1", &repo.join("sub")))
        .await
        .unwrap();
    let text = built.sections[0]
        .text
        .replace(&canonical(&repo).display().to_string(), "$REPO");
    expect![[r#"
        branch=main
        root=$REPO
        status:
        ?? new.txt"#]]
    .assert_eq(&text);

    // Detached at a commit: the short hash; a clean tree: no status.
    git(&repo, &["add", "new.txt"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    git(&repo, &["checkout", "-q", "--detach"]);
    let short = git(&repo, &["rev-parse", "--short", "HEAD"]);
    let built = server.service.prompt(&ctx("c2", &repo)).await.unwrap();
    assert_eq!(
        built.sections[0].text.lines().next().unwrap(),
        format!("branch={}", short.trim())
    );
    assert!(!built.sections[0].text.contains("status:"));

    // Outside a repository everything git renders empty.
    let plain = project(&root, "plain", None);
    let built = server.service.prompt(&ctx("c3", &plain)).await.unwrap();
    assert_eq!(&*built.sections[0].text, "branch=\nroot=");
    server.stop().await;
}

#[tokio::test]
async fn concurrent_first_turns_build_once() {
    let root = TempDir::new().unwrap();
    let cwd = project(&root, "app", None);
    let server = start(&root.path().join("dispatch.db")).await;
    let context = ctx("c1", &cwd);
    let (a, b, c) = tokio::join!(
        server.service.prompt(&context),
        server.service.prompt(&context),
        server.service.prompt(&context)
    );
    let all = [a.unwrap(), b.unwrap(), c.unwrap()];
    assert_eq!(all.iter().filter(|p| p.rebuilt).count(), 1);
    assert!(all.iter().all(|p| p.sections == all[0].sections));
    server.stop().await;
}

#[tokio::test]
async fn a_template_file_replaces_the_default_and_a_broken_one_fails_activation() {
    let root = TempDir::new().unwrap();
    let db = root.path().join("dispatch.db");
    let file = root.path().join("prompt.txt");
    std::fs::write(&file, "From the file: [prompt:model]\n").unwrap();
    let table = format!("template_file = {:?}", file.display().to_string());
    let server = try_start(&db, &table).await.unwrap();
    let template = server.service.template().await.unwrap();
    assert_eq!(
        (template.template.as_str(), template.is_default),
        ("From the file: [prompt:model]\n", true)
    );
    let built = server
        .service
        .prompt(&ctx("c1", root.path()))
        .await
        .unwrap();
    assert_eq!(&*built.sections[0].text, "From the file: claude-sonnet-4-5");
    // A set template wins over the file; resetting returns to the file.
    server.service.set_template(Some("Set.")).await.unwrap();
    let reset = server.service.set_template(None).await.unwrap();
    assert_eq!(reset.template, "From the file: [prompt:model]\n");
    server.stop().await;

    std::fs::write(&file, "ok\n[if git:branch]\n").unwrap();
    let err = try_start(&db, &table).await.err().unwrap().to_string();
    assert!(
        err.contains("line 2: `[if git:branch]` is never closed"),
        "{err}"
    );
    assert!(err.contains("prompt.txt"), "{err}");

    let missing = format!(
        "template_file = {:?}",
        root.path().join("nope.txt").display().to_string()
    );
    assert!(try_start(&db, &missing).await.is_err());
    assert!(try_start(&db, "max_file_bytes = 0").await.is_err());
    assert!(try_start(&db, "unknown = 1").await.is_err());
}
