//! Pull mirrors: `--mirror FROM=TO` rewrites where an image is pulled from, never its name.
//!
//! Both sides are `host[/path-prefix]`. The longest FROM that matches the reference on whole
//! path components wins, so `docker.io/velero` does not capture `docker.io/velero-plugins`.
//! Only the pull address changes: the bundle, the values and signatures keep the canonical
//! reference, and there is deliberately no fallback to the original host when the mirror fails.

use std::fmt;
use std::str::FromStr;

use super::RegistryError;
use crate::reference::Reference;

/// One `FROM=TO` rewrite rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    from: String,
    to: String,
}

impl Mirror {
    /// Parses `FROM=TO`, each side `host[/path-prefix]` (no scheme, tag or digest).
    pub fn parse(spec: &str) -> Result<Mirror, RegistryError> {
        let invalid = |reason: String| RegistryError::InvalidMirror {
            spec: spec.to_string(),
            reason,
        };
        let (from, to) = spec
            .split_once('=')
            .ok_or_else(|| invalid("expected FROM=TO".into()))?;
        let from = normalize_side(from.trim()).map_err(|r| invalid(format!("FROM: {r}")))?;
        let to = normalize_side(to.trim()).map_err(|r| invalid(format!("TO: {r}")))?;
        Ok(Mirror { from, to })
    }

    /// The canonical `host[/prefix]` this mirror replaces.
    pub fn from(&self) -> &str {
        &self.from
    }

    /// The `host[/prefix]` pulled from instead.
    pub fn to(&self) -> &str {
        &self.to
    }

    /// How many leading components of `name` (`host/repository`) this mirror matches.
    fn matched_components(&self, name: &str) -> Option<usize> {
        let rest = name.strip_prefix(&self.from)?;
        (rest.is_empty() || rest.starts_with('/')).then(|| self.from.split('/').count())
    }
}

impl FromStr for Mirror {
    type Err = RegistryError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        Mirror::parse(spec)
    }
}

impl fmt::Display for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.from, self.to)
    }
}

/// Validates one side and writes Docker Hub's aliases as `docker.io`, the host canonical
/// references use.
fn normalize_side(side: &str) -> Result<String, String> {
    if side.contains("://") {
        return Err("no scheme allowed; write host[/path]".into());
    }
    let mut components = side.split('/');
    let host = components.next().unwrap_or_default();
    if host.is_empty() {
        return Err("missing host".into());
    }
    let host_ok = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !host_ok {
        return Err(format!("invalid host {host:?}"));
    }
    let path: Vec<&str> = components.collect();
    let path_ok = path.iter().all(|component| {
        !component.is_empty()
            && component.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            })
    });
    if !path_ok {
        return Err("path components must be non-empty lowercase names (no tag or digest)".into());
    }
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        other => other,
    };
    Ok(std::iter::once(host)
        .chain(path)
        .collect::<Vec<_>>()
        .join("/"))
}

/// The set of mirrors given on the command line.
#[derive(Debug, Clone, Default)]
pub(crate) struct Mirrors(Vec<Mirror>);

impl Mirrors {
    /// Refuses two rules for the same FROM: which one applies would be a guess.
    pub fn new(mirrors: Vec<Mirror>) -> Result<Mirrors, RegistryError> {
        for (i, mirror) in mirrors.iter().enumerate() {
            if let Some(other) = mirrors[..i].iter().find(|m| m.from == mirror.from) {
                return Err(RegistryError::InvalidMirror {
                    spec: mirror.to_string(),
                    reason: format!("{} is already mirrored by {other}", mirror.from),
                });
            }
        }
        Ok(Mirrors(mirrors))
    }

