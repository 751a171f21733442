//! Skeleton of the embedding SDK (being built for issue 7).
