//! The routing key/value map carried by [`Metadata`](crate::Metadata).
//!
//! A decoder records keys and values as [`Text`] handles: byte ranges of the decoded frame, static
//! strings, or (rarely) bytes the protocol forced it to join. The map holds the frame once, so
//! decoding a message with twenty keys costs no copy, no reference count per key, and one
//! allocation at most (the entry vector, and none for up to [`INLINE`] entries).
//!
//! Lookup ignores ASCII case (as Aeraki matches Dubbo attachment keys); the key's original
//! spelling is kept so that a re-encoded header block forwards it unchanged. The map is a vector
//! searched linearly: RPC messages carry a handful of keys, for which a scan of contiguous entries
//! beats hashing, and it keeps insertion order, which encoders preserve.

use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use smallvec::SmallVec;

use crate::error::CodecError;

/// Entries stored inside the map itself before it allocates: enough for a typical response.
pub const INLINE: usize = 4;

/// A byte string inside a [`KeyValues`]: a range of its frame, a static string, or owned bytes.
///
/// A handle is only meaningful with the map that made it; resolve it with
/// [`KeyValues::resolve`]. It is `Copy`, so decoders pass it around freely.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Text(Repr);

/// Two variants so that the reference's non-null niche tells them apart: a handle is 16 bytes.
/// Owned bytes are a span whose start is [`OWNED`] and whose end is their index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Repr {
    Static(&'static [u8]),
    Span { start: u32, end: u32 },
}

/// The start of a span that stands for owned bytes (a frame span never starts there: frames are
/// shorter than 4 GiB, and empty spans are stored as [`Text::EMPTY`]).
const OWNED: u32 = u32::MAX;

impl Text {
    /// A static string, such as a key name a codec defines (`"interface"`).
    pub const fn from_static(s: &'static str) -> Text {
        Text(Repr::Static(s.as_bytes()))
    }

    /// A static byte string.
    pub const fn from_static_bytes(s: &'static [u8]) -> Text {
        Text(Repr::Static(s))
    }

    /// The empty string.
    pub const EMPTY: Text = Text(Repr::Static(b""));
}

/// One key/value pair as it appeared on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Entry {
    key: Text,
    value: Text,
}

/// An ordered key/value map with ASCII-case-insensitive lookup over one frame's bytes.
#[derive(Clone, Default)]
pub struct KeyValues {
    frame: Bytes,
    entries: SmallVec<[Entry; INLINE]>,
    owned: Vec<Bytes>,
}

impl KeyValues {
    /// An empty map over no frame (no allocation until the first insert of more than
    /// [`INLINE`] entries).
    pub const fn new() -> Self {
        KeyValues { frame: Bytes::new(), entries: SmallVec::new_const(), owned: Vec::new() }
    }

    /// An empty map whose [`Text::span`]s refer to `frame`, with room for `capacity` entries.
    pub fn over(frame: Bytes, capacity: usize) -> Self {
        KeyValues { frame, entries: SmallVec::with_capacity(capacity), owned: Vec::new() }
    }

    /// The frame the map's spans refer to.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    /// A handle to `range` of the frame. Fails when the range lies outside the frame (a decoder
    /// bug or a lying length field), so callers can pass peer-derived ranges safely.
    pub fn span(&self, range: Range<usize>) -> Result<Text, CodecError> {
        if range.start > range.end || range.end > self.frame.len() {
            return Err(CodecError::malformed(range.start, "value outside the frame"));
        }
        if range.is_empty() {
            return Ok(Text::EMPTY);
        }
        match (u32::try_from(range.start), u32::try_from(range.end)) {
            (Ok(start), Ok(end)) if start != OWNED => Ok(Text(Repr::Span { start, end })),
            _ => Err(CodecError::malformed(range.start, "offset beyond 4 GiB")),
        }
    }

    /// Stores `bytes` in the map (for values the protocol forced a decoder to join, or values set
    /// by filters) and returns its handle. `Bytes::from_static` costs nothing here.
    pub fn own(&mut self, bytes: Bytes) -> Text {
        let index = u32::try_from(self.owned.len()).unwrap_or(u32::MAX);
        self.owned.push(bytes);
        Text(Repr::Span { start: OWNED, end: index })
    }

    /// The bytes of `text` (empty when the handle belongs to another map).
    pub fn resolve(&self, text: Text) -> &[u8] {
        resolve_in(&self.frame, &self.owned, text)
    }

    /// The bytes of `text` as shared [`Bytes`] (a slice of the frame, not a copy).
    pub fn shared(&self, text: Text) -> Bytes {
        match text.0 {
            Repr::Static(s) => Bytes::from_static(s),
            Repr::Span { start: OWNED, end: index } => self.owned.get(index as usize).cloned().unwrap_or_default(),
            Repr::Span { start, end } if end as usize <= self.frame.len() && start <= end => {
                self.frame.slice(start as usize..end as usize)
            }
            Repr::Span { .. } => Bytes::new(),
        }
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
    pub fn push(&mut self, key: Text, value: Text) {
        self.entries.push(Entry { key, value });
    }

    /// Appends an entry from owned bytes (tests, tools, filters).
    pub fn push_bytes(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) {
        let (key, value) = (self.own(key.into()), self.own(value.into()));
        self.push(key, value);
    }

    /// The value of the first entry whose key equals `key` ignoring ASCII case.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.get_bytes(key.as_bytes())
    }

