#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The compliance harness must be able to fail.

use std::sync::Arc;

use async_trait::async_trait;
use dispatch_kernel::abi::{Extension, Manifest, Tool, ToolCtx, ToolError, ToolOutput, ToolSpec};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error};
use dispatch_test_support::{ToolCompliance, assert_extension_compliance, assert_tool_compliance};

struct Named(&'static str, bool);

#[async_trait]
impl Extension for Named {
    fn manifest(&self) -> Result<Manifest, Error> {
        Manifest::parse(&format!(
            "id = \"{}\"\nversion = \"0.1.0\"\nkernel = \"^0.4\"\ntier = \"standard\"\n",
            self.0
        ))
    }

    async fn activate(&self, _host: &mut HostApi) -> Result<(), BoxError> {
        if self.1 {
            Ok(())
        } else {
            Err("refuses to start".into())
        }
    }
}

#[test]
fn an_extension_whose_id_is_its_folder_passes() {
    assert_extension_compliance(
        Arc::new(Named("test-support", true)),
        env!("CARGO_MANIFEST_DIR"),
        Vec::new(),
        Default::default(),
    );
}

#[test]
fn an_id_that_differs_from_the_folder_fails() {
    let result = std::panic::catch_unwind(|| {
        assert_extension_compliance(
            Arc::new(Named("other", true)),
            env!("CARGO_MANIFEST_DIR"),
            Vec::new(),
            Default::default(),
        )
    });
    assert!(result.is_err());
}

#[test]
fn an_extension_that_fails_to_activate_fails() {
    let result = std::panic::catch_unwind(|| {
        assert_extension_compliance(
            Arc::new(Named("test-support", false)),
            env!("CARGO_MANIFEST_DIR"),
            Vec::new(),
            Default::default(),
        )
    });
    assert!(result.is_err());
}

struct Echo {
    spec: ToolSpec,
    honours_cancel: bool,
}

#[async_trait]
impl Tool for Echo {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, input: serde_json::Value, ctx: ToolCtx) -> Result<ToolOutput, ToolError> {
        if self.honours_cancel && ctx.cancel.is_cancelled() {
            return Err(ToolError::Aborted);
        }
        Ok(ToolOutput::text(input.to_string().repeat(100)))
    }
}

fn echo(honours_cancel: bool) -> Arc<dyn Tool> {
    Arc::new(Echo {
        spec: ToolSpec {
            name: "echo".into(),
            description: "Echoes its input.".into(),
            input_schema: serde_json::json!({"type": "object", "properties": {"text": {"type": "string"}}}),
            concurrency_safe: true,
            capabilities: Vec::new(),
        },
        honours_cancel,
    })
}

#[tokio::test]
async fn a_tool_that_honours_cancel_and_its_cap_passes() {
    let check = ToolCompliance {
        input: serde_json::json!({"text": "hi"}),
        cwd: None,
        output_cap: Some(10_000),
    };
    assert_tool_compliance(echo(true), check).await;
}

#[tokio::test]
async fn a_tool_ignoring_cancellation_or_its_cap_fails() {
    let ignoring = tokio::spawn(assert_tool_compliance(
        echo(false),
        ToolCompliance {
            input: serde_json::json!({"text": "hi"}),
            cwd: None,
            output_cap: None,
        },
    ));
    assert!(
        ignoring.await.is_err(),
        "a tool that ignores a cancelled token must fail compliance"
    );
    let over_cap = tokio::spawn(assert_tool_compliance(
        echo(true),
        ToolCompliance {
            input: serde_json::json!({"text": "hi"}),
            cwd: None,
            output_cap: Some(10),
        },
    ));
    assert!(
        over_cap.await.is_err(),
        "output over the cap must fail compliance"
    );
}
