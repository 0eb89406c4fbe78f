//! Bearer-token flows against a scripted registry + token server (in process: tokens that die
//! early, refusals on cue and scope bookkeeping are what the lab's real token server does
//! not script) with distribution's `auth: token` behaviour: `WWW-Authenticate: Bearer realm,service[,scope][,error]`,
//! `insufficient_scope` naming every scope a request needs, tokens that expire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use velero_airgap::oci::Digest;
use velero_airgap::registry::transport::{Credentials, MountOutcome, TransportError};

use super::{basic, insecure, repository, transport, upload};
use crate::lab::Registry;
use crate::lab::fake::{FakeServer, Recorded, Reply};

const SERVICE: &str = "fake-registry";

/// What the scripted server does.
#[derive(Default)]
struct Script {
    /// `expires_in` in token answers.
    expires_in: Option<u64>,
    /// How long tokens really live (server side); `None`: forever.
    lifetime: Option<Duration>,
    /// A scope a mount also needs (the registry names it in its challenge).
    extra_mount_scope: Option<String>,
    /// Refuse the next blob PUT with 401 even with a good token.
    revoke_next_put: bool,
    /// The `Authorization` the token endpoint insists on, if any.
    required_authorization: Option<String>,
    /// When set, tokens are only given for this OAuth refresh token, POSTed as a form.
    refresh_token: Option<String>,
    /// A scope the token server leaves out of the tokens it gives (as real ones do with
    /// actions the caller may not have).
    withheld_scope: Option<String>,
    /// A scope the token server refuses outright (403 for any request naming it).
    refused_scope: Option<String>,
    /// What the registry answers a permitted mount with (default 201 Created).
    mount_status: Option<u16>,
    issued: HashMap<String, (Instant, Vec<String>)>,
}

fn scripted(
    script: Script,
) -> (
    Arc<Mutex<Script>>,
    impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
) {
    let script = Arc::new(Mutex::new(script));
    let shared = script.clone();
    (script, move |request: &Recorded| {
        answer(&mut shared.lock().unwrap(), request)
    })
}

