//! [`Attributes`]: a typed map in which one filter leaves values for later filters.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;

type AnyMap = HashMap<TypeId, Box<dyn Any + Send + Sync>>;

/// Values keyed by their type, one per type (like `http::Extensions`). Allocates only when the
/// first value is inserted, so requests whose filters use none cost nothing.
#[derive(Default)]
pub struct Attributes {
    map: Option<Box<AnyMap>>,
}

impl Attributes {
    /// An empty map.
    pub const fn new() -> Self {
        Attributes { map: None }
    }

    /// Stores `value`, returning the previous value of the same type.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        self.map
            .get_or_insert_with(Box::default)
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|old| old.downcast::<T>().ok().map(|b| *b))
    }

    /// The stored value of type `T`.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.map.as_ref()?.get(&TypeId::of::<T>())?.downcast_ref::<T>()
    }

    /// The stored value of type `T`, mutably.
    pub fn get_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        self.map.as_mut()?.get_mut(&TypeId::of::<T>())?.downcast_mut::<T>()
    }

    /// Removes and returns the value of type `T`.
    pub fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        self.map.as_mut()?.remove(&TypeId::of::<T>()).and_then(|b| b.downcast::<T>().ok().map(|b| *b))
    }

    /// Number of stored values.
    pub fn len(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.len())
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attributes").field("len", &self.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Tenant(&'static str);

    #[test]
    fn typed_insert_get_remove() {
        let mut a = Attributes::new();
        assert!(a.get::<Tenant>().is_none());
        assert_eq!(a.insert(Tenant("a")), None);
        assert_eq!(a.insert(Tenant("b")), Some(Tenant("a")));
        a.insert(5u32);
        *a.get_mut::<u32>().unwrap() += 1;
        assert_eq!(a.get::<u32>(), Some(&6));
        assert_eq!(a.len(), 2);
        assert_eq!(a.remove::<Tenant>(), Some(Tenant("b")));
        assert_eq!(a.len(), 1);
    }
}
