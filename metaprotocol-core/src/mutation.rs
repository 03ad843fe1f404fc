//! Changes to a message's key/values that a filter or a route asks the codec to make on encode.

use bytes::Bytes;

use crate::kv::KeyValues;

/// One change: set a key to a value, or remove a key. Keys match ignoring ASCII case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MutationOp {
    /// Set `key` to `value` (replacing the value of an existing key, else appending the key).
    Set {
        /// The key, spelled as it should be written when appended.
        key: Bytes,
        /// The new value.
        value: Bytes,
    },
    /// Remove every entry with this key.
    Remove {
        /// The key.
        key: Bytes,
    },
}

impl MutationOp {
    /// The key this operation touches.
    pub fn key(&self) -> &Bytes {
        match self {
            MutationOp::Set { key, .. } | MutationOp::Remove { key } => key,
        }
    }
}

/// An ordered list of [`MutationOp`]s, applied first to last.
///
/// An empty mutation costs nothing: codecs forward the original frame untouched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mutation {
    ops: Vec<MutationOp>,
    /// How many of the operations, from the first, were added by [`append`](Mutation::append).
    appended: usize,
}

impl Mutation {
    /// An empty mutation (no allocation).
    pub const fn new() -> Self {
        Mutation { ops: Vec::new(), appended: 0 }
    }

    /// Appends a set operation.
    pub fn set(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> &mut Self {
        self.ops.push(MutationOp::Set { key: key.into(), value: value.into() });
        self
    }

    /// Appends a set operation for a key the caller knows the message does not carry (in any
    /// case): a codec may then add the entry after the existing ones without reading them (see
    /// [`is_append_only`](Self::is_append_only)). Appending the same key twice writes it twice.
    pub fn append(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> &mut Self {
        if self.appended == self.ops.len() {
            self.appended += 1;
        }
        self.set(key, value)
    }

    /// True when the mutation only adds keys the message does not carry (every operation came
    /// from [`append`](Self::append)), and is not empty: a codec can write the existing key/value
    /// block as it is and add the new entries after it.
    pub fn is_append_only(&self) -> bool {
        !self.ops.is_empty() && self.appended == self.ops.len()
    }

    /// Appends a remove operation.
    pub fn remove(&mut self, key: impl Into<Bytes>) -> &mut Self {
        self.ops.push(MutationOp::Remove { key: key.into() });
        self
    }

    /// Appends every operation of `other`, after this one's.
    pub fn extend_from(&mut self, other: &Mutation) {
        if self.appended == self.ops.len() && other.appended == other.ops.len() {
            self.appended += other.appended;
        }
        self.ops.extend(other.ops.iter().cloned());
    }

    /// True when there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// The operations in order.
    pub fn ops(&self) -> &[MutationOp] {
        &self.ops
    }

    /// True when some operation touches `key` (ignoring case).
    pub fn touches(&self, key: &[u8]) -> bool {
        self.ops.iter().any(|op| op.key().eq_ignore_ascii_case(key))
    }

    /// Applies the operations to `kvs`, in order. Codecs use this to compute the key/value block
    /// they re-encode.
    pub fn apply_to(&self, kvs: &mut KeyValues) {
        for op in &self.ops {
            match op {
                MutationOp::Set { key, value } => kvs.set(key.clone(), value.clone()),
                MutationOp::Remove { key } => {
                    kvs.remove(key);
                }
            }
        }
    }
}

impl FromIterator<MutationOp> for Mutation {
    fn from_iter<I: IntoIterator<Item = MutationOp>>(iter: I) -> Self {
        Mutation { ops: iter.into_iter().collect(), appended: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_only_holds_while_every_operation_is_an_append() {
        let mut m = Mutation::new();
        assert!(!m.is_append_only(), "an empty mutation changes nothing");
        m.append("traceparent", "00-1-2-01");
        assert!(m.is_append_only());
        let mut other = Mutation::new();
        other.append("tracestate", "a=b");
        m.extend_from(&other);
        assert!(m.is_append_only());
        m.set("x", "1");
        assert!(!m.is_append_only());
        m.append("y", "2");
        assert!(!m.is_append_only(), "a set before it may touch an existing key");
        let mut s = Mutation::new();
        s.remove("k");
        s.extend_from(&other);
        assert!(!s.is_append_only());
        let mut kvs = KeyValues::new();
        other.apply_to(&mut kvs);
        assert_eq!(kvs.get("tracestate"), Some(&b"a=b"[..]), "an append applies as a set");
    }

    #[test]
    fn applies_in_order() {
        let mut kvs = KeyValues::new();
        kvs.push_bytes(Bytes::from_static(b"Keep"), Bytes::from_static(b"1"));
        kvs.push_bytes(Bytes::from_static(b"drop"), Bytes::from_static(b"2"));
        let mut m = Mutation::new();
        m.set("new", "a").remove("DROP").set("keep", "3").set("new", "b");
        assert!(m.touches(b"NEW"));
        m.apply_to(&mut kvs);
        let got: Vec<_> = kvs.iter().map(|(k, v)| (Bytes::copy_from_slice(k), Bytes::copy_from_slice(v))).collect();
        assert_eq!(
            got,
            vec![
                (Bytes::from_static(b"Keep"), Bytes::from_static(b"3")),
                (Bytes::from_static(b"new"), Bytes::from_static(b"b")),
            ]
        );
    }
}
