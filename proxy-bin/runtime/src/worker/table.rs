//! [`Table`]: the engine's requests in flight, under keys that stay valid until removed.
//!
//! A slab, but one that can drop an entry where it lies ([`discard`](Table::discard)): the answer
//! path finishes a request in place and frees its slot without moving its state (about a
//! kilobyte) out first. Slots are reused; at steady state nothing is allocated.

/// Entries of type `T` under `usize` keys.
#[derive(Debug)]
pub(crate) struct Table<T> {
    slots: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table { slots: Vec::new(), free: Vec::new() }
    }
}

impl<T> Table<T> {
    /// Stores `value`; returns its key.
    pub fn insert(&mut self, value: T) -> usize {
        match self.free.pop() {
            Some(key) => {
                if let Some(slot) = self.slots.get_mut(key) {
                    *slot = Some(value);
                }
                key
            }
            None => {
                self.slots.push(Some(value));
                self.slots.len() - 1
            }
        }
    }

    /// The entry under `key`.
    pub fn get(&self, key: usize) -> Option<&T> {
        self.slots.get(key)?.as_ref()
    }

    /// The entry under `key`, mutably.
    pub fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        self.slots.get_mut(key)?.as_mut()
    }

    /// Takes the entry under `key` out.
    pub fn remove(&mut self, key: usize) -> Option<T> {
        let value = self.slots.get_mut(key)?.take()?;
        self.free.push(key);
        Some(value)
    }

    /// The keys in use.
    pub fn keys(&self) -> Vec<usize> {
        self.slots.iter().enumerate().filter(|(_, s)| s.is_some()).map(|(k, _)| k).collect()
    }

    /// Drops the entry under `key` where it lies; returns whether there was one.
    pub fn discard(&mut self, key: usize) -> bool {
        match self.slots.get_mut(key) {
            Some(slot @ Some(_)) => {
                *slot = None;
                self.free.push(key);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_reused_after_removal() {
        let mut t = Table::default();
        let (a, b) = (t.insert("a"), t.insert("b"));
        assert_eq!(t.get(a), Some(&"a"));
        assert!(t.discard(a));
        assert!(!t.discard(a));
        assert_eq!(t.insert("c"), a);
        assert_eq!(t.remove(b), Some("b"));
        assert_eq!(t.remove(b), None);
        *t.get_mut(a).unwrap() = "d";
        assert_eq!(t.get(a), Some(&"d"));
    }
}
