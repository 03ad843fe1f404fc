//! The routing key/value map carried by [`Metadata`](crate::Metadata).
//!
//! Keys and values are [`Bytes`], normally slices of the decoded frame, so building the map copies
//! nothing. Lookup ignores ASCII case (as Aeraki matches Dubbo attachment keys); the key's original
//! spelling is kept so that a re-encoded header block forwards it unchanged.
//!
//! The map is a vector searched linearly: RPC messages carry a handful of keys, for which a scan of
//! contiguous entries beats hashing, and it keeps insertion order, which encoders preserve.

use bytes::Bytes;

/// One key/value pair as it appeared on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyValue {
    /// The key, in its original case.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
}

/// An ordered key/value map with ASCII-case-insensitive lookup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValues {
    entries: Vec<KeyValue>,
}

impl KeyValues {
    /// An empty map (no allocation until the first insert).
    pub const fn new() -> Self {
        KeyValues { entries: Vec::new() }
    }

    /// An empty map with room for `n` entries, so that a decoder allocates once.
    pub fn with_capacity(n: usize) -> Self {
        KeyValues { entries: Vec::with_capacity(n) }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends an entry without looking for an existing one: what a decoder does, keeping the
    /// wire's order and any repeated key.
    pub fn push(&mut self, key: Bytes, value: Bytes) {
        self.entries.push(KeyValue { key, value });
    }

    /// The value of the first entry whose key equals `key` ignoring ASCII case.
    pub fn get(&self, key: &str) -> Option<&Bytes> {
        self.get_bytes(key.as_bytes())
    }

    /// [`get`](Self::get) with a byte-string key.
    pub fn get_bytes(&self, key: &[u8]) -> Option<&Bytes> {
        self.position(key).and_then(|i| self.entries.get(i)).map(|e| &e.value)
    }

    /// The value as UTF-8 text, if present and valid UTF-8.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// True when some entry has this key (ignoring ASCII case).
    pub fn contains(&self, key: &str) -> bool {
        self.position(key.as_bytes()).is_some()
    }

    /// Sets `key` to `value`: the first entry with that key (ignoring case) gets the new value and
    /// keeps its position and spelling, later duplicates are removed; otherwise the entry is appended.
    pub fn set(&mut self, key: Bytes, value: Bytes) {
        match self.position(&key) {
            Some(i) => {
                if let Some(e) = self.entries.get_mut(i) {
                    e.value = value;
                }
                let mut seen = 0usize;
                self.entries.retain(|e| {
                    if e.key.eq_ignore_ascii_case(&key) {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.push(key, value),
        }
    }

    /// Removes every entry with this key (ignoring case); returns how many were removed.
    pub fn remove(&mut self, key: &[u8]) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| !e.key.eq_ignore_ascii_case(key));
        before - self.entries.len()
    }

    /// Entries in order.
    pub fn iter(&self) -> std::slice::Iter<'_, KeyValue> {
        self.entries.iter()
    }

    fn position(&self, key: &[u8]) -> Option<usize> {
        self.entries.iter().position(|e| e.key.eq_ignore_ascii_case(key))
    }
}

impl<'a> IntoIterator for &'a KeyValues {
    type Item = &'a KeyValue;
    type IntoIter = std::slice::Iter<'a, KeyValue>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

impl FromIterator<(Bytes, Bytes)> for KeyValues {
    fn from_iter<I: IntoIterator<Item = (Bytes, Bytes)>>(iter: I) -> Self {
        KeyValues { entries: iter.into_iter().map(|(key, value)| KeyValue { key, value }).collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&'static str, &'static str)]) -> KeyValues {
        pairs.iter().map(|(k, v)| (Bytes::from_static(k.as_bytes()), Bytes::from_static(v.as_bytes()))).collect()
    }

    #[test]
    fn lookup_ignores_case_and_keeps_spelling() {
        let m = kv(&[("BatchJob", "true"), ("method", "sayHello")]);
        assert_eq!(m.get("batchjob").map(|v| &v[..]), Some(&b"true"[..]));
        assert_eq!(m.get_str("METHOD"), Some("sayHello"));
        assert_eq!(&m.iter().next().unwrap().key[..], b"BatchJob");
        assert!(m.get("missing").is_none());
    }

    #[test]
    fn set_replaces_first_in_place_and_drops_duplicates() {
        let mut m = kv(&[("a", "1"), ("B", "2"), ("c", "3"), ("b", "4")]);
        m.set(Bytes::from_static(b"b"), Bytes::from_static(b"9"));
        let keys: Vec<_> = m.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
        assert_eq!(
            keys,
            vec![
                (Bytes::from_static(b"a"), Bytes::from_static(b"1")),
                (Bytes::from_static(b"B"), Bytes::from_static(b"9")),
                (Bytes::from_static(b"c"), Bytes::from_static(b"3")),
            ]
        );
        m.set(Bytes::from_static(b"d"), Bytes::from_static(b"4"));
        assert_eq!(m.len(), 4);
        assert_eq!(m.get_str("d"), Some("4"));
    }

    #[test]
    fn remove_counts_all_case_variants() {
        let mut m = kv(&[("x", "1"), ("X", "2"), ("y", "3")]);
        assert_eq!(m.remove(b"x"), 2);
        assert_eq!(m.len(), 1);
        assert_eq!(m.remove(b"x"), 0);
    }
}
