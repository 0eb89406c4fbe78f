//! Proxies from environment-style variables, through a small forward proxy (CONNECT tunnels
//! for https, absolute-form requests for http) in front of the real lab registry.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use velero_airgap::oci::Digest;
use velero_airgap::registry::transport::{
    Credentials, Policies, ProxyConfig, RegistryPolicy, TransportOptions, Warning,
};

use super::{repository, transport_with, trusted_certificate};
use crate::lab::{Registry, RegistryKind};

/// A request line and its Proxy-Authorization, as the proxy saw them.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// Starts a forward proxy on 127.0.0.1; returns its address and what it saw.
async fn start_proxy() -> (String, Seen, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen: Seen = Arc::default();
    let task = tokio::spawn({
        let seen = seen.clone();
        async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(forward(client, seen.clone()));
            }
        }
    });
    (address, seen, task)
}

async fn forward(mut client: TcpStream, seen: Seen) -> std::io::Result<()> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if client.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let request_line = text.lines().next().unwrap_or_default().to_string();
    let authorization = text
        .lines()
        .find_map(|line| {
            line.strip_prefix("proxy-authorization: ")
                .or_else(|| line.strip_prefix("Proxy-Authorization: "))
        })
        .map(str::to_string);
    seen.lock()
        .unwrap()
        .push((request_line.clone(), authorization));
    let mut parts = request_line.split(' ');
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if method == "CONNECT" {
        let mut upstream = TcpStream::connect(target).await?;
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    } else {
        // Absolute-form request: distribution accepts it as it is.
        let authority = target
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_default();
        let mut upstream = TcpStream::connect(authority).await?;
        upstream.write_all(&head).await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    }
    Ok(())
}

fn options(policies: Policies, variables: &[(&str, String)]) -> TransportOptions {
    let variables = variables.to_vec();
    let mut options = TransportOptions::new(policies);
    options.proxy = ProxyConfig::from_lookup(|name| {
        variables
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    })
    .unwrap();
    options
}

#[tokio::test]
async fn https_goes_through_a_connect_tunnel_with_proxy_credentials() {
    let registry = Registry::start(RegistryKind::Tls);
    let (proxy, seen, _task) = start_proxy().await;
    let policies = Policies::new(RegistryPolicy::trusting(vec![trusted_certificate(
        &registry,
    )]));
    let proxy_url = format!("http://proxy-user:pr%40xy@{proxy}");
    let transport = transport_with(
        options(policies, &[("https_proxy", proxy_url)]),
        Credentials::Anonymous,
    );
    let app = repository(&registry.addr, "via/proxy");
    let digest = super::upload(&transport, &app, b"through the tunnel")
        .await
        .unwrap();
    assert!(transport.head_blob(&app, &digest).await.unwrap());
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("proxy-user:pr@xy")
    );
    for (line, authorization) in &seen {
        assert_eq!(line, &format!("CONNECT {} HTTP/1.1", registry.addr));
        assert_eq!(authorization.as_deref(), Some(expected.as_str()));
    }
    assert!(
        !format!("{transport:?}").contains("pr%40xy"),
        "Debug shows the proxy password"
    );
}

#[tokio::test]
async fn an_insecure_plain_registry_is_reached_through_the_proxy_over_http() {
    let registry = Registry::start(RegistryKind::Plain);
    let (proxy, seen, _task) = start_proxy().await;
    let policies =
        Policies::new(RegistryPolicy::system()).with_host(&registry.addr, RegistryPolicy::Insecure);
    let variables = [
        ("HTTPS_PROXY", format!("http://{proxy}")),
        ("HTTP_PROXY", proxy.clone()),
    ];
    let transport = transport_with(options(policies, &variables), Credentials::Anonymous);
    let app = repository(&registry.addr, "via/http");
    assert!(!transport.head_blob(&app, &Digest::of(b"x")).await.unwrap());
    assert_eq!(
        transport.warnings(),
        [Warning::PlainHttp {
            host: registry.addr.clone()
        }]
    );
    let seen = seen.lock().unwrap().clone();
    let lines: Vec<&str> = seen.iter().map(|(line, _)| line.as_str()).collect();
    // TLS was tried through a tunnel first, then plain HTTP in absolute form.
    assert_eq!(lines[0], format!("CONNECT {} HTTP/1.1", registry.addr));
    assert!(
        lines[1..].iter().all(
            |line| line.starts_with(&format!("HEAD http://{}/", registry.addr))
                || line.starts_with(&format!("GET http://{}/", registry.addr))
        ),
        "{lines:?}"
    );
}

#[tokio::test]
async fn no_proxy_entries_bypass_the_proxy_and_loopback_is_not_special() {
    let registry = Registry::start(RegistryKind::Tls);
    let (proxy, seen, _task) = start_proxy().await;
    let ca = trusted_certificate(&registry);
    let port = registry.addr.rsplit_once(':').unwrap().1.to_string();
    let cases = [
        ("127.0.0.1", false),
        (registry.addr.as_str(), false),
        ("127.0.0.0/8", false),
        ("127.0.0.1:1", true),
        ("localhost", true),
        ("", true),
    ];
    for (no_proxy, proxied) in cases {
        seen.lock().unwrap().clear();
        let variables = [
            ("HTTPS_PROXY", format!("http://{proxy}")),
            ("NO_PROXY", no_proxy.to_string()),
        ];
        let policies = Policies::new(RegistryPolicy::trusting(vec![ca.clone()]));
        let transport = transport_with(options(policies, &variables), Credentials::Anonymous);
        let app = repository(&registry.addr, "bypass");
        assert!(
            !transport
                .head_blob(&app, &Digest::of(port.as_bytes()))
                .await
                .unwrap()
        );
        assert_eq!(
            !seen.lock().unwrap().is_empty(),
            proxied,
            "NO_PROXY={no_proxy}"
        );
    }
}
