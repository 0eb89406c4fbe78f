//! The test lab for integration tests: real registries and a real containerd started by
//! `scripts/lab.sh` on 127.0.0.1, synthetic images made by `scripts/mkimages.py`, seeding through
//! skopeo, and the binary under test. Every service lives in its own temp dir on a free port and
//! is stopped by its PID when its handle is dropped, so each test gets fresh services.
//!
//! Helpers panic with the tool's output on failure: they are test code, and a panic is the
//! clearest report a test can give.

pub mod bundles;
pub mod fake;
pub mod layout;
pub mod proxy;
pub mod sources;

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// How many times a start is retried when another process grabbed the chosen port first.
const PORT_ATTEMPTS: usize = 10;
/// What `scripts/lab.sh` exits with when the port it was given is already in use.
const EXIT_PORT_IN_USE: i32 = 3;

/// The repository root (where `Cargo.toml` and `scripts/` are).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The path of a file under `scripts/`.
pub fn script(name: &str) -> PathBuf {
    repo_root().join("scripts").join(name)
}

/// A TCP port on 127.0.0.1 that was free a moment ago. Another process may take it before the
/// caller binds it: starts that use it retry on `EXIT_PORT_IN_USE`.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind an ephemeral port on 127.0.0.1")
        .port()
}

/// Whether `pid` is a live process (a zombie counts as gone: the lab's daemons are reaped by
/// init, which may do so late).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// Runs a command and panics, showing its output, unless it succeeds.
pub fn run_ok(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `bash scripts/lab.sh ARGS` and returns its output, whatever the exit code.
fn lab_sh(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(script("lab.sh"))
        .args(args)
        .output()
        .expect("run scripts/lab.sh")
}

/// Stops the daemon of a service dir through `lab.sh stop`; used by the handles' `Drop`.
fn stop_service(dir: &Path) {
    let dir = dir.to_string_lossy();
    let output = lab_sh(&["stop", &dir]);
    if !output.status.success() {
        eprintln!(
            "lab.sh stop {dir} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Parses the PID that a `lab.sh` start printed.
fn started_pid(output: &Output) -> u32 {
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("lab.sh printed no PID: {stdout:?}"))
}

/// The registry variants the lab can start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryKind {
    /// Plain HTTP, no auth.
    Plain,
    /// Plain HTTP with htpasswd basic auth.
    BasicAuth,
    /// HTTPS with a certificate from the lab's own CA.
    Tls,
    /// HTTPS and basic auth.
    TlsBasicAuth,
    /// Shaped like Embedded Cluster's registry (`lab.sh registry --ec`): HTTPS with EC's kind
    /// of self-signed CA:FALSE certificate, htpasswd user `embedded-cluster` with a random
    /// password, the Secrets as fixtures and a fake kubectl that reads them.
    EmbeddedCluster,
    /// Token authentication with the lab's token server (`lab.sh registry --token`).
    Token(TokenSetup),
}

/// How a token-auth registry is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TokenSetup {
    /// The token server knows [`Registry::USERNAME`] (pull and push); anyone else gets pull.
    pub auth: bool,
    /// The registry serves HTTPS (lab CA).
    pub tls: bool,
    /// The token realm is HTTPS (lab CA); otherwise plain `http://`.
    pub token_tls: bool,
    /// Token lifetime in seconds (`None`: the lab's default, 300).
    pub ttl: Option<u32>,
}

impl RegistryKind {
    /// Whether the registry serves HTTPS.
    pub fn tls(self) -> bool {
        match self {
            RegistryKind::Tls | RegistryKind::TlsBasicAuth | RegistryKind::EmbeddedCluster => true,
            RegistryKind::Token(setup) => setup.tls,
            RegistryKind::Plain | RegistryKind::BasicAuth => false,
        }
    }

    /// Whether the registry wants credentials (for a token registry: whether the token server
    /// knows a user; anonymous pulls work there anyway).
    pub fn auth(self) -> bool {
        match self {
            RegistryKind::BasicAuth
            | RegistryKind::TlsBasicAuth
            | RegistryKind::EmbeddedCluster => true,
            RegistryKind::Token(setup) => setup.auth,
            RegistryKind::Plain | RegistryKind::Tls => false,
        }
    }

    /// The `lab.sh registry DIR PORT` options for this kind.
    fn lab_args(self, credentials: &str) -> Vec<String> {
        let mut args = Vec::new();
        if let RegistryKind::EmbeddedCluster = self {
            args.push("--ec".to_owned());
            return args;
        }
        if let RegistryKind::Token(setup) = self {
            args.push("--token".to_owned());
            if setup.token_tls {
                args.push("--token-tls".to_owned());
            }
            if let Some(ttl) = setup.ttl {
                args.extend(["--token-ttl".to_owned(), ttl.to_string()]);
            }
        }
        if self.auth() {
            args.extend(["--auth".to_owned(), credentials.to_owned()]);
        }
        if self.tls() {
            args.push("--tls".to_owned());
        }
        args
    }
}

/// A running distribution registry; dropped, it is stopped and its storage removed.
pub struct Registry {
    /// `127.0.0.1:PORT`, as used in image references.
    pub addr: String,
    /// The service dir (config, storage, log, PID file).
    pub dir: PathBuf,
    /// For TLS variants: a directory holding only `ca.crt` (for `--cert-dir`-style flags).
    pub ca_dir: Option<PathBuf>,
    /// For TLS variants: the CA certificate that signed the server certificate.
    pub ca_cert: Option<PathBuf>,
    /// For auth variants: the user name.
    pub username: Option<String>,
    /// For auth variants: the password.
    pub password: Option<String>,
    /// The registry's PID.
    pub pid: u32,
    /// For [`RegistryKind::EmbeddedCluster`]: `DIR/ec` (`tls.crt`, `password`,
    /// `docker/config.json`, `secrets/`, and the fake kubectl in `bin/`).
    pub ec_dir: Option<PathBuf>,
    /// For [`RegistryKind::Token`]: the token server.
    pub token: Option<TokenServer>,
    stopped: bool,
    _tmp: TempDir,
}

/// The token server of a token-auth lab registry.
#[derive(Clone, Debug)]
pub struct TokenServer {
    /// The realm URL the registry sends clients to (`http://` or `https://127.0.0.1:TPORT/token`).
    pub realm: String,
    /// `127.0.0.1:TPORT`.
    pub addr: String,
    /// Its request log: one JSON object per request.
    pub log: PathBuf,
}

impl TokenServer {
    /// Every request the token server logged so far.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .expect("read the token server's log")
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line in the token log"))
            .collect()
    }

    /// The token requests (GET or POST /token) logged so far, without the readiness probes.
    pub fn token_requests(&self) -> Vec<serde_json::Value> {
        self.requests()
            .into_iter()
            .filter(|request| request["path"] == "/token")
            .collect()
    }
}

