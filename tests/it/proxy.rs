//! Proxies, through the binary: the tool's own traffic follows `HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY` and `NO_PROXY` (observed with the lab's logging proxy), the install-time
//! flags only fill Velero's values, and proxy credentials are sent but never shown, and never
//! ship in a bundle by accident.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::lab::proxy::{LoggingProxy, ProxyRecord};
use crate::lab::sources::Sources;
use crate::lab::{Registry, RegistryKind, read_entry, velero_airgap};

/// A password distinctive enough that finding it anywhere in output is a leak.
const PROXY_PASSWORD: &str = "Pr0xyPa55-9c1e7b";
const PROXY_USER: &str = "lab-proxy-user";

/// Runs `build` from `sources` into `name`, with `env` set on top of an environment
/// without proxy variables.
fn build_with(sources: &Sources, name: &str, env: &[(&str, &str)], extra: &[&str]) -> Output {
    let mut command = velero_airgap();
    command
        .arg("build")
        .arg("-c")
        .arg(&sources.config)
        .arg("-o")
        .arg(sources.path(name))
        .args(sources.registry_args())
        .args(extra)
        .env("DOCKER_CONFIG", sources.path("no-docker-config"));
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_ok(output: &Output, what: &str) {
    assert!(output.status.success(), "{what}: {}", text(output));
}

/// The port of `127.0.0.1:PORT`.
fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// A port nothing listens on, other than `port`.
fn other_port(port: u16) -> u16 {
    if port == 65535 { port - 1 } else { port + 1 }
}

#[test]
fn https_proxy_carries_a_tls_build_unless_no_proxy_matches() {
    let sources = Sources::start(RegistryKind::Tls, 16);
    let proxy = LoggingProxy::start();
    let addr = sources.registry.addr.clone();
    let port = port_of(&addr);
    let connects_only_to_the_registry = |records: &[ProxyRecord], case: &str| {
        assert!(
            !records.is_empty(),
            "{case}: nothing went through the proxy"
        );
        for record in records {
            assert!(
                record.is_connect() && record.target == addr,
                "{case}: unexpected {record:?}"
            );
        }
    };

    let url = proxy.url();
    let proxied: [(&str, Vec<(&str, String)>); 4] = [
        ("HTTPS_PROXY", vec![("HTTPS_PROXY", url.clone())]),
        ("https_proxy", vec![("https_proxy", url.clone())]),
        ("ALL_PROXY", vec![("ALL_PROXY", url.clone())]),
        (
            "NO_PROXY on another port",
            vec![
                ("HTTPS_PROXY", url.clone()),
                ("NO_PROXY", format!("127.0.0.1:{}", other_port(port))),
            ],
        ),
    ];
    for (index, (case, env)) in proxied.iter().enumerate() {
        proxy.clear();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let output = build_with(&sources, &format!("proxied-{index}.tar"), &env, &[]);
        assert_ok(&output, case);
        connects_only_to_the_registry(&proxy.records(), case);
    }

    // `HTTP_PROXY` is for http:// requests only: a TLS registry is reached directly.
    proxy.clear();
    let output = build_with(&sources, "http-only.tar", &[("HTTP_PROXY", &url)], &[]);
    assert_ok(&output, "HTTP_PROXY only");
    assert_eq!(proxy.records(), vec![], "HTTP_PROXY only");

    let no_proxy = [
        "*".to_string(),
        "127.0.0.1".to_string(),
        format!("127.0.0.1:{port}"),
        "127.0.0.0/8".to_string(),
        format!("example.com, 127.0.0.1:{port}"),
    ];
    for (index, list) in no_proxy.iter().enumerate() {
        for variable in ["NO_PROXY", "no_proxy"] {
            proxy.clear();
            let output = build_with(
                &sources,
                &format!("direct-{index}-{variable}.tar"),
                &[("HTTPS_PROXY", &url), (variable, list)],
                &[],
            );
            assert_ok(&output, &format!("{variable}={list}"));
            assert_eq!(proxy.records(), vec![], "{variable}={list}");
        }
    }
}

/// Domain entries, with `localhost` (the lab certificate names it) standing in for a
/// registry's name: `localhost` bypasses it, `.localhost` only its subdomains (Go's rule).
#[test]
fn no_proxy_domain_entries_follow_go() {
    let sources = Sources::start(RegistryKind::Tls, 16);
    let proxy = LoggingProxy::start();
    let port = port_of(&sources.registry.addr);
    let host = format!("localhost:{port}");
    let ca = sources.registry.ca_cert.clone().unwrap();
    let args = [
        format!("--mirror=proxy.replicated.com={host}"),
        format!("--mirror=registry.example.com={host}"),
        format!("--ca-file={}", ca.display()),
    ];
    let build = |name: &str, no_proxy: &str| {
        let out = velero_airgap()
            .arg("build")
            .arg("-q")
            .arg("-c")
            .arg(&sources.config)
            .arg("-o")
            .arg(sources.path(name))
            .args(&args)
            .env("DOCKER_CONFIG", sources.path("no-docker-config"))
            .env("HTTPS_PROXY", proxy.url())
            .env("NO_PROXY", no_proxy)
            .output()
            .unwrap();
        assert_ok(&out, no_proxy);
    };
    for (index, list) in ["localhost", &host, "LOCALHOST"].iter().enumerate() {
        proxy.clear();
        build(&format!("direct-{index}.tar"), list);
        assert_eq!(proxy.records(), vec![], "NO_PROXY={list}");
    }
    for (index, list) in [".localhost", "*.localhost", "localhost:1"]
        .iter()
        .enumerate()
    {
        proxy.clear();
        build(&format!("proxied-{index}.tar"), list);
        let records = proxy.records();
        assert!(
            !records.is_empty() && records.iter().all(|r| r.target == host),
            "NO_PROXY={list}: {records:?}"
        );
    }
}

#[test]
fn http_proxy_carries_a_plain_registry_build_as_absolute_uris() {
    let sources = Sources::start(RegistryKind::Plain, 16);
    let proxy = LoggingProxy::start();
    let addr = sources.registry.addr.clone();
    let output = build_with(
        &sources,
        "proxied.tar",
        &[("HTTP_PROXY", &proxy.url())],
        &[],
    );
    assert_ok(&output, "HTTP_PROXY");
    let records = proxy.records();
    let prefix = format!("http://{addr}/v2/");
    assert!(
        records
            .iter()
            .any(|r| r.method == "GET" && r.target == prefix),
        "no API check through the proxy: {records:?}"
    );
    assert!(
        records.iter().any(|r| r.target.contains("/blobs/sha256:")),
        "no blob through the proxy: {records:?}"
    );
    for record in &records {
        assert!(
            !record.is_connect() && record.target.starts_with(&prefix),
            "unexpected {record:?}"
        );
    }

    proxy.clear();
    let output = build_with(
        &sources,
        "direct.tar",
        &[("HTTP_PROXY", &proxy.url()), ("NO_PROXY", &addr)],
        &[],
    );
    assert_ok(&output, "NO_PROXY=ADDR");
    assert_eq!(proxy.records(), vec![]);
}

#[test]
fn proxy_credentials_from_the_environment_are_sent_and_never_printed() {
    let sources = Sources::start(RegistryKind::Tls, 16);
    let proxy = LoggingProxy::start_with_credentials(PROXY_USER, PROXY_PASSWORD);
    let with_password = proxy.url_with(PROXY_USER, PROXY_PASSWORD);
    let output = build_with(
        &sources,
        "ok.tar",
        &[("HTTPS_PROXY", &with_password)],
        &["-vv"],
    );
    assert_ok(&output, "proxy with credentials");
    let records = proxy.records();
    assert!(!records.is_empty() && records.iter().all(|r| r.authorized));
    assert!(!text(&output).contains(PROXY_PASSWORD), "{}", text(&output));

    // Wrong credentials: a network failure (exit 3), and neither password shows.
    let wrong = "Wr0ngPa55-41d2";
    let output = build_with(
        &sources,
        "refused.tar",
        &[("HTTPS_PROXY", &proxy.url_with(PROXY_USER, wrong))],
        &["-vv", "--retries", "0"],
    );
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let all = text(&output);
    assert!(
        !all.contains(wrong) && !all.contains(PROXY_PASSWORD),
        "{all}"
    );
    assert!(!sources.path("refused.tar").exists());
}

/// The values of a bundle, as text.
fn bundle_values(bundle: &Path) -> String {
    String::from_utf8(read_entry(bundle, "values.yaml")).unwrap()
}

#[test]
fn install_proxy_flags_only_fill_the_values() {
    let sources = Sources::start(RegistryKind::Tls, 16);
    let proxy = LoggingProxy::start();
    let url = proxy.url();
    let output = build_with(
        &sources,
        "bundle.tar",
        &[],
        &[
            "--https-proxy",
            &url,
            "--http-proxy",
            &url,
            "--no-proxy",
            ".cluster.local,10.0.0.0/8",
        ],
    );
    assert_ok(&output, "build with proxy flags");
    assert_eq!(proxy.records(), vec![], "the flags routed the build");
    let values = bundle_values(&sources.path("bundle.tar"));
    for expected in [
        "name: \"HTTPS_PROXY\"".to_string(),
        format!("value: \"{url}\""),
        "value: \".cluster.local,10.0.0.0/8\"".to_string(),
    ] {
        assert!(values.contains(&expected), "{expected} not in:\n{values}");
    }
}

#[test]
fn proxy_credentials_in_flags_are_refused_at_build_and_render_unless_allowed() {
    let sources = Sources::start(RegistryKind::Plain, 16);
    let secret_url = format!("http://{PROXY_USER}:{PROXY_PASSWORD}@proxy.corp.example:3128");
    for flag in ["--https-proxy", "--http-proxy"] {
        let output = build_with(&sources, "bundle.tar", &[], &[flag, &secret_url]);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains("--allow-secrets"),
            "{stderr}"
        );
        assert!(!text(&output).contains(PROXY_PASSWORD), "{stderr}");
        assert!(!sources.path("bundle.tar").exists());

        let render = |extra: &[&str]| {
            velero_airgap()
                .arg("render")
                .arg("-c")
                .arg(&sources.config)
                .args([flag, &secret_url])
                .args(extra)
                .output()
                .unwrap()
        };
        let output = render(&[]);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains("--allow-secrets"),
            "{stderr}"
        );
        assert!(!text(&output).contains(PROXY_PASSWORD), "{stderr}");
        assert!(output.stdout.is_empty());

        // Allowed: the URL is written as given (Velero needs it), to a private file.
        let file = sources.path("values.yaml");
        let output = render(&["--allow-secrets", "-o", file.to_str().unwrap()]);
        assert_ok(&output, "render --allow-secrets");
        assert!(
            std::fs::read_to_string(&file)
                .unwrap()
                .contains(&secret_url)
        );
        assert_eq!(mode(&file), 0o600);
        std::fs::remove_file(&file).unwrap();
    }
    let output = build_with(
        &sources,
        "bundle.tar",
        &[],
        &["--https-proxy", &secret_url, "--allow-secrets"],
    );
    assert_ok(&output, "build --allow-secrets");
    assert!(bundle_values(&sources.path("bundle.tar")).contains(&secret_url));
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Runs `unpack` of `bundle` into `registry` with `extra` flags.
fn unpack(bundle: &Path, registry: &Registry, values: &Path, extra: &[&str]) -> Output {
    velero_airgap()
        .arg("unpack")
        .arg(bundle)
        .arg("--registry")
        .arg(&registry.addr)
        .arg("--insecure")
        .arg("--values-out")
        .arg(values)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn unpack_writes_proxy_credentials_owner_only_and_never_prints_them() {
    let sources = Sources::start(RegistryKind::Plain, 16);
    let bundle = sources.path("bundle.tar");
    assert_ok(&build_with(&sources, "bundle.tar", &[], &[]), "build");
    let target = Registry::start(RegistryKind::Plain);
    let secret_url = format!("http://{PROXY_USER}:{PROXY_PASSWORD}@proxy.corp.example:3128");
    let proxy_flags = [
        "--https-proxy",
        secret_url.as_str(),
        "--http-proxy",
        secret_url.as_str(),
        "--no-proxy",
        "10.0.0.0/8",
    ];
    let values: PathBuf = sources.path("values.yaml");

    // --dry-run: says what the values would get, the password hidden; writes nothing.
    let mut args = proxy_flags.to_vec();
    args.push("--dry-run");
    let output = unpack(&bundle, &target, &values, &args);
    assert_ok(&output, "unpack --dry-run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!text(&output).contains(PROXY_PASSWORD), "{}", text(&output));
    assert!(
        stdout.contains("with HTTPS_PROXY=http://***@proxy.corp.example:3128"),
        "{stdout}"
    );
    assert!(!values.exists());

    // -v (the library's decisions, traced) on a run that loads everything.
    let mut args = proxy_flags.to_vec();
    args.push("-vv");
    let output = unpack(&bundle, &target, &values, &args);
    assert_ok(&output, "unpack -vv");
    assert!(!text(&output).contains(PROXY_PASSWORD), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("mode 0600"),
        "{}",
        text(&output)
    );
    // Velero needs the URL as given; only the owner can read it.
    assert!(
        std::fs::read_to_string(&values)
            .unwrap()
            .contains(&secret_url)
    );
    assert_eq!(mode(&values), 0o600);

    // --json, on the re-run.
    let mut args = proxy_flags.to_vec();
    args.push("--json");
    let output = unpack(&bundle, &target, &values, &args);
    assert_ok(&output, "unpack --json");
    assert!(!text(&output).contains(PROXY_PASSWORD), "{}", text(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        json["proxyEnv"]["HTTPS_PROXY"],
        "http://***@proxy.corp.example:3128"
    );
    assert_eq!(json["proxyEnv"]["NO_PROXY"], "10.0.0.0/8");
    assert_eq!(mode(&values), 0o600);

    // Without credentials the values are an ordinary file.
    let output = unpack(
        &bundle,
        &target,
        &values,
        &["--https-proxy", "http://proxy.corp.example:3128"],
    );
    assert_ok(&output, "unpack without credentials");
    assert_ne!(mode(&values), 0o600);
}
