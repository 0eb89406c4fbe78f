//! Proxies for our own traffic, from the environment, with Go's rules (`httpproxy.FromEnvironment`,
//! what Docker, containerd and skopeo follow), so one environment means the same thing to all
//! of them:
//!
//! - An `https://` request uses `HTTPS_PROXY`, else `https_proxy`; an `http://` request
//!   `HTTP_PROXY`, else `http_proxy`: the upper-case name wins when both are set and
//!   non-empty. Unlike Go, `ALL_PROXY`/`all_proxy` (curl's variable) is the fallback for both
//!   when the scheme's own variable is unset. Go's CGI guard (ignore `HTTP_PROXY` when
//!   `REQUEST_METHOD` is set) does not apply to a CLI.
//! - A proxy value without `scheme://` means `http://`; `http` and `https` proxies are
//!   supported (SOCKS is not compiled in and is refused). `user:pass@` in it is sent to the
//!   proxy as Basic `Proxy-Authorization`; [`redact`] hides the password wherever we print one.
//! - `NO_PROXY` (else `no_proxy`), comma-separated, case-insensitive:
//!   `*` bypasses every host; `1.2.3.4`, `::1`, `[::1]:5000`, `1.2.3.4:5000` an IP (on that
//!   port only, when one is given); `10.0.0.0/8`, `fd00::/8` a CIDR (any port);
//!   `example.com` the domain and its subdomains; `.example.com` and `*.example.com`
//!   subdomains only (Go's rule; curl would match `example.com` too); `example.com:443` on
//!   that port only (the URL's default port counts). IP hosts are matched by IP and CIDR
//!   entries, names by domain entries.
//! - Deliberately unlike Go, loopback and `localhost` are proxied unless listed: nothing is
//!   special-cased, so tests on 127.0.0.1 can observe the rules.

use std::net::IpAddr;

use url::{Host, Url};

use super::error::TransportError;

/// Which proxy, if any, each request goes through.
#[derive(Clone, Default)]
pub struct ProxyConfig {
    http: Option<Url>,
    https: Option<Url>,
    no_proxy: NoProxy,
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("http", &self.http.as_ref().map(|u| redact(u.as_str())))
            .field("https", &self.https.as_ref().map(|u| redact(u.as_str())))
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl ProxyConfig {
    /// Reads the process environment (see the module documentation for the rules).
    pub fn from_env() -> Result<ProxyConfig, TransportError> {
        ProxyConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`ProxyConfig::from_env`], reading variables through `lookup` (tests, or a
    /// caller with its own environment).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ProxyConfig, TransportError> {
        let first = |names: &[&str]| {
            names
                .iter()
                .filter_map(|name| lookup(name))
                .find(|value| !value.trim().is_empty())
        };
        let all = first(&["ALL_PROXY", "all_proxy"]);
        let http = first(&["HTTP_PROXY", "http_proxy"]).or_else(|| all.clone());
        let https = first(&["HTTPS_PROXY", "https_proxy"]).or(all);
        Ok(ProxyConfig {
            http: http.as_deref().map(parse_proxy).transpose()?,
            https: https.as_deref().map(parse_proxy).transpose()?,
            no_proxy: NoProxy::parse(&first(&["NO_PROXY", "no_proxy"]).unwrap_or_default()),
        })
    }

    /// Whether any proxy is configured.
    pub(crate) fn is_empty(&self) -> bool {
        self.http.is_none() && self.https.is_none()
    }

    /// The proxy for a request to `url`, or `None` to connect directly.
    pub fn proxy_for(&self, url: &Url) -> Option<Url> {
        let proxy = match url.scheme() {
            "https" => self.https.as_ref(),
            "http" => self.http.as_ref(),
            _ => None,
        }?;
        let host = url.host()?;
        let port = url.port_or_known_default()?;
        (!self.no_proxy.bypasses(&host, port)).then(|| proxy.clone())
    }
}

/// Parses a proxy URL the way Go does: a bare `host:port` means `http://host:port`.
fn parse_proxy(value: &str) -> Result<Url, TransportError> {
    let value = value.trim();
    let with_scheme = if value.contains("://") {
        value.to_string()
    } else {
        format!("http://{value}")
    };
    let invalid = |reason: &str| TransportError::Setup {
        reason: format!("invalid proxy {}: {reason}", redact(&with_scheme)),
    };
    let url = Url::parse(&with_scheme).map_err(|error| invalid(&error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("only http:// and https:// proxies are supported"));
    }
    if url.host().is_none() {
        return Err(invalid("no host"));
    }
    Ok(url)
}

/// `url` with its password replaced by `***`, for messages and logs; text that is not a
/// URL is returned with anything between `://` and `@` hidden.
pub fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Setting a password only fails for URLs that cannot have one, which this has.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(start), Some(at)) if at > start => {
                format!("{}***{}", &url[..start + 3], &url[at..])
            }
            _ => url.to_string(),
        },
    }
}

