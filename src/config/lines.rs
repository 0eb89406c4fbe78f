//! Line numbers for YAML paths such as `spec.extensions.velero.plugins[1].image`.
//!
//! `serde_yaml_ng` values carry no positions, so the same text is read a second time with
//! yaml-rust2's event parser, whose events carry markers. The two parsers can disagree on
//! exotic input; the index is only a help for messages, so it then stays empty.

use std::collections::{HashMap, HashSet};

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Maps each path of a YAML document to the 1-based line where it starts.
#[derive(Debug, Clone, Default)]
pub(crate) struct LineIndex {
    /// Mapping entries point at their key, sequence items at the item.
    lines: HashMap<String, usize>,
    /// For literal block scalars (`key: |`), the line of the scalar's first line of text.
    literal_starts: HashMap<String, usize>,
    /// 1-based (line, column) of the first key that repeats an earlier key of its mapping.
    duplicate_key: Option<(usize, usize)>,
}

impl LineIndex {
    /// Indexes `text`; an empty index when yaml-rust2 cannot read it.
    pub(crate) fn build(text: &str) -> Self {
        let mut builder = Builder::default();
        match Parser::new_from_str(text).load(&mut builder, false) {
            Ok(()) => builder.index,
            Err(_) => Self::default(),
        }
    }

    /// The line of `path` (`""` is the document itself), or of its nearest ancestor in
    /// the document when `path` itself is absent, so a missing field points at its parent.
    pub(crate) fn line_of(&self, path: &str) -> Option<usize> {
        std::iter::successors(Some(path), |path| parent(path))
            .find_map(|path| self.lines.get(path).copied())
    }

    /// The source line holding line 1 of the literal block scalar at `path`, so that a
    /// line inside the scalar's text maps to `start + line - 1`. None for other styles:
    /// quoted and folded strings do not keep the source's line breaks.
    pub(crate) fn literal_start(&self, path: &str) -> Option<usize> {
        self.literal_starts.get(path).copied()
    }

    /// Where the first repeated mapping key is: `serde_yaml_ng` refuses duplicates but
    /// points at the start of their mapping rather than at the repeated key.
    pub(crate) fn duplicate_key(&self) -> Option<(usize, usize)> {
        self.duplicate_key
    }
}

/// `a.b[1]` → `a.b` → `a` → `""` → None.
fn parent(path: &str) -> Option<&str> {
    (!path.is_empty()).then(|| &path[..path.rfind(['.', '[']).unwrap_or(0)])
}

#[derive(Default)]
struct Builder {
    index: LineIndex,
    /// Open collections; a path is None inside a mapping key that is itself a collection.
    stack: Vec<Frame>,
}

enum Frame {
    Mapping {
        path: Option<String>,
        state: Entry,
        keys: HashSet<String>,
    },
    Sequence {
        path: Option<String>,
        next: usize,
    },
}

/// Where a mapping is between its entries; each carries the entry's path once its key is known.
#[derive(Default)]
enum Entry {
    #[default]
    Key,
    ReadingKey(Option<String>),
    Value(Option<String>),
}

impl Builder {
    /// Records where the node starting at `mark` is and returns its path; None for keys.
    fn begin_node(&mut self, scalar: Option<&str>, mark: Marker) -> Option<String> {
        match self.stack.last_mut() {
            None => {
                self.index.lines.insert(String::new(), mark.line());
                Some(String::new())
            }
            Some(Frame::Mapping { path, state, keys }) => match state {
                Entry::Key => {
                    let repeated = scalar.is_some_and(|key| !keys.insert(key.to_owned()));
                    if repeated && self.index.duplicate_key.is_none() {
                        self.index.duplicate_key = Some((mark.line(), mark.col() + 1));
                    }
                    let entry = path.as_deref().zip(scalar).map(|(parent, key)| {
                        if parent.is_empty() {
                            key.to_owned()
                        } else {
                            format!("{parent}.{key}")
                        }
                    });
                    if let Some(entry) = &entry {
                        self.index.lines.insert(entry.clone(), mark.line());
                    }
                    *state = Entry::ReadingKey(entry);
                    None
                }
                Entry::ReadingKey(_) => None,
                Entry::Value(entry) => entry.clone(),
            },
            Some(Frame::Sequence { path, next }) => {
                let item = path.as_ref().map(|parent| format!("{parent}[{next}]"));
                if let Some(item) = &item {
                    self.index.lines.insert(item.clone(), mark.line());
                }
                item
            }
        }
    }

