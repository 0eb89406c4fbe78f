//! `sbom.cdx.json`: the bundle's software bill of materials, CycloneDX 1.6 JSON.
//!
//! The document names the bundle, every image it carries, the Go binaries found in
//! each image and the Go modules linked into each binary, and the graph between them:
//!
//! - `metadata.component` is the bundle, type `file` (it is an archive, not something
//!   that runs), version the Velero release;
//! - one top-level `container` component per image, in bundle order, whose purl
//!   (`pkg:oci/…`) is also its `bom-ref`;
//! - nested in an image, one `application` per Go binary, `bom-ref` the image's purl
//!   with the binary's path as purl subpath (`…#plugins/velero-plugin-for-aws`);
//! - nested in a binary, one `library` per Go module (main module first), `bom-ref`
//!   `<binary bom-ref>|<module purl>`. A module linked into several binaries is listed
//!   once per binary: each binary carries its own copy, and the refs stay unique;
//! - a module a Go `replace` directive swapped is listed as what was compiled in (the
//!   replacement), with the module it replaced under `pedigree.ancestors`; a
//!   replacement by a local directory has no version or purl to give, so it keeps the
//!   module path as name and records the directory in `velero-airgap:go-replace-dir`;
//! - `dependencies`: bundle → images, image → binaries, binary → modules. Images
//!   without binaries, and modules, are left out of the graph: their dependencies are
//!   unknown, and an empty entry would claim there are none;
//! - `compositions` marks the images' contents `incomplete`: only Go binaries are listed.
//!
//! Reproducible: the same input gives the same bytes. Nothing here reads a clock, a
//! random source or a hash map's order; the timestamp is the bundle's build time (from
//! `SOURCE_DATE_EPOCH`) and the serial number comes from the content ([`stamp`]).

mod cdx;
mod purl;
mod stamp;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use cdx::{Component, ComponentType, Dependency, Property};

use crate::bundle::Tool;
use crate::oci::Digest;
use crate::plugin::{GoBuildInfo, ManifestPrograms, Module};
use crate::reference::Reference;
use crate::values::Role;

/// `metadata.component.name`: the bundle, whatever its file is called, so that renaming
/// the output does not change its bytes.
const BUNDLE_NAME: &str = "velero-airgap-bundle";

/// What the SBOM is made from.
#[derive(Debug, Clone)]
pub struct SbomInput<'a> {
    /// The program that writes the bundle (`metadata.tools`).
    pub tool: &'a Tool,
    /// Velero release the bundle carries, e.g. `1.18.2` (`metadata.component.version`).
    pub velero_release: &'a str,
    /// `metadata.timestamp`: the bundle's `buildTime`, from `SOURCE_DATE_EPOCH`.
    pub timestamp: Option<&'a str>,
    /// The bundle's images, in `bundle.json` order.
    pub images: Vec<SbomImage<'a>>,
}

/// One image of the bundle.
#[derive(Debug, Clone)]
pub struct SbomImage<'a> {
    pub role: &'a Role,
    pub reference: &'a Reference,
    /// The manifest (or index) the bundle's `index.json` lists.
    pub digest: &'a Digest,
    /// The Go programs of each platform manifest that was read; empty for the images
    /// whose layers are not read.
    pub manifests: &'a [ManifestPrograms],
}

/// Prefix of the custom property names, as CycloneDX asks (`namespace:name`).
const PROPERTY_NAMESPACE: &str = "velero-airgap";

/// Writes `sbom.cdx.json`: pretty-printed with two-space indentation, like
/// `bundle.json`, and a final newline.
///
/// The serial number is derived from the document written without it (exactly these
/// bytes, newline included), so any change of content changes it.
pub fn write_sbom(input: &SbomInput) -> Vec<u8> {
    let mut bom = document(input);
    let without_serial = to_json(&bom);
    bom.serial_number = Some(stamp::serial_number(&without_serial));
    to_json(&bom)
}

