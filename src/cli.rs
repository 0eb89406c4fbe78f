//! Command-line arguments: clap types only. The work lives in `commands/`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Examples:
  velero-airgap validate -c config.yaml
  velero-airgap render -c config.yaml --mode airgap -o values.yaml
  velero-airgap build -c config.yaml -o velero-bundle.tar
  velero-airgap verify velero-bundle.tar
  velero-airgap inspect velero-bundle.tar --json
  velero-airgap unpack velero-bundle.tar --registry 10.244.128.11:5000 --ca-file registry.crt --docker-config registry-creds --values-out values.yaml

Exit codes: 0 ok, 1 invalid input or failed verification, 2 usage,
3 registry/network/auth, 4 local I/O, 130 interrupted.";

/// Carry Velero and its plugins into clusters that have no internet.
#[derive(Debug, Parser)]
#[command(name = "velero-airgap", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Print nothing but errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail: -v the decisions made (mirror chosen, blob skipped or mounted,
    /// retries and why, cache hits), -vv every HTTP request too.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a cluster config and report every problem at once.
    #[command(after_help = "\
Examples:
  velero-airgap validate -c config.yaml
  velero-airgap validate -c config.yaml --strict --json
  velero-airgap validate -c config.yaml --online --verify-key vendor.pub

Errors exit 1; warnings exit 0, or 1 with --strict.")]
    Validate(ValidateArgs),
    /// Write Velero's Helm values for a cluster config.
    #[command(after_help = "\
Examples:
  velero-airgap render -c config.yaml
  velero-airgap render -c config.yaml --mode airgap --local-registry 10.96.0.11:5000 -o values.yaml
  velero-airgap render -c config.yaml --mode airgap --lock velero-bundle.tar
  velero-airgap render -c config.yaml --https-proxy http://proxy:3128 --host-ca-bundle /etc/ssl/certs/ca-certificates.crt")]
    Render(RenderArgs),
    /// Pull every image the values need into one checksummed bundle.
    #[command(after_help = "\
Examples:
  velero-airgap build -c config.yaml -o velero-bundle.tar
  velero-airgap build -c config.yaml -o bundle.tar.zst --platform linux/amd64,linux/arm64
  velero-airgap build -c config.yaml -o bundle.tar --mirror proxy.replicated.com=mirror.internal:5000

The output format follows the file name: .tar (fastest), .tar.zst, .tar.gz.
A sidecar BUNDLE.sha256 lets `sha256sum -c BUNDLE.sha256` check it anywhere.")]
    Build(BuildArgs),
    /// Check a bundle's checksums, digests and layout in one pass.
    #[command(after_help = "\
Examples:
  velero-airgap verify velero-bundle.tar
  velero-airgap verify velero-bundle.tar --json")]
    Verify(VerifyArgs),
    /// Verify a bundle, then load its images on this node and write its values.
    #[command(after_help = "\
Examples:
  velero-airgap unpack bundle.tar --registry 10.244.128.11:5000 --ca-file registry.crt --docker-config registry-creds --values-out values.yaml
  velero-airgap unpack bundle.tar --registry 10.244.128.11:5000 --insecure --docker-config registry-creds --values-out values.yaml
  velero-airgap unpack bundle.tar --containerd /run/k0s/containerd.sock --values-out values.yaml
  velero-airgap unpack bundle.tar --k0s-images-dir /var/lib/embedded-cluster/k0s/images --values-out values.yaml
  velero-airgap unpack bundle.tar --registry 127.0.0.1:5000 --insecure --local-registry 10.96.0.11:5000 --values-out values.yaml --dry-run

Embedded Cluster's registry (10.244.128.11:5000) is HTTPS with a self-signed
certificate and a password. On a node, in `sudo ./APP shell`, get both, then run
the first example:
  mkdir -p registry-creds
  kubectl -n kotsadm get secret registry-creds -o jsonpath='{.data.\\.dockerconfigjson}' | base64 -d > registry-creds/config.json
  kubectl -n registry get secret registry-tls -o jsonpath='{.data.tls\\.crt}' | base64 -d > registry.crt
--insecure skips the certificate check instead, and warns that it did.

The registry target serves every node; containerd and k0s targets load this node only.
The bundle is verified in full first; a bundle that fails leaves the target untouched.")]
    Unpack(UnpackArgs),
    /// Show what a bundle holds, reading only its first entries.
    #[command(after_help = "\
Examples:
  velero-airgap inspect velero-bundle.tar
  velero-airgap inspect velero-bundle.tar --json")]
    Inspect(InspectArgs),
    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  velero-airgap completions bash > /etc/bash_completion.d/velero-airgap
  velero-airgap completions zsh > \"${fpath[1]}/_velero-airgap\"")]
    Completions(CompletionsArgs),
}

/// The cluster config and the release to use.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Embedded Cluster config file (kind: Config).
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// Velero release (e.g. 1.18 or 1.18.2); defaults to the newest known.
    #[arg(long, value_name = "VERSION")]
    pub velero_version: Option<String>,
}

