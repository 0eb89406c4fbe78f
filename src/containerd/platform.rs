//! The platform (`os/arch[/variant]`) a node runs, in OCI terms.
//!
//! A node imports only the images of its own platform (k0s silently skips others, and pods of
//! another architecture crash), so the caller compares this with the bundle's platform before
//! writing anything.

use std::fmt;

/// An OCI platform, normalised the way containerd normalises it (`aarch64` is `arm64`, and
/// `arm64/v8` is plain `arm64`), so two spellings of one platform compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// OCI architecture, e.g. `amd64` or `arm64`.
    pub architecture: String,
    /// Architecture variant, e.g. `v7` for `arm`; `None` when there is none.
    pub variant: Option<String>,
}

impl Platform {
    /// A normalised platform from its parts as any tool spells them.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let os = os.to_ascii_lowercase();
        let architecture = oci_architecture(&architecture.to_ascii_lowercase()).to_owned();
        let variant = variant
            .map(str::to_ascii_lowercase)
            .filter(|variant| !variant.is_empty())
            .map(|variant| match variant.as_str() {
                // containerd spells ARM variants `v7`, not `7`.
                "5" | "6" | "7" | "8" => format!("v{variant}"),
                _ => variant,
            })
            // `v8` is the only arm64 variant in use, so containerd drops it.
            .filter(|variant| !(architecture == "arm64" && variant == "v8"));
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// The platform this program was built for: the node's, when containerd cannot say.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            other => other,
        };
        Platform::new(std::env::consts::OS, architecture, None)
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

/// The OCI (Go) name of an architecture that Rust or `uname -m` may spell differently.
fn oci_architecture(architecture: &str) -> &str {
    match architecture {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "x86" | "i386" | "i686" => "386",
        "powerpc64" => "ppc64",
        "powerpc64le" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_names_map_to_oci_names() {
        assert_eq!(
            Platform::new("linux", "x86_64", None).to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::new("linux", "aarch64", None).to_string(),
            "linux/arm64"
        );
        assert_eq!(Platform::new("linux", "x86", None).to_string(), "linux/386");
        assert_eq!(
            Platform::new("Linux", "s390x", None).to_string(),
            "linux/s390x"
        );
    }

    #[test]
    fn arm64_v8_is_plain_arm64() {
        assert_eq!(
            Platform::new("linux", "arm64", Some("v8")),
            Platform::new("linux", "aarch64", None)
        );
        assert_eq!(Platform::new("linux", "arm64", Some("")).variant, None);
    }

    #[test]
    fn arm_variants_keep_their_v() {
        assert_eq!(
            Platform::new("linux", "arm", Some("7")).to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::new("linux", "arm", Some("v6")).to_string(),
            "linux/arm/v6"
        );
    }

    #[test]
    fn host_is_normalised() {
        let host = Platform::host();
        assert_eq!(host, Platform::new(&host.os, &host.architecture, None));
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            assert_eq!(host.to_string(), "linux/amd64");
        }
    }
}
