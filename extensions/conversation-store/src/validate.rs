//! Input validation: every public method checks its arguments here first and answers
//! `StoreError::Invalid` naming the wire field (camelCase).

use dispatch_kernel::abi::StoreError;

/// Longest conversation id, in bytes.
pub const MAX_CONVERSATION_ID: usize = 128;
/// Longest working directory, in bytes.
pub const MAX_CWD: usize = 4096;
/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest model name, in characters.
pub const MAX_MODEL: usize = 200;

fn invalid(field: &'static str, message: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        field,
        message: message.into(),
    }
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-')
}

/// 1 to 128 bytes of `[A-Za-z0-9_.:-]`.
pub fn conversation_id(field: &'static str, id: &str) -> Result<(), StoreError> {
    if id.is_empty() || id.len() > MAX_CONVERSATION_ID || !id.bytes().all(is_id_byte) {
        return Err(invalid(
            field,
            format!("must be 1 to {MAX_CONVERSATION_ID} characters of A-Z a-z 0-9 _ . : -"),
        ));
    }
    Ok(())
}

/// A prefix of a conversation id: up to 128 bytes of `[A-Za-z0-9_.:-]` (empty matches all).
pub fn id_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.len() > MAX_CONVERSATION_ID || !prefix.bytes().all(is_id_byte) {
        return Err(invalid(
            "idPrefix",
            format!("must be at most {MAX_CONVERSATION_ID} characters of A-Z a-z 0-9 _ . : -"),
        ));
    }
    Ok(())
}

/// A slug: `^[a-z0-9][a-z0-9-]{0,63}$`.
pub fn workspace_id(id: &str) -> Result<(), StoreError> {
    let bytes = id.as_bytes();
    let valid = (1..=64).contains(&bytes.len())
        && bytes[0] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if !valid {
        return Err(invalid(
            "workspaceId",
            "must be 1 to 64 characters of a-z 0-9 -, not starting with -",
        ));
    }
    Ok(())
}

/// Trimmed, 1 to 200 characters.
pub fn title(title: &str) -> Result<String, StoreError> {
    let trimmed = title.trim();
    let chars = trimmed.chars().count();
    if chars == 0 || chars > MAX_TITLE {
        return Err(invalid(
            "title",
            format!("must be 1 to {MAX_TITLE} characters after trimming"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Non-empty, at most 4096 bytes, no NUL. Kept as given (absolute or relative).
pub fn cwd(field: &'static str, cwd: &str) -> Result<(), StoreError> {
    if cwd.is_empty() || cwd.len() > MAX_CWD || cwd.contains('\0') {
        return Err(invalid(
            field,
            format!("must be 1 to {MAX_CWD} bytes without NUL"),
        ));
    }
    Ok(())
}

/// Trimmed, 1 to 200 characters.
pub fn model(model: &str) -> Result<String, StoreError> {
    let trimmed = model.trim();
    let chars = trimmed.chars().count();
    if chars == 0 || chars > MAX_MODEL {
        return Err(invalid(
            "model",
            format!("must be 1 to {MAX_MODEL} characters after trimming"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// 0..=100.
pub fn compact_percent(percent: u8) -> Result<(), StoreError> {
    if percent > 100 {
        return Err(invalid("compactPercent", "must be 0 to 100"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_ids() {
        for ok in ["a", "c_1.2:3-x", &"x".repeat(128)] {
            assert_eq!(conversation_id("conversationId", ok), Ok(()), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", &"x".repeat(129), "a\0"] {
            assert!(
                matches!(
                    conversation_id("conversationId", bad),
                    Err(StoreError::Invalid {
                        field: "conversationId",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(id_prefix(""), Ok(()));
        assert!(id_prefix("a b").is_err());
    }

    #[test]
    fn workspace_slugs() {
        for ok in ["default", "a", "0", "my-ws-2", &"a".repeat(64)] {
            assert_eq!(workspace_id(ok), Ok(()), "{ok}");
        }
        for bad in ["", "-a", "A", "a_b", "a b", &"a".repeat(65)] {
            assert!(
                matches!(
                    workspace_id(bad),
                    Err(StoreError::Invalid {
                        field: "workspaceId",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn titles_models_cwds_percents() {
        assert_eq!(title("  Hello  "), Ok("Hello".to_owned()));
        assert!(title("   ").is_err());
        assert_eq!(title(&"é".repeat(200)).map(|t| t.chars().count()), Ok(200));
        assert!(title(&"é".repeat(201)).is_err());
        assert_eq!(model(" gpt-5 "), Ok("gpt-5".to_owned()));
        assert!(model("").is_err());
        assert!(model(&"m".repeat(201)).is_err());
        assert_eq!(cwd("cwd", "rel/dir"), Ok(()));
        assert!(cwd("cwd", "").is_err());
        assert!(cwd("cwd", "a\0b").is_err());
        assert!(cwd("cwd", &"a".repeat(4097)).is_err());
        assert_eq!(compact_percent(100), Ok(()));
        assert!(compact_percent(101).is_err());
    }
}