/// Settings the installer gets at install time.
#[derive(Debug, Args, Clone, Default)]
pub struct InstallArgs {
    /// HTTP proxy for Velero and the node agent.
    #[arg(long, value_name = "URL")]
    pub http_proxy: Option<String>,
    /// HTTPS proxy for Velero and the node agent.
    #[arg(long, value_name = "URL")]
    pub https_proxy: Option<String>,
    /// Hosts that bypass the proxy.
    #[arg(long, value_name = "LIST")]
    pub no_proxy: Option<String>,
    /// Host path of the CA bundle to mount at /certs/ca-certificates.crt.
    #[arg(long, value_name = "PATH")]
    pub host_ca_bundle: Option<String>,
}

/// Rendering steps that can be turned off.
#[derive(Debug, Args, Clone)]
pub struct HardeningArgs {
    /// Give plugin initContainers a restricted securityContext (no privilege escalation,
    /// read-only root, no capabilities, RuntimeDefault seccomp, non-root when the image
    /// says so) and small resources.
    #[arg(long, value_enum, value_name = "on|off", default_value = "on")]
    pub plugin_hardening: Switch,
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Address of the cluster's local registry, for the collision check.
    #[arg(long, value_name = "HOST:PORT", default_value = "10.244.128.11:5000")]
    pub local_registry: String,
    /// Treat warnings as errors (exit 1).
    #[arg(long)]
    pub strict: bool,
    /// Print findings as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also check that every image resolves in its registry, has the platforms
    /// and (with --verify-key) a valid signature.
    #[arg(long)]
    pub online: bool,
    /// Platforms every image must have (with --online).
    #[arg(long, value_name = "OS/ARCH[,..]|all", default_value = "linux/amd64")]
    pub platform: String,
    /// With --online: an entrypoint the plugin checks do not recognise as a copy into
    /// /target is a warning, not an error, for this plugin (repeatable).
    #[arg(long, value_name = "NAME")]
    pub allow_unrecognised_plugin: Vec<String>,
    /// Registry access (with --online).
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Signature checks (with --online).
    #[command(flatten)]
    pub signatures: SignatureArgs,
}

/// Where rendered values point their images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Images stay where the config names them.
    Online,
    /// Images point at the cluster's local registry.
    Airgap,
}

/// `render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Install-time settings.
    #[command(flatten)]
    pub install: InstallArgs,
    #[command(flatten)]
    pub hardening: HardeningArgs,
    /// online keeps image references; airgap points them at the local registry.
    #[arg(long, value_enum, default_value = "online")]
    pub mode: Mode,
    /// Address of the cluster's local registry (airgap mode).
    #[arg(long, value_name = "HOST:PORT", default_value = "10.244.128.11:5000")]
    pub local_registry: String,
    /// Pin every image by the digest a bundle recorded for it.
    #[arg(long, value_name = "BUNDLE")]
    pub lock: Option<PathBuf>,
    /// Render even if --http-proxy or --https-proxy carries credentials (the file written
    /// with -o is then readable by its owner only).
    #[arg(long)]
    pub allow_secrets: bool,
    /// Write to FILE instead of stdout (atomically).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Flags for talking to source registries.
#[derive(Debug, Args, Clone, Default)]
pub struct RegistryArgs {
    /// Pull FROM's images from TO (host[/path-prefix] on both sides; repeatable).
    #[arg(long, value_name = "FROM=TO")]
    pub mirror: Vec<String>,
    /// Reach this registry without verifying its TLS certificate, or over plain HTTP when
    /// it does not speak TLS (as Docker's insecure registries; warns once per registry;
    /// repeatable). HOST without a port covers every port of HOST.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
    /// Trust this PEM certificate for registries: a CA, or a registry's own self-signed
    /// certificate, accepted as it is (repeatable).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Vec<PathBuf>,
    /// Docker config.json with registry credentials (default: $DOCKER_CONFIG or ~/.docker).
    #[arg(long, value_name = "PATH")]
    pub docker_config: Option<PathBuf>,
    /// Retries on connection errors, 5xx and 429.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retries: u32,
    /// Parallel downloads.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub jobs: usize,
}

/// Image signature checks (cosign, keyed).
#[derive(Debug, Args, Clone, Default)]
pub struct SignatureArgs {
    /// Public key (PEM) that may sign images (repeatable).
    #[arg(long, value_name = "PEM")]
    pub verify_key: Vec<PathBuf>,
    /// Every image must carry a valid signature.
    #[arg(long)]
    pub require_signatures: bool,
    /// This plugin's image must carry a valid signature (repeatable).
    #[arg(long, value_name = "NAME")]
    pub require_signature: Vec<String>,
    /// Accept signatures whose docker-reference names another repository.
    #[arg(long)]
    pub ignore_signature_identity: bool,
}