impl Registry {
    /// The user name of auth variants.
    pub const USERNAME: &'static str = "lab-user";
    /// The password of auth variants (contains `:` to catch naive `user:pass` splitting).
    pub const PASSWORD: &'static str = "lab:pa$$word";

    /// Starts a registry of `kind` on a free port and waits until it answers.
    pub fn start(kind: RegistryKind) -> Registry {
        let tmp = tempfile::Builder::new()
            .prefix("va-registry-")
            .tempdir()
            .expect("create registry temp dir");
        let dir = tmp.path().join("registry");
        let dir_arg = dir.to_string_lossy().into_owned();
        let credentials = format!("{}:{}", Self::USERNAME, Self::PASSWORD);
        let options = kind.lab_args(&credentials);
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let port_arg = port.to_string();
            let mut args = vec!["registry", &dir_arg, &port_arg];
            args.extend(options.iter().map(String::as_str));
            let output = lab_sh(&args);
            if output.status.code() == Some(EXIT_PORT_IN_USE) {
                continue;
            }
            assert!(
                output.status.success(),
                "lab.sh {args:?} failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let ca_dir = kind.tls().then(|| dir.join("certs"));
            let ec_dir = (kind == RegistryKind::EmbeddedCluster).then(|| dir.join("ec"));
            let (username, password) = match &ec_dir {
                Some(ec) => (
                    Some("embedded-cluster".to_owned()),
                    Some(std::fs::read_to_string(ec.join("password")).expect("read EC password")),
                ),
                None => (
                    kind.auth().then(|| Self::USERNAME.to_owned()),
                    kind.auth().then(|| Self::PASSWORD.to_owned()),
                ),
            };
            let token = matches!(kind, RegistryKind::Token(_)).then(|| {
                let realm = std::fs::read_to_string(dir.join("token/realm"))
                    .expect("read the token realm")
                    .trim()
                    .to_owned();
                let port =
                    std::fs::read_to_string(dir.join("token/port")).expect("read the token port");
                TokenServer {
                    realm,
                    addr: format!("127.0.0.1:{}", port.trim()),
                    log: dir.join("token/log"),
                }
            });
            return Registry {
                addr: format!("127.0.0.1:{port}"),
                // EC's own certificate, as the registry-tls Secret holds it (certs/ca.crt is
                // a copy, alone in its directory for skopeo).
                ca_cert: match &ec_dir {
                    Some(ec) => Some(ec.join("tls.crt")),
                    None => ca_dir.as_ref().map(|d| d.join("ca.crt")),
                },
                ca_dir,
                username,
                password,
                pid: started_pid(&output),
                ec_dir,
                token,
                dir,
                stopped: false,
                _tmp: tmp,
            };
        }
        panic!("no free port for a {kind:?} registry after {PORT_ATTEMPTS} attempts");
    }

