//! values (placeholder)