    /// The reference to pull `canonical` from: rewritten by the longest matching mirror, or
    /// unchanged when none matches.
    pub fn rewrite(&self, canonical: &Reference) -> Result<Reference, RegistryError> {
        let name = format!("{}/{}", canonical.registry(), canonical.repository());
        let Some(mirror) = self
            .0
            .iter()
            .filter_map(|m| m.matched_components(&name).map(|n| (n, m)))
            .max_by_key(|(n, _)| *n)
            .map(|(_, m)| m)
        else {
            return Ok(canonical.clone());
        };
        let rest = &name[mirror.from.len()..];
        let mut target = format!("{}{}", mirror.to, rest);
        if !target.contains('/') {
            return Err(RegistryError::InvalidMirror {
                spec: mirror.to_string(),
                reason: format!("maps {canonical} to a registry without a repository"),
            });
        }
        if let Some(tag) = canonical.tag() {
            target.push(':');
            target.push_str(tag);
        }
        if let Some(digest) = canonical.digest() {
            target.push('@');
            target.push_str(&digest.to_string());
        }
        Reference::parse(&target).map_err(|error| RegistryError::InvalidMirror {
            spec: mirror.to_string(),
            reason: format!("maps {canonical} to {target}, which is not a reference: {error}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirrors(specs: &[&str]) -> Mirrors {
        Mirrors::new(specs.iter().map(|s| Mirror::parse(s).unwrap()).collect()).unwrap()
    }

    fn rewrite(specs: &[&str], reference: &str) -> String {
        let canonical: Reference = reference.parse().unwrap();
        mirrors(specs).rewrite(&canonical).unwrap().to_string()
    }

    #[test]
    fn host_mirror_keeps_repository_and_tag() {
        assert_eq!(
            rewrite(
                &["docker.io=127.0.0.1:5000"],
                "docker.io/velero/velero:v1.14.0"
            ),
            "127.0.0.1:5000/velero/velero:v1.14.0"
        );
    }

    #[test]
    fn prefix_mirror_adds_target_prefix() {
        assert_eq!(
            rewrite(
                &["docker.io/velero=mirror.local/hub/velero"],
                "docker.io/velero/velero-plugin-for-aws:v1.10.0"
            ),
            "mirror.local/hub/velero/velero-plugin-for-aws:v1.10.0"
        );
    }

    #[test]
    fn longest_prefix_wins() {
        let specs = [
            "docker.io=a.local",
            "docker.io/velero=b.local/v",
            "docker.io/velero/velero=c.local/x",
        ];
        assert_eq!(rewrite(&specs, "docker.io/velero/velero:1"), "c.local/x:1");
        assert_eq!(
            rewrite(&specs, "docker.io/velero/other:1"),
            "b.local/v/other:1"
        );
        assert_eq!(
            rewrite(&specs, "docker.io/library/busybox:1"),
            "a.local/library/busybox:1"
        );
    }

    #[test]
    fn prefix_matches_whole_components_only() {
        let specs = ["docker.io/velero=mirror.local/v"];
        assert_eq!(
            rewrite(&specs, "docker.io/velero-plugins/x:1"),
            "docker.io/velero-plugins/x:1"
        );
        assert_eq!(
            rewrite(&["registry.example=m.local"], "registry.example.com/x:1"),
            "registry.example.com/x:1"
        );
    }

    #[test]
    fn docker_hub_aliases_and_digests() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            rewrite(
                &["index.docker.io=m.local:5000"],
                &format!("busybox:1@{digest}")
            ),
            format!("m.local:5000/library/busybox:1@{digest}")
        );
        assert_eq!(
            rewrite(
                &["docker.io=m.local"],
                &format!("docker.io/library/busybox@{digest}")
            ),
            format!("m.local/library/busybox@{digest}")
        );
    }

    #[test]
    fn whole_repository_mirror_needs_a_target_path() {
        let canonical: Reference = "docker.io/velero/velero:1".parse().unwrap();
        assert_eq!(
            mirrors(&["docker.io/velero/velero=m.local/velero"])
                .rewrite(&canonical)
                .unwrap()
                .to_string(),
            "m.local/velero:1"
        );
        assert!(
            mirrors(&["docker.io/velero/velero=m.local"])
                .rewrite(&canonical)
                .is_err()
        );
    }

    #[test]
    fn malformed_mirrors_are_rejected() {
        for spec in [
            "docker.io",
            "=m.local",
            "docker.io=",
            "https://docker.io=m.local",
            "docker.io=m.local/",
            "docker.io=m.local/Upper",
            "docker.io/x:tag=m.local",
        ] {
            assert!(Mirror::parse(spec).is_err(), "{spec:?} should be rejected");
        }
        let duplicate = vec![
            Mirror::parse("docker.io=a.local").unwrap(),
            Mirror::parse("index.docker.io=b.local").unwrap(),
        ];
        assert!(Mirrors::new(duplicate).is_err());
    }
}
