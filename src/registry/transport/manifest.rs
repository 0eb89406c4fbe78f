//! Manifest operations: get (bytes exactly as served, capped, digest-checked), head, put
//! (bytes exactly as given, so digests never change).

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};

use super::auth::Scopes;
use super::body::{MANIFEST_LIMIT, read_response};
use super::request::{Exchange, Outgoing};
use super::{Digest, Repository, Transport, TransportError};
use crate::oci::MediaType;

/// A manifest as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub bytes: Bytes,
    /// The Content-Type, without parameters.
    pub media_type: Option<String>,
    /// The sha256 of `bytes` (checked against the reference when that is a digest).
    pub digest: Digest,
}

/// What a HEAD tells about a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    pub digest: Digest,
    pub size: u64,
    /// Its media type, without parameters.
    pub media_type: Option<String>,
}

/// A manifest reference: a tag or a digest.
enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    fn parse(text: &str) -> Result<Reference, TransportError> {
        if text.contains(':') {
            return text
                .parse::<Digest>()
                .map(Reference::Digest)
                .map_err(|error| TransportError::Invalid {
                    what: "digest".into(),
                    reason: error.to_string(),
                });
        }
        let valid_tag = text.len() <= 128
            && text.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if valid_tag {
            Ok(Reference::Tag(text.to_string()))
        } else {
            Err(TransportError::Invalid {
                what: "tag".into(),
                reason: format!("{text:?} is not a valid tag"),
            })
        }
    }

    fn text(&self) -> String {
        match self {
            Reference::Tag(tag) => tag.clone(),
            Reference::Digest(digest) => digest.to_string(),
        }
    }
}

