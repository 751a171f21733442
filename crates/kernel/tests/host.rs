#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Extension host: DAG planning, activation/deactivation, services, hooks, filters, tools.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dispatch_kernel::abi::{
    Capability, Extension, Manifest, Tool, ToolCtx, ToolError, ToolOutput, ToolSpec,
};
use dispatch_kernel::host::{
    CapabilityGrants, ExtensionState, FilterKey, HookKey, Host, HostApi, ServiceKey, filter_fn,
    hook_fn,
};
use dispatch_kernel::{BoxError, Error};
use pretty_assertions::assert_eq;

type Log = Arc<Mutex<Vec<String>>>;
type OnActivate = Arc<dyn Fn(&mut HostApi) -> Result<(), BoxError> + Send + Sync>;

#[derive(Clone, Copy)]
enum Behaviour {
    Ok,
    Fail,
    Panic,
}

struct TestExt {
    manifest: String,
    behaviour: Behaviour,
    log: Log,
    on_activate: Option<OnActivate>,
}

#[async_trait]
impl Extension for TestExt {
    fn manifest(&self) -> Result<Manifest, Error> {
        Manifest::parse(&self.manifest)
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        self.log.lock().unwrap().push(format!("+{}", host.id()));
        if let Some(f) = &self.on_activate {
            f(host)?;
        }
        match self.behaviour {
            Behaviour::Ok => Ok(()),
            Behaviour::Fail => Err("boom".into()),
            Behaviour::Panic => panic!("kaboom"),
        }
    }

    async fn deactivate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        self.log.lock().unwrap().push(format!("-{}", host.id()));
        Ok(())
    }
}

fn manifest(id: &str, tier: &str, deps: &[(&str, &str)], caps: &[&str]) -> String {
    let caps: Vec<String> = caps.iter().map(|c| format!("\"{c}\"")).collect();
    let mut s = format!(
        "id = \"{id}\"\nversion = \"0.1.0\"\nkernel = \"^0.4\"\ntier = \"{tier}\"\ncapabilities = [{}]\n",
        caps.join(", ")
    );
    if !deps.is_empty() {
        s.push_str("[depends_on]\n");
        for (d, req) in deps {
            s.push_str(&format!("{d} = \"{req}\"\n"));
        }
    }
    s
}

struct Fixture {
    log: Log,
    exts: Vec<Arc<dyn Extension>>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            log: Log::default(),
            exts: Vec::new(),
        }
    }

    fn add(&mut self, manifest: String, behaviour: Behaviour) -> &mut Fixture {
        self.exts.push(Arc::new(TestExt {
            manifest,
            behaviour,
            log: self.log.clone(),
            on_activate: None,
        }));
        self
    }

    fn add_with(
        &mut self,
        manifest: String,
        f: impl Fn(&mut HostApi) -> Result<(), BoxError> + Send + Sync + 'static,
    ) -> &mut Fixture {
        self.exts.push(Arc::new(TestExt {
            manifest,
            behaviour: Behaviour::Ok,
            log: self.log.clone(),
            on_activate: Some(Arc::new(f)),
        }));
        self
    }

    fn host(&self) -> Host {
        Host::new(self.exts.clone(), Default::default()).unwrap()
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn activates_in_topological_order_ties_by_list_position_and_deactivates_in_reverse() {
    let mut f = Fixture::new();
    f.add(
        manifest(
            "transport",
            "core",
            &[("store", "^0.1"), ("orchestrator", "^0.1")],
            &[],
        ),
        Behaviour::Ok,
    )
    .add(
        manifest("orchestrator", "core", &[("store", "^0.1")], &[]),
        Behaviour::Ok,
    )
    .add(manifest("zeta", "standard", &[], &[]), Behaviour::Ok)
    .add(manifest("store", "core", &[], &[]), Behaviour::Ok);
    let mut host = f.host();
    let report = host.activate().await.unwrap();
    assert_eq!(
        report.activated,
        ["zeta", "store", "orchestrator", "transport"]
    );
    assert!(report.disabled.is_empty());
    assert!(host.deactivate().await.is_empty());
    assert_eq!(
        f.log(),
        [
            "+zeta",
            "+store",
            "+orchestrator",
            "+transport",
            "-transport",
            "-orchestrator",
            "-store",
            "-zeta"
        ]
    );
    assert!(
        host.statuses()
            .iter()
            .all(|s| s.state == ExtensionState::Deactivated)
    );
    assert!(host.root_token().is_cancelled());
}

#[tokio::test]
async fn a_cycle_is_refused_naming_its_members() {
    let mut f = Fixture::new();
    f.add(manifest("a", "core", &[("b", "^0.1")], &[]), Behaviour::Ok)
        .add(manifest("b", "core", &[("c", "^0.1")], &[]), Behaviour::Ok)
        .add(
            manifest("c", "standard", &[("a", "^0.1")], &[]),
            Behaviour::Ok,
        )
        .add(manifest("d", "core", &[], &[]), Behaviour::Ok);
    let err = f.host().activate().await.unwrap_err();
    assert_eq!(
        err,
        Error::Cycle {
            members: vec!["a".into(), "b".into(), "c".into(), "a".into()]
        }
    );
    assert_eq!(err.to_string(), "dependency cycle: a -> b -> c -> a");
    assert!(
        f.log().is_empty(),
        "nothing activates when the graph is invalid"
    );
}

#[tokio::test]
async fn a_self_dependency_is_a_cycle() {
    let mut f = Fixture::new();
    f.add(
        manifest("a", "standard", &[("a", "^0.1")], &[]),
        Behaviour::Ok,
    );
    assert_eq!(
        f.host().plan().unwrap_err(),
        Error::Cycle {
            members: vec!["a".into(), "a".into()]
        }
    );
}

#[tokio::test]
async fn a_missing_dependency_stops_boot_for_core_and_disables_standard() {
    let mut f = Fixture::new();
    f.add(
        manifest("a", "core", &[("ghost", "^1")], &[]),
        Behaviour::Ok,
    );
    let err = f.host().activate().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "core extension `a` cannot run: extension `a` depends on `ghost` (^1), which is not installed"
    );

    let mut f = Fixture::new();
    f.add(
        manifest("a", "standard", &[("ghost", "^1")], &[]),
        Behaviour::Ok,
    )
    .add(manifest("b", "core", &[], &[]), Behaviour::Ok);
    let mut host = f.host();
    let report = host.activate().await.unwrap();
    assert_eq!(report.activated, ["b"]);
    assert_eq!(
        report.disabled,
        [(
            "a".to_string(),
            "extension `a` depends on `ghost` (^1), which is not installed".to_string()
        )]
    );
}

