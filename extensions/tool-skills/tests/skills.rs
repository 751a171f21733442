#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The extension in a host (compliance first) over the real exec backend (the local
//! backend of `dispatch-exec-backend`, home and cwd in temporary directories; see `common`):
//! the tools filter's listing, shadowing, removal and byte stability; live loading; and
//! containment (bad names, symlinks leaving a skill folder).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use dispatch_kernel::abi::{TOOLS_FILTER, Tool, ToolError, ToolsFilterCtx};
use dispatch_kernel::host::{Host, HostConfig};
use dispatch_test_support::{
    FakeTool, ToolCompliance, assert_extension_compliance, assert_tool_compliance,
};
use dispatch_tool_skills::ToolSkillsExtension;
use expect_test::{Expect, expect};
use pretty_assertions::assert_eq;
use serde_json::json;

use common::{ExecExtension, World};

/// A running host: the extension over the world's backend, `config` as its table.
struct Server {
    host: Host,
}

impl Server {
    async fn start(world: &World, config: &str) -> Server {
        let mut extensions = BTreeMap::new();
        extensions.insert("tool-skills".to_owned(), toml::from_str(config).unwrap());
        let mut host = Host::new(
            vec![
                Arc::new(ToolSkillsExtension),
                Arc::new(ExecExtension {
                    home: world.home.path().to_path_buf(),
                }),
            ],
            HostConfig {
                extensions,
                ..HostConfig::default()
            },
        )
        .unwrap();
        host.activate().await.unwrap();
        Server { host }
    }

    /// The registered `load_skill` (the one before any filter).
    fn base(&self) -> Arc<dyn Tool> {
        self.host
            .catalog()
            .tools()
            .into_iter()
            .find(|t| t.spec().name == "load_skill")
            .unwrap()
    }

    /// The turn's tool set: `other` plus the registered `load_skill`, through the filter.
    async fn turn_tools(&self, ctx: &ToolsFilterCtx) -> Vec<Arc<dyn Tool>> {
        let other: Arc<dyn Tool> = FakeTool::reply("other", "ok").arc();
        let tools = vec![other, self.base()];
        self.host.filters().apply(&TOOLS_FILTER, tools, ctx).await
    }

    /// The turn's `load_skill`, if the filter left one.
    async fn turn_tool(&self, ctx: &ToolsFilterCtx) -> Option<Arc<dyn Tool>> {
        let tools = self.turn_tools(ctx).await;
        assert_eq!(tools[0].spec().name, "other", "other tools are untouched");
        tools.into_iter().find(|t| t.spec().name == "load_skill")
    }

    async fn stop(mut self) {
        self.host.deactivate().await;
    }
}

/// The spec of the turn's `load_skill`: description, then the schema as sent.
fn show(tool: Option<&Arc<dyn Tool>>) -> String {
    match tool {
        None => "(no load_skill)".into(),
        Some(tool) => format!(
            "{}\n\n{}",
            tool.spec().description,
            tool.spec().input_schema
        ),
    }
}

/// What the model reads from a `load_skill` call.
async fn load(tool: &dyn Tool, world: &World, name: &str) -> String {
    match tool.call(json!({ "name": name }), world.tool_ctx()).await {
        Ok(output) => output.content,
        Err(ToolError::Model(message)) => format!("model error: {message}"),
        Err(err) => format!("{err:?}"),
    }
}

#[track_caller]
fn check(actual: &str, world: &World, expected: Expect) {
    let actual = actual
        .replace(&world.home.path().display().to_string(), "$HOME")
        .replace(&world.cwd.path().display().to_string(), "$CWD");
    expected.assert_eq(&actual);
}

#[test]
fn is_compliant() {
    let world = World::new();
    assert_extension_compliance(
        Arc::new(ToolSkillsExtension),
        env!("CARGO_MANIFEST_DIR"),
        vec![Arc::new(ExecExtension {
            home: world.home.path().to_path_buf(),
        })],
        HostConfig::default(),
    );
}

