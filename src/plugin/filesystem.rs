//! The image filesystem after its layers are applied: metadata only (kind, mode, size,
//! link targets, the layer that last wrote each path) plus the small results of analysing
//! the executable files. Lookups follow symbolic links inside the image root, as the
//! container would, with `..` never leaving the root.
//!
//! Paths are stored canonical: absolute, without `.`/`..`, and with every parent a real
//! directory (a parent that is a symbolic link in a tar path is resolved when the layer is
//! applied, as containerd does). Layers are read by [`scan_layer`](super::scan_layer) and
//! applied in manifest order by [`Filesystem::apply`].

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use super::glob;
use super::gobuild::GoBuildInfo;
use super::layer::{Change, FileAnalysis, LayerChanges, NewNode};

/// Most entries tracked for the whole image; a layer set beyond it is refused.
pub const MAX_ENTRIES: usize = 200_000;
/// Most bytes of paths and link targets tracked for the whole image.
pub const MAX_TRACKED_PATH_BYTES: usize = 64 * 1024 * 1024;
/// Most symbolic links followed in one lookup, as Linux allows.
pub const MAX_SYMLINK_HOPS: usize = 40;
/// Most paths one [`Filesystem::glob`] returns; links to `.` could otherwise multiply them.
pub const MAX_GLOB_MATCHES: usize = 10_000;

/// One path of the image filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    /// Index of the layer that last wrote it (or, for a directory, wrote below it).
    pub layer: usize,
}

/// The kind of an [`Entry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file. A hard link is stored as the file it links to, at the time it was
    /// linked, with `hardlink_to` naming that file.
    File {
        mode: u32,
        size: u64,
        hardlink_to: Option<String>,
    },
    Directory {
        mode: u32,
    },
    /// A symbolic link, with its target as written.
    Symlink {
        target: String,
    },
    /// A device or a FIFO.
    Other,
}

/// A stored path: its entry and, when its contents were analysed, the results.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) entry: Entry,
    pub(super) analysis: Option<Arc<FileAnalysis>>,
}

/// A layer that cannot be applied on top of the ones below it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("the image has more than {limit} filesystem entries")]
    TooManyEntries { limit: usize },
    #[error("the image's paths and link targets exceed {limit} bytes in total")]
    TooManyPathBytes { limit: usize },
    #[error("hard link `{path}` points to `{target}`, which is not an earlier file")]
    HardLinkTarget { path: String, target: String },
}

static ROOT: Entry = Entry {
    kind: EntryKind::Directory { mode: 0o755 },
    layer: 0,
};

/// The image filesystem; see the module documentation.
#[derive(Debug, Default)]
pub struct Filesystem {
    nodes: BTreeMap<String, Node>,
    path_bytes: usize,
}

/// `parent/name` for a canonical parent.
pub(super) fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// The canonical parent of a canonical path.
fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(index) => &path[..index],
    }
}

