//! Flags resolved into the library's requests, in one place: every command's arguments
//! become the settings its library call takes here, so command files only run the work
//! and print its outcome, and never read another command's flags.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use velero_airgap::oci::PlatformSelection;
use velero_airgap::pack::PackRequest;
use velero_airgap::pack::online::OnlineRequest;
use velero_airgap::registry::{BasicCredentials, Mirror, RegistryOptions};
use velero_airgap::release;
use velero_airgap::sign::{KeySet, SignaturePolicy, SigningKey};
use velero_airgap::unpack::{InstallSettings, K0sTarget, Target, UnpackRequest};
use velero_airgap::values::{self, ProxySettings, RenderInputs};
use velero_airgap::verify::VerifyOptions;

use crate::cli::{
    BuildArgs, HardeningArgs, InstallArgs, RegistryArgs, SignatureArgs, Switch, UnpackArgs,
    ValidateArgs, VerifyArgs,
};

/// The signature flags as a policy (keys loaded now, so a bad key fails first).
pub fn signature_policy(args: &SignatureArgs) -> anyhow::Result<SignaturePolicy> {
    Ok(SignaturePolicy {
        keys: key_set(&args.verify_key)?,
        require_all: args.require_signatures,
        require: args.require_signature.clone(),
        ignore_identity: args.ignore_signature_identity,
    })
}

/// Keys from PEM files; `None` when no file is given.
fn key_set(paths: &[PathBuf]) -> anyhow::Result<Option<KeySet>> {
    Ok(if paths.is_empty() {
        None
    } else {
        Some(KeySet::load(paths)?)
    })
}

/// The registry flags of `build` and `validate --online`.
fn registry_options(args: &RegistryArgs) -> anyhow::Result<RegistryOptions> {
    Ok(RegistryOptions {
        mirrors: args
            .mirror
            .iter()
            .map(|m| Mirror::parse(m))
            .collect::<Result<_, _>>()?,
        insecure: args.insecure_registry.clone(),
        ca_files: args.ca_file.clone(),
        docker_config: args.docker_config.clone(),
        retries: args.retries,
    })
}

/// The install-time proxy flags.
pub fn proxy_settings(install: &InstallArgs) -> ProxySettings {
    ProxySettings {
        http_proxy: install.http_proxy.clone(),
        https_proxy: install.https_proxy.clone(),
        no_proxy: install.no_proxy.clone(),
    }
}

/// For `scripts/bench.sh` only: set, `build` skips reading the images' layers, so the
/// benchmark can measure what the plugin checks cost.
const SKIP_PLUGIN_CHECKS: &str = "VELERO_AIRGAP_BENCH_SKIP_PLUGIN_CHECKS";

/// What `render` and `build` render from besides the config.
pub fn render_inputs(
    install: &InstallArgs,
    hardening: &HardeningArgs,
    local_registry: &str,
) -> RenderInputs {
    RenderInputs {
        local_registry: local_registry.to_string(),
        proxy: proxy_settings(install),
        host_ca_bundle: install.host_ca_bundle.clone(),
        plugin_hardening: hardening.plugin_hardening == Switch::On,
        ..RenderInputs::default()
    }
}

/// `build`.
pub fn pack_request(args: &BuildArgs) -> anyhow::Result<PackRequest> {
    Ok(PackRequest {
        config: args.config.config.clone(),
        release: release::select(args.config.velero_version.as_deref())?,
        render_inputs: RenderInputs {
            allow_unrecognised_plugins: args.allow_unrecognised_plugin.iter().cloned().collect(),
            ..render_inputs(
                &args.install,
                &args.hardening,
                values::DEFAULT_LOCAL_REGISTRY,
            )
        },
        platforms: PlatformSelection::parse(&args.platform)?,
        registry: registry_options(&args.registry)?,
        jobs: args.registry.jobs.max(1),
        cache_dir: args.cache_dir.clone(),
        allow_secrets: args.allow_secrets,
        inspect_layers: std::env::var_os(SKIP_PLUGIN_CHECKS).is_none(),
        output: args.output.clone(),
        cancel: Default::default(),
        signatures: signature_policy(&args.signatures)?,
        sign_key: match &args.sign_key {
            Some(path) => {
                let passphrase = match &args.sign_key_pass_env {
                    Some(var) => Some(std::env::var(var).map_err(|_| {
                        anyhow::anyhow!("--sign-key-pass-env {var}: the variable is not set")
                    })?),
                    None => None,
                };
                Some(SigningKey::load(path, passphrase.as_deref())?)
            }
            None => None,
        },
    })
}