#[tokio::test]
async fn a_semver_mismatch_is_reported_with_both_versions() {
    let mut f = Fixture::new();
    f.add(manifest("store", "core", &[], &[]), Behaviour::Ok)
        .add(
            manifest("orchestrator", "core", &[("store", "^2.0")], &[]),
            Behaviour::Ok,
        );
    let err = f.host().activate().await.unwrap_err();
    assert_eq!(
        err,
        Error::CoreFailed {
            extension: "orchestrator".into(),
            cause: Box::new(Error::VersionMismatch {
                extension: "orchestrator".into(),
                dependency: "store".into(),
                required: "^2.0".into(),
                found: "0.1.0".into(),
            }),
        }
    );
    assert_eq!(
        f.log(),
        Vec::<String>::new(),
        "boot refused before activation"
    );
}

#[tokio::test]
async fn a_kernel_api_mismatch_is_refused() {
    let mut f = Fixture::new();
    f.add(manifest("old", "standard", &[], &[]), Behaviour::Ok);
    let mut host = f.host().with_kernel_version(semver::Version::new(1, 0, 0));
    let report = host.activate().await.unwrap();
    assert_eq!(
        report.disabled,
        [(
            "old".to_string(),
            "extension `old` requires kernel API ^0.4, this kernel is 1.0.0".to_string()
        )]
    );
}

#[tokio::test]
async fn a_duplicate_id_is_refused() {
    let mut f = Fixture::new();
    f.add(manifest("a", "core", &[], &[]), Behaviour::Ok)
        .add(manifest("a", "standard", &[], &[]), Behaviour::Ok);
    let err = Host::new(f.exts.clone(), Default::default()).err().unwrap();
    assert_eq!(err, Error::DuplicateId { id: "a".into() });
}

