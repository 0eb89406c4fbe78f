//! The part of the CycloneDX 1.6 JSON model that `sbom.cdx.json` uses.
//!
//! Plain structs rather than `serde_json::Value`: fields come out in declaration order
//! whatever features other crates turn on in `serde_json` (`preserve_order` would change
//! the order of a `Value` map), so the bytes stay the same across builds. The order is
//! the one the CycloneDX specification lists, so the file reads like other CycloneDX
//! documents.

use serde::Serialize;

/// The whole document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Bom {
    /// Lets editors find the schema; the 1.6 schema allows the key.
    #[serde(rename = "$schema")]
    pub schema: &'static str,
    pub bom_format: &'static str,
    pub spec_version: &'static str,
    /// `None` only while the document is serialised to derive the serial number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    pub version: u32,
    pub metadata: Metadata,
    pub components: Vec<Component>,
    pub dependencies: Vec<Dependency>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub compositions: Vec<Composition>,
}

/// `metadata`.
#[derive(Debug, Serialize)]
pub(super) struct Metadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    pub tools: Tools,
    pub component: Component,
}

/// `metadata.tools` in the 1.5+ object form (the array form is deprecated).
#[derive(Debug, Serialize)]
pub(super) struct Tools {
    pub components: Vec<Component>,
}

/// Component types this SBOM uses, spelled as the schema's enum.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum ComponentType {
    Application,
    Container,
    File,
    Library,
}

/// A component; empty optional parts are left out rather than written as `null` or `[]`.
#[derive(Debug, Serialize)]
pub(super) struct Component {
    #[serde(rename = "type")]
    pub kind: ComponentType,
    #[serde(rename = "bom-ref", skip_serializing_if = "Option::is_none")]
    pub bom_ref: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<Hash>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pedigree: Option<Pedigree>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<Property>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
}

impl Component {
    /// A component with only its type, name and version; callers fill the rest.
    pub fn new(kind: ComponentType, name: &str, version: Option<&str>) -> Self {
        Component {
            kind,
            bom_ref: None,
            name: name.to_owned(),
            version: version.map(str::to_owned),
            hashes: Vec::new(),
            purl: None,
            pedigree: None,
            properties: Vec::new(),
            components: Vec::new(),
        }
    }
}

/// `hashes[]`.
#[derive(Debug, Serialize)]
pub(super) struct Hash {
    pub alg: &'static str,
    pub content: String,
}

/// `pedigree`: here only the module a Go `replace` directive stood in for.
#[derive(Debug, Serialize)]
pub(super) struct Pedigree {
    pub ancestors: Vec<Component>,
}

/// `properties[]`: a name-value pair.
#[derive(Debug, Serialize)]
pub(super) struct Property {
    pub name: String,
    pub value: String,
}

/// `dependencies[]`.
#[derive(Debug, Serialize)]
pub(super) struct Dependency {
    #[serde(rename = "ref")]
    pub reference: String,
    #[serde(rename = "dependsOn")]
    pub depends_on: Vec<String>,
}

/// `compositions[]`.
#[derive(Debug, Serialize)]
pub(super) struct Composition {
    pub aggregate: &'static str,
    pub assemblies: Vec<String>,
}