/// `validate --online`.
pub fn online_request(args: &ValidateArgs) -> anyhow::Result<OnlineRequest> {
    Ok(OnlineRequest {
        config: args.config.config.clone(),
        release: release::select(args.config.velero_version.as_deref())?,
        platforms: PlatformSelection::parse(&args.platform)?,
        registry: registry_options(&args.registry)?,
        jobs: args.registry.jobs.max(1),
        signatures: signature_policy(&args.signatures)?,
        allow_unrecognised: args.allow_unrecognised_plugin.iter().cloned().collect(),
    })
}

/// `verify`.
pub fn verify_options(args: &VerifyArgs) -> anyhow::Result<VerifyOptions> {
    Ok(VerifyOptions {
        bundle_keys: key_set(&args.bundle_key)?,
        signatures: signature_policy(&args.signatures)?,
        plugins: args.plugins,
    })
}

/// `unpack`; reads the password from standard input when `--password-stdin` is given.
pub fn unpack_request(args: &UnpackArgs) -> anyhow::Result<UnpackRequest> {
    Ok(UnpackRequest {
        bundle: args.bundle.clone(),
        target: unpack_target(args)?,
        values_out: Some(args.values_out.clone()),
        local_registry: args.local_registry.clone(),
        install: InstallSettings {
            proxy: proxy_settings(&args.install),
            host_ca_bundle: args.install.host_ca_bundle.clone(),
        },
        jobs: args.jobs.max(1),
        dry_run: args.dry_run,
        audit_log: args.audit_log.clone(),
        staging_dir: args.staging_dir.clone(),
        verify: VerifyOptions {
            bundle_keys: key_set(&args.bundle_key)?,
            signatures: signature_policy(&args.signatures)?,
            plugins: args.plugins,
        },
        cancel: Default::default(),
    })
}

fn unpack_target(args: &UnpackArgs) -> anyhow::Result<Target> {
    if let Some(address) = &args.target.registry {
        let credentials = match &args.username {
            Some(username) => Some(BasicCredentials {
                username: username.clone(),
                password: read_password()?,
            }),
            None => None,
        };
        return Ok(Target::Registry {
            address: address.clone(),
            options: RegistryOptions {
                insecure: args
                    .insecure
                    .then(|| address.clone())
                    .into_iter()
                    .chain(args.insecure_registry.iter().cloned())
                    .collect(),
                ca_files: args.ca_file.clone(),
                docker_config: args.docker_config.clone(),
                retries: args.retries,
                ..RegistryOptions::default()
            },
            credentials,
        });
    }
    if let Some(socket) = &args.target.containerd {
        return Ok(Target::Containerd {
            socket: socket.clone(),
            namespace: args.namespace.clone(),
        });
    }
    match &args.target.k0s_images_dir {
        Some(dir) => Ok(Target::K0s(K0sTarget {
            images_dir: dir.clone(),
            state_dir: args.state_dir.clone(),
        })),
        None => anyhow::bail!("give one of --registry, --containerd or --k0s-images-dir"),
    }
}

/// A password is one line; more than 64 KiB on standard input is not a password.
fn read_password() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin()
        .take(64 << 10)
        .read_to_string(&mut password)
        .context("cannot read the password from standard input")?;
    Ok(password.trim_end_matches(['\n', '\r']).to_string())
}