#[tokio::test]
async fn an_invalid_manifest_is_refused_with_the_parse_error() {
    let mut f = Fixture::new();
    f.add(
        "id = \"x\"\nversion = \"one\"\nkernel = \"^0.4\"\ntier = \"core\"\n".into(),
        Behaviour::Ok,
    );
    let err = Host::new(f.exts.clone(), Default::default()).err().unwrap();
    assert!(
        matches!(err, Error::Manifest { ref message } if message.contains("version")),
        "{err}"
    );
    let err = Manifest::parse(
        "id = \"Bad_Id\"\nversion = \"0.1.0\"\nkernel = \"^0.4\"\ntier = \"core\"\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("Bad_Id"), "{err}");
    let err = Manifest::parse("id = \"x\"\nversion = \"0.1.0\"\nkernel = \"^0.4\"\ntier = \"core\"\ncapabilities = [\"teleport\"]\n").unwrap_err();
    assert!(err.to_string().contains("teleport"), "{err}");
}

#[tokio::test]
async fn a_capability_the_config_does_not_grant_is_refused() {
    let grants = CapabilityGrants {
        default: Some(BTreeSet::from([Capability::Fs])),
        per_extension: [("shell-ok".to_string(), BTreeSet::from([Capability::Shell]))].into(),
    };
    let mut f = Fixture::new();
    f.add(manifest("shell-ok", "core", &[], &["shell"]), Behaviour::Ok)
        .add(manifest("files", "core", &[], &["fs"]), Behaviour::Ok)
        .add(
            manifest("shell-no", "standard", &[], &["fs", "shell"]),
            Behaviour::Ok,
        );
    let mut host = Host::new(
        f.exts.clone(),
        dispatch_kernel::host::HostConfig {
            grants: grants.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    let report = host.activate().await.unwrap();
    assert_eq!(report.activated, ["shell-ok", "files"]);
    assert_eq!(
        report.disabled,
        [(
            "shell-no".to_string(),
            "extension `shell-no` needs capability `shell`, which the host config does not grant"
                .to_string()
        )]
    );

    let mut f = Fixture::new();
    f.add(manifest("net", "core", &[], &["network"]), Behaviour::Ok);
    let err = Host::new(
        f.exts.clone(),
        dispatch_kernel::host::HostConfig {
            grants,
            ..Default::default()
        },
    )
    .unwrap()
    .activate()
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::CoreFailed { ref cause, .. } if matches!(**cause, Error::CapabilityDenied { capability: Capability::Network, .. }))
    );
}

#[tokio::test]
async fn a_failing_standard_extension_is_disabled_with_its_dependents() {
    let mut f = Fixture::new();
    f.add(manifest("base", "core", &[], &[]), Behaviour::Ok)
        .add(
            manifest("flaky", "standard", &[("base", "^0.1")], &[]),
            Behaviour::Fail,
        )
        .add(
            manifest("uses-flaky", "standard", &[("flaky", "^0.1")], &[]),
            Behaviour::Ok,
        )
        .add(
            manifest("uses-uses", "standard", &[("uses-flaky", "^0.1")], &[]),
            Behaviour::Ok,
        )
        .add(manifest("panicky", "standard", &[], &[]), Behaviour::Panic)
        .add(
            manifest("fine", "standard", &[("base", "^0.1")], &[]),
            Behaviour::Ok,
        );
    let mut host = f.host();
    let report = host.activate().await.unwrap();
    assert_eq!(report.activated, ["base", "fine"]);
    let disabled: Vec<&str> = report.disabled.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(disabled, ["flaky", "uses-flaky", "uses-uses", "panicky"]);
    assert_eq!(
        report.disabled[0].1,
        "extension `flaky` failed to activate: boom"
    );
    assert_eq!(
        report.disabled[1].1,
        "extension `uses-flaky` depends on `flaky` (^0.1), which is disabled"
    );
    assert_eq!(
        report.disabled[3].1,
        "extension `panicky` failed to activate: panicked: kaboom"
    );
    // Dependents never ran.
    assert_eq!(f.log(), ["+base", "+flaky", "+panicky", "+fine"]);
}

#[tokio::test]
async fn a_failing_core_extension_stops_boot_and_unwinds_what_was_activated() {
    let mut f = Fixture::new();
    f.add(manifest("one", "core", &[], &[]), Behaviour::Ok)
        .add(manifest("two", "core", &[], &[]), Behaviour::Ok)
        .add(manifest("three", "core", &[], &[]), Behaviour::Fail)
        .add(manifest("four", "core", &[], &[]), Behaviour::Ok);
    let mut host = f.host();
    let err = host.activate().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "core extension `three` cannot run: extension `three` failed to activate: boom"
    );
    assert_eq!(f.log(), ["+one", "+two", "+three", "-two", "-one"]);
}

trait Greeter: Send + Sync {
    fn greet(&self) -> String;
}

struct English;

impl Greeter for English {
    fn greet(&self) -> String {
        "hello".into()
    }
}

const GREETER: ServiceKey<dyn Greeter> = ServiceKey::new("test.greeter");
const GREETER_AS_STRING: ServiceKey<String> = ServiceKey::new("test.greeter");

