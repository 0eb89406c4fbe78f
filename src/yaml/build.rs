//! Builds the [`Node`] tree from yaml-rust2's events, enforcing the [`Limits`] as it goes.
//!
//! The parser is driven one event at a time with `Parser::next_token`, not with
//! `Parser::load`: `load` recurses once per nesting level (a stack overflow on deep input)
//! and cannot be stopped early. Here the first violation returns at once, so a refused
//! text costs no more than its prefix up to the violation (plus the scanner's lookahead).
//! The tree is built with an explicit stack, so nothing here recurses either.

use std::collections::{HashMap, HashSet};

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::error::{Position, Problem, shortened};
use super::limits::Limits;
use super::node::{Key, Node, NodeValue, ScalarStyle};
use super::scalar::resolve_plain;

/// A problem and where it was found.
pub(super) type Failure = (Problem, Position);

/// Parses the one document of `text` (None when there is none).
pub(super) fn build(text: &str, limits: &Limits) -> Result<Option<Node>, Failure> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder {
        limits,
        stack: Vec::new(),
        root: None,
        anchors: HashMap::new(),
        nodes: 0,
        bytes: 0,
        documents: 0,
    };
    loop {
        let (event, mark) = parser.next_token().map_err(|error| {
            let problem = match error.info() {
                // The scanner's own bound on flow nesting, which its lookahead can reach
                // before this builder sees the level past `max_depth`.
                "recursion limit exceeded" => Problem::TooDeep(limits.max_depth.min(FLOW_LEVELS)),
                info => Problem::Syntax(info.to_owned()),
            };
            (problem, at(*error.marker()))
        })?;
        let at = at(mark);
        match event {
            Event::StreamEnd => return Ok(builder.root),
            Event::DocumentStart if builder.documents > 0 => {
                return Err((Problem::MultipleDocuments, at));
            }
            Event::DocumentStart => builder.documents += 1,
            Event::Scalar(text, style, anchor, tag) => {
                let tagged_str = string_tag(tag.as_ref(), at)?;
                let scalar = Scalar {
                    text,
                    style: scalar_style(style),
                    tagged_str,
                    at,
                };
                builder.scalar(scalar, anchor)?;
            }
            Event::Alias(anchor) => builder.alias(anchor, at)?,
            Event::SequenceStart(anchor, tag) => {
                builder.open(Collection::Sequence(Vec::new()), anchor, tag.as_ref(), at)?;
            }
            Event::MappingStart(anchor, tag) => {
                let mapping = Collection::Mapping {
                    entries: Vec::new(),
                    key: None,
                    seen: HashSet::new(),
                };
                builder.open(mapping, anchor, tag.as_ref(), at)?;
            }
            Event::SequenceEnd | Event::MappingEnd => builder.close(),
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
        }
    }
}

/// How deep yaml-rust2's scanner nests flow collections (it counts them in a u8).
const FLOW_LEVELS: usize = 255;

/// yaml-rust2's lines are 1-based, its columns 0-based.
fn at(mark: Marker) -> Position {
    Position {
        line: mark.line(),
        column: mark.col() + 1,
    }
}

/// Whether the scalar is tagged `!!str`; any other tag is refused, since its meaning
/// (a custom type, `!!binary`, `!!int` on a string…) is nothing this tool can honour.
fn string_tag(tag: Option<&Tag>, at: Position) -> Result<bool, Failure> {
    match tag {
        None => Ok(false),
        Some(tag) if tag.handle == CORE_TAGS && tag.suffix == "str" => Ok(true),
        Some(tag) => Err(refused_tag(tag, at)),
    }
}

/// What yaml-rust2 expands the `!!` handle to.
const CORE_TAGS: &str = "tag:yaml.org,2002:";

fn refused_tag(tag: &Tag, at: Position) -> Failure {
    let written = match tag.handle.as_str() {
        CORE_TAGS => format!("!!{}", tag.suffix),
        handle => format!("{handle}{}", tag.suffix),
    };
    (Problem::Tag(shortened(&written)), at)
}

fn scalar_style(style: TScalarStyle) -> ScalarStyle {
    match style {
        TScalarStyle::Plain => ScalarStyle::Plain,
        TScalarStyle::SingleQuoted => ScalarStyle::SingleQuoted,
        TScalarStyle::DoubleQuoted => ScalarStyle::DoubleQuoted,
        TScalarStyle::Literal => ScalarStyle::Literal,
        TScalarStyle::Folded => ScalarStyle::Folded,
    }
}

