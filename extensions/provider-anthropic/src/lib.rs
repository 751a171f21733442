//! The `provider-anthropic` extension (work in progress; see its issue).
