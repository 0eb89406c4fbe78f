//! release (placeholder)
