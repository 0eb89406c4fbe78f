//! The Velero releases velero-airgap knows, read from `bundle-spec/releases.yaml`.
//!
//! The data lives in `bundle-spec/` so that a reviewer reads one file to see which
//! images a bundle carries by default; it is compiled into the binary so a node
//! with nothing but the binary still knows them.

use serde::Deserialize;

const RELEASES_YAML: &str = include_str!("../bundle-spec/releases.yaml");

/// Errors choosing a release.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// `--velero-version` named a release that is not in `releases.yaml`.
    #[error("unknown Velero version {requested:?}; known versions: {}", known.join(", "))]
    Unknown {
        /// What the user asked for.
        requested: String,
        /// The versions we know, oldest first.
        known: Vec<String>,
    },
}

/// One Velero release with the AWS plugin built for it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Release {
    /// Minor version line, e.g. `1.18`.
    pub version: String,
    /// Velero server image under `proxy.replicated.com`.
    pub velero: String,
    /// AWS object-store plugin image under `proxy.replicated.com`.
    pub aws_plugin: String,
}

#[derive(Debug, Deserialize)]
struct Catalog {
    default: String,
    releases: Vec<Release>,
}

/// The catalogue, parsed once. The file is part of the source tree and covered by unit
/// tests, so a parse failure is a build defect, not a user error.
fn catalog() -> &'static Catalog {
    static CATALOG: std::sync::LazyLock<Catalog> = std::sync::LazyLock::new(|| {
        let value =
            crate::yaml::from_str(RELEASES_YAML).expect("bundle-spec/releases.yaml is YAML");
        serde_json::from_value(value.to_json()).expect("bundle-spec/releases.yaml is a catalogue")
    });
    &CATALOG
}

/// Every known release, oldest first.
pub fn all() -> Vec<Release> {
    catalog().releases.clone()
}

/// Picks a release by `1.18` or by a full image version such as `1.18.2` or
/// `v1.18.2`; `None` picks the default.
pub fn select(requested: Option<&str>) -> Result<Release, ReleaseError> {
    let catalog = catalog();
    let wanted = requested.unwrap_or(&catalog.default);
    let wanted = wanted.strip_prefix('v').unwrap_or(wanted);
    catalog
        .releases
        .iter()
        .find(|r| r.version == wanted || image_version(&r.velero) == Some(wanted))
        .cloned()
        .ok_or_else(|| ReleaseError::Unknown {
            requested: requested.unwrap_or(&catalog.default).to_string(),
            known: catalog.releases.iter().map(|r| r.version.clone()).collect(),
        })
}

/// The version in an image tag such as `v1.18.2` or `v1.18.2-amd64`, without the
/// leading `v` and any suffix after `-`.
fn image_version(image: &str) -> Option<&str> {
    let tag = image.rsplit_once(':')?.1;
    let tag = tag.split('@').next()?;
    let tag = tag.strip_prefix('v').unwrap_or(tag);
    Some(tag.split('-').next().unwrap_or(tag))
}

/// `major.minor` of an image tag like `v1.18.2`, if the tag looks like a version.
pub fn minor_of_tag(tag: &str) -> Option<String> {
    let version = tag.strip_prefix('v').unwrap_or(tag);
    let mut parts = version.split(['.', '-']);
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    Some(format!("{major}.{minor}"))
}

/// Whether a Velero tag and an AWS plugin tag belong to one row of the
/// compatibility table. `None` when either tag is not a version we can read.
pub fn compatible(velero_tag: &str, aws_plugin_tag: &str) -> Option<bool> {
    let velero = minor_of_tag(velero_tag)?;
    let plugin = minor_of_tag(aws_plugin_tag)?;
    Some(all().iter().any(|r| {
        image_version(&r.velero).and_then(minor_of_tag).as_deref() == Some(velero.as_str())
            && image_version(&r.aws_plugin)
                .and_then(minor_of_tag)
                .as_deref()
                == Some(plugin.as_str())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_1_18_2_with_aws_1_14_2() {
        let r = select(None).unwrap();
        assert_eq!(r.velero, "proxy.replicated.com/library/velero:v1.18.2");
        assert_eq!(
            r.aws_plugin,
            "proxy.replicated.com/library/velero-plugin-for-aws:v1.14.2"
        );
    }

    #[test]
    fn select_by_line_or_full_version() {
        assert_eq!(select(Some("1.16")).unwrap().version, "1.16");
        assert_eq!(select(Some("v1.17.1")).unwrap().version, "1.17");
        assert_eq!(select(Some("1.18.2")).unwrap().version, "1.18");
    }

    #[test]
    fn unknown_version_lists_known_ones() {
        let err = select(Some("1.9")).unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown Velero version \"1.9\"; known versions: 1.16, 1.17, 1.18"
        );
    }

    #[test]
    fn compatibility_table() {
        assert_eq!(compatible("v1.16.0", "v1.12.1"), Some(true));
        assert_eq!(compatible("v1.17.1", "v1.13.0"), Some(true));
        assert_eq!(compatible("v1.18.2", "v1.14.2"), Some(true));
        assert_eq!(compatible("v1.18.2", "v1.12.0"), Some(false));
        assert_eq!(compatible("latest", "v1.12.0"), None);
    }
}