impl Filesystem {
    /// The filesystem `layers` (bottom first) make.
    pub fn from_layers<'a>(
        layers: impl IntoIterator<Item = &'a LayerChanges>,
    ) -> Result<Filesystem, ApplyError> {
        let mut filesystem = Filesystem::default();
        for (index, layer) in layers.into_iter().enumerate() {
            filesystem.apply(layer, index)?;
        }
        Ok(filesystem)
    }

    /// Applies the changes of layer number `layer` on top of what is there.
    pub fn apply(&mut self, changes: &LayerChanges, layer: usize) -> Result<(), ApplyError> {
        for change in &changes.changes {
            match change {
                Change::Whiteout { parent, name } => {
                    let parent = self.prepare_parent(parent, layer)?;
                    self.remove_subtree(&join(&parent, name), Some(layer));
                }
                Change::Opaque { directory } => {
                    let directory = self.prepare_parent(directory, layer)?;
                    self.remove_below(&directory, Some(layer));
                }
                Change::Put { path, node } => {
                    let Some((name, parents)) = path.split_last() else {
                        continue;
                    };
                    let parent = self.prepare_parent(parents, layer)?;
                    let (kind, analysis) = match node {
                        NewNode::File {
                            mode,
                            size,
                            analysis,
                        } => (
                            EntryKind::File {
                                mode: *mode,
                                size: *size,
                                hardlink_to: None,
                            },
                            analysis.clone(),
                        ),
                        NewNode::Directory { mode } => (EntryKind::Directory { mode: *mode }, None),
                        NewNode::Symlink { target } => (
                            EntryKind::Symlink {
                                target: target.clone(),
                            },
                            None,
                        ),
                        NewNode::Other => (EntryKind::Other, None),
                    };
                    let node = Node {
                        entry: Entry { kind, layer },
                        analysis,
                    };
                    self.insert(join(&parent, name), node)?;
                }
                Change::HardLink { path, target } => {
                    let Some((name, parents)) = path.split_last() else {
                        continue;
                    };
                    let parent = self.prepare_parent(parents, layer)?;
                    self.hard_link(
                        join(&parent, name),
                        &format!("/{}", target.join("/")),
                        layer,
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Stores a hard link as a copy of the entry it links to.
    fn hard_link(
        &mut self,
        canonical: String,
        target: &str,
        layer: usize,
    ) -> Result<(), ApplyError> {
        let source = self
            .resolve(target, false)
            .and_then(|resolved| Some((self.node(&resolved)?, resolved)))
            .filter(|(node, _)| !matches!(node.entry.kind, EntryKind::Directory { .. }));
        let Some((node, resolved)) = source else {
            return Err(ApplyError::HardLinkTarget {
                path: canonical,
                target: target.to_string(),
            });
        };
        let mut node = node.clone();
        node.entry.layer = layer;
        if let EntryKind::File { hardlink_to, .. } = &mut node.entry.kind {
            *hardlink_to = Some(resolved);
        }
        self.insert(canonical, node)
    }

    /// Makes every parent of an entry a directory and returns the canonical parent:
    /// symbolic links on the way are followed, missing directories created, and other
    /// entries in the way replaced. Each directory is marked as written by this layer, so
    /// that an opaque marker of this layer keeps what this layer put below it.
    fn prepare_parent(&mut self, parents: &[String], layer: usize) -> Result<String, ApplyError> {
        let mut current = "/".to_string();
        for component in parents {
            let candidate = join(&current, component);
            let directory = match self.node(&candidate).map(|node| &node.entry.kind) {
                Some(EntryKind::Directory { .. }) => Some(candidate.clone()),
                Some(EntryKind::Symlink { .. }) => {
                    self.resolve(&candidate, true).filter(|resolved| {
                        resolved == "/"
                            || matches!(
                                self.node(resolved).map(|node| &node.entry.kind),
                                Some(EntryKind::Directory { .. })
                            )
                    })
                }
                _ => None,
            };
            current = match directory {
                Some(directory) => {
                    if let Some(node) = self.nodes.get_mut(&directory) {
                        node.entry.layer = node.entry.layer.max(layer);
                    }
                    directory
                }
                None => {
                    let node = Node {
                        entry: Entry {
                            kind: EntryKind::Directory { mode: 0o755 },
                            layer,
                        },
                        analysis: None,
                    };
                    self.insert(candidate.clone(), node)?;
                    candidate
                }
            };
        }
        Ok(current)
    }

    /// Number of paths tracked.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The entry at `path`, following symbolic links (also the last component).
    pub fn lookup(&self, path: &str) -> Option<&Entry> {
        self.entry_at(&self.resolve(path, true)?)
    }

    /// The entry at `path` itself: a final symbolic link is not followed.
    pub fn lookup_no_follow(&self, path: &str) -> Option<&Entry> {
        self.entry_at(&self.resolve(path, false)?)
    }

    /// Whether `path` exists, following symbolic links.
    #[cfg(test)]
    pub fn exists(&self, path: &str) -> bool {
        self.lookup(path).is_some()
    }

    /// Whether `path` is, after following links, a regular file with an execute bit.
    pub fn is_executable_file(&self, path: &str) -> bool {
        matches!(self.lookup(path), Some(Entry { kind: EntryKind::File { mode, .. }, .. }) if mode & 0o111 != 0)
    }

    /// The analysis of the file `path` leads to, when its contents were analysed.
    pub fn analysis(&self, path: &str) -> Option<&FileAnalysis> {
        let canonical = self.resolve(path, true)?;
        self.nodes.get(&canonical)?.analysis.as_deref()
    }

    /// Every executable regular file with Go build information, by canonical path in
    /// path order: the Go programs of the image, for the SBOM.
    pub fn go_binaries(&self) -> impl Iterator<Item = (&str, &GoBuildInfo)> {
        self.nodes
            .iter()
            .filter_map(|(path, node)| match &node.entry.kind {
                EntryKind::File { mode, .. } if mode & 0o111 != 0 => node
                    .analysis
                    .as_deref()
                    .and_then(|analysis| analysis.go.as_ref())
                    .map(|go| (path.as_str(), go)),
                _ => None,
            })
    }

    /// Where `program` is found as a container runtime would: as written when it has a
    /// `/` (relative to the root), else in the first of `path_dirs` holding an executable
    /// file of that name. Returns the path as found, links not resolved.
    pub fn which(&self, program: &str, path_dirs: &[String]) -> Option<String> {
        if program.contains('/') {
            let path = if program.starts_with('/') {
                program.to_string()
            } else {
                format!("/{program}")
            };
            return self.is_executable_file(&path).then_some(path);
        }
        path_dirs
            .iter()
            .map(|directory| format!("{}/{program}", directory.trim_end_matches('/')))
            .find(|path| self.is_executable_file(path))
    }

    /// The paths an absolute shell glob `pattern` (see [`glob`]) expands to, sorted, as
    /// written through the matched names. Empty when nothing matches. At most
    /// [`MAX_GLOB_MATCHES`].
    pub fn glob(&self, pattern: &str) -> Vec<String> {
        let mut candidates = vec!["/".to_string()];
        for component in pattern.split('/').filter(|component| !component.is_empty()) {
            let mut next = Vec::new();
            for written in &candidates {
                if !glob::has_wildcards(component) {
                    next.push(join(written, &glob::unescape(component)));
                    continue;
                }
                let Some(directory) = self.resolve(written, true) else {
                    continue;
                };
                for (name, _) in self.children(&directory) {
                    if next.len() < MAX_GLOB_MATCHES && glob::matches_component(component, name) {
                        next.push(join(written, name));
                    }
                }
            }
            candidates = next;
        }
        candidates.retain(|written| self.resolve(written, false).is_some());
        candidates.sort();
        candidates.dedup();
        candidates
    }

    /// Every non-directory below the directory `path` leads to, at any depth, as
    /// `(path written below `path`, entry)`; symbolic links inside are not followed.
    pub fn files_under(&self, path: &str) -> Vec<(String, &Entry)> {
        let Some(directory) = self.resolve(path, true) else {
            return Vec::new();
        };
        let prefix = if directory == "/" {
            "/".to_string()
        } else {
            format!("{directory}/")
        };
        let written = path.trim_end_matches('/');
        self.nodes
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(&prefix))
            .filter(|(_, node)| !matches!(node.entry.kind, EntryKind::Directory { .. }))
            .map(|(key, node)| (format!("{written}/{}", &key[prefix.len()..]), &node.entry))
            .collect()
    }

    /// The canonical path `path` leads to, following symbolic links within the root (the
    /// last component only when `follow_final`); `None` when something on the way is
    /// missing or not a directory, or after [`MAX_SYMLINK_HOPS`] links.
    pub fn resolve(&self, path: &str, follow_final: bool) -> Option<String> {
        // A stack of the components still to walk, next on top; `.` and empty ones are
        // no-ops and never pushed, so "more to walk" is "stack not empty".
        fn push_reversed(pending: &mut Vec<String>, path: &str) {
            pending.extend(
                path.rsplit('/')
                    .filter(|component| !matches!(*component, "" | "."))
                    .map(str::to_string),
            );
        }
        let mut pending = Vec::new();
        push_reversed(&mut pending, path);
        let mut current = "/".to_string();
        let mut hops = 0;
        while let Some(component) = pending.pop() {
            if component == ".." {
                current = parent_of(&current).to_string();
                continue;
            }
            let candidate = join(&current, &component);
            let remaining = !pending.is_empty();
            match &self.nodes.get(&candidate)?.entry.kind {
                EntryKind::Symlink { target } if follow_final || remaining => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return None;
                    }
                    if target.starts_with('/') {
                        current = "/".to_string();
                    }
                    push_reversed(&mut pending, target);
                }
                EntryKind::Directory { .. } => current = candidate,
                _ if !remaining => current = candidate,
                _ => return None,
            }
        }
        Some(current)
    }

    /// The entry stored at a canonical path.
    fn entry_at(&self, canonical: &str) -> Option<&Entry> {
        if canonical == "/" {
            return Some(&ROOT);
        }
        self.nodes.get(canonical).map(|node| &node.entry)
    }

    /// The direct children of a canonical directory, in name order. Each child's subtree
    /// is skipped with one lookup rather than walked.
    pub(super) fn children<'a>(
        &'a self,
        directory: &str,
    ) -> impl Iterator<Item = (&'a str, &'a Node)> + 'a {
        let prefix = if directory == "/" {
            "/".to_string()
        } else {
            format!("{directory}/")
        };
        let mut cursor = prefix.clone();
        let mut inclusive = true;
        std::iter::from_fn(move || {
            loop {
                let lower = if inclusive {
                    Bound::Included(cursor.as_str())
                } else {
                    Bound::Excluded(cursor.as_str())
                };
                let (key, node) = self
                    .nodes
                    .range::<str, _>((lower, Bound::Unbounded))
                    .next()?;
                let rest = key.strip_prefix(prefix.as_str())?;
                match rest.find('/') {
                    None => {
                        cursor = key.clone();
                        inclusive = false;
                        return Some((rest, node));
                    }
                    // A descendant of the child just returned: jump past its subtree
                    // ('0' is the character after '/').
                    Some(slash) => {
                        cursor = format!("{prefix}{}0", &rest[..slash]);
                        inclusive = true;
                    }
                }
            }
        })
    }

    pub(super) fn node(&self, canonical: &str) -> Option<&Node> {
        self.nodes.get(canonical)
    }

    /// Stores `node` at the canonical `path` (whose parent must exist as a directory).
    /// A directory over a directory keeps the children; anything else replaces the old
    /// entry and everything below it.
    pub(super) fn insert(&mut self, path: String, node: Node) -> Result<(), ApplyError> {
        if let Some(existing) = self.nodes.get_mut(&path) {
            if let (EntryKind::Directory { .. }, EntryKind::Directory { .. }) =
                (&existing.entry.kind, &node.entry.kind)
            {
                existing.entry = node.entry;
                return Ok(());
            }
            self.remove_subtree(&path, None);
        }
        let cost = path.len()
            + match &node.entry.kind {
                EntryKind::Symlink { target } => target.len(),
                _ => 0,
            };
        if self.nodes.len() >= MAX_ENTRIES {
            return Err(ApplyError::TooManyEntries { limit: MAX_ENTRIES });
        }
        if self.path_bytes + cost > MAX_TRACKED_PATH_BYTES {
            return Err(ApplyError::TooManyPathBytes {
                limit: MAX_TRACKED_PATH_BYTES,
            });
        }
        self.path_bytes += cost;
        self.nodes.insert(path, node);
        Ok(())
    }

    /// Removes the canonical `path` and everything below it; with `below_layer`, only
    /// when `path` was written by an earlier layer.
    pub(super) fn remove_subtree(&mut self, path: &str, below_layer: Option<usize>) {
        match (self.nodes.get(path), below_layer) {
            (None, _) => {}
            (Some(node), Some(layer)) if node.entry.layer >= layer => return,
            _ => self.remove(path),
        }
        self.remove_below(path, below_layer);
    }

    /// Removes what lies strictly below the canonical directory `path`; with
    /// `below_layer`, only entries written by earlier layers (an opaque directory).
    pub(super) fn remove_below(&mut self, path: &str, below_layer: Option<usize>) {
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        let doomed: Vec<String> = self
            .nodes
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(&prefix))
            .filter(|(_, node)| below_layer.is_none_or(|layer| node.entry.layer < layer))
            .map(|(key, _)| key.clone())
            .collect();
        for key in doomed {
            self.remove(&key);
        }
    }

    fn remove(&mut self, path: &str) {
        if let Some(node) = self.nodes.remove(path) {
            let target = match &node.entry.kind {
                EntryKind::Symlink { target } => target.len(),
                _ => 0,
            };
            self.path_bytes -= path.len() + target;
        }
    }
}

#[cfg(test)]
mod tests;