    /// `ADDR/PATH`, e.g. `127.0.0.1:5000/library/velero:v1.18.2`.
    pub fn reference(&self, path: &str) -> String {
        format!("{}/{path}", self.addr)
    }

    /// `user:password` when the registry wants auth.
    pub fn credentials(&self) -> Option<String> {
        Some(format!(
            "{}:{}",
            self.username.as_ref()?,
            self.password.as_ref()?
        ))
    }

    /// skopeo flags that reach this registry; `prefix` is `""` for `inspect`, `"src-"` or
    /// `"dest-"` for `copy`.
    pub fn skopeo_flags(&self, prefix: &str) -> Vec<String> {
        let mut flags = Vec::new();
        if let Some(credentials) = self.credentials() {
            flags.push(format!("--{prefix}creds={credentials}"));
        }
        match &self.ca_dir {
            Some(ca_dir) => flags.push(format!("--{prefix}cert-dir={}", ca_dir.display())),
            None => flags.push(format!("--{prefix}tls-verify=false")),
        }
        flags
    }

    /// The manifest (or index) at `path` exactly as the registry serves it.
    pub fn inspect_raw(&self, path: &str) -> serde_json::Value {
        let reference = format!("docker://{}", self.reference(path));
        let mut args: Vec<String> = vec!["inspect".into(), "--raw".into()];
        args.extend(self.skopeo_flags(""));
        args.push(reference);
        let output = skopeo_ok(&args);
        serde_json::from_slice(&output.stdout).expect("skopeo inspect --raw printed JSON")
    }

    /// A Docker config with no entries, so tests never read the user's own.
    pub fn empty_docker_config(&self) -> PathBuf {
        let path = self.dir.join("empty-docker-config.json");
        std::fs::write(&path, "{}").expect("write an empty Docker config");
        path
    }

    /// Copies `name` from `layout` to `repository_and_tag` on this registry with skopeo;
    /// `docker` converts to Docker v2s2.
    pub fn seed_layout(
        &self,
        layout: &layout::Layout,
        name: &str,
        repository_and_tag: &str,
        docker: bool,
    ) {
        let mut args: Vec<String> = ["copy", "--quiet", "--all"].map(String::from).to_vec();
        args.extend(self.skopeo_flags("dest-"));
        if docker {
            args.extend(["--format".into(), "v2s2".into()]);
        }
        args.push(format!("oci:{}:{name}", layout.dir.path().display()));
        args.push(format!("docker://{}", self.reference(repository_and_tag)));
        skopeo_ok(&args);
    }

    /// Stops the registry now (it is stopped on drop otherwise).
    pub fn stop(&mut self) {
        if !self.stopped {
            stop_service(&self.dir);
            self.stopped = true;
        }
    }

