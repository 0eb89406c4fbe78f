//! reference (placeholder)
