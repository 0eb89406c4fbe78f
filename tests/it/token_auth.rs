//! Token authentication as Docker Hub, ghcr.io, Harbor and GitLab have it, against the lab's
//! `--token` registry (distribution with `auth: token`) and its token server, whose request
//! log (one JSON object per request: scopes asked, granted, Basic credentials sent or not,
//! http or https) is the evidence.

use std::path::Path;

use serde_json::Value;

use crate::lab::fake::ThrottledRelay;
use crate::lab::sources::{Sources, write_docker_config};
use crate::lab::{Registry, RegistryKind, TokenServer, TokenSetup, skopeo, velero_airgap};
use crate::unpack::{build_bundle, pullable, unpack, value_images};

/// A token registry whose token server knows the lab user.
fn token_kind(tls: bool, ttl: Option<u32>) -> RegistryKind {
    RegistryKind::Token(TokenSetup {
        auth: true,
        tls,
        token_tls: tls,
        ttl,
    })
}

/// Runs `build` from `sources` with `extra` flags (and no Docker config unless given);
/// returns stderr, failing the test unless it succeeds.
fn build_from(sources: &Sources, extra: &[String]) -> String {
    let addr = &sources.registry.addr;
    let out = velero_airgap()
        .arg("build")
        .arg("-c")
        .arg(&sources.config)
        .arg("-o")
        .arg(sources.path("bundle.tar"))
        .arg(format!("--mirror=proxy.replicated.com={addr}"))
        .arg(format!("--mirror=registry.example.com={addr}"))
        .args(extra)
        .env("DOCKER_CONFIG", sources.path("no-docker-config"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "build {extra:?}: {stderr}");
    stderr
}

/// A Docker config directory with the lab user's credentials for `addr`.
fn docker_config_for(dir: &Path, addr: &str) -> String {
    let docker = dir.join("docker");
    write_docker_config(
        &docker,
        addr,
        &format!("{}:{}", Registry::USERNAME, Registry::PASSWORD),
    );
    docker.display().to_string()
}

/// The token requests logged after the first `skip`.
fn token_requests_since(token: &TokenServer, skip: usize) -> Vec<Value> {
    token.token_requests().into_iter().skip(skip).collect()
}

/// The `scope` values of a logged token request.
fn scopes(request: &Value) -> Vec<String> {
    let query = request["query"].as_str().unwrap_or_default();
    url::form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "scope")
        .map(|(_, value)| value.into_owned())
        .collect()
}

#[test]
fn build_anonymously_from_a_token_registry() {
    let sources = Sources::start(token_kind(false, None), 64);
    let token = sources.registry.token.clone().unwrap();
    let seeded = token.token_requests().len();
    build_from(
        &sources,
        &[format!("--insecure-registry={}", sources.registry.addr)],
    );
    let ours = token_requests_since(&token, seeded);
    assert!(!ours.is_empty(), "no token was asked for");
    for request in &ours {
        assert_eq!(request["basic_auth"], false, "{request}");
        assert_eq!(request["status"], 200, "{request}");
        assert!(
            request["user"].is_null() || request["user"] == "",
            "{request}"
        );
        assert!(
            request["granted"]
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g.as_str().unwrap().ends_with(":pull")),
            "{request}"
        );
    }
}

