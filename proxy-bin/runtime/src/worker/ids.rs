//! [`IdMap`]: the request ids of one upstream connection.
//!
//! Each request sent on a connection gets an id unique among that connection's requests in
//! flight: a slot number in the low bits and the slot's generation in the high bits (within the
//! codec's id limit). An answer is matched by indexing the slot and checking its generation, with
//! no hashing; a late answer to a request that timed out finds a newer generation and is dropped.

/// Most slots (requests in flight) per connection.
const MAX_SLOT_BITS: u32 = 20;

/// Ids in flight on one upstream connection, mapped to what waits for them (a key into the
/// worker's table of requests in flight).
#[derive(Debug)]
pub struct IdMap {
    slots: slab::Slab<u32>,
    generations: Vec<u32>,
    slot_bits: u32,
    generation_mask: u64,
}

impl IdMap {
    /// A map for a codec whose ids go up to `limit`.
    pub fn new(limit: u64) -> Self {
        let bits = 64 - limit.leading_zeros();
        // Keep four generation bits when the id space allows it, so that a late answer is
        // recognised; a very narrow id field gives them up for slots.
        let slot_bits = if bits >= 12 { (bits - 4).min(MAX_SLOT_BITS) } else { bits.max(1) };
        let generation_bits = (bits - slot_bits.min(bits)).min(32);
        let generation_mask = if generation_bits == 0 { 0 } else { (1u64 << generation_bits) - 1 };
        IdMap { slots: slab::Slab::new(), generations: Vec::new(), slot_bits, generation_mask }
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
        entry.insert(waiting);
        Some(id)
    }

    /// What waits for `id`, removed; `None` for an id not in flight (late, or never sent).
    pub fn remove(&mut self, id: u64) -> Option<u32> {
        let slot = usize::try_from(id & ((1u64 << self.slot_bits) - 1)).ok()?;
        let generation = u64::from(*self.generations.get(slot)?) & self.generation_mask;
        if id >> self.slot_bits != generation || !self.slots.contains(slot) {
            return None;
        }
        self.slots.try_remove(slot)
    }

    /// Removes and returns everything in flight.
    pub fn drain(&mut self) -> Vec<u32> {
        self.slots.drain().collect()
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
    fn a_late_answer_is_not_taken_for_the_slot_s_next_request() {
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
    fn a_narrow_id_field_limits_requests_in_flight() {
        let mut m = IdMap::new(255);
        let ids: Vec<_> = (0..300).map_while(|k| m.insert(k)).collect();
        assert_eq!(ids.len(), 256);
        assert!(ids.iter().all(|&id| id <= 255));
        assert_eq!(m.drain().len(), 256);
    }
}
