//! conversation-store: being implemented.
