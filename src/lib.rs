//! `velero-airgap`: carry Velero and its plugins into clusters that have no internet.
//!
//! The library knows nothing of terminals or command-line flags: it reads an
//! Embedded Cluster config, validates it, renders Velero's Helm values, pulls the
//! images those values need and writes them into a verifiable bundle. Long work
//! reports progress as events; the binary decides how to draw them.

// The library reports through events and return values; only the binary prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod error;

pub use error::{ErrorKind, chain};

pub mod bundle;
pub mod config;
pub mod containerd;
pub mod files;
pub mod oci;
pub mod pack;
pub mod plugin;
pub mod reference;
pub mod registry;
pub mod release;
pub mod sbom;
pub mod sign;
mod task;
pub mod unpack;
pub mod validate;
pub mod values;
pub mod verify;
pub mod yaml;