/// `build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Install-time settings recorded in the bundle's values.
    #[command(flatten)]
    pub install: InstallArgs,
    #[command(flatten)]
    pub hardening: HardeningArgs,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The bundle to write: .tar, .tar.zst or .tar.gz.
    #[arg(short, long, value_name = "BUNDLE")]
    pub output: PathBuf,
    /// Platforms to keep: one (default), a comma list, or `all`.
    #[arg(long, value_name = "OS/ARCH[,..]|all", default_value = "linux/amd64")]
    pub platform: String,
    /// Content-addressed blob cache, verified on reuse.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Bundle even if override values or a proxy URL (--http-proxy, --https-proxy) carry
    /// literal secrets.
    #[arg(long)]
    pub allow_secrets: bool,
    /// An entrypoint the plugin checks do not recognise as a copy into /target is a
    /// warning, not an error, for this plugin (repeatable; recorded in the bundle).
    #[arg(long, value_name = "NAME")]
    pub allow_unrecognised_plugin: Vec<String>,
    /// Image signature checks.
    #[command(flatten)]
    pub signatures: SignatureArgs,
    /// Sign the bundle with this private key (PEM: PKCS#8, SEC1 or encrypted PKCS#8), writing BUNDLE.sig.
    #[arg(long, value_name = "PEM")]
    pub sign_key: Option<PathBuf>,
    /// Environment variable holding the passphrase of an encrypted --sign-key.
    #[arg(long, value_name = "VAR", requires = "sign_key")]
    pub sign_key_pass_env: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// Public key (PEM) whose signature BUNDLE.sig must be (repeatable).
    #[arg(long, value_name = "PEM")]
    pub bundle_key: Vec<PathBuf>,
    /// Image signature checks, offline, against the signatures in the bundle.
    #[command(flatten)]
    pub signatures: SignatureArgs,
    /// Also derive the plugin reports and the SBOM from the bundled layers again and fail
    /// on any difference (a second pass over the bundle).
    #[arg(long)]
    pub plugins: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where `unpack` loads images: exactly one.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct UnpackTarget {
    /// Push to the registry at HOST:PORT (serves every node).
    #[arg(long, value_name = "HOST:PORT")]
    pub registry: Option<String>,
    /// Import into containerd through its socket (this node only).
    #[arg(long, value_name = "SOCKET")]
    pub containerd: Option<PathBuf>,
    /// Write an OCI archive into k0s's images directory (this node only).
    #[arg(long, value_name = "DIR")]
    pub k0s_images_dir: Option<PathBuf>,
}

/// `unpack`.
#[derive(Debug, Args)]
pub struct UnpackArgs {
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// Where to load the images.
    #[command(flatten)]
    pub target: UnpackTarget,
    /// Write the Velero values for this cluster here (atomically).
    #[arg(long, value_name = "FILE", required = true)]
    pub values_out: PathBuf,
    /// The registry address pods pull from, when not the --registry address.
    #[arg(long, value_name = "HOST:PORT")]
    pub local_registry: Option<String>,
    /// Install-time settings for the values.
    #[command(flatten)]
    pub install: InstallArgs,
    /// Do not verify the --registry target's TLS certificate, or use plain HTTP when it does
    /// not speak TLS (warns). Prefer --ca-file with the registry's certificate.
    #[arg(long)]
    pub insecure: bool,
    /// Treat this host as insecure too, e.g. a plain-HTTP token server of the --registry
    /// target, so the credentials may be sent to it (repeatable).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
    /// Trust this PEM certificate for the --registry target: a CA, or the registry's own
    /// (e.g. Embedded Cluster's self-signed one, accepted as it is; repeatable).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Vec<PathBuf>,
    /// Docker config.json with credentials for the --registry target.
    #[arg(long, value_name = "PATH")]
    pub docker_config: Option<PathBuf>,
    /// User name for the --registry target (with --password-stdin).
    #[arg(long, value_name = "NAME", requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the --registry password from standard input.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// containerd namespace.
    #[arg(long, value_name = "NAME", default_value = "k8s.io")]
    pub namespace: String,
    /// The tool's own directory for the k0s target: the archive is written here and
    /// renamed into the images directory when complete (same filesystem; created 0700).
    #[arg(long, value_name = "DIR", default_value = velero_airgap::unpack::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Parallel requests.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub jobs: usize,
    /// Retries on connection errors, 5xx and 429.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retries: u32,
    /// Say what would be loaded where; write nothing at all.
    #[arg(long)]
    pub dry_run: bool,
    /// Append a JSON line per loaded image to FILE.
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Where a compressed bundle is decompressed (default: the temp dir).
    #[arg(long, value_name = "DIR")]
    pub staging_dir: Option<PathBuf>,
    /// Public key (PEM) whose signature BUNDLE.sig must be (repeatable).
    #[arg(long, value_name = "PEM")]
    pub bundle_key: Vec<PathBuf>,
    /// Image signature checks, offline, against the signatures in the bundle.
    #[command(flatten)]
    pub signatures: SignatureArgs,
    /// Before loading, derive the plugin reports and the SBOM from the bundled layers
    /// again and refuse the bundle on any difference.
    #[arg(long)]
    pub plugins: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,
    /// Print as JSON (the plugin reports included).
    #[arg(long, conflicts_with = "sbom")]
    pub json: bool,
    /// Print the bundle's SBOM (sbom.cdx.json, CycloneDX 1.6 JSON).
    #[arg(long)]
    pub sbom: bool,
}

/// Shells we print completions for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: Shell,
}
