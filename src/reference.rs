//! Container image references: parsing, normalisation and rewriting.
//!
//! The grammar is the one of `github.com/distribution/reference` (what Docker, containerd
//! and registries accept), written out by hand rather than as one regular expression so
//! that every refusal can say which part is wrong. References are kept fully qualified the
//! way Docker normalises them: `velero/velero` is `docker.io/velero/velero`, `nginx` is
//! `docker.io/library/nginx`.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::oci::{Digest, DigestError};

const DEFAULT_REGISTRY: &str = "docker.io";
/// Docker Hub's old name; Docker rewrites it to [`DEFAULT_REGISTRY`].
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
const OFFICIAL_NAMESPACE: &str = "library";
const MAX_REPOSITORY_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A fully qualified image reference: `registry/repository[:tag][@digest]`.
///
/// Ordering and equality compare the canonical form, so `nginx` and
/// `docker.io/library/nginx` are the same reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not an image reference; the message names the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {reference:?}: {kind}")]
pub struct ReferenceError {
    /// The string that failed to parse.
    pub reference: String,
    /// What is wrong with it.
    pub kind: ReferenceErrorKind,
}

/// The part of a reference that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceErrorKind {
    #[error("it is empty")]
    Empty,
    /// Only a tag and/or digest was given.
    #[error("the repository name is missing")]
    MissingName,
    /// A bare 64-character hex string, which Docker reads as an image ID.
    #[error("a 64-character hex string is an image ID, not a reference")]
    Identifier,
    /// The registry part is not a host name or IP address with an optional port.
    #[error("registry {registry:?}: {reason}")]
    Registry {
        /// The registry part as written.
        registry: String,
        /// What is wrong with it.
        reason: DomainError,
    },
    /// The repository path contains uppercase letters.
    #[error("repository name must be lowercase")]
    Uppercase,
    /// The repository path has an empty component (`a//b`, a trailing `/`).
    #[error("repository path {path:?} has an empty component")]
    EmptyComponent { path: String },
    /// A repository path component breaks the grammar.
    #[error(
        "path component {component:?} may only hold lowercase letters and digits, \
         separated by '.', '_', '__' or dashes"
    )]
    InvalidComponent { component: String },
    /// The repository path is longer than 255 characters.
    #[error("repository name is {length} characters long, the limit is 255")]
    NameTooLong { length: usize },
    /// A `:` is followed by nothing.
    #[error("tag is empty")]
    EmptyTag,
    /// The tag is longer than 128 characters.
    #[error("tag is longer than 128 characters ({length})")]
    TagTooLong { length: usize },
    /// The tag holds characters outside `[A-Za-z0-9_.-]` or starts with `.` or `-`.
    #[error(
        "tag {tag:?} may only hold letters, digits, '_', '.' and '-', \
         and must not start with '.' or '-'"
    )]
    InvalidTag { tag: String },
    /// The digest is malformed or uses an unsupported algorithm.
    #[error(transparent)]
    Digest(#[from] DigestError),
}

/// Why a string is not a registry host (`host[:port]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("host is empty")]
    Empty,
    /// A URL was given instead of a host.
    #[error("give the host only, without {scheme}://")]
    Scheme { scheme: String },
    /// A path follows the host.
    #[error("give the host only, without a path")]
    Path,
    /// The port is not a number from 1 to 65535.
    #[error("port {port:?} must be a number from 1 to 65535")]
    Port { port: String },
    /// A bracketed IPv6 address is malformed, or an IPv6 address lacks brackets.
    #[error("IPv6 address {address:?} is not valid (write it in brackets, e.g. [fd00::1]:5000)")]
    Ipv6 { address: String },
    /// A dot-separated host name component breaks `[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?`.
    #[error("host name component {component:?} must be letters, digits and inner dashes")]
    Component { component: String },
}

impl Reference {
    /// Parses and normalises a reference the way `docker pull` reads it.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        parse(input).map_err(|kind| ReferenceError {
            reference: input.to_owned(),
            kind,
        })
    }

    /// Builds the canonical form: Docker Hub's legacy name and its implicit `library/`
    /// namespace are spelled out, so equal images compare equal.
    fn canonical(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Self {
        let registry = match registry {
            LEGACY_DEFAULT_REGISTRY => DEFAULT_REGISTRY,
            other => other,
        };
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("{OFFICIAL_NAMESPACE}/{repository}")
        } else {
            repository.to_owned()
        };
        Self {
            registry: registry.to_owned(),
            repository,
            tag: tag.map(str::to_owned),
            digest,
        }
    }

    /// The registry host with its port, e.g. `docker.io` or `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path without the registry, e.g. `velero/velero`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if one was given.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if one was given.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same image in another registry (same repository path, tag and digest); used
    /// for the proxy-domain replacement and the airgap rewrite.
    pub fn with_registry(&self, registry: &str) -> Result<Self, DomainError> {
        validate_domain(registry)?;
        Ok(Self::canonical(
            registry,
            &self.repository,
            self.tag(),
            self.digest,
        ))
    }

    /// The airgap name of this image: `local/<repository path>`, keeping tag and digest.
    pub fn airgap(&self, local: &str) -> Result<Self, DomainError> {
        self.with_registry(local)
    }

    /// This reference pinned to `digest`, keeping the tag for readers.
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// This reference without its tag (the digest stays).
    pub fn without_tag(&self) -> Self {
        Self {
            tag: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input)
    }
}

impl TryFrom<String> for Reference {
    type Error = ReferenceError;

