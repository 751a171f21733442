//! The `provider-openai` extension (work in progress; see its issue).
