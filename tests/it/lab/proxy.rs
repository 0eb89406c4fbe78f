//! A logging HTTP proxy for the proxy tests: it records every `CONNECT` target and every
//! absolute-URI request it is asked for, then forwards them, so a test can tell exactly
//! which traffic went through a proxy and which went direct.
//!
//! It runs on its own thread with its own tokio runtime, on 127.0.0.1, and stops when its
//! handle is dropped. It speaks just enough HTTP/1.1 for a client such as ours:
//!
//! - `CONNECT host:port`: answers 200 and splices bytes both ways (TLS passes through).
//! - `GET http://host:port/path` (any method): sends the request on in origin form with
//!   `Connection: close`, so each proxied request has its own upstream connection and ends
//!   when the server closes it; the client sees the server's `Connection: close` and opens a
//!   new connection for its next request. Bodies (uploads) stream through untouched.
//! - With [`LoggingProxy::start_with_credentials`], a request without the right Basic
//!   `Proxy-Authorization` gets a 407 and is recorded as refused.

use std::net::TcpListener as StdListener;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest request head the proxy reads.
const HEAD_LIMIT: usize = 64 << 10;

/// One thing a client asked the proxy for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRecord {
    /// `CONNECT`, or the method of an absolute-URI request.
    pub method: String,
    /// `host:port` for `CONNECT`, else the absolute URI.
    pub target: String,
    /// Whether the client sent the credentials the proxy wants (always true without any).
    pub authorized: bool,
}

impl ProxyRecord {
    /// Whether this is a `CONNECT`.
    pub fn is_connect(&self) -> bool {
        self.method == "CONNECT"
    }
}

/// A running logging proxy; dropped, it stops.
pub struct LoggingProxy {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    records: Arc<Mutex<Vec<ProxyRecord>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LoggingProxy {
    /// Starts a proxy that wants no credentials.
    pub fn start() -> LoggingProxy {
        LoggingProxy::spawn(None)
    }

    /// Starts a proxy that wants Basic `Proxy-Authorization` for `user:password`.
    pub fn start_with_credentials(user: &str, password: &str) -> LoggingProxy {
        use base64::Engine;
        let expected =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        LoggingProxy::spawn(Some(format!("Basic {expected}")))
    }

    fn spawn(expected_auth: Option<String>) -> LoggingProxy {
        // Bound here, before the thread starts: the port is ours from the first moment.
        let listener = StdListener::bind("127.0.0.1:0").expect("bind the logging proxy");
        listener
            .set_nonblocking(true)
            .expect("make the proxy listener non-blocking");
        let addr = listener.local_addr().expect("proxy address").to_string();
        let records = Arc::new(Mutex::new(Vec::new()));
        let (shutdown, mut stop) = tokio::sync::oneshot::channel::<()>();
        let thread_records = records.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("tokio proxy listener");
                let expected_auth = Arc::new(expected_auth);
                loop {
                    tokio::select! {
                        _ = &mut stop => break,
                        accepted = listener.accept() => {
                            let Ok((socket, _)) = accepted else { continue };
                            let records = thread_records.clone();
                            let expected_auth = expected_auth.clone();
                            tokio::spawn(async move {
                                let _ = serve(socket, &records, expected_auth.as_deref()).await;
                            });
                        }
                    }
                }
            });
        });
        LoggingProxy {
            addr,
            records,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, for `HTTPS_PROXY` and friends.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://USER:PASSWORD@127.0.0.1:PORT`.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("http://{user}:{password}@{}", self.addr)
    }

    /// Everything recorded so far, in arrival order.
    pub fn records(&self) -> Vec<ProxyRecord> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl Drop for LoggingProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves one client connection.
async fn serve(
    mut client: TcpStream,
    records: &Mutex<Vec<ProxyRecord>>,
    expected_auth: Option<&str>,
) -> std::io::Result<()> {
    let Some((head, rest)) = read_head(&mut client).await? else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target) = (
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
    );
    let headers: Vec<(String, String)> = lines
        .filter(|line| !line.is_empty())
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let authorized = expected_auth.is_none_or(|want| header("proxy-authorization") == Some(want));
    records
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(ProxyRecord {
            method: method.clone(),
            target: target.clone(),
            authorized,
        });
    if !authorized {
        client
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"lab\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await?;
        return client.shutdown().await;
    }
    if method == "CONNECT" {
        let Ok(mut upstream) = TcpStream::connect(&target).await else {
            client
                .write_all(
                    b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await?;
            return client.shutdown().await;
        };
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await?;
        upstream.write_all(&rest).await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        return Ok(());
    }
    // An absolute URI: http://host[:port]/path.
    let Some(after_scheme) = target.strip_prefix("http://") else {
        client
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await?;
        return client.shutdown().await;
    };
    let (authority, path) = match after_scheme.find('/') {
        Some(slash) => (&after_scheme[..slash], &after_scheme[slash..]),
        None => (after_scheme, "/"),
    };
    let upstream_addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let mut upstream = TcpStream::connect(&upstream_addr).await?;
    let mut forwarded = format!("{method} {path} HTTP/1.1\r\n");
    let hop_by_hop = [
        "proxy-authorization",
        "proxy-connection",
        "connection",
        "keep-alive",
    ];
    let mut has_host = false;
    for (name, value) in &headers {
        if hop_by_hop.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            continue;
        }
        has_host |= name.eq_ignore_ascii_case("host");
        forwarded.push_str(&format!("{name}: {value}\r\n"));
    }
    if !has_host {
        forwarded.push_str(&format!("Host: {authority}\r\n"));
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    upstream.write_all(forwarded.as_bytes()).await?;
    upstream.write_all(&rest).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// Reads up to the end of the request head; returns the head (without the blank line) and
/// whatever of the body came with it. `None` when the client closed first.
async fn read_head(client: &mut TcpStream) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buffer.split_off(end + 4);
            buffer.truncate(end);
            return Ok(Some((buffer, rest)));
        }
        if buffer.len() > HEAD_LIMIT {
            return Ok(None);
        }
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}
