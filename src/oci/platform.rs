//! Platforms (`os/architecture[/variant]`) and the user's choice among them.
//!
//! Matching follows containerd's normalisation so that `linux/arm64` finds an index entry
//! labelled `arm64/v8` (and the reverse), and `x86_64` means `amd64`: registries label the
//! same platform in more than one way, and a spurious "missing platform" would stop a build.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A platform specification that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {spec:?}: {reason}")]
pub struct PlatformError {
    pub spec: String,
    /// What is wrong with it.
    pub reason: String,
}

/// One platform, as written by the user or found in an image.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl Platform {
    /// Parses `os/architecture` or `os/architecture/variant`, e.g. `linux/arm64/v8`.
    pub fn parse(spec: &str) -> Result<Platform, PlatformError> {
        let invalid = |reason: &str| PlatformError {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = spec.trim().split('/').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(invalid("expected os/architecture[/variant]"));
        }
        let valid = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        };
        if !parts.iter().all(|part| valid(part)) {
            return Err(invalid(
                "each part must be non-empty letters, digits, '.', '_' or '-'",
            ));
        }
        Ok(Platform::new(parts[0], parts[1], parts.get(2).copied()))
    }

    /// The platform this program was built for: the node's, when containerd
    /// cannot say. Rust's architecture names are turned into OCI's.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "loongarch64" => "loong64",
            other => other,
        };
        Platform::new(std::env::consts::OS, architecture, None)
    }

    /// A platform from its parts as an image index entry, an image config or a
    /// daemon spells them.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_ascii_lowercase(),
            architecture: architecture.to_ascii_lowercase(),
            variant: variant
                .filter(|v| !v.is_empty())
                .map(str::to_ascii_lowercase),
        }
    }

    /// The operating system, e.g. `linux`.
    pub fn os(&self) -> &str {
        &self.os
    }

    /// The CPU architecture as written, e.g. `arm64`.
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// The CPU variant as written, e.g. `v8`.
    pub fn variant(&self) -> Option<&str> {
        self.variant.as_deref()
    }

    /// Whether both name the same platform once aliases and default variants are resolved.
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os && self.normalized() == other.normalized()
    }

    /// The architecture in containerd's normal spelling (`x86_64` → `amd64`, `aarch64` →
    /// `arm64`), to compare with what an ELF header says.
    pub fn normalized_architecture(&self) -> &str {
        self.normalized().0
    }

    /// Architecture and variant in containerd's normal form.
    fn normalized(&self) -> (&str, Option<String>) {
        let variant = self.variant.as_deref();
        match self.architecture.as_str() {
            "x86_64" | "x86-64" | "amd64" => {
                ("amd64", variant.filter(|v| *v != "v1").map(Into::into))
            }
            "aarch64" | "arm64" => (
                "arm64",
                variant
                    .filter(|v| !matches!(*v, "8" | "v8"))
                    .map(Into::into),
            ),
            "armhf" => ("arm", Some("v7".into())),
            "armel" => ("arm", Some("v6".into())),
            "arm" => (
                "arm",
                Some(match variant {
                    None => "v7".into(),
                    Some(v) if v.starts_with('v') => v.into(),
                    Some(v) => format!("v{v}"),
                }),
            ),
            "i386" => ("386", variant.map(Into::into)),
            other => (other, variant.map(Into::into)),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// The platform object of an index entry or image config, as JSON spells it.
#[derive(Serialize, Deserialize)]
struct PlatformJson {
    os: String,
    architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
}

impl Serialize for Platform {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        PlatformJson {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = PlatformJson::deserialize(deserializer)?;
        Ok(Platform::new(
            &json.os,
            &json.architecture,
            json.variant.as_deref(),
        ))
    }
}

/// Which platforms of a multi-platform image to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformSelection {
    /// Every platform: the source index is kept untouched.
    All,
    /// These platforms, distinct and in the order given. One platform pins its manifest;
    /// several produce a filtered index.
    Only(Vec<Platform>),
}

impl PlatformSelection {
    /// Parses `all` or a comma-separated list such as `linux/amd64,linux/arm64`.
    pub fn parse(spec: &str) -> Result<PlatformSelection, PlatformError> {
        if spec.trim().eq_ignore_ascii_case("all") {
            return Ok(PlatformSelection::All);
        }
        let mut platforms: Vec<Platform> = Vec::new();
        for part in spec.split(',') {
            let platform = Platform::parse(part)?;
            if !platforms.iter().any(|known| known.matches(&platform)) {
                platforms.push(platform);
            }
        }
        Ok(PlatformSelection::Only(platforms))
    }
}

impl Default for PlatformSelection {
    /// `linux/amd64`, what Embedded Cluster installs on.
    fn default() -> Self {
        PlatformSelection::Only(vec![Platform::new("linux", "amd64", None)])
    }
}

impl fmt::Display for PlatformSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlatformSelection::All => write!(f, "all"),
            PlatformSelection::Only(platforms) => {
                let names: Vec<String> = platforms.iter().map(ToString::to_string).collect();
                write!(f, "{}", names.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(spec: &str) -> Platform {
        Platform::parse(spec).expect("valid platform")
    }

    #[test]
    fn parses_two_and_three_parts() {
        let p = platform("linux/arm64/v8");
        assert_eq!(
            (p.os(), p.architecture(), p.variant()),
            ("linux", "arm64", Some("v8"))
        );
        assert_eq!(platform("linux/amd64").to_string(), "linux/amd64");
    }

    #[test]
    fn rejects_malformed_platforms() {
        for spec in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v8/x",
            "linux/am d64",
        ] {
            assert!(
                Platform::parse(spec).is_err(),
                "{spec:?} should be rejected"
            );
        }
    }

    #[test]
    fn default_variants_and_aliases_match() {
        assert!(platform("linux/arm64").matches(&platform("linux/arm64/v8")));
        assert!(platform("linux/aarch64").matches(&platform("linux/arm64")));
        assert!(platform("linux/x86_64").matches(&platform("linux/amd64")));
        assert!(platform("linux/arm").matches(&platform("linux/arm/v7")));
        assert!(platform("linux/armhf").matches(&platform("linux/arm/7")));
        assert!(!platform("linux/arm/v6").matches(&platform("linux/arm/v7")));
        assert!(!platform("linux/amd64").matches(&platform("linux/amd64/v3")));
        assert!(!platform("linux/amd64").matches(&platform("windows/amd64")));
    }

    #[test]
    fn selection_parses_all_and_lists_without_duplicates() {
        assert_eq!(
            PlatformSelection::parse("all").unwrap(),
            PlatformSelection::All
        );
        let PlatformSelection::Only(list) =
            PlatformSelection::parse("linux/amd64, linux/arm64,linux/arm64/v8").unwrap()
        else {
            panic!("expected a list");
        };
        assert_eq!(list.len(), 2);
        assert!(PlatformSelection::parse("linux/amd64,all").is_err());
        assert_eq!(PlatformSelection::default().to_string(), "linux/amd64");
    }
}