/// The parsed `NO_PROXY` list.
#[derive(Debug, Clone, Default)]
struct NoProxy {
    everything: bool,
    entries: Vec<Bypass>,
}

#[derive(Debug, Clone)]
enum Bypass {
    Ip {
        ip: IpAddr,
        port: Option<u16>,
    },
    Cidr {
        network: IpAddr,
        prefix: u8,
    },
    /// `suffix` starts with `.`; `exact` also matches the name without the dot.
    Domain {
        suffix: String,
        exact: bool,
        port: Option<u16>,
    },
}

impl NoProxy {
    fn parse(list: &str) -> NoProxy {
        let mut no_proxy = NoProxy::default();
        for entry in list.split(',') {
            let entry = entry.trim().to_ascii_lowercase();
            if entry.is_empty() {
                continue;
            }
            if entry == "*" {
                no_proxy.everything = true;
                continue;
            }
            if let Some(cidr) = parse_cidr(&entry) {
                no_proxy.entries.push(cidr);
                continue;
            }
            let (host, port) = split_host_port(&entry);
            if let Ok(ip) = host.parse::<IpAddr>() {
                no_proxy.entries.push(Bypass::Ip { ip, port });
                continue;
            }
            let host = host.strip_prefix('*').unwrap_or(host);
            // Malformed entries (a bare `:port`, a bad port) are ignored, as in Go.
            if host.is_empty() || host == "." || (entry.contains(':') && port.is_none()) {
                continue;
            }
            let (suffix, exact) = match host.strip_prefix('.') {
                Some(_) => (host.to_string(), false),
                None => (format!(".{host}"), true),
            };
            no_proxy.entries.push(Bypass::Domain {
                suffix,
                exact,
                port,
            });
        }
        no_proxy
    }

    fn bypasses(&self, host: &Host<&str>, port: u16) -> bool {
        if self.everything {
            return true;
        }
        let ip = match host {
            Host::Ipv4(ip) => Some(IpAddr::V4(*ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(*ip)),
            Host::Domain(_) => None,
        };
        self.entries.iter().any(|entry| match (entry, ip, host) {
            (
                Bypass::Ip {
                    ip: listed,
                    port: listed_port,
                },
                Some(ip),
                _,
            ) => *listed == ip && listed_port.is_none_or(|p| p == port),
            (Bypass::Cidr { network, prefix }, Some(ip), _) => in_network(ip, *network, *prefix),
            (
                Bypass::Domain {
                    suffix,
                    exact,
                    port: listed_port,
                },
                None,
                Host::Domain(name),
            ) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                let matches = name.ends_with(suffix.as_str()) || (*exact && name == suffix[1..]);
                matches && listed_port.is_none_or(|p| p == port)
            }
            _ => false,
        })
    }
}

/// `host:port`, `[v6]:port`, or just a host (an IPv6 address without brackets has colons
/// but no port).
fn split_host_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[')
        && let Some((host, after)) = rest.split_once(']')
    {
        return (host, after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, port.parse().ok()),
        _ => (entry, None),
    }
}

fn parse_cidr(entry: &str) -> Option<Bypass> {
    let (address, prefix) = entry.split_once('/')?;
    let network: IpAddr = address.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    let bits = if network.is_ipv4() { 32 } else { 128 };
    (prefix <= bits).then_some(Bypass::Cidr { network, prefix })
}

