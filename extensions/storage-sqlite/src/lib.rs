//! storage-sqlite: being implemented.
