//! In-process servers on 127.0.0.1 for what the real lab services will not do: a tiny
//! HTTP/1.1 server ([`FakeServer`]) for answers a registry never gives (endless or huge
//! bodies, a scripted token server, refusals on cue), a TCP relay that slows one direction
//! down ([`ThrottledRelay`]) to put a real registry behind a slow link, and a TLS server for
//! certificates the lab's registries never present ([`TlsFake`]).
//!
//! The fake serves one request per connection (`Connection: close`) and records every
//! request. A connection that does not start with an HTTP method (a TLS ClientHello) gets a
//! `400` and is closed, as Go's server answers on a plain port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The method.
    pub method: String,
    /// The request target: a path with query, or an absolute URL (proxy requests).
    pub target: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (as far as Content-Length says).
    pub body: Vec<u8>,
}

impl Recorded {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The target without its query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// Every value of query parameter `name`, percent-decoded.
    pub fn query_values(&self, name: &str) -> Vec<String> {
        let query = self
            .target
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or_default();
        url::form_urlencoded::parse(query.as_bytes())
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
            .collect()
    }
}

/// What to answer.
pub enum Reply {
    /// A complete answer with Content-Length.
    Full {
        /// The status.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// The body.
        body: Vec<u8>,
    },
    /// A chunked body that never ends.
    EndlessChunked {
        /// The status.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
    },
    /// Announces `length` bytes and sends zeros until the client hangs up.
    Declared {
        /// The status.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// The Content-Length announced.
        length: u64,
    },
    /// Announces `length` bytes, sends `prefix`, then nothing, keeping the connection open.
    Stalled {
        /// The status.
        status: u16,
        /// The Content-Length announced.
        length: u64,
        /// The bytes sent before the stall.
        prefix: Vec<u8>,
    },
}

impl Reply {
    /// An empty answer with `status`.
    pub fn status(status: u16) -> Reply {
        Reply::Full {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, body: &str) -> Reply {
        Reply::Full {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        match &mut self {
            Reply::Full { headers, .. }
            | Reply::EndlessChunked { headers, .. }
            | Reply::Declared { headers, .. } => headers.push((name.into(), value.into())),
            Reply::Stalled { .. } => panic!("a stalled reply has no headers"),
        }
        self
    }
}

/// Decides the answer to each request.
pub type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// A running fake server; stops when dropped.
pub struct FakeServer {
    /// Where it listens.
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    /// Starts serving on a free port of 127.0.0.1 (on the current tokio runtime).
    pub async fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let task = tokio::spawn({
            let requests = requests.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (handler, requests) = (handler.clone(), requests.clone());
                    tokio::spawn(async move {
                        let _ = serve(stream, handler, requests).await;
                    });
                }
            }
        });
        FakeServer {
            addr,
            requests,
            task,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Every request so far.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve(
    mut stream: TcpStream,
    handler: Handler,
    requests: Arc<Mutex<Vec<Recorded>>>,
) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..read]);
        if !buffer[0].is_ascii_uppercase() {
            stream
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                )
                .await?;
            return Ok(());
        }
        if let Some(position) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break position;
        }
        assert!(buffer.len() < 64 << 10, "request head too large");
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let target = request_line.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; 64 << 10];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    let recorded = Recorded {
        method,
        target,
        headers,
        body,
    };
    requests.lock().unwrap().push(recorded.clone());
    let head_only = recorded.method == "HEAD";
    match handler(&recorded) {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut out = status_line(status, &headers);
            out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            stream.write_all(out.as_bytes()).await?;
            if !head_only {
                stream.write_all(&body).await?;
            }
        }
        Reply::EndlessChunked { status, headers } => {
            let mut out = status_line(status, &headers);
            out.push_str("Transfer-Encoding: chunked\r\n\r\n");
            stream.write_all(out.as_bytes()).await?;
            let chunk = [b'{'; 65536];
            loop {
                stream.write_all(b"10000\r\n").await?;
                stream.write_all(&chunk).await?;
                stream.write_all(b"\r\n").await?;
            }
        }
        Reply::Declared {
            status,
            headers,
            length,
        } => {
            let mut out = status_line(status, &headers);
            out.push_str(&format!("Content-Length: {length}\r\n\r\n"));
            stream.write_all(out.as_bytes()).await?;
            let chunk = [b' '; 65536];
            let mut sent = 0u64;
            while sent < length {
                let n = chunk
                    .len()
                    .min(usize::try_from(length - sent).unwrap_or(usize::MAX));
                stream.write_all(&chunk[..n]).await?;
                sent += n as u64;
            }
        }
        Reply::Stalled {
            status,
            length,
            prefix,
        } => {
            let mut out = status_line(status, &[]);
            out.push_str(&format!("Content-Length: {length}\r\n\r\n"));
            stream.write_all(out.as_bytes()).await?;
            stream.write_all(&prefix).await?;
            std::future::pending::<()>().await;
        }
    }
    stream.shutdown().await
}

