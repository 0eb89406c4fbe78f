//! The bundle file: layout, writer, streaming reader and verification.