#[tokio::test]
async fn services_are_typed_and_a_missing_one_is_an_error() {
    let seen = Arc::new(Mutex::new(None));
    let seen2 = seen.clone();
    let mut f = Fixture::new();
    // The consumer activates first (no dependency) and looks the service up lazily.
    f.add_with(manifest("consumer", "standard", &[], &[]), move |host| {
        let err = host.service(&GREETER).err().unwrap();
        assert_eq!(
            err.to_string(),
            "service `test.greeter` requested by `consumer` is not provided"
        );
        *seen2.lock().unwrap() = Some(host.services());
        Ok(())
    })
    .add_with(manifest("provider", "standard", &[], &[]), |host| {
        host.provide(&GREETER, Arc::new(English))?;
        let again = host.provide(&GREETER, Arc::new(English)).unwrap_err();
        assert!(matches!(again, Error::DuplicateService { .. }));
        Ok(())
    });
    let mut host = f.host();
    host.activate().await.unwrap();
    let services = seen.lock().unwrap().clone().unwrap();
    assert_eq!(services.get(&GREETER).unwrap().greet(), "hello");
    assert_eq!(
        services.get(&GREETER_AS_STRING).err().unwrap(),
        Error::ServiceType {
            key: "test.greeter",
            requested_by: "consumer".into()
        }
    );
    host.deactivate().await;
    assert!(
        matches!(services.get(&GREETER), Err(Error::MissingService { .. })),
        "gone after deactivation"
    );
}

const GREETED: HookKey<String> = HookKey::new("test.greeted");

#[tokio::test]
async fn hooks_run_in_registration_order_and_isolate_failures() {
    let calls = Log::default();
    let (c1, c2, c3) = (calls.clone(), calls.clone(), calls.clone());
    let mut f = Fixture::new();
    f.add_with(manifest("listeners", "standard", &[], &[]), move |host| {
        let c1 = c1.clone();
        host.on(
            &GREETED,
            Arc::new(hook_fn(move |p: &String| {
                c1.lock().unwrap().push(format!("first {p}"));
                Err("first fails".into())
            })),
        );
        host.on(
            &GREETED,
            Arc::new(hook_fn(|_: &String| panic!("second panics"))),
        );
        let c2 = c2.clone();
        host.on(
            &GREETED,
            Arc::new(hook_fn(move |p: &String| {
                c2.lock().unwrap().push(format!("third {p}"));
                Ok(())
            })),
        );
        Ok(())
    })
    .add_with(manifest("late", "standard", &[], &[]), move |host| {
        let c3 = c3.clone();
        host.on(
            &GREETED,
            Arc::new(hook_fn(move |p: &String| {
                c3.lock().unwrap().push(format!("late {p}"));
                Ok(())
            })),
        );
        Ok(())
    });
    let mut host = f.host();
    host.activate().await.unwrap();
    host.bus().emit(&GREETED, "bob".to_string()).await;
    assert_eq!(
        *calls.lock().unwrap(),
        ["first bob", "third bob", "late bob"]
    );
    assert_eq!(host.counts(Some("listeners")).hooks, 3);
    host.deactivate().await;
    assert_eq!(host.counts(None), Default::default());
}

const WORDS: FilterKey<Vec<String>, String> = FilterKey::new("test.words");

#[tokio::test]
async fn filters_apply_by_priority_then_registration_and_skip_a_panicking_one() {
    let mut f = Fixture::new();
    f.add_with(manifest("filters", "standard", &[], &[]), |host| {
        host.add_filter(
            &WORDS,
            10,
            Arc::new(filter_fn(|mut v: Vec<String>, ctx: &String| {
                v.push(format!("p10-{ctx}"));
                v
            })),
        );
        host.add_filter(
            &WORDS,
            -5,
            Arc::new(filter_fn(|mut v: Vec<String>, _: &String| {
                v.push("p-5".into());
                v
            })),
        );
        host.add_filter(
            &WORDS,
            10,
            Arc::new(filter_fn(|_: Vec<String>, _: &String| -> Vec<String> {
                panic!("bad filter")
            })),
        );
        host.add_filter(
            &WORDS,
            10,
            Arc::new(filter_fn(|mut v: Vec<String>, _: &String| {
                v.push("p10-last".into());
                v
            })),
        );
        Ok(())
    });
    let mut host = f.host();
    host.activate().await.unwrap();
    let out = host
        .filters()
        .apply(&WORDS, vec!["start".into()], &"x".to_string())
        .await;
    assert_eq!(out, ["start", "p-5", "p10-x", "p10-last"]);
}

struct Shell(ToolSpec);

#[async_trait]
impl Tool for Shell {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    async fn call(&self, _: serde_json::Value, _: ToolCtx) -> Result<ToolOutput, ToolError> {
        Ok(ToolOutput::text("ran"))
    }
}