fn to_json(bom: &cdx::Bom) -> Vec<u8> {
    // Structs of strings and numbers: serialising cannot fail.
    let mut bytes = serde_json::to_vec_pretty(bom).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The document without its serial number.
fn document(input: &SbomInput) -> cdx::Bom {
    let mut refs = BomRefs::default();
    let mut bundle = Component::new(ComponentType::File, BUNDLE_NAME, Some(input.velero_release));
    let bundle_ref = refs.claim(format!("bundle:{BUNDLE_NAME}"));
    bundle.bom_ref = Some(bundle_ref.clone());

    let mut components = Vec::with_capacity(input.images.len());
    let mut image_refs = Vec::with_capacity(input.images.len());
    let mut graph = Vec::new();
    for image in &input.images {
        let (component, bom_ref) = image_component(image, &mut refs, &mut graph);
        components.push(component);
        image_refs.push(bom_ref);
    }
    let mut dependencies = vec![Dependency {
        reference: bundle_ref,
        depends_on: image_refs.clone(),
    }];
    dependencies.append(&mut graph);

    let compositions = if image_refs.is_empty() {
        Vec::new()
    } else {
        vec![cdx::Composition {
            aggregate: "incomplete",
            assemblies: image_refs,
        }]
    };

    cdx::Bom {
        schema: "http://cyclonedx.org/schema/bom-1.6.schema.json",
        bom_format: "CycloneDX",
        spec_version: "1.6",
        serial_number: None,
        version: 1,
        metadata: cdx::Metadata {
            timestamp: input.timestamp.map(str::to_owned),
            tools: cdx::Tools {
                components: vec![Component::new(
                    ComponentType::Application,
                    &input.tool.name,
                    Some(&input.tool.version),
                )],
            },
            component: bundle,
        },
        components,
        dependencies,
        compositions,
    }
}

/// A `container` component for an image (or one of its platform manifests), with its
/// purl as bom-ref and the image's hash.
fn container(reference: &Reference, digest: &Digest, refs: &mut BomRefs) -> (Component, String) {
    let image_purl = purl::oci(reference, digest);
    let bom_ref = refs.claim(image_purl.clone());
    let version = reference
        .tag()
        .map_or_else(|| digest.to_string(), str::to_owned);
    let mut component = Component::new(
        ComponentType::Container,
        reference.repository(),
        Some(&version),
    );
    component.bom_ref = Some(bom_ref.clone());
    component.purl = Some(image_purl);
    component.hashes.push(cdx::Hash {
        alg: "SHA-256",
        content: digest.hex(),
    });
    (component, bom_ref)
}

/// The image's component and its bom-ref; adds its graph entries (the image's, then
/// those below it) to `graph`. A single platform manifest's programs are nested in the
/// image itself; an index's in one nested container per platform manifest.
fn image_component(
    image: &SbomImage,
    refs: &mut BomRefs,
    graph: &mut Vec<Dependency>,
) -> (Component, String) {
    let (mut component, bom_ref) = container(image.reference, image.digest, refs);
    component
        .properties
        .push(property("role", &image.role.to_string()));
    // The purl keeps the repository and tag but not a digest the reference pins
    // (often an index, while the bundle holds a platform manifest).
    component
        .properties
        .push(property("reference", &image.reference.to_string()));
    let mut children = Vec::new();
    match image.manifests {
        [only] if only.manifest == *image.digest => {
            component
                .properties
                .push(property("platform", &only.platform));
            add_programs(
                &mut component,
                &bom_ref,
                &only.programs,
                refs,
                &mut children,
            );
        }
        manifests => {
            for manifest in manifests {
                let (mut nested, nested_ref) = container(image.reference, &manifest.manifest, refs);
                nested
                    .properties
                    .push(property("platform", &manifest.platform));
                let mut below = Vec::new();
                add_programs(
                    &mut nested,
                    &nested_ref,
                    &manifest.programs,
                    refs,
                    &mut below,
                );
                component.components.push(nested);
                if !below.is_empty() {
                    children.push(Dependency {
                        reference: nested_ref,
                        depends_on: below.iter().map(|d| d.reference.clone()).collect(),
                    });
                    children.append(&mut below);
                }
            }
        }
    }
    if !children.is_empty() {
        // The image depends on what is directly below it: its programs, or its platforms.
        let direct: Vec<String> = component
            .components
            .iter()
            .filter_map(|child| child.bom_ref.clone())
            .filter(|child| children.iter().any(|d| d.reference == *child))
            .collect();
        graph.push(Dependency {
            reference: bom_ref.clone(),
            depends_on: direct,
        });
        graph.append(&mut children);
    }
    (component, bom_ref)
}

/// Nests one `application` per Go program in `parent` and adds their graph entries.
fn add_programs(
    parent: &mut Component,
    parent_ref: &str,
    programs: &[(String, GoBuildInfo)],
    refs: &mut BomRefs,
    graph: &mut Vec<Dependency>,
) {
    for (path, info) in programs {
        parent
            .components
            .push(binary_component(parent_ref, path, info, refs, graph));
    }
}

/// A Go binary with its modules nested; adds its graph entry to `graph`.
fn binary_component(
    image_ref: &str,
    path: &str,
    info: &GoBuildInfo,
    refs: &mut BomRefs,
    graph: &mut Vec<Dependency>,
) -> Component {
    let bom_ref = refs.claim(format!("{image_ref}#{}", purl::subpath(path)));
    let file_name = path
        .rsplit('/')
        .find(|segment| !segment.is_empty())
        .unwrap_or(path);
    let version = info
        .main
        .as_ref()
        .map(|module| module.version.as_str())
        .filter(|version| !version.is_empty());
    let mut component = Component::new(ComponentType::Application, file_name, version);
    component.bom_ref = Some(bom_ref.clone());
    component.properties = vec![
        property("path", path),
        property("go-version", &info.go_version),
    ];

    let modules = info
        .main
        .iter()
        .map(|module| (module, true))
        .chain(info.deps.iter().map(|module| (module, false)));
    let mut depends_on = Vec::with_capacity(info.deps.len() + 1);
    for (module, is_main) in modules {
        let library = module_component(&bom_ref, module, is_main, refs);
        depends_on.extend(library.bom_ref.clone());
        component.components.push(library);
    }
    graph.push(Dependency {
        reference: bom_ref,
        depends_on,
    });
    component
}

/// A Go module as linked into one binary.
fn module_component(
    binary_ref: &str,
    module: &Module,
    is_main: bool,
    refs: &mut BomRefs,
) -> Component {
    let required_purl = purl::golang(&module.path, &module.version);
    let bom_ref = refs.claim(format!("{binary_ref}|{required_purl}"));
    let mut component = match module.replace.as_deref() {
        None => {
            let mut component = library(&module.path, &module.version);
            component.purl = Some(required_purl);
            component
        }
        Some(replacement) if replacement.version.is_empty() => {
            // Built from a local directory: no release to name, so no version or purl.
            let mut component = library(&module.path, "");
            component
                .properties
                .push(property("go-replace-dir", &replacement.path));
            component.pedigree = Some(ancestor(module, required_purl));
            component
        }
        Some(replacement) => {
            let mut component = library(&replacement.path, &replacement.version);
            component.purl = Some(purl::golang(&replacement.path, &replacement.version));
            component.pedigree = Some(ancestor(module, required_purl));
            component
        }
    };
    component.bom_ref = Some(bom_ref);
    if is_main {
        component
            .properties
            .push(property("go-main-module", "true"));
    }
    component
}

/// A `library` named by module path, with the version unless it is empty.
fn library(path: &str, version: &str) -> Component {
    Component::new(
        ComponentType::Library,
        path,
        Some(version).filter(|version| !version.is_empty()),
    )
}

/// The module a `replace` directive stood in for, as pedigree.
fn ancestor(module: &Module, purl: String) -> cdx::Pedigree {
    let mut original = library(&module.path, &module.version);
    original.purl = Some(purl);
    cdx::Pedigree {
        ancestors: vec![original],
    }
}

fn property(name: &str, value: &str) -> Property {
    Property {
        name: format!("{PROPERTY_NAMESPACE}:{name}"),
        value: value.to_owned(),
    }
}

/// Hands out bom-refs, unique within the document as CycloneDX requires.
#[derive(Debug, Default)]
struct BomRefs {
    taken: BTreeSet<String>,
}

impl BomRefs {
    /// `wanted`, or `wanted~N` with the smallest N ≥ 2 still free. Only repeated input
    /// (the same image or binary path twice, paths equal once `.` and `..` segments
    /// are dropped) makes two wanted refs equal; the suffix keeps the document valid
    /// and the output still depends on input order alone.
    fn claim(&mut self, wanted: String) -> String {
        let mut candidate = wanted.clone();
        let mut n = 2u32;
        while self.taken.contains(&candidate) {
            candidate = format!("{wanted}~{n}");
            n += 1;
        }
        self.taken.insert(candidate.clone());
        candidate
    }
}