fn status_line(status: u16, headers: &[(String, String)]) -> String {
    let mut out = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out
}

/// A TCP relay on 127.0.0.1 in front of `upstream` that passes the client's bytes on at
/// most `bytes_per_second` (answers go back at full speed): a slow uplink to a real
/// registry. Plain threads, so it serves synchronous tests and child processes alike;
/// dropped, it stops accepting (open connections end with their peers).
pub struct ThrottledRelay {
    /// `127.0.0.1:PORT` to connect to instead of `upstream`.
    pub addr: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl ThrottledRelay {
    /// Starts relaying to `upstream` (`HOST:PORT`).
    pub fn start(upstream: &str, bytes_per_second: u64) -> ThrottledRelay {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_owned();
        std::thread::spawn({
            let stop = stop.clone();
            move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                        continue;
                    };
                    relay(client, server, bytes_per_second);
                }
            }
        });
        ThrottledRelay { addr, stop }
    }
}

impl Drop for ThrottledRelay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(&self.addr);
    }
}

/// Copies both directions of one connection on two threads, the client's side throttled.
fn relay(client: std::net::TcpStream, server: std::net::TcpStream, bytes_per_second: u64) {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let (Ok(mut client_in), Ok(mut server_out)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        // Small slices, each sent no earlier than the rate allows.
        let mut buffer = vec![0u8; 16 << 10];
        let started = Instant::now();
        let mut sent: u64 = 0;
        while let Ok(read) = client_in.read(&mut buffer) {
            if read == 0 || server_out.write_all(&buffer[..read]).is_err() {
                break;
            }
            sent += read as u64;
            let due = Duration::from_secs_f64(sent as f64 / bytes_per_second as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let _ = server_out.shutdown(std::net::Shutdown::Write);
    });
    let (mut server_in, mut client_out) = (server, client);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut server_in, &mut client_out);
        let _ = client_out.shutdown(std::net::Shutdown::Write);
    });
}

/// A TLS server on 127.0.0.1 presenting a given certificate, for certificates the lab's
/// registries never serve (expired, or not naming 127.0.0.1). It completes handshakes a
/// client accepts and answers every request with an empty `200`; dropped, it stops
/// accepting.
pub struct TlsFake {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl TlsFake {
    /// Serves the PEM `certificate` with the PEM (PKCS#8) `key`.
    pub fn start(certificate: &std::path::Path, key: &std::path::Path) -> TlsFake {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        use std::sync::atomic::{AtomicBool, Ordering};
        let chain = vec![CertificateDer::from_pem_file(certificate).expect("read certificate")];
        let key = PrivateKeyDer::from_pem_file(key).expect("read key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate");
        let config = Arc::new(config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        std::thread::spawn({
            let stop = stop.clone();
            move || {
                for socket in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(socket) = socket else { continue };
                    let config = config.clone();
                    std::thread::spawn(move || serve_tls(config, socket));
                }
            }
        });
        TlsFake { addr, stop }
    }
}

impl Drop for TlsFake {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(&self.addr);
    }
}

fn serve_tls(config: Arc<rustls::ServerConfig>, socket: std::net::TcpStream) {
    use std::io::{Read, Write};
    let _ = socket.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let Ok(connection) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut stream = rustls::StreamOwned::new(connection, socket);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.flush();
}
