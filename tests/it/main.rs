//! The integration tests, in one binary so the dependency tree is linked once. Each module
//! checks one area through the CLI or the public API against the real services of the lab
//! (`lab`), which starts them through `scripts/lab.sh`.

mod lab;

mod bounded_answers;
mod build;
mod bundle_consistency;
mod bundle_hostile;
mod bundle_roundtrip;
mod containerd_import;
mod embedded_cluster;
mod exit_codes;
mod lab_services;
mod planted_links;
mod plugins;
mod proxy;
mod registry_credentials;
mod registry_faults;
mod registry_pull;
mod registry_push;
mod sbom;
mod sign_openssl;
mod signatures;
mod token_auth;
mod transport;
mod unpack;
mod validate;