    /// [`get`](Self::get) with a byte-string key.
    pub fn get_bytes(&self, key: &[u8]) -> Option<&[u8]> {
        self.position(key).and_then(|i| self.entries.get(i)).map(|e| self.resolve(e.value))
    }

    /// The value as UTF-8 text, if present and valid UTF-8.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The value as shared [`Bytes`] (a slice of the frame, not a copy).
    pub fn get_shared(&self, key: &str) -> Option<Bytes> {
        self.position(key.as_bytes()).and_then(|i| self.entries.get(i)).map(|e| self.shared(e.value))
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
                let value = self.own(value);
                if let Some(e) = self.entries.get_mut(i) {
                    e.value = value;
                }
                let mut seen = 0usize;
                let (frame, owned) = (&self.frame, &self.owned);
                self.entries.retain(|e| {
                    if resolve_in(frame, owned, e.key).eq_ignore_ascii_case(&key) {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.push_bytes(key, value),
        }
    }

    /// Removes every entry with this key (ignoring case); returns how many were removed.
    pub fn remove(&mut self, key: &[u8]) -> usize {
        let before = self.entries.len();
        let (frame, owned) = (&self.frame, &self.owned);
        self.entries.retain(|e| !resolve_in(frame, owned, e.key).eq_ignore_ascii_case(key));
        before - self.entries.len()
    }

    /// Entries in order, as `(key, value)` byte strings.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.entries.iter().map(|e| (self.resolve(e.key), self.resolve(e.value)))
    }

    /// Entries in order, as handles (for encoders that splice spans of the frame).
    pub fn handles(&self) -> impl Iterator<Item = (Text, Text)> + '_ {
        self.entries.iter().map(|e| (e.key, e.value))
    }

    fn position(&self, key: &[u8]) -> Option<usize> {
        self.entries.iter().position(|e| self.resolve(e.key).eq_ignore_ascii_case(key))
    }
}

fn resolve_in<'a>(frame: &'a Bytes, owned: &'a [Bytes], text: Text) -> &'a [u8] {
    match text.0 {
        Repr::Static(s) => s,
        Repr::Span { start: OWNED, end: index } => owned.get(index as usize).map_or(&[], |b| &b[..]),
        Repr::Span { start, end } => frame.get(start as usize..end as usize).unwrap_or(&[]),
    }
}

/// Maps compare by their entries' bytes, wherever those bytes live.
impl PartialEq for KeyValues {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for KeyValues {}

impl fmt::Debug for KeyValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (String::from_utf8_lossy(k), String::from_utf8_lossy(v))))
            .finish()
    }
}

impl FromIterator<(Bytes, Bytes)> for KeyValues {
    fn from_iter<I: IntoIterator<Item = (Bytes, Bytes)>>(iter: I) -> Self {
        let mut kvs = KeyValues::new();
        for (k, v) in iter {
            kvs.push_bytes(k, v);
        }
        kvs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&'static str, &'static str)]) -> KeyValues {
        pairs.iter().map(|(k, v)| (Bytes::from_static(k.as_bytes()), Bytes::from_static(v.as_bytes()))).collect()
    }

    fn pairs(m: &KeyValues) -> Vec<(String, String)> {
        m.iter()
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }

    #[test]
    fn lookup_ignores_case_and_keeps_spelling() {
        let m = kv(&[("BatchJob", "true"), ("method", "sayHello")]);
        assert_eq!(m.get("batchjob"), Some(&b"true"[..]));
        assert_eq!(m.get_str("METHOD"), Some("sayHello"));
        assert_eq!(m.iter().next().unwrap().0, b"BatchJob");
        assert!(m.get("missing").is_none());
    }

    #[test]
    fn spans_resolve_into_the_frame_without_copies() {
        let frame = Bytes::from_static(b"xxkeyvaluexx");
        let mut m = KeyValues::over(frame.clone(), 2);
        let (k, v) = (m.span(2..5).unwrap(), m.span(5..10).unwrap());
        m.push(k, v);
        m.push(Text::from_static("static"), v);
        assert_eq!(m.get("KEY"), Some(&b"value"[..]));
        assert_eq!(m.get("static"), Some(&b"value"[..]));
        assert_eq!(m.get_shared("key").unwrap().as_ptr(), frame[5..].as_ptr());
        assert!(m.span(5..13).is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = m.span(6..5);
        assert!(reversed.is_err());
    }

    #[test]
    fn set_replaces_first_in_place_and_drops_duplicates() {
        let mut m = kv(&[("a", "1"), ("B", "2"), ("c", "3"), ("b", "4")]);
        m.set(Bytes::from_static(b"b"), Bytes::from_static(b"9"));
        assert_eq!(pairs(&m), vec![("a".into(), "1".into()), ("B".into(), "9".into()), ("c".into(), "3".into())]);
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

    #[test]
    fn a_handle_is_two_words() {
        assert_eq!(std::mem::size_of::<Text>(), 16);
    }

    #[test]
    fn equality_compares_bytes_not_storage() {
        let frame = Bytes::from_static(b"ab");
        let mut spans = KeyValues::over(frame, 1);
        let (k, v) = (spans.span(0..1).unwrap(), spans.span(1..2).unwrap());
        spans.push(k, v);
        assert_eq!(spans, kv(&[("a", "b")]));
        assert_ne!(spans, kv(&[("a", "c")]));
    }
}