fn in_network(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
        let shift = u32::from(width - prefix);
        if shift >= 128 { 0 } else { bits >> shift }
    }
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(network)) => {
            masked(u32::from(ip).into(), prefix, 32)
                == masked(u32::from(network).into(), prefix, 32)
        }
        (IpAddr::V6(ip), IpAddr::V6(network)) => {
            masked(u128::from(ip), prefix, 128) == masked(u128::from(network), prefix, 128)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> ProxyConfig {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ProxyConfig::from_lookup(|name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    fn proxied(config: &ProxyConfig, url: &str) -> Option<String> {
        config
            .proxy_for(&Url::parse(url).unwrap())
            .map(|u| u.to_string())
    }

    #[test]
    fn variable_precedence_follows_go_plus_all_proxy() {
        let both = config(&[
            ("HTTPS_PROXY", "http://upper:1"),
            ("https_proxy", "http://lower:1"),
        ]);
        assert_eq!(
            proxied(&both, "https://r.example/").as_deref(),
            Some("http://upper:1/")
        );
        let lower = config(&[("HTTPS_PROXY", ""), ("https_proxy", "http://lower:1")]);
        assert_eq!(
            proxied(&lower, "https://r.example/").as_deref(),
            Some("http://lower:1/")
        );
        let all = config(&[
            ("all_proxy", "proxy.corp:3128"),
            ("HTTP_PROXY", "http://h:2"),
        ]);
        assert_eq!(
            proxied(&all, "https://r.example/").as_deref(),
            Some("http://proxy.corp:3128/")
        );
        assert_eq!(
            proxied(&all, "http://r.example/").as_deref(),
            Some("http://h:2/")
        );
        assert!(config(&[]).is_empty());
        assert_eq!(proxied(&config(&[]), "https://r.example/"), None);
    }

    #[test]
    fn no_proxy_table() {
        let list = "*.wild.example, .dot.example, plain.example, ported.example:5000, \
                    10.1.2.3, 10.9.9.9:8443, 192.168.0.0/16, ::1, [fd00::5]:5000, \
                    fe80::/10, :7000, Upper.Example";
        let config = config(&[
            ("HTTPS_PROXY", "http://p:3128"),
            ("HTTP_PROXY", "http://p:3128"),
            ("NO_PROXY", list),
        ]);
        let cases: &[(&str, bool)] = &[
            // domain: itself and subdomains
            ("https://plain.example/", false),
            ("https://a.b.plain.example:444/", false),
            ("https://notplain.example/", true),
            // leading dot or `*.`: subdomains only (Go)
            ("https://x.dot.example/", false),
            ("https://dot.example/", true),
            ("https://x.wild.example/", false),
            ("https://wild.example/", true),
            // host:port: that port only; the default port counts
            ("https://ported.example:5000/", false),
            ("https://a.ported.example:5000/", false),
            ("https://ported.example/", true),
            // case-insensitive
            ("https://upper.example/", false),
            // IPs, with and without port
            ("https://10.1.2.3:5000/", false),
            ("https://10.1.2.4/", true),
            ("https://10.9.9.9:8443/", false),
            ("https://10.9.9.9/", true),
            // CIDR
            ("http://192.168.44.1:5000/", false),
            ("http://192.169.0.1/", true),
            // IPv6 address, bracketed with port, CIDR
            ("https://[::1]:5000/", false),
            ("https://[fd00::5]:5000/", false),
            ("https://[fd00::5]:5001/", true),
            ("https://[fe80::1]/", false),
            ("https://[fd00::6]/", true),
            // loopback is proxied unless listed (unlike Go); `:7000` is malformed, ignored
            ("http://127.0.0.1:7000/", true),
            ("http://localhost:7000/", true),
        ];
        for (url, expect_proxy) in cases {
            assert_eq!(proxied(&config, url).is_some(), *expect_proxy, "{url}");
        }
    }

    #[test]
    fn star_bypasses_everything() {
        let config = config(&[("HTTPS_PROXY", "http://p:1"), ("no_proxy", "foo, *")]);
        assert_eq!(proxied(&config, "https://anything.example/"), None);
        assert_eq!(proxied(&config, "https://[::1]/"), None);
    }

    #[test]
    fn invalid_and_socks_proxies_are_refused_without_showing_passwords() {
        for value in ["socks5://u:hunter2@p:1080", "http://u:hunter2@"] {
            let error =
                ProxyConfig::from_lookup(|name| (name == "HTTPS_PROXY").then(|| value.to_string()))
                    .unwrap_err()
                    .to_string();
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(
            redact("http://user:s3cret@proxy:3128"),
            "http://user:***@proxy:3128/"
        );
        assert_eq!(redact("http://proxy:3128/"), "http://proxy:3128/");
        assert_eq!(redact("http://user@proxy:3128/"), "http://user@proxy:3128/");
        assert_eq!(redact("weird://u:p@[bad"), "weird://***@[bad");
        let debug = format!("{:?}", config(&[("HTTPS_PROXY", "http://u:s3cret@p:1")]));
        assert!(
            debug.contains("***") && !debug.contains("s3cret"),
            "{debug}"
        );
    }
}
