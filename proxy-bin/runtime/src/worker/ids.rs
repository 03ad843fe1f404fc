//! [`IdMap`]: the request ids of one upstream connection.
//!
//! Each request sent on a connection gets an id unique among that connection's requests in
//! flight: a slot number in the low bits and the slot's generation in the high bits (within the
//! codec's id limit). An answer is matched by indexing the slot and checking its generation, with
//! no hashing.
//!
//! A request that timed out may still be answered: its slot is not reused until that answer
//! comes (or the connection closes). It stays *abandoned*, so a late answer can never be taken
//! for the answer to a later request in the same slot, whatever the width of the id field. When
//! too many slots are abandoned (the upstream stopped answering some requests), the connection
//! should be retired: [`abandoned`](IdMap::abandoned) tells.

/// Most slots (requests in flight) per connection.
const MAX_SLOT_BITS: u32 = 16;

/// What a slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// The key of the request waiting for this id.
    Waiting(u32),
    /// The request gave up (timed out); its answer, if it comes, is dropped.
    Abandoned,
}

/// Ids in flight on one upstream connection, mapped to what waits for them (a key into the
/// worker's table of requests in flight).
#[derive(Debug)]
pub struct IdMap {
    slots: slab::Slab<Slot>,
    generations: Vec<u32>,
    slot_bits: u32,
    generation_mask: u64,
    abandoned: usize,
}

impl IdMap {
    /// A map for a codec whose ids go up to `limit`.
    pub fn new(limit: u64) -> Self {
        let bits = 64 - limit.leading_zeros();
        // Keep generation bits when the id space allows it (a reused slot gets a new id, which
        // helps reading captures); a very narrow id field gives them up for slots.
        let slot_bits = if bits >= 12 { (bits - 4).min(MAX_SLOT_BITS) } else { bits.max(1) };
        let generation_bits = (bits - slot_bits.min(bits)).min(32);
        let generation_mask = if generation_bits == 0 { 0 } else { (1u64 << generation_bits) - 1 };
        IdMap { slots: slab::Slab::new(), generations: Vec::new(), slot_bits, generation_mask, abandoned: 0 }
    }

    /// A fresh id for `waiting`, or `None` when every slot is taken.
    pub fn insert(&mut self, waiting: u32) -> Option<u64> {
        let entry = self.slots.vacant_entry();
        let slot = entry.key();
        if (slot as u64) >> self.slot_bits != 0 {
            return None;
        }
        if self.generations.len() <= slot {
            self.generations.resize(slot + 1, 0);
        }
        let generation = self.generations.get_mut(slot)?;
        *generation = generation.wrapping_add(1);
        let id = ((u64::from(*generation) & self.generation_mask) << self.slot_bits) | slot as u64;
        entry.insert(Slot::Waiting(waiting));
        Some(id)
    }

    /// The slot of `id`, if `id` is the one it holds now.
    fn slot_of(&self, id: u64) -> Option<usize> {
        let slot = usize::try_from(id & ((1u64 << self.slot_bits) - 1)).ok()?;
        let generation = u64::from(*self.generations.get(slot)?) & self.generation_mask;
        (id >> self.slot_bits == generation && self.slots.contains(slot)).then_some(slot)
    }

    /// An answer for `id` arrived: what waits for it, removed; `None` for an id not in flight
    /// (never sent) or abandoned (its slot is free again now).
    pub fn remove(&mut self, id: u64) -> Option<u32> {
        let slot = self.slot_of(id)?;
        match self.slots.try_remove(slot)? {
            Slot::Waiting(key) => Some(key),
            Slot::Abandoned => {
                self.abandoned -= 1;
                None
            }
        }
    }

    /// The request waiting for `id` gave up; the slot stays taken until the answer comes.
    pub fn abandon(&mut self, id: u64) {
        if let Some(slot) = self.slot_of(id).and_then(|s| self.slots.get_mut(s)) {
            if *slot != Slot::Abandoned {
                *slot = Slot::Abandoned;
                self.abandoned += 1;
            }
        }
    }

    /// Slots abandoned and not yet answered.
    pub fn abandoned(&self) -> usize {
        self.abandoned
    }

    /// Requests still waiting (abandoned slots not counted).
    pub fn waiting(&self) -> usize {
        self.slots.len() - self.abandoned
    }

    /// Removes everything; returns the keys of the requests that were waiting.
    pub fn drain(&mut self) -> Vec<u32> {
        self.abandoned = 0;
        self.slots
            .drain()
            .filter_map(|s| match s {
                Slot::Waiting(key) => Some(key),
                Slot::Abandoned => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_stay_within_the_limit() {
        let mut m = IdMap::new(u64::from(u32::MAX));
        let ids: Vec<u64> = (0..1000).map(|k| m.insert(k).unwrap()).collect();
        assert!(ids.iter().all(|&id| id <= u64::from(u32::MAX)));
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "ids are unique while in flight");
        for (k, id) in ids.iter().enumerate() {
            assert_eq!(m.remove(*id), Some(k as u32));
        }
        assert!(m.drain().is_empty());
    }

    #[test]
    fn an_answered_slot_is_reused_under_a_new_id() {
        let mut m = IdMap::new(u64::MAX);
        let old = m.insert(1).unwrap();
        assert_eq!(m.remove(old), Some(1));
        let new = m.insert(2).unwrap();
        assert_ne!(old, new, "the slot is reused under a new generation");
        assert_eq!(m.remove(old), None);
        assert_eq!(m.remove(new), Some(2));
        assert_eq!(m.remove(new), None, "an answer counts once");
    }

    #[test]
    fn a_late_answer_never_reaches_a_later_request_whatever_the_id_width() {
        // Eight-bit ids: no generation bits at all, so only keeping the slot protects.
        let mut m = IdMap::new(255);
        let timed_out = m.insert(1).unwrap();
        m.abandon(timed_out);
        assert_eq!((m.abandoned(), m.waiting()), (1, 0));
        // Thousands of later requests never get the abandoned slot's id.
        for k in 0..5000 {
            let id = m.insert(k + 2).unwrap();
            assert_ne!(id, timed_out);
            assert_eq!(m.remove(id), Some(k + 2));
        }
        // The late answer comes: dropped, and the slot is free again.
        assert_eq!(m.remove(timed_out), None);
        assert_eq!(m.abandoned(), 0);
    }

    #[test]
    fn a_narrow_id_field_limits_requests_in_flight() {
        let mut m = IdMap::new(255);
        let ids: Vec<_> = (0..300).map_while(|k| m.insert(k)).collect();
        assert_eq!(ids.len(), 256);
        assert!(ids.iter().all(|&id| id <= 255));
        m.abandon(ids[0]);
        assert_eq!(m.drain().len(), 255, "abandoned slots are not handed back as waiting requests");
    }
}