    fn try_from(input: String) -> Result<Self, Self::Error> {
        Self::parse(&input)
    }
}

impl From<Reference> for String {
    fn from(reference: Reference) -> Self {
        reference.to_string()
    }
}

fn parse(input: &str) -> Result<Reference, ReferenceErrorKind> {
    use ReferenceErrorKind as Kind;
    if input.is_empty() {
        return Err(Kind::Empty);
    }
    if input.len() == 64 && is_lower_hex(input) {
        return Err(Kind::Identifier);
    }
    let (name, digest) = match input.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (input, None),
    };
    // A `:` after the last `/` starts the tag; one before it belongs to a port.
    let (name, tag) = match name.rfind(':') {
        Some(colon) if !name[colon..].contains('/') => (&name[..colon], Some(&name[colon + 1..])),
        _ => (name, None),
    };
    if name.is_empty() {
        return Err(Kind::MissingName);
    }
    let (registry, path) = split_registry(name);
    validate_domain(registry).map_err(|reason| Kind::Registry {
        registry: registry.to_owned(),
        reason,
    })?;
    let digest = digest.map(str::parse::<Digest>).transpose()?;
    let reference = Reference::canonical(registry, path, tag, digest);
    validate_repository(&reference.repository)?;
    tag.map_or(Ok(()), validate_tag)?;
    Ok(reference)
}

/// Docker's rule for telling a registry from the first path component: it is a registry
/// when it looks like a host (`.` or `:`), is `localhost`, or has uppercase letters
/// (which repository paths never have).
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first == "localhost"
                || first.contains(['.', ':'])
                || first.chars().any(char::is_uppercase) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_REGISTRY, name),
    }
}

fn validate_repository(path: &str) -> Result<(), ReferenceErrorKind> {
    use ReferenceErrorKind as Kind;
    if path.chars().any(char::is_uppercase) {
        return Err(Kind::Uppercase);
    }
    for component in path.split('/') {
        if component.is_empty() {
            return Err(Kind::EmptyComponent {
                path: path.to_owned(),
            });
        }
        if !is_path_component(component) {
            return Err(Kind::InvalidComponent {
                component: component.to_owned(),
            });
        }
    }
    if path.len() > MAX_REPOSITORY_LEN {
        return Err(Kind::NameTooLong { length: path.len() });
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(component: &str) -> bool {
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    component.starts_with(alphanumeric)
        && component.ends_with(alphanumeric)
        && component
            .split(alphanumeric)
            .filter(|separator| !separator.is_empty())
            .all(|separator| {
                matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-')
            })
}

fn validate_tag(tag: &str) -> Result<(), ReferenceErrorKind> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if tag.is_empty() {
        Err(ReferenceErrorKind::EmptyTag)
    } else if tag.len() > MAX_TAG_LEN {
        Err(ReferenceErrorKind::TagTooLong { length: tag.len() })
    } else if !tag.starts_with(word) || !tag.chars().all(|c| word(c) || c == '.' || c == '-') {
        Err(ReferenceErrorKind::InvalidTag {
            tag: tag.to_owned(),
        })
    } else {
        Ok(())
    }
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks a registry host as used in references and in `spec.domains`: a host name or
/// IPv4 address, or an IPv6 address in brackets, with an optional `:port`.
pub fn validate_domain(domain: &str) -> Result<(), DomainError> {
    if domain.is_empty() {
        return Err(DomainError::Empty);
    }
    if let Some((scheme, _)) = domain.split_once("://") {
        return Err(DomainError::Scheme {
            scheme: scheme.to_owned(),
        });
    }
    if domain.contains('/') {
        return Err(DomainError::Path);
    }
    let ipv6_error = || DomainError::Ipv6 {
        address: domain.to_owned(),
    };
    let port = if let Some(bracketed) = domain.strip_prefix('[') {
        let (address, rest) = bracketed.split_once(']').ok_or_else(ipv6_error)?;
        // The grammar allows hex digits and colons only: no zone IDs, no embedded IPv4.
        let well_formed = address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
            && address.parse::<Ipv6Addr>().is_ok();
        if !well_formed {
            return Err(ipv6_error());
        }
        match rest {
            "" => None,
            _ => Some(rest.strip_prefix(':').ok_or_else(ipv6_error)?),
        }
    } else {
        let (host, port) = match domain.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        };
        if port.is_some_and(|port| port.contains(':')) {
            return Err(ipv6_error());
        }
        if let Some(component) = host.split('.').find(|c| !is_host_component(c)) {
            return Err(DomainError::Component {
                component: component.to_owned(),
            });
        }
        port
    };
    match port {
        Some(port)
            if !port.bytes().all(|b| b.is_ascii_digit())
                || !matches!(port.parse::<u16>(), Ok(1..)) =>
        {
            Err(DomainError::Port {
                port: port.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

/// `[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?`
fn is_host_component(component: &str) -> bool {
    component.starts_with(|c: char| c.is_ascii_alphanumeric())
        && component.ends_with(|c: char| c.is_ascii_alphanumeric())
        && component
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Whether `name` is a DNS-1123 label, as Kubernetes requires for container names:
/// at most 63 characters of `[a-z0-9-]`, starting and ending with a letter or digit.
pub fn is_dns1123_label(name: &str) -> bool {
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    name.len() <= 63
        && name.starts_with(alphanumeric)
        && name.ends_with(alphanumeric)
        && name.chars().all(|c| alphanumeric(c) || c == '-')
}

#[cfg(test)]
mod tests;