#[test]
fn credentials_go_to_a_token_realm_only_over_https_or_when_it_is_insecure() {
    // The realm is http://127.0.0.1:TPORT/token.
    let sources = Sources::start(token_kind(false, None), 64);
    let token = sources.registry.token.clone().unwrap();
    let docker = docker_config_for(sources.dir.path(), &sources.registry.addr);
    let registry_insecure = format!("--insecure-registry={}", sources.registry.addr);
    let with_config = format!("--docker-config={docker}");

    // Only the registry is insecure: the credentials stay home (anonymous pulls still work).
    let seen = token.token_requests().len();
    build_from(&sources, &[registry_insecure.clone(), with_config.clone()]);
    let ours = token_requests_since(&token, seen);
    assert!(!ours.is_empty());
    for request in &ours {
        assert_eq!(request["scheme"], "http", "{request}");
        assert_eq!(request["basic_auth"], false, "{request}");
    }

    // The realm's host marked insecure too: now they go, and the user is known.
    let seen = token.token_requests().len();
    build_from(
        &sources,
        &[
            registry_insecure,
            with_config,
            format!("--insecure-registry={}", token.addr),
        ],
    );
    let ours = token_requests_since(&token, seen);
    assert!(!ours.is_empty());
    for request in &ours {
        assert_eq!(request["basic_auth"], true, "{request}");
        assert_eq!(request["user"], Registry::USERNAME, "{request}");
    }

    // An https realm (registry and token server with the lab CA): they go.
    let sources = Sources::start(token_kind(true, None), 64);
    let token = sources.registry.token.clone().unwrap();
    assert!(token.realm.starts_with("https://"), "{}", token.realm);
    let docker = docker_config_for(sources.dir.path(), &sources.registry.addr);
    let seen = token.token_requests().len();
    build_from(
        &sources,
        &[
            format!(
                "--ca-file={}",
                sources.registry.ca_cert.as_ref().unwrap().display()
            ),
            format!("--docker-config={docker}"),
        ],
    );
    let ours = token_requests_since(&token, seen);
    assert!(!ours.is_empty());
    for request in &ours {
        assert_eq!(request["scheme"], "https", "{request}");
        assert_eq!(request["basic_auth"], true, "{request}");
        assert_eq!(request["user"], Registry::USERNAME, "{request}");
    }
}

/// `unpack` flags for a TLS token registry reached at `addr` (the registry itself, or a relay
/// in front of it) with the lab user's credentials.
fn unpack_args(target: &Registry, addr: &str, docker: &str, values: &Path) -> Vec<String> {
    vec![
        "--registry".into(),
        addr.into(),
        "--ca-file".into(),
        target.ca_cert.as_ref().unwrap().display().to_string(),
        "--docker-config".into(),
        docker.into(),
        "--values-out".into(),
        values.display().to_string(),
    ]
}