fn answer(script: &mut Script, request: &Recorded) -> Reply {
    let host = request.header("host").unwrap_or_default().to_string();
    let challenge = |scopes: &[String], error: Option<&str>| {
        let mut value = format!(r#"Bearer realm="http://{host}/token",service="{SERVICE}""#);
        if !scopes.is_empty() {
            value.push_str(&format!(r#",scope="{}""#, scopes.join(" ")));
        }
        if let Some(error) = error {
            value.push_str(&format!(r#",error="{error}""#));
        }
        Reply::json(401, r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#)
            .with_header("WWW-Authenticate", &value)
    };
    let path = request.path().to_string();
    if path == "/token" {
        if let Some(required) = &script.required_authorization
            && request.header("authorization") != Some(required.as_str())
        {
            return Reply::json(401, r#"{"details":"incorrect username or password"}"#);
        }
        if let Some(expected) = &script.refresh_token {
            let form: HashMap<String, String> = url::form_urlencoded::parse(&request.body)
                .into_owned()
                .collect();
            let valid = request.method == "POST"
                && form.get("grant_type").map(String::as_str) == Some("refresh_token")
                && form.get("refresh_token") == Some(expected)
                && form.get("service").map(String::as_str) == Some(SERVICE);
            if !valid {
                return Reply::json(401, "{}");
            }
            let scopes = form
                .get("scope")
                .map(|s| s.split(' ').map(str::to_string).collect())
                .unwrap_or_default();
            script
                .issued
                .insert("oauth-token".into(), (Instant::now(), scopes));
            return Reply::json(200, r#"{"access_token":"oauth-token","expires_in":300}"#);
        }
        let asked = request.query_values("scope");
        if let Some(refused) = &script.refused_scope
            && asked.contains(refused)
        {
            return Reply::json(403, r#"{"details":"access denied"}"#);
        }
        let granted = asked
            .into_iter()
            .filter(|scope| Some(scope) != script.withheld_scope.as_ref())
            .collect();
        let token = format!("token-{}", script.issued.len() + 1);
        script
            .issued
            .insert(token.clone(), (Instant::now(), granted));
        let expires = script
            .expires_in
            .map(|s| format!(r#","expires_in":{s}"#))
            .unwrap_or_default();
        return Reply::json(200, &format!(r#"{{"token":"{token}"{expires}}}"#));
    }
    if path == "/v2/" {
        return challenge(&[], None);
    }
    let rest = path.strip_prefix("/v2/").unwrap_or_default();
    let (name, tail) = rest
        .split_once("/manifests/")
        .map(|(n, t)| (n, format!("manifests/{t}")))
        .or_else(|| {
            rest.split_once("/blobs/")
                .map(|(n, t)| (n, format!("blobs/{t}")))
        })
        .unwrap_or_default();
    let writes = request.method == "POST" || request.method == "PUT";
    let mut needed = vec![format!(
        "repository:{name}:{}",
        if writes { "pull,push" } else { "pull" }
    )];
    let mount_from = request.query_values("from").pop();
    if let Some(from) = &mount_from {
        needed.push(format!("repository:{from}:pull"));
        needed.extend(script.extra_mount_scope.clone());
    }
    let token = request
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let Some((issued, granted)) = script.issued.get(token) else {
        return challenge(&needed, None);
    };
    if script
        .lifetime
        .is_some_and(|lifetime| issued.elapsed() > lifetime)
    {
        return challenge(&needed, Some("invalid_token"));
    }
    if !needed.iter().all(|scope| covers(granted, scope)) {
        return challenge(&needed, Some("insufficient_scope"));
    }
    if request.method == "PUT"
        && tail.starts_with("blobs/uploads/")
        && std::mem::take(&mut script.revoke_next_put)
    {
        return challenge(&needed, Some("invalid_token"));
    }
    match (request.method.as_str(), tail.as_str()) {
        ("GET" | "HEAD", t) if t.starts_with("manifests/") => Reply::json(200, "{}")
            .with_header("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
        ("HEAD", _) => Reply::status(404),
        ("POST", _) if mount_from.is_some() => match script.mount_status.unwrap_or(201) {
            202 => Reply::status(202).with_header(
                "Location",
                &format!("/v2/{name}/blobs/uploads/m1?_state=m%3D"),
            ),
            status => Reply::status(status),
        },
        ("POST", _) => Reply::status(202).with_header(
            "Location",
            &format!("/v2/{name}/blobs/uploads/u1?_state=s%3D"),
        ),
        ("PUT", _) => {
            let digest = request.query_values("digest").pop().unwrap_or_default();
            Reply::status(201).with_header("Docker-Content-Digest", &digest)
        }
        _ => Reply::status(400),
    }
}

/// Whether granted scopes cover `needed` (`repository:NAME:ACTIONS`).
fn covers(granted: &[String], needed: &str) -> bool {
    let split = |scope: &str| {
        scope
            .rsplit_once(':')
            .map(|(resource, actions)| (resource.to_string(), actions.to_string()))
    };
    let Some((resource, actions)) = split(needed) else {
        return false;
    };
    actions.split(',').all(|action| {
        granted
            .iter()
            .filter_map(|g| split(g))
            .any(|(r, a)| r == resource && a.split(',').any(|x| x == action))
    })
}

fn token_requests(server: &FakeServer) -> Vec<Recorded> {
    server
        .recorded()
        .into_iter()
        .filter(|r| r.path() == "/token")
        .collect()
}

/// How many requests reached a path containing `path_part` (a refused request and its
/// retry count twice).
fn requests_to(server: &FakeServer, path_part: &str) -> usize {
    server
        .recorded()
        .iter()
        .filter(|r| r.path().contains(path_part))
        .count()
}

fn basic_header() -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        Registry::USERNAME,
        Registry::PASSWORD
    ));
    format!("Basic {encoded}")
}

#[tokio::test]
async fn tokens_carry_service_and_scopes_are_cached_and_the_host_is_pinged_once() {
    let (_, handler) = scripted(Script {
        expires_in: Some(300),
        ..Script::default()
    });
    let server = FakeServer::start(handler).await;
    let transport = transport(insecure(&[&server.host()]), basic());
    let a = repository(&server.host(), "team/a");
    transport.get_manifest(&a, "v1").await.unwrap();
    transport.get_manifest(&a, "v1").await.unwrap();
    assert!(!transport.head_blob(&a, &Digest::of(b"x")).await.unwrap());
    assert!(
        !transport
            .head_blob(&repository(&server.host(), "team/b"), &Digest::of(b"x"))
            .await
            .unwrap()
    );

    let tokens = token_requests(&server);
    assert_eq!(tokens.len(), 2, "one token per scope set");
    assert_eq!(tokens[0].query_values("service"), [SERVICE]);
    assert_eq!(tokens[0].query_values("scope"), ["repository:team/a:pull"]);
    assert_eq!(tokens[1].query_values("scope"), ["repository:team/b:pull"]);
    assert_eq!(
        tokens[0].header("authorization"),
        Some(basic_header().as_str())
    );
    let pings = server
        .recorded()
        .iter()
        .filter(|r| r.path() == "/v2/")
        .count();
    assert_eq!(pings, 1);
}

#[tokio::test]
async fn a_mount_asks_for_both_scopes_in_one_token() {
    let (_, handler) = scripted(Script::default());
    let server = FakeServer::start(handler).await;
    let transport = transport(insecure(&[&server.host()]), basic());
    let (dest, src) = (
        repository(&server.host(), "dest"),
        repository(&server.host(), "src"),
    );
    let outcome = transport
        .mount_blob(&dest, &src, &Digest::of(b"x"))
        .await
        .unwrap();
    assert_eq!(outcome, MountOutcome::Mounted);
    let tokens = token_requests(&server);
    assert_eq!(tokens.len(), 1);
    assert_eq!(
        tokens[0].query_values("scope"),
        ["repository:dest:pull,push", "repository:src:pull"]
    );
    assert_eq!(
        requests_to(&server, "/blobs/uploads/"),
        1,
        "the mount went through at once"
    );
    // Different hosts: declined without a request.
    let elsewhere = repository("127.0.0.1:1", "src");
    assert_eq!(
        transport
            .mount_blob(&dest, &elsewhere, &Digest::of(b"x"))
            .await
            .unwrap(),
        MountOutcome::NotMounted
    );
}

#[tokio::test]
async fn insufficient_scope_adds_the_scopes_the_registry_names() {
    let (_, handler) = scripted(Script {
        extra_mount_scope: Some("repository:audit:pull".into()),
        ..Script::default()
    });
    let server = FakeServer::start(handler).await;
    let transport = transport(insecure(&[&server.host()]), basic());
    let (dest, src) = (
        repository(&server.host(), "dest"),
        repository(&server.host(), "src"),
    );
    let outcome = transport
        .mount_blob(&dest, &src, &Digest::of(b"x"))
        .await
        .unwrap();
    assert_eq!(outcome, MountOutcome::Mounted);
    let tokens = token_requests(&server);
    assert_eq!(tokens.len(), 2);
    assert_eq!(
        tokens[1].query_values("scope"),
        [
            "repository:audit:pull",
            "repository:dest:pull,push",
            "repository:src:pull"
        ]
    );
}

#[tokio::test]
async fn expired_tokens_are_renewed_before_use() {
    // expires_in 11 s: good for 1 s after the 10 s margin.
    let (_, handler) = scripted(Script {
        expires_in: Some(11),
        lifetime: Some(Duration::from_secs(11)),
        ..Script::default()
    });
    let server = FakeServer::start(handler).await;
    let transport = transport(insecure(&[&server.host()]), basic());
    let a = repository(&server.host(), "a");
    transport.get_manifest(&a, "v1").await.unwrap();
    transport.get_manifest(&a, "v1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    transport.get_manifest(&a, "v1").await.unwrap();
    assert_eq!(token_requests(&server).len(), 2);
    assert_eq!(
        requests_to(&server, "/manifests/"),
        3,
        "no request was refused"
    );
}

#[tokio::test]
async fn a_token_refused_early_is_replaced_once() {
    let (_, handler) = scripted(Script {
        expires_in: Some(3600),
        lifetime: Some(Duration::from_secs(1)),
        ..Script::default()
    });
    let server = FakeServer::start(handler).await;
    let transport = transport(insecure(&[&server.host()]), basic());
    let a = repository(&server.host(), "a");
    transport.get_manifest(&a, "v1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    transport.get_manifest(&a, "v1").await.unwrap();
    assert_eq!(token_requests(&server).len(), 2);
    assert_eq!(
        requests_to(&server, "/manifests/"),
        3,
        "one refusal, one retry"
    );
}

#[tokio::test]
async fn a_refused_upload_put_asks_the_caller_to_reopen_the_body() {
    let (script, handler) = scripted(Script {
        revoke_next_put: true,
        ..Script::default()
    });
    let server = FakeServer::start(handler).await;
    let transport = transport(insecure(&[&server.host()]), basic());
    let a = repository(&server.host(), "a");
    let error = upload(&transport, &a, b"blob").await.unwrap_err();
    assert!(
        matches!(error, TransportError::ReauthRequired { .. }),
        "{error:?}"
    );
    assert!(error.is_transient());
    assert!(!script.lock().unwrap().revoke_next_put);
    // The caller's retry, with a new body: a fresh token, and the PUT goes through.
    upload(&transport, &a, b"blob").await.unwrap();
    assert_eq!(token_requests(&server).len(), 2);
    let put = server
        .recorded()
        .into_iter()
        .rfind(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(put.header("content-length"), Some("4"));
    assert_eq!(put.body, b"blob");
    assert_eq!(
        put.query_values("_state"),
        ["s="],
        "the session's query is kept"
    );
    assert_eq!(
        put.query_values("digest"),
        [Digest::of(b"blob").to_string()]
    );
}

#[tokio::test]
async fn wrong_credentials_at_the_token_server_are_refused_without_echo() {
    let (_, handler) = scripted(Script {
        required_authorization: Some(basic_header()),
        ..Script::default()
    });
    let server = FakeServer::start(handler).await;
    let wrong = Credentials::Basic {
        username: Registry::USERNAME.into(),
        password: "hunter2".into(),
    };
    let transport = transport(insecure(&[&server.host()]), wrong);
    let error = transport
        .get_manifest(&repository(&server.host(), "a"), "v1")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            TransportError::AuthRefused {
                had_credentials: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!format!("{error} {error:?}").contains("hunter2"));
}

#[tokio::test]
async fn credentials_stay_off_plain_http_realms_unless_the_realm_is_insecure() {
    let realm = FakeServer::start(|_| Reply::json(200, r#"{"access_token":"anything"}"#)).await;
    let realm_url = format!("http://{}/token", realm.host());
    let registry = FakeServer::start(move |request| match request.header("authorization") {
        Some(value) if value.starts_with("Bearer ") => Reply::json(200, "{}")
            .with_header("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
        _ => Reply::status(401).with_header(
            "WWW-Authenticate",
            &format!(r#"Bearer realm="{realm_url}",service="s""#),
        ),
    })
    .await;
    let a = repository(&registry.host(), "a");

    let only_registry_insecure = transport(insecure(&[&registry.host()]), basic());
    only_registry_insecure.get_manifest(&a, "v1").await.unwrap();
    let first = token_requests(&realm);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].header("authorization"), None);

    let both_insecure = transport(insecure(&[&registry.host(), &realm.host()]), basic());
    both_insecure.get_manifest(&a, "v1").await.unwrap();
    let second = token_requests(&realm);
    assert_eq!(
        second[1].header("authorization"),
        Some(basic_header().as_str())
    );
}

#[tokio::test]
async fn identity_tokens_are_exchanged_with_an_oauth_post() {
    let (_, handler) = scripted(Script {
        refresh_token: Some("refresh-me".into()),
        ..Script::default()
    });
    let server = FakeServer::start(handler).await;
    let credentials = Credentials::IdentityToken("refresh-me".into());
    let transport = transport(insecure(&[&server.host()]), credentials);
    let (dest, src) = (
        repository(&server.host(), "dest"),
        repository(&server.host(), "src"),
    );
    assert_eq!(
        transport
            .mount_blob(&dest, &src, &Digest::of(b"x"))
            .await
            .unwrap(),
        MountOutcome::Mounted
    );
    let tokens = token_requests(&server);
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].method, "POST");
    assert_eq!(tokens[0].header("authorization"), None);
}

/// Runs a mount of `src` into `dest` on a scripted registry, then the upload a caller does
/// when it is not mounted; returns the outcome and what the server saw.
async fn mount_then_upload(script: Script) -> (MountOutcome, Vec<Recorded>) {
    let (_, handler) = scripted(script);
    let server = FakeServer::start(handler).await;
    let transport = transport(insecure(&[&server.host()]), basic());
    let (dest, src) = (
        repository(&server.host(), "dest"),
        repository(&server.host(), "src"),
    );
    let outcome = transport
        .mount_blob(&dest, &src, &Digest::of(b"blob"))
        .await
        .unwrap();
    if outcome == MountOutcome::NotMounted {
        upload(&transport, &dest, b"blob").await.unwrap();
    }
    (outcome, server.recorded())
}

#[tokio::test]
async fn a_mount_not_granted_falls_back_to_an_upload() {
    let posts_with_mount =
        |seen: &[Recorded]| seen.iter().filter(|r| r.target.contains("mount=")).count();
    let uploads = |seen: &[Recorded]| seen.iter().filter(|r| r.method == "PUT").count();

    // The token leaves out pull on the source: the registry says insufficient_scope, a
    // second token is no better, the blob is uploaded.
    let (outcome, seen) = mount_then_upload(Script {
        withheld_scope: Some("repository:src:pull".into()),
        ..Script::default()
    })
    .await;
    assert_eq!(outcome, MountOutcome::NotMounted);
    assert_eq!(
        posts_with_mount(&seen),
        2,
        "asked once more with a fresh token"
    );
    assert_eq!(uploads(&seen), 1);

    // The token server refuses the two-repository scope outright (403).
    let (outcome, seen) = mount_then_upload(Script {
        refused_scope: Some("repository:src:pull".into()),
        ..Script::default()
    })
    .await;
    assert_eq!(outcome, MountOutcome::NotMounted);
    assert_eq!(uploads(&seen), 1);

    // The registry forbids the mount (403).
    let (outcome, seen) = mount_then_upload(Script {
        mount_status: Some(403),
        ..Script::default()
    })
    .await;
    assert_eq!(outcome, MountOutcome::NotMounted);
    assert_eq!(uploads(&seen), 1);

    // The registry opens an upload session instead (202): it is cancelled, then a fresh
    // upload goes through.
    let (outcome, seen) = mount_then_upload(Script {
        mount_status: Some(202),
        ..Script::default()
    })
    .await;
    assert_eq!(outcome, MountOutcome::NotMounted);
    assert!(
        seen.iter()
            .any(|r| r.method == "DELETE" && r.path() == "/v2/dest/blobs/uploads/m1"),
        "the unwanted session was not cancelled"
    );
    assert_eq!(uploads(&seen), 1);
}
