//! The `[extensions.session-orchestrator]` table of `dispatch.toml`.

use std::time::Duration;

use serde::Deserialize;

use dispatch_kernel::TurnOptions;

/// ```toml
/// [extensions.session-orchestrator]
/// default_model = "anthropic/claude-sonnet-4-5"  # default: the first model of the first provider
/// max_steps = 0                # steps per turn; 0 = unlimited
/// tool_concurrency = 8         # concurrency-safe tool calls of a step run at once
/// idle_timeout_secs = 300      # a provider stream silent this long is a disconnect
/// max_tool_result_bytes = 65536 # a longer tool result keeps head + tail (0 = no cap)
/// max_tool_output_stream_bytes = 4194304 # live tool output per call (0 = no limit)
/// subscriber_queue = 4096      # frames a subscriber may fall behind before it is dropped
/// replay_cap = 50000           # frames of a turn kept for late joiners (see `hub`)
/// retained_replays = 16        # finished turns whose replay is kept for re-attaching
/// models_cache_secs = 60       # how long a provider's model list is reused
/// models_timeout_ms = 3000     # how long a provider may take to list its models
/// shutdown_grace_secs = 10     # how long deactivation waits for aborted turns to seal
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The model of a turn when neither the request nor the conversation names one.
    pub default_model: Option<String>,
    pub max_steps: u32,
    pub tool_concurrency: usize,
    pub idle_timeout_secs: u64,
    pub max_tool_result_bytes: usize,
    pub max_tool_output_stream_bytes: usize,
    pub subscriber_queue: usize,
    pub replay_cap: usize,
    pub retained_replays: usize,
    pub models_cache_secs: u64,
    pub models_timeout_ms: u64,
    pub shutdown_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            default_model: None,
            max_steps: 0,
            tool_concurrency: 8,
            idle_timeout_secs: 300,
            max_tool_result_bytes: 64 * 1024,
            max_tool_output_stream_bytes: 4 * 1024 * 1024,
            subscriber_queue: 4096,
            replay_cap: 50_000,
            retained_replays: 16,
            models_cache_secs: 60,
            models_timeout_ms: 3000,
            shutdown_grace_secs: 10,
        }
    }
}

impl Config {
    pub fn turn_options(&self) -> TurnOptions {
        TurnOptions {
            max_steps: self.max_steps,
            tool_concurrency: self.tool_concurrency.max(1),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
            max_tool_result_bytes: self.max_tool_result_bytes,
            max_tool_output_stream_bytes: self.max_tool_output_stream_bytes,
        }
    }

    pub fn models_cache(&self) -> Duration {
        Duration::from_secs(self.models_cache_secs)
    }

    pub fn models_timeout(&self) -> Duration {
        Duration::from_millis(self.models_timeout_ms.max(1))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_the_table_with_defaults_and_refuses_unknown_keys() {
        let config: Config = toml::from_str("default_model = \"echo\"\nreplay_cap = 10").unwrap();
        assert_eq!(
            config,
            Config {
                default_model: Some("echo".to_owned()),
                replay_cap: 10,
                ..Config::default()
            }
        );
        assert_eq!(toml::from_str::<Config>("").unwrap(), Config::default());
        assert!(toml::from_str::<Config>("max_step = 1").is_err());
    }

    #[test]
    fn turn_options_never_get_zero_concurrency() {
        let config = Config {
            tool_concurrency: 0,
            max_steps: 3,
            ..Config::default()
        };
        let options = config.turn_options();
        assert_eq!(options.tool_concurrency, 1);
        assert_eq!(options.max_steps, 3);
        assert_eq!(options.idle_timeout, Duration::from_secs(300));
    }
}