    /// The `mediaType` of the manifest at `path`.
    pub fn media_type(&self, path: &str) -> String {
        self.inspect_raw(path)["mediaType"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A running containerd with its own root, state and socket; dropped, it is stopped.
pub struct Containerd {
    /// The gRPC socket (`--address` for ctr).
    pub socket: PathBuf,
    /// The service dir (config, root, state, log, PID file).
    pub dir: PathBuf,
    /// containerd's PID.
    pub pid: u32,
    _tmp: TempDir,
}

impl Containerd {
    /// Starts containerd in a fresh dir under /tmp (a unix socket path must stay under 108
    /// bytes, so `$TMPDIR` is not used) and waits until `ctr version` answers.
    pub fn start() -> Containerd {
        let tmp = tempfile::Builder::new()
            .prefix("va-ctrd-")
            .tempdir_in("/tmp")
            .expect("create containerd temp dir");
        let dir = tmp.path().to_path_buf();
        let output = lab_sh(&["containerd", &dir.to_string_lossy()]);
        assert!(
            output.status.success(),
            "lab.sh containerd failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Containerd {
            socket: dir.join("containerd.sock"),
            pid: started_pid(&output),
            dir,
            _tmp: tmp,
        }
    }

    /// Runs `ctr --address SOCKET ARGS`, whatever its exit code.
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run ctr")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        stop_service(&self.dir);
    }
}

/// One layer of a synthetic image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerSpec {
    /// Uncompressed size of the layer's one file, in KiB.
    pub kib: u64,
    /// Layers with the same key and size have the same content (and so the same blob).
    pub shared_key: Option<String>,
}

/// A synthetic image for `make_images`, in the terms of `scripts/mkimages.py`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSpec {
    /// `org.opencontainers.image.ref.name` in the layout, e.g. `registry.example.com/app:1.0`.
    pub name: String,
    /// `amd64`, `arm64`, `OS/ARCH` or `OS/ARCH/VARIANT`.
    pub platforms: Vec<String>,
    /// Make an image index even for a single platform (more platforms always make one).
    pub index: bool,
    /// The layers of each platform image.
    pub layers: Vec<LayerSpec>,
    /// `KEY=VALUE` options of `mkimages.py` (`user=0:0`, `entrypoint=[...]`, ...).
    pub options: Vec<String>,
}

impl ImageSpec {
    /// A single-platform (linux/amd64) image: an OCI manifest with one layer per size.
    pub fn single(name: &str, layers_kib: &[u64]) -> ImageSpec {
        ImageSpec::multi_arch(name, &["amd64"], layers_kib).index(false)
    }

    /// A multi-arch image: an OCI index with one manifest per platform, each with one layer
    /// per size, e.g. `ImageSpec::multi_arch("app:1", &["amd64", "arm64"], &[64, 128])`.
    pub fn multi_arch(name: &str, platforms: &[&str], layers_kib: &[u64]) -> ImageSpec {
        ImageSpec {
            name: name.to_owned(),
            platforms: platforms.iter().map(|p| (*p).to_owned()).collect(),
            index: true,
            layers: layers_kib
                .iter()
                .map(|&kib| LayerSpec {
                    kib,
                    shared_key: None,
                })
                .collect(),
            options: Vec::new(),
        }
    }

    /// Adds `mkimages.py` options, e.g. `user=0:0`.
    pub fn options(mut self, options: &[&str]) -> ImageSpec {
        self.options.extend(options.iter().map(|o| (*o).to_owned()));
        self
    }

    /// Sets whether a single-platform image is wrapped in an index.
    pub fn index(mut self, index: bool) -> ImageSpec {
        self.index = index;
        self
    }

    /// Adds a layer whose content is shared with every other layer of the same key and size.
    pub fn shared_layer(mut self, kib: u64, key: &str) -> ImageSpec {
        self.layers.push(LayerSpec {
            kib,
            shared_key: Some(key.to_owned()),
        });
        self
    }