#[tokio::test]
async fn the_tool_is_compliant() {
    let world = World::new();
    world.cwd_skill(
        "deploy.md",
        &format!("Deploy\n---\n{}", "x".repeat(100_000)),
    );
    let server = Server::start(&world, "").await;
    let tool = server.base();
    assert!(tool.spec().concurrency_safe);
    assert_tool_compliance(
        tool,
        ToolCompliance {
            input: json!({"name": "deploy"}),
            cwd: Some(world.cwd.path().to_path_buf()),
            output_cap: Some(64 * 1024 + 100),
        },
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn the_filter_lists_the_skills_and_the_cwd_shadows_home() {
    let world = World::new();
    world.home_skill("deploy.md", "Deploy from home\n---\nhome body\n");
    world.home_skill("alpha.md", "# Alpha\nno header, still a skill\n");
    world.home_skill("notes.txt", "not a skill\n---\n");
    world.home_skill(".hidden.md", "Hidden\n---\n");
    world.home_skill("sp ace.md", "Bad name\n---\n");
    std::fs::create_dir(world.home_skills().join("folder.md")).unwrap();
    world.cwd_skill("deploy.md", "Deploy from the project\n---\ncwd body\n");
    world.cwd_skill("zeta.md", "Zeta\r\n---\r\nz\r\n");
    let server = Server::start(&world, "").await;
    let tool = server.turn_tool(&world.filter_ctx()).await;
    check(
        &show(tool.as_ref()),
        &world,
        expect![[r#"
            Load a skill: instructions for a kind of task, kept as Markdown files in `~/.skills` and `<cwd>/.skills`. When the task at hand matches a skill, load it before you start and follow it.

            Available skills:
            - alpha
            - deploy: Deploy from the project
            - zeta: Zeta

            {"additionalProperties":false,"properties":{"name":{"description":"The skill to load.","enum":["alpha","deploy","zeta"],"type":"string"}},"required":["name"],"type":"object"}"#]],
    );

    // Without a cwd only home's skills are listed.
    let mut ctx = world.filter_ctx();
    ctx.cwd = None;
    let tool = server.turn_tool(&ctx).await.unwrap();
    assert_eq!(
        tool.spec().input_schema["properties"]["name"]["enum"],
        json!(["alpha", "deploy"])
    );
    assert!(
        tool.spec()
            .description
            .contains("- deploy: Deploy from home")
    );
    server.stop().await;
}

#[tokio::test]
async fn the_filter_removes_load_skill_when_there_is_nothing_to_load() {
    // No skill folders at all, then empty folders, then an unknown computer.
    let empty = tempfile::tempdir().unwrap();
    let ctx = ToolsFilterCtx {
        conversation_id: "c1".into(),
        cwd: Some(empty.path().to_path_buf()),
        workspace_id: None,
        computer_id: None,
    };
    let world = World::new();
    world.cwd_skill("readme.txt", "not a skill");
    let mut server = Server::start(&world, "").await;
    std::fs::remove_dir(world.home_skills()).unwrap();
    let tools = server.turn_tools(&ctx).await;
    let names: Vec<&str> = tools.iter().map(|t| t.spec().name.as_str()).collect();
    assert_eq!(names, vec!["other"]);

    std::fs::create_dir(world.home_skills()).unwrap();
    assert!(server.turn_tool(&world.filter_ctx()).await.is_none());

    world.home_skill("deploy.md", "Deploy\n---\n");
    let mut remote = world.filter_ctx();
    remote.computer_id = Some("box".into());
    assert!(server.turn_tool(&remote).await.is_none());
    assert!(server.turn_tool(&world.filter_ctx()).await.is_some());

    // Registered once, whatever the filter did to the turns.
    assert_eq!(server.host.catalog().tools().len(), 1);
    server.host.deactivate().await;
}

#[tokio::test]
async fn the_spec_is_byte_stable_while_the_skills_do_not_change() {
    let world = World::new();
    world.home_skill("b.md", "B\n---\nbody\n");
    world.cwd_skill("a.md", "A\n---\nbody\n");
    let server = Server::start(&world, "").await;
    let ctx = world.filter_ctx();
    let bytes = |tool: Arc<dyn Tool>| {
        let spec = tool.spec();
        format!("{}|{}|{}", spec.name, spec.description, spec.input_schema)
    };
    let first = bytes(server.turn_tool(&ctx).await.unwrap());
    let second = bytes(server.turn_tool(&ctx).await.unwrap());
    assert_eq!(first, second);
    // A body edit changes nothing the model sees before loading.
    world.cwd_skill("a.md", "A\n---\na new body\n");
    assert_eq!(bytes(server.turn_tool(&ctx).await.unwrap()), first);
    // A new summary does.
    world.cwd_skill("a.md", "A renamed\n---\nbody\n");
    assert_ne!(bytes(server.turn_tool(&ctx).await.unwrap()), first);
    server.stop().await;
}

#[tokio::test]
async fn load_reads_live_and_strips_the_header() {
    let world = World::new();
    world.home_skill("deploy.md", "Home\n---\nhome body\n");
    world.home_skill("home-only.md", "Home only\n---\n\nStep 1.\nStep 2.\n");
    world.cwd_skill("deploy.md", "Cwd\n---\ncwd body\n");
    world.cwd_skill("raw.md", "# Raw\nno separator\n---\n");
    world.cwd_skill("empty.md", "Empty\n---\n");
    let server = Server::start(&world, "").await;
    let tool = server.turn_tool(&world.filter_ctx()).await.unwrap();
    let mut out = String::new();
    for name in ["deploy", "home-only", "raw", "empty", "missing"] {
        out.push_str(&format!(
            "== {name}\n{}\n",
            load(&*tool, &world, name).await
        ));
    }
    check(
        &out,
        &world,
        expect![[r#"
            == deploy
            cwd body

            == home-only

            Step 1.
            Step 2.

            == raw
            # Raw
            no separator
            ---

            == empty
            The skill `empty` is empty.
            == missing
            model error: no skill named `missing` in $CWD/.skills or $HOME/.skills
        "#]],
    );
    // Live: an edit after listing is what the next load returns.
    world.cwd_skill("deploy.md", "Cwd\n---\nedited\n");
    assert_eq!(load(&*tool, &world, "deploy").await, "edited\n");
    server.stop().await;
}

#[tokio::test]
async fn a_long_skill_is_cut_with_a_note() {
    let world = World::new();
    world.cwd_skill("big.md", &format!("Big\n---\n{}", "y".repeat(5000)));
    let server = Server::start(&world, "max_skill_bytes = 1024").await;
    let out = load(&*server.base(), &world, "big").await;
    assert!(out.starts_with("yyy"), "{out}");
    assert!(
        out.ends_with("\n\n[skill cut: the first 1024 of 5008 bytes of the file are shown]"),
        "{out}"
    );
    server.stop().await;
}

#[tokio::test]
async fn names_that_leave_the_folder_are_refused() {
    let world = World::new();
    std::fs::write(world.cwd.path().join("secret.md"), "Secret\n---\nsecret\n").unwrap();
    world.cwd_skill("ok.md", "Ok\n---\nok\n");
    let server = Server::start(&world, "").await;
    let tool = server.base();
    let mut out = String::new();
    for name in [
        "../secret",
        "..",
        "a/b",
        "/etc/passwd",
        ".hidden",
        "sp ace",
        "",
    ] {
        out.push_str(&format!("{name:?}: {}\n", load(&*tool, &world, name).await));
    }
    out.push_str(&format!(
        "number: {:?}\n",
        tool.call(json!({"name": 1}), world.tool_ctx()).await
    ));
    check(
        &out,
        &world,
        expect![[r#"
            "../secret": model error: `../secret` is not a skill name: a name is 1 to 64 characters of A-Z a-z 0-9 _ . -, without `..`; use one of the names listed in the tool description
            "..": model error: `..` is not a skill name: a name is 1 to 64 characters of A-Z a-z 0-9 _ . -, without `..`; use one of the names listed in the tool description
            "a/b": model error: `a/b` is not a skill name: a name is 1 to 64 characters of A-Z a-z 0-9 _ . -, without `..`; use one of the names listed in the tool description
            "/etc/passwd": model error: `/etc/passwd` is not a skill name: a name is 1 to 64 characters of A-Z a-z 0-9 _ . -, without `..`; use one of the names listed in the tool description
            ".hidden": model error: `.hidden` is not a skill name: a name is 1 to 64 characters of A-Z a-z 0-9 _ . -, without `..`; use one of the names listed in the tool description
            "sp ace": model error: `sp ace` is not a skill name: a name is 1 to 64 characters of A-Z a-z 0-9 _ . -, without `..`; use one of the names listed in the tool description
            "": model error: `` is not a skill name: a name is 1 to 64 characters of A-Z a-z 0-9 _ . -, without `..`; use one of the names listed in the tool description
            number: Err(Model("`name` must be a string, got the number 1"))
        "#]],
    );
    server.stop().await;
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn symlinks_out_of_a_skill_folder_are_neither_listed_nor_loaded() {
    let world = World::new();
    let secret = world.elsewhere.path().join("secret.md");
    std::fs::write(&secret, "Secret summary\n---\nsecret body\n").unwrap();
    symlink(&secret, &world.cwd_skills().join("evil.md"));
    // The same name in home: the refused cwd entry does not shadow it.
    world.home_skill("evil.md", "Home evil\n---\nharmless\n");
    symlink(&secret, &world.home_skills().join("escape.md"));
    // Links inside the folder are fine.
    world.cwd_skill("deploy.md", "Deploy\n---\ndeploy body\n");
    symlink(
        &world.cwd_skills().join("deploy.md"),
        &world.cwd_skills().join("ship.md"),
    );
    // A dangling link is not a skill.
    symlink(
        &world.cwd_skills().join("gone.md"),
        &world.cwd_skills().join("dangling.md"),
    );
    let server = Server::start(&world, "").await;
    let tool = server.turn_tool(&world.filter_ctx()).await.unwrap();
    assert_eq!(
        tool.spec().input_schema["properties"]["name"]["enum"],
        json!(["deploy", "evil", "ship"])
    );
    assert!(!tool.spec().description.contains("Secret"));
    assert!(tool.spec().description.contains("- evil: Home evil"));

    assert_eq!(load(&*tool, &world, "ship").await, "deploy body\n");
    assert_eq!(load(&*tool, &world, "evil").await, "harmless\n");
    check(
        &load(&*tool, &world, "escape").await,
        &world,
        expect![
            "model error: refused: skill `escape` in $HOME/.skills resolves outside its folder"
        ],
    );
    check(
        &load(&*tool, &world, "dangling").await,
        &world,
        expect!["model error: no skill named `dangling` in $CWD/.skills or $HOME/.skills"],
    );
    server.stop().await;
}

#[cfg(unix)]
#[tokio::test]
async fn a_linked_skill_folder_is_read_where_it_points() {
    let world = World::new();
    std::fs::remove_dir(world.home_skills()).unwrap();
    let shared = world.elsewhere.path().join("shared-skills");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("shared.md"), "Shared\n---\nshared body\n").unwrap();
    symlink(&shared, &world.home_skills());
    let server = Server::start(&world, "").await;
    let tool = server.turn_tool(&world.filter_ctx()).await.unwrap();
    assert!(tool.spec().description.contains("- shared: Shared"));
    assert_eq!(load(&*tool, &world, "shared").await, "shared body\n");
    server.stop().await;
}

#[tokio::test]
async fn a_configured_home_replaces_the_backends_on_this_machine() {
    let world = World::new();
    world.home_skill("backend-home.md", "From the backend's home\n---\n");
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir(other.path().join(".skills")).unwrap();
    std::fs::write(
        other.path().join(".skills/configured.md"),
        "From the configured home\n---\nconfigured body\n",
    )
    .unwrap();
    let config = format!("home = {:?}", other.path().display().to_string());
    let server = Server::start(&world, &config).await;
    let tool = server.turn_tool(&world.filter_ctx()).await.unwrap();
    assert_eq!(
        tool.spec().input_schema["properties"]["name"]["enum"],
        json!(["configured"])
    );
    assert_eq!(
        load(&*tool, &world, "configured").await,
        "configured body\n"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_bad_config_fails_activation() {
    let world = World::new();
    let mut extensions = BTreeMap::new();
    extensions.insert(
        "tool-skills".to_owned(),
        toml::from_str("home = \"relative\"").unwrap(),
    );
    let mut host = Host::new(
        vec![
            Arc::new(ToolSkillsExtension),
            Arc::new(ExecExtension {
                home: world.home.path().to_path_buf(),
            }),
        ],
        HostConfig {
            extensions,
            ..HostConfig::default()
        },
    )
    .unwrap();
    let _ = host.activate().await;
    let status = host
        .statuses()
        .into_iter()
        .find(|s| s.id == "tool-skills")
        .unwrap();
    assert!(
        status
            .state
            .to_string()
            .contains("home must be an absolute path"),
        "{}",
        status.state
    );
    host.deactivate().await;
}
