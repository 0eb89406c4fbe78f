//! An insertion-ordered mapping with string keys whose every operation costs O(1)
//! (amortised), so that building, patching and reading values stays linear in their size
//! however many keys a hostile mapping has.

use std::collections::HashMap;
use std::fmt;

use super::value::Value;

/// A mapping with string keys, in insertion order.
///
/// Equality ignores order, as `serde_yaml_ng::Mapping`'s did: two mappings are equal when
/// they hold the same keys with equal values.
#[derive(Clone, Default)]
pub struct Mapping {
    /// Entries in insertion order. A removed entry stays as a tombstone until
    /// [`Mapping::compact`], so the positions in `index` stay valid without a shift.
    slots: Vec<Slot>,
    /// Each live key's position in `slots`.
    index: HashMap<String, usize>,
}

#[derive(Clone)]
struct Slot {
    key: String,
    value: Value,
    live: bool,
}

impl Mapping {
    /// An empty mapping.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// The value at `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let &at = self.index.get(key)?;
        Some(&self.slots[at].value)
    }

    /// The value at `key`, mutable.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        let &at = self.index.get(key)?;
        Some(&mut self.slots[at].value)
    }

    /// Sets `key` to `value`. A new key goes last; an existing key keeps its position and
    /// its old value is returned.
    pub fn insert(&mut self, key: String, value: Value) -> Option<Value> {
        match self.index.get(&key) {
            Some(&at) => Some(std::mem::replace(&mut self.slots[at].value, value)),
            None => {
                self.push(key, value);
                None
            }
        }
    }

    /// Removes `key`, keeping the order of the others, and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let at = self.index.remove(key)?;
        let slot = &mut self.slots[at];
        slot.live = false;
        slot.key = String::new();
        let value = std::mem::take(&mut slot.value);
        // Tombstones may outnumber live entries by a constant factor at most, so
        // iterating stays linear in `len`; compacting costs what the removals saved.
        if self.slots.len() > 2 * self.index.len() + 8 {
            self.compact();
        }
        Some(value)
    }

    /// The value at `key`, inserted (last) from `default` when absent; for
    /// `mapping.entry(key).or_insert(Value::Null)`.
    pub fn entry(&mut self, key: String) -> Entry<'_> {
        Entry { mapping: self, key }
    }

    /// The entries in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.slots.iter())
    }

    /// The entries in order, values mutable.
    pub fn iter_mut(&mut self) -> IterMut<'_> {
        IterMut(self.slots.iter_mut())
    }

    /// The keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.iter().map(|(key, _)| key)
    }

    /// The values in order.
    pub fn values(&self) -> impl Iterator<Item = &Value> {
        self.iter().map(|(_, value)| value)
    }

    /// The values in order, mutable.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Value> {
        self.iter_mut().map(|(_, value)| value)
    }

    /// Appends an entry whose key is known to be absent.
    fn push(&mut self, key: String, value: Value) -> usize {
        let at = self.slots.len();
        self.index.insert(key.clone(), at);
        self.slots.push(Slot {
            key,
            value,
            live: true,
        });
        at
    }

    /// Drops the tombstones and renumbers the positions.
    fn compact(&mut self) {
        self.slots.retain(|slot| slot.live);
        for (at, slot) in self.slots.iter().enumerate() {
            if let Some(position) = self.index.get_mut(&slot.key) {
                *position = at;
            }
        }
    }
}

/// A key of a [`Mapping`], from [`Mapping::entry`].
pub struct Entry<'a> {
    mapping: &'a mut Mapping,
    key: String,
}

impl<'a> Entry<'a> {
    /// The value at the key, `default` inserted first when the key is absent.
    pub fn or_insert(self, default: Value) -> &'a mut Value {
        let at = match self.mapping.index.get(&self.key) {
            Some(&at) => at,
            None => self.mapping.push(self.key, default),
        };
        &mut self.mapping.slots[at].value
    }
}

/// The entries of a [`Mapping`], in order.
pub struct Iter<'a>(std::slice::Iter<'a, Slot>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a String, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        self.0
            .by_ref()
            .find(|slot| slot.live)
            .map(|slot| (&slot.key, &slot.value))
    }
}

/// The entries of a [`Mapping`], in order, values mutable.
pub struct IterMut<'a>(std::slice::IterMut<'a, Slot>);

impl<'a> Iterator for IterMut<'a> {
    type Item = (&'a String, &'a mut Value);

    fn next(&mut self) -> Option<Self::Item> {
        self.0
            .by_ref()
            .find(|slot| slot.live)
            .map(|slot| (&slot.key, &mut slot.value))
    }
}

/// The entries of a [`Mapping`], in order, owned.
pub struct IntoIter(std::vec::IntoIter<Slot>);

impl Iterator for IntoIter {
    type Item = (String, Value);

    fn next(&mut self) -> Option<Self::Item> {
        self.0
            .by_ref()
            .find(|slot| slot.live)
            .map(|slot| (slot.key, slot.value))
    }
}

impl<'a> IntoIterator for &'a Mapping {
    type Item = (&'a String, &'a Value);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut Mapping {
    type Item = (&'a String, &'a mut Value);
    type IntoIter = IterMut<'a>;

    fn into_iter(self) -> IterMut<'a> {
        self.iter_mut()
    }
}

impl IntoIterator for Mapping {
    type Item = (String, Value);
    type IntoIter = IntoIter;

    fn into_iter(self) -> IntoIter {
        IntoIter(self.slots.into_iter())
    }
}

/// Later entries replace earlier ones with the same key, keeping the first position.
impl FromIterator<(String, Value)> for Mapping {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(entries: I) -> Self {
        let mut mapping = Mapping::new();
        for (key, value) in entries {
            mapping.insert(key, value);
        }
        mapping
    }
}

impl PartialEq for Mapping {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(key, value)| other.get(key) == Some(value))
    }
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}