/// A scalar as written, before resolution; kept whole for anchors, because an alias
/// used as a key needs the text (`1`, not the number 1).
#[derive(Clone)]
struct Scalar {
    text: String,
    style: ScalarStyle,
    tagged_str: bool,
    at: Position,
}

impl Scalar {
    fn into_node(self) -> Node {
        let value = if self.style == ScalarStyle::Plain && !self.tagged_str {
            resolve_plain(self.text)
        } else {
            NodeValue::String(self.text)
        };
        Node {
            value,
            line: self.at.line,
            column: self.at.column,
            style: self.style,
        }
    }
}

struct Builder<'l> {
    limits: &'l Limits,
    /// The open collections, outermost first.
    stack: Vec<Frame>,
    root: Option<Node>,
    /// yaml-rust2's anchor ids (fresh for each `&name`, even a repeated one).
    anchors: HashMap<usize, Anchored>,
    /// Nodes so far, alias expansions included.
    nodes: usize,
    /// Scalar bytes so far, alias expansions included.
    bytes: usize,
    documents: usize,
}

/// An open collection.
struct Frame {
    at: Position,
    anchor: usize,
    /// `Builder::nodes` and `Builder::bytes` before the collection, so its totals can be
    /// charged again for each alias to it.
    nodes_before: usize,
    bytes_before: usize,
    /// Nesting levels of the deepest child collection (0 without one).
    height: usize,
    collection: Collection,
}

enum Collection {
    Sequence(Vec<Node>),
    Mapping {
        entries: Vec<(Key, Node)>,
        /// The key whose value comes next.
        key: Option<Key>,
        /// The keys so far, to refuse a repeated one where it stands.
        seen: HashSet<String>,
    },
}

/// What an alias copies.
enum Anchored {
    Scalar(Scalar),
    /// A completed collection, found by its child indices from the root rather than
    /// stored as a copy: copying every anchored collection (nested anchors each copying
    /// their whole subtree) would cost more than the tree.
    Collection {
        path: Box<[usize]>,
        nodes: usize,
        bytes: usize,
        height: usize,
    },
}

impl Frame {
    /// The completed child at `index`.
    fn child(&self, index: usize) -> Option<&Node> {
        match &self.collection {
            Collection::Sequence(items) => items.get(index),
            Collection::Mapping { entries, .. } => entries.get(index).map(|(_, value)| value),
        }
    }

    /// The number of completed children, which is the index of the next one.
    fn len(&self) -> usize {
        match &self.collection {
            Collection::Sequence(items) => items.len(),
            Collection::Mapping { entries, .. } => entries.len(),
        }
    }
}

fn child(node: &Node, index: usize) -> Option<&Node> {
    match &node.value {
        NodeValue::Sequence(items) => items.get(index),
        NodeValue::Mapping(entries) => entries.get(index).map(|(_, value)| value),
        _ => None,
    }
}