    /// The `NAME=[index:]PLATFORMS:LAYERS` argument of `scripts/mkimages.py`.
    pub fn to_arg(&self) -> String {
        let mut arg = format!("{}=", self.name);
        if self.index && self.platforms.len() == 1 {
            arg.push_str("index:");
        }
        let _ = write!(arg, "{}:", self.platforms.join(","));
        let layers: Vec<String> = self
            .layers
            .iter()
            .map(|layer| match &layer.shared_key {
                Some(key) => format!("{}@{key}", layer.kib),
                None => layer.kib.to_string(),
            })
            .collect();
        arg.push_str(&layers.join(","));
        for option in &self.options {
            let _ = write!(arg, ";{option}");
        }
        arg
    }
}

/// An image that `make_images` wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MadeImage {
    /// Its `org.opencontainers.image.ref.name`.
    pub name: String,
    /// Digest of its top manifest or index, e.g. `sha256:…`.
    pub digest: String,
    /// Media type of its top manifest or index.
    pub media_type: String,
}

/// Writes `specs` into the OCI layout `layout` (created or added to) with random content.
pub fn make_images(layout: &Path, specs: &[ImageSpec]) -> Vec<MadeImage> {
    run_mkimages(layout, specs, None)
}

/// Like `make_images`, but byte-for-byte reproducible for the same `seed`.
pub fn make_images_seeded(layout: &Path, specs: &[ImageSpec], seed: &str) -> Vec<MadeImage> {
    run_mkimages(layout, specs, Some(seed))
}

fn run_mkimages(layout: &Path, specs: &[ImageSpec], seed: Option<&str>) -> Vec<MadeImage> {
    let mut command = Command::new("python3");
    command.arg(script("mkimages.py"));
    if let Some(seed) = seed {
        command.arg("--seed").arg(seed);
    }
    command
        .arg(layout)
        .args(specs.iter().map(ImageSpec::to_arg));
    let output = run_ok(&mut command);
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let mut fields = line.split('\t').map(str::to_owned);
            let (Some(name), Some(digest), Some(media_type)) =
                (fields.next(), fields.next(), fields.next())
            else {
                panic!("unexpected mkimages.py output line {line:?}");
            };
            MadeImage {
                name,
                digest,
                media_type,
            }
        })
        .collect()
}

/// The manifest format an image is pushed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedFormat {
    /// As made: OCI manifest / index, bytes and digest unchanged.
    Oci,
    /// Converted by skopeo to a Docker v2s2 manifest (with `all`: a Docker manifest list).
    Docker,
}

/// Pushes image `name` from the OCI layout `layout` to `registry` as `path` (`repo:tag`).
/// `all` copies every platform of an index; without it skopeo copies only the host's platform.
pub fn seed(
    registry: &Registry,
    layout: &Path,
    name: &str,
    path: &str,
    format: SeedFormat,
    all: bool,
) {
    let mut args: Vec<String> = vec!["copy".into(), "--quiet".into()];
    if all {
        args.push("--all".into());
    }
    if format == SeedFormat::Docker {
        args.extend(["--format".into(), "v2s2".into()]);
    }
    args.extend(registry.skopeo_flags("dest-"));
    args.push(format!("oci:{}:{name}", layout.display()));
    args.push(format!("docker://{}", registry.reference(path)));
    skopeo_ok(&args);
}

/// Runs `skopeo --insecure-policy ARGS` (no host policy file needed), whatever its exit code.
pub fn skopeo<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("run skopeo")
}

/// Like `skopeo`, but panics with skopeo's output unless it succeeds.
pub fn skopeo_ok<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    run_ok(Command::new("skopeo").arg("--insecure-policy").args(args))
}

/// The proxy variables the tool reads (Go's names plus curl's `ALL_PROXY`).
pub const PROXY_VARIABLES: [&str; 8] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// The `velero-airgap` binary under test, without the proxy variables of the environment the
/// tests run in (the lab is on 127.0.0.1, which the tool would send through them): tests that
/// want a proxy set their own.
pub fn velero_airgap() -> assert_cmd::Command {
    let mut command = assert_cmd::Command::new(env!("CARGO_BIN_EXE_velero-airgap"));
    for name in PROXY_VARIABLES {
        command.env_remove(name);
    }
    command
}