impl Transport {
    /// Gets the manifest `reference` (tag or digest) of `repository`, asking for the
    /// manifest and index types we read ([`MediaType::ACCEPTED_MANIFESTS`]). At most 4 MiB
    /// is read. For a
    /// digest reference the bytes must hash to it; a sha256 `Docker-Content-Digest` must
    /// match too.
    pub async fn get_manifest(
        &self,
        repository: &Repository,
        reference: &str,
    ) -> Result<Manifest, TransportError> {
        let reference = Reference::parse(reference)?;
        let mut exchange = Exchange {
            host: &repository.host,
            what: format!("manifest {} of {}", reference.text(), repository.name),
            scopes: Scopes::pull(&repository.name),
        };
        let mut outgoing = Outgoing::new(Method::GET, manifest_path(repository, &reference));
        outgoing.headers = accept_header()?;
        let response = self.send(&mut exchange, &outgoing).await?;
        if response.status() != StatusCode::OK {
            return Err(self.unexpected(&exchange, response).await);
        }
        let media_type = media_type(&response);
        let announced = announced_digest(&response);
        let bytes = read_response(response, MANIFEST_LIMIT, exchange.host, &exchange.what).await?;
        let digest = Digest::of(&bytes);
        let expected = match &reference {
            Reference::Digest(expected) => Some(expected.to_string()),
            Reference::Tag(_) => announced,
        };
        if let Some(expected) = expected
            && expected != digest.to_string()
        {
            return Err(TransportError::DigestMismatch {
                host: repository.host.clone(),
                what: exchange.what,
                expected,
                actual: digest.to_string(),
            });
        }
        Ok(Manifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// HEADs the manifest `reference`: `None` when the registry has no such manifest (404).
    /// A registry that omits `Docker-Content-Digest` is asked with a GET instead.
    pub async fn head_manifest(
        &self,
        repository: &Repository,
        reference: &str,
    ) -> Result<Option<ManifestHead>, TransportError> {
        let parsed = Reference::parse(reference)?;
        let mut exchange = Exchange {
            host: &repository.host,
            what: format!("manifest {} of {}", parsed.text(), repository.name),
            scopes: Scopes::pull(&repository.name),
        };
        let mut outgoing = Outgoing::new(Method::HEAD, manifest_path(repository, &parsed));
        outgoing.headers = accept_header()?;
        let response = self.send(&mut exchange, &outgoing).await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(self.unexpected(&exchange, response).await),
        }
        // reqwest's `content_length()` is the (empty) body's length on a HEAD: read the header.
        let size = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let digest = announced_digest(&response).and_then(|d| d.parse::<Digest>().ok());
        match (digest, size) {
            (Some(digest), Some(size)) => Ok(Some(ManifestHead {
                digest,
                size,
                media_type: media_type(&response),
            })),
            _ => {
                tracing::debug!(
                    host = exchange.host,
                    "HEAD without digest or size: asking with GET"
                );
                let manifest = self.get_manifest(repository, reference).await?;
                Ok(Some(ManifestHead {
                    size: manifest.bytes.len() as u64,
                    digest: manifest.digest,
                    media_type: manifest.media_type,
                }))
            }
        }
    }

    /// Puts `bytes` unchanged as manifest `reference` with Content-Type `media_type`;
    /// returns its digest. For a digest reference the bytes must hash to it.
    pub async fn put_manifest(
        &self,
        repository: &Repository,
        reference: &str,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<Digest, TransportError> {
        let parsed = Reference::parse(reference)?;
        let digest = Digest::of(&bytes);
        let what = format!("manifest {} of {}", parsed.text(), repository.name);
        if let Reference::Digest(expected) = &parsed
            && *expected != digest
        {
            return Err(TransportError::DigestMismatch {
                host: repository.host.clone(),
                what,
                expected: expected.to_string(),
                actual: digest.to_string(),
            });
        }
        let content_type =
            HeaderValue::from_str(media_type).map_err(|_| TransportError::Invalid {
                what: "media type".into(),
                reason: format!("{media_type:?} is not a header value"),
            })?;
        let mut exchange = Exchange {
            host: &repository.host,
            what,
            scopes: Scopes::push(&repository.name),
        };
        let mut outgoing = Outgoing::new(Method::PUT, manifest_path(repository, &parsed));
        outgoing.headers.insert(CONTENT_TYPE, content_type);
        outgoing.body = Some(bytes);
        let response = self.send(&mut exchange, &outgoing).await?;
        if !response.status().is_success() {
            return Err(self.unexpected(&exchange, response).await);
        }
        check_announced(&response, &repository.host, exchange.what, &digest)?;
        Ok(digest)
    }
}

fn manifest_path(repository: &Repository, reference: &Reference) -> String {
    format!("v2/{}/manifests/{}", repository.name, reference.text())
}

fn accept_header() -> Result<HeaderMap, TransportError> {
    let types: Vec<&str> = MediaType::ACCEPTED_MANIFESTS
        .iter()
        .map(MediaType::as_str)
        .collect();
    let value = HeaderValue::from_str(&types.join(", ")).map_err(|_| TransportError::Invalid {
        what: "accepted media types".into(),
        reason: "not a header value".into(),
    })?;
    Ok(HeaderMap::from_iter([(ACCEPT, value)]))
}

fn media_type(response: &Response) -> Option<String> {
    let value = response.headers().get(CONTENT_TYPE)?.to_str().ok()?;
    let media_type = value.split(';').next().unwrap_or_default().trim();
    (!media_type.is_empty()).then(|| media_type.to_string())
}

/// A sha256 `Docker-Content-Digest` (other algorithms cannot be compared with ours).
/// Fails when the registry announces a digest other than `digest` for what we uploaded:
/// it stored other bytes than we sent.
pub(crate) fn check_announced(
    response: &Response,
    host: &str,
    what: String,
    digest: &Digest,
) -> Result<(), TransportError> {
    match announced_digest(response) {
        Some(announced) if announced != digest.to_string() => Err(TransportError::DigestMismatch {
            host: host.to_string(),
            what,
            expected: digest.to_string(),
            actual: announced,
        }),
        _ => Ok(()),
    }
}

pub(crate) fn announced_digest(response: &Response) -> Option<String> {
    let value = response
        .headers()
        .get("docker-content-digest")?
        .to_str()
        .ok()?;
    value
        .starts_with("sha256:")
        .then(|| value.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_tags_or_digests() {
        assert!(matches!(
            Reference::parse("v1.2_3-rc"),
            Ok(Reference::Tag(_))
        ));
        assert!(matches!(
            Reference::parse(&Digest::of(b"x").to_string()),
            Ok(Reference::Digest(_))
        ));
        for bad in ["", "-x", ".x", "a/b", "a?b", "sha256:zz", &"a".repeat(129)] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