impl Builder<'_> {
    /// Charges `nodes` nodes and `bytes` scalar bytes, refusing what exceeds the limits.
    fn charge(&mut self, nodes: usize, bytes: usize, at: Position) -> Result<(), Failure> {
        self.nodes = self.nodes.saturating_add(nodes);
        if self.nodes > self.limits.max_nodes {
            return Err((Problem::TooManyNodes(self.limits.max_nodes), at));
        }
        self.bytes = self.bytes.saturating_add(bytes);
        if self.bytes > self.limits.max_expanded_bytes {
            return Err((Problem::TooManyBytes(self.limits.max_expanded_bytes), at));
        }
        Ok(())
    }

    /// Whether the next node is a mapping key.
    fn expects_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame {
                collection: Collection::Mapping { key: None, .. },
                ..
            })
        )
    }

    fn scalar(&mut self, scalar: Scalar, anchor: usize) -> Result<(), Failure> {
        self.charge(1, scalar.text.len(), scalar.at)?;
        if anchor != 0 {
            self.anchors
                .insert(anchor, Anchored::Scalar(scalar.clone()));
        }
        self.place_scalar(scalar)
    }

    /// Places a charged scalar as a key or a value.
    fn place_scalar(&mut self, scalar: Scalar) -> Result<(), Failure> {
        if !self.expects_key() {
            self.place(scalar.into_node(), 0);
            return Ok(());
        }
        let Some(Frame {
            at,
            collection: Collection::Mapping { entries, key, seen },
            ..
        }) = self.stack.last_mut()
        else {
            return Ok(());
        };
        if !seen.insert(scalar.text.clone()) {
            return Err((Problem::DuplicateKey(shortened(&scalar.text)), scalar.at));
        }
        // A block mapping's start event is marked at the first key's `:`; the mapping
        // starts at that key.
        if entries.is_empty() && (scalar.at.line, scalar.at.column) < (at.line, at.column) {
            *at = scalar.at;
        }
        *key = Some(Key {
            text: scalar.text,
            line: scalar.at.line,
            column: scalar.at.column,
        });
        Ok(())
    }

    /// Places a completed value node whose collections nest `height` levels.
    fn place(&mut self, node: Node, height: usize) {
        let Some(frame) = self.stack.last_mut() else {
            self.root = Some(node);
            return;
        };
        frame.height = frame.height.max(height);
        match &mut frame.collection {
            Collection::Sequence(items) => items.push(node),
            Collection::Mapping { entries, key, .. } => {
                if let Some(key) = key.take() {
                    entries.push((key, node));
                }
            }
        }
    }

    fn open(
        &mut self,
        collection: Collection,
        anchor: usize,
        tag: Option<&Tag>,
        at: Position,
    ) -> Result<(), Failure> {
        if let Some(tag) = tag {
            return Err(refused_tag(tag, at));
        }
        if self.expects_key() {
            return Err((Problem::NonScalarKey, at));
        }
        if self.stack.len() >= self.limits.max_depth {
            return Err((Problem::TooDeep(self.limits.max_depth), at));
        }
        let (nodes_before, bytes_before) = (self.nodes, self.bytes);
        self.charge(1, 0, at)?;
        self.stack.push(Frame {
            at,
            anchor,
            nodes_before,
            bytes_before,
            height: 0,
            collection,
        });
        Ok(())
    }

    fn close(&mut self) {
        let Some(frame) = self.stack.pop() else {
            return;
        };
        let value = match frame.collection {
            Collection::Sequence(items) => NodeValue::Sequence(items),
            Collection::Mapping { entries, .. } => NodeValue::Mapping(entries),
        };
        let height = frame.height + 1;
        if frame.anchor != 0 {
            // Where `place` below puts the node: after the completed children of each
            // open collection.
            let path = self.stack.iter().map(Frame::len).collect();
            let anchored = Anchored::Collection {
                path,
                nodes: self.nodes - frame.nodes_before,
                bytes: self.bytes - frame.bytes_before,
                height,
            };
            self.anchors.insert(frame.anchor, anchored);
        }
        let node = Node {
            value,
            line: frame.at.line,
            column: frame.at.column,
            style: ScalarStyle::Plain,
        };
        self.place(node, height);
    }

    /// Places a copy of the anchored node, charged in full before it is made.
    fn alias(&mut self, anchor: usize, at: Position) -> Result<(), Failure> {
        let (nodes, bytes, height) = match self.anchors.get(&anchor) {
            Some(Anchored::Scalar(scalar)) => (1, scalar.text.len(), 0),
            Some(Anchored::Collection {
                nodes,
                bytes,
                height,
                ..
            }) => (*nodes, *bytes, *height),
            // yaml-rust2 refuses unknown anchors, and a collection is registered when it
            // closes: so this alias is inside the collection it names.
            None => return Err((Problem::RecursiveAlias, at)),
        };
        if height > 0 && self.expects_key() {
            return Err((Problem::NonScalarKey, at));
        }
        if self.stack.len() + height > self.limits.max_depth {
            return Err((Problem::TooDeep(self.limits.max_depth), at));
        }
        self.charge(nodes, bytes, at)?;
        match self.anchors.get(&anchor) {
            Some(Anchored::Scalar(scalar)) => {
                let scalar = scalar.clone();
                self.place_scalar(scalar)
            }
            Some(Anchored::Collection { path, .. }) => match self.resolve(path).cloned() {
                Some(node) => {
                    self.place(node, height);
                    Ok(())
                }
                None => Err((Problem::RecursiveAlias, at)),
            },
            None => Err((Problem::RecursiveAlias, at)),
        }
    }

    /// The completed node at `path` (child indices from the root collection down).
    fn resolve(&self, path: &[usize]) -> Option<&Node> {
        for (depth, &index) in path.iter().enumerate() {
            // Either the path leaves the open collections here, into a completed child,
            // or it goes on into the collection open at the next depth.
            if let Some(node) = self.stack.get(depth)?.child(index) {
                return path[depth + 1..]
                    .iter()
                    .try_fold(node, |node, &index| child(node, index));
            }
        }
        None
    }
}