/// Runs the binary under test with `args` and returns its exit code, stderr and peak
/// resident memory in KiB. A Python parent measures it: `RUSAGE_CHILDREN` of a process
/// whose only child is ours, where this test process has many.
pub fn peak_rss_kib(args: &[&std::ffi::OsStr]) -> (i32, String, u64) {
    let script = "import resource, subprocess, sys\n\
                  code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n\
                  print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
                  sys.exit(code if code >= 0 else 128 - code)";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_velero-airgap"))
        .args(args)
        .output()
        .expect("run python3");
    let rss = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("peak RSS printed");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        rss,
    )
}

/// The content of entry `name` of the tar file `bundle`.
pub fn read_entry(bundle: &Path, name: &str) -> Vec<u8> {
    let mut archive = tar::Archive::new(std::fs::File::open(bundle).expect("open bundle"));
    for entry in archive.entries().expect("read tar") {
        let mut entry = entry.expect("read entry");
        if entry.path().expect("entry path").to_string_lossy() == name {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut out).expect("read entry data");
            return out;
        }
    }
    panic!("{name} not in {}", bundle.display());
}

/// Sends SIGINT to `child` once its stderr shows a line containing `needle`.
pub fn interrupt_at(child: &mut std::process::Child, needle: &str) -> String {
    use std::io::BufRead;
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut interrupted = false;
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if !interrupted && line.contains(needle) {
            signal(child, "INT");
            interrupted = true;
        }
    }
    assert!(interrupted, "the child never printed {needle:?}:\n{seen}");
    seen
}

/// Sends `name` (`INT`, `STOP`, `CONT`, `KILL`) to `child`.
pub fn signal(child: &std::process::Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {}", child.id());
}

/// Stops `child` (SIGSTOP) the moment `reached()` holds, so a test can act on it at that
/// point, then resume it with [`signal`]`(child, "CONT")`. Fails when the child exits first:
/// a test that never caught it there would check nothing.
pub fn freeze_when(child: &mut std::process::Child, reached: impl Fn() -> bool) {
    loop {
        if reached() {
            signal(child, "STOP");
            return;
        }
        if let Some(status) = child.try_wait().expect("poll the child") {
            panic!("the child ended ({status}) before the point the test waits for");
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A P-256 key pair made by openssl: (private PKCS#8 PEM, public PEM).
pub fn keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let ec = dir.join(format!("{name}.ec"));
    for args in [
        vec![
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            ec.to_str().unwrap(),
        ],
        vec![
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            ec.to_str().unwrap(),
            "-out",
            private.to_str().unwrap(),
        ],
        vec![
            "pkey",
            "-in",
            private.to_str().unwrap(),
            "-pubout",
            "-out",
            public.to_str().unwrap(),
        ],
    ] {
        let status = std::process::Command::new("openssl")
            .args(&args)
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args:?}");
    }
    (private, public)
}

/// For the in-process fake registries: answers a TLS ClientHello the way Go's HTTP server
/// does on a plain port (a 400 and a close), so a client treating the host as insecure
/// falls back to plain HTTP as it would with a real registry. True when it answered.
pub async fn refuse_tls(socket: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncWriteExt;
    let mut first = [0u8; 1];
    // 0x16 opens a TLS handshake record; no HTTP method starts with it.
    if socket.peek(&mut first).await.ok() == Some(1) && first[0] == 0x16 {
        let _ = socket
            .write_all(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
            .await;
        let _ = socket.shutdown().await;
        return true;
    }
    false
}

/// Runs `velero-airgap ARGS` with stdout and stderr on a pipe whose read end is closed
/// before it starts, as `velero-airgap … 2>&1 | head -0` would, so every write it makes
/// fails with EPIPE. Returns the exit code (`None` when a signal ended it).
pub fn run_with_closed_pipe(args: &[&std::ffi::OsStr], envs: &[(&str, &Path)]) -> Option<i32> {
    let (reader, writer) = std::io::pipe().expect("create a pipe");
    drop(reader);
    let mut command = Command::new(env!("CARGO_BIN_EXE_velero-airgap"));
    command
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(writer.try_clone().expect("clone the pipe's write end"))
        .stderr(writer);
    for (name, value) in envs {
        command.env(name, value);
    }
    command.status().expect("run velero-airgap").code()
}