fn shell_tool(name: &str) -> Arc<dyn Tool> {
    Arc::new(Shell(ToolSpec {
        name: name.into(),
        description: "runs".into(),
        input_schema: serde_json::json!({"type": "object"}),
        concurrency_safe: false,
        capabilities: vec![Capability::Shell],
    }))
}

#[tokio::test]
async fn tools_are_checked_against_declared_capabilities_and_names() {
    let results = Log::default();
    let (r1, r2) = (results.clone(), results.clone());
    let mut f = Fixture::new();
    f.add_with(
        manifest("no-shell", "standard", &[], &["fs"]),
        move |host| {
            r1.lock().unwrap().push(
                host.register_tool(shell_tool("run_shell"))
                    .unwrap_err()
                    .to_string(),
            );
            Ok(())
        },
    )
    .add_with(
        manifest("with-shell", "standard", &[], &["shell"]),
        move |host| {
            host.register_tool(shell_tool("run_shell"))?;
            r2.lock().unwrap().push(
                host.register_tool(shell_tool("run_shell"))
                    .unwrap_err()
                    .to_string(),
            );
            r2.lock().unwrap().push(
                host.register_tool(shell_tool("bad name!"))
                    .unwrap_err()
                    .to_string(),
            );
            Ok(())
        },
    );
    let mut host = f.host();
    host.activate().await.unwrap();
    assert_eq!(
        *results.lock().unwrap(),
        [
            "extension `no-shell` registers tool `run_shell` using capability `shell`, which its manifest does not declare",
            "tool `run_shell` is already registered by `with-shell` (refused for `with-shell`)",
            "tool name `bad name!` from `with-shell` must match [a-zA-Z0-9_-]{1,64}",
        ]
    );
    let names: Vec<String> = host
        .catalog()
        .tools()
        .iter()
        .map(|t| t.spec().name.clone())
        .collect();
    assert_eq!(names, ["run_shell"]);
    host.deactivate().await;
    assert!(host.catalog().tools().is_empty());
}

#[tokio::test]
async fn a_failed_activation_leaves_nothing_registered() {
    let mut f = Fixture::new();
    f.add_with(manifest("half", "standard", &[], &["shell"]), |host| {
        host.register_tool(shell_tool("run_shell"))?;
        host.provide(&GREETER, Arc::new(English))?;
        Err("failed after registering".into())
    });
    let mut host = f.host();
    let report = host.activate().await.unwrap();
    assert_eq!(report.disabled.len(), 1);
    assert_eq!(host.counts(None), Default::default());
}

#[derive(serde::Deserialize, Debug, PartialEq)]
struct ShellConfig {
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
    #[serde(default)]
    shell: Option<String>,
}

fn default_timeout() -> u64 {
    120
}

#[tokio::test]
async fn each_extension_gets_its_own_config_table() {
    let seen = Log::default();
    let s = seen.clone();
    let mut f = Fixture::new();
    f.add_with(manifest("tool-shell", "standard", &[], &[]), move |host| {
        let config: ShellConfig = host.config()?;
        s.lock().unwrap().push(format!("{config:?}"));
        Ok(())
    });
    let mut config = dispatch_kernel::host::HostConfig::default();
    config.extensions.insert(
        "tool-shell".into(),
        toml::from_str("shell = \"/bin/zsh\"").unwrap(),
    );
    config
        .extensions
        .insert("other".into(), toml::from_str("secret = 1").unwrap());
    let mut host = Host::new(f.exts.clone(), config).unwrap();
    host.activate().await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        ["ShellConfig { timeout_secs: 120, shell: Some(\"/bin/zsh\") }"]
    );

    let mut config = dispatch_kernel::host::HostConfig::default();
    config.extensions.insert(
        "tool-shell".into(),
        toml::from_str("timeout_secs = \"soon\"").unwrap(),
    );
    let mut host = Host::new(f.exts.clone(), config).unwrap();
    let report = host.activate().await.unwrap();
    assert!(
        report.disabled[0]
            .1
            .contains("invalid config for extension `tool-shell`"),
        "{:?}",
        report.disabled
    );
}

#[tokio::test]
async fn shutdown_tokens_fire_on_deactivation() {
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let t = tokens.clone();
    let mut f = Fixture::new();
    f.add_with(manifest("spawner", "standard", &[], &[]), move |host| {
        t.lock().unwrap().push(host.shutdown_token());
        Ok(())
    });
    let mut host = f.host();
    host.activate().await.unwrap();
    let token = tokens.lock().unwrap()[0].clone();
    assert!(!token.is_cancelled());
    host.deactivate().await;
    assert!(token.is_cancelled());
}
