//! The `[extensions.transport-ws]` table of `dispatch.toml`.

use serde::Deserialize;

use crate::error::{Result, WsError};

/// ```toml
/// [extensions.transport-ws]
/// client_queue = 1024            # messages waiting for one client before it is dropped
/// max_message_bytes = 1048576    # largest message a client may send
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How many outbound messages may wait for one client. A client whose queue is full is
    /// closed with `WS_CLOSE_LAGGED` (4008) instead of slowing the turn or other clients.
    pub client_queue: usize,
    /// The largest message (and frame) a client may send, in bytes; a larger one closes
    /// the socket with 1009.
    pub max_message_bytes: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            client_queue: 1024,
            max_message_bytes: 1024 * 1024,
        }
    }
}

impl Config {
    /// Refuses values the server cannot run with.
    pub fn validate(&self) -> Result<()> {
        if self.client_queue == 0 {
            return Err(WsError::Config {
                field: "client_queue",
                message: "must be at least 1".to_string(),
            });
        }
        if self.max_message_bytes < 1024 {
            return Err(WsError::Config {
                field: "max_message_bytes",
                message: "must be at least 1024".to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn defaults_parse_and_bad_values_are_refused() {
        let empty: Config = toml::from_str("").unwrap();
        assert_eq!(empty, Config::default());
        assert_eq!(empty.client_queue, 1024);
        assert_eq!(empty.max_message_bytes, 1 << 20);
        empty.validate().unwrap();

        let set: Config = toml::from_str("client_queue = 8\nmax_message_bytes = 4096").unwrap();
        assert_eq!(
            set,
            Config {
                client_queue: 8,
                max_message_bytes: 4096
            }
        );
        assert!(toml::from_str::<Config>("queue = 8").is_err());

        let zero: Config = toml::from_str("client_queue = 0").unwrap();
        let err = zero.validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid [extensions.transport-ws] client_queue: must be at least 1"
        );
        let tiny: Config = toml::from_str("max_message_bytes = 10").unwrap();
        assert!(tiny.validate().is_err());
    }
}