    fn end_node(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Mapping { state, .. }) => {
                *state = match std::mem::take(state) {
                    Entry::ReadingKey(entry) => Entry::Value(entry),
                    Entry::Key | Entry::Value(_) => Entry::Key,
                }
            }
            Some(Frame::Sequence { next, .. }) => *next += 1,
            None => {}
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(value, style, ..) => {
                let path = self.begin_node(Some(&value), mark);
                // The marker of a literal scalar is its first non-blank line; leading
                // blank lines are in the value as line breaks.
                if let Some(path) = path.filter(|_| style == TScalarStyle::Literal) {
                    let blank = value.bytes().take_while(|&b| b == b'\n').count();
                    let start = mark.line().saturating_sub(blank);
                    self.index.literal_starts.insert(path, start);
                }
                self.end_node();
            }
            Event::Alias(_) => {
                self.begin_node(None, mark);
                self.end_node();
            }
            Event::MappingStart(..) => {
                let path = self.begin_node(None, mark);
                self.stack.push(Frame::Mapping {
                    path,
                    state: Entry::Key,
                    keys: HashSet::new(),
                });
            }
            Event::SequenceStart(..) => {
                let path = self.begin_node(None, mark);
                self.stack.push(Frame::Sequence { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.end_node();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
spec:
  extensions:
    velero:
      plugins:
        - name: pg
          image: a.com/pg:1
        -
          name: mongo

          image: a.com/mongo:1
  flow: {a: 1, b: [x, y]}
  ? [complex, key]
  : ignored
  after: 1
";

    #[test]
    fn maps_paths_to_lines() {
        let index = LineIndex::build(TEXT);
        for (path, line) in [
            ("", 1),
            ("spec", 1),
            ("spec.extensions.velero.plugins", 4),
            ("spec.extensions.velero.plugins[0]", 5),
            ("spec.extensions.velero.plugins[0].name", 5),
            ("spec.extensions.velero.plugins[0].image", 6),
            ("spec.extensions.velero.plugins[1]", 8),
            ("spec.extensions.velero.plugins[1].name", 8),
            ("spec.extensions.velero.plugins[1].image", 10),
            ("spec.flow.b[1]", 11),
            ("spec.after", 14),
        ] {
            assert_eq!(index.line_of(path), Some(line), "{path}");
        }
        assert_eq!(
            index.line_of("spec.extensions.velero.plugins[2].name"),
            Some(4)
        );
        assert_eq!(index.line_of("spec.complex"), Some(1));
        assert_eq!(index.line_of("elsewhere"), Some(1));
    }

    #[test]
    fn finds_the_first_line_of_literal_scalars() {
        let text = "a: |\n  x: 1\nb: |2\n\n\n   y\nc: >\n  folded\nd: \"q\"\n";
        let index = LineIndex::build(text);
        assert_eq!(index.literal_start("a"), Some(2));
        assert_eq!(index.literal_start("b"), Some(4));
        assert_eq!(
            (index.literal_start("c"), index.literal_start("d")),
            (None, None)
        );
    }

    #[test]
    fn finds_the_first_repeated_key() {
        let index = LineIndex::build("a:\n  b: 1\n  c: 2\n  b: 3\nc: 4\na: 5\n");
        assert_eq!(index.duplicate_key(), Some((4, 3)));
        assert_eq!(LineIndex::build("a: {b: 1}\nb: 1\n").duplicate_key(), None);
    }

    #[test]
    fn stays_empty_when_unreadable() {
        assert_eq!(LineIndex::build("a: [1\n").line_of("a"), None);
    }
}