/// Every image the values name pulls from `target` (skopeo, anonymous pull).
fn assert_values_pull(target: &Registry, values: &Path, addr: &str) {
    for reference in value_images(values) {
        let on_target = reference.replacen(addr, &target.addr, 1);
        let mut args = vec!["inspect".to_string(), "--raw".to_string()];
        args.push(format!(
            "--cert-dir={}",
            target.ca_dir.as_ref().unwrap().display()
        ));
        args.push(format!("docker://{}", pullable(&on_target)));
        let out = skopeo(&args);
        assert!(
            out.status.success(),
            "{on_target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn unpack_into_a_token_registry_mounts_shared_layers_and_reruns() {
    let built = build_bundle(64, &[]);
    let target = Registry::start(token_kind(true, None));
    let token = target.token.clone().unwrap();
    let docker = docker_config_for(built.sources.dir.path(), &target.addr);
    let values = built.path("values.yaml");
    let args = unpack_args(&target, &target.addr, &docker, &values);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let (code, json, stderr) = unpack(&built.bundle, &args, None);
    assert_eq!(code, 0, "{stderr}");
    // The four images share their base layer: uploaded once, mounted into the others (a
    // blob counts once, by its upload; the token requests below show the mounts).
    assert_eq!(json["blobsLoaded"], json["blobs"], "{json:#}");
    assert_values_pull(&target, &values, &target.addr);

    // Each mount asked for one token covering both repositories, and got it.
    let mounts: Vec<Value> = token
        .token_requests()
        .into_iter()
        .filter(|request| {
            let scopes = scopes(request);
            scopes.len() == 2
                && scopes.iter().any(|s| s.ends_with(":pull,push"))
                && scopes
                    .iter()
                    .any(|s| s.ends_with(":pull") && !s.contains(','))
        })
        .collect();
    assert!(!mounts.is_empty(), "{:#?}", token.token_requests());
    for mount in &mounts {
        assert_eq!(mount["basic_auth"], true, "{mount}");
        assert_eq!(mount["granted"].as_array().unwrap().len(), 2, "{mount}");
    }

    let (code, again, stderr) = unpack(&built.bundle, &args, None);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(again["nothingToDo"], true, "{again:#}");
}

/// The `time` field of a token server log record, in seconds since the epoch.
fn logged_seconds(request: &Value) -> i64 {
    let text = request["time"].as_str().unwrap();
    // 2026-11-02T08:17:19Z: only the time of day matters within one test run.
    let clock = &text[11..19];
    let parts: Vec<i64> = clock.split(':').map(|p| p.parse().unwrap()).collect();
    let day: i64 = text[8..10].parse().unwrap();
    ((day * 24 + parts[0]) * 60 + parts[1]) * 60 + parts[2]
}

#[test]
fn short_lived_tokens_are_renewed_during_a_slow_unpack() {
    // Four 1 MiB layers of their own plus the shared one, through a 512 KiB/s uplink, one
    // blob at a time: the pushes take several seconds, tokens live for two.
    let built = build_bundle(1024, &[]);
    let target = Registry::start(token_kind(true, Some(2)));
    let token = target.token.clone().unwrap();
    let slow = ThrottledRelay::start(&target.addr, 512 << 10);
    let docker = docker_config_for(built.sources.dir.path(), &slow.addr);
    let values = built.path("values.yaml");
    let mut args = unpack_args(&target, &slow.addr, &docker, &values);
    args.extend(["--jobs".into(), "1".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let started = std::time::Instant::now();
    let (code, json, stderr) = unpack(&built.bundle, &args, None);
    let took = started.elapsed();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["images"].as_array().unwrap().len(), 4, "{json:#}");
    assert!(took.as_secs() > 4, "the transfer was not slow: {took:?}");
    assert_values_pull(&target, &values, &slow.addr);

    let issued: Vec<Value> = token
        .token_requests()
        .into_iter()
        .filter(|request| request["status"] == 200 && request["basic_auth"] == true)
        .collect();
    assert!(issued.len() > 1, "{issued:#?}");
    let first = logged_seconds(&issued[0]);
    let last = logged_seconds(issued.last().unwrap());
    assert!(
        last - first > 2,
        "every token was issued within one token lifetime: {issued:#?}"
    );
    println!(
        "{} tokens issued over {} s; the unpack took {took:?}",
        issued.len(),
        last - first
    );
}

#[test]
fn unpack_sends_credentials_to_a_plain_http_realm_only_when_it_is_insecure() {
    let built = build_bundle(16, &[]);
    let target = Registry::start(token_kind(false, None));
    let token = target.token.clone().unwrap();
    let docker = docker_config_for(built.sources.dir.path(), &target.addr);
    let values = built.path("values.yaml");
    let mut args = vec![
        "--registry",
        &target.addr,
        "--insecure",
        "--docker-config",
        &docker,
        "--values-out",
        values.to_str().unwrap(),
    ];

    // The realm is http://…: the credentials stay home, the push is refused, and the error
    // says why and what to do (not that the credentials were rejected).
    let (code, _, stderr) = unpack(&built.bundle, &args, None);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("credentials were not sent")
            && stderr.contains(&format!("--insecure-registry {}", token.addr)),
        "{stderr}"
    );
    assert!(!stderr.contains("rejected"), "{stderr}");
    assert!(!values.exists());
    let refused = token.token_requests();
    assert!(!refused.is_empty());
    assert!(
        refused.iter().all(|r| r["basic_auth"] == false),
        "{refused:#?}"
    );

    // The realm's host marked insecure: they go, the push succeeds.
    let realm_insecure = format!("--insecure-registry={}", token.addr);
    args.push(&realm_insecure);
    let (code, _, stderr) = unpack(&built.bundle, &args, None);
    assert_eq!(code, 0, "{stderr}");
    let sent = token_requests_since(&token, refused.len());
    assert!(sent.iter().all(|r| r["basic_auth"] == true), "{sent:#?}");
    assert_values_pull_plain(&target, &values);
}

/// Every image the values name pulls from a plain-HTTP `target` (skopeo, anonymous pull).
fn assert_values_pull_plain(target: &Registry, values: &Path) {
    for reference in value_images(values) {
        let out = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}", pullable(&reference)),
        ]);
        assert!(
            out.status.success(),
            "{reference} on {}: {}",
            target.addr,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
