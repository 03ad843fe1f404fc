//! Circuit breakers: per-cluster counters of connections, pending and in-flight requests, shared
//! by every worker (as Envoy's resource manager is). Acquiring is a compare-and-swap under the
//! limit; workers hold what they acquire in guards that release on drop, so no path that ends a
//! request or a connection can leak a unit.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::spec::Limits;

/// Which counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// Open upstream connections (`max_connections`).
    Connections,
    /// Requests waiting for a connection to open (`max_pending_requests`).
    Pending,
    /// Requests in flight (`max_requests`).
    Requests,
}

impl Resource {
    /// The configuration field that limits it, for replies and logs.
    pub fn limit_name(self) -> &'static str {
        match self {
            Resource::Connections => "max_connections",
            Resource::Pending => "max_pending_requests",
            Resource::Requests => "max_requests",
        }
    }
}

/// Counters and limits of one cluster.
#[derive(Debug)]
pub struct Breaker {
    limits: Limits,
    connections: AtomicUsize,
    pending: AtomicUsize,
    requests: AtomicUsize,
}

impl Breaker {
    /// A breaker with `limits`, all counters at zero.
    pub fn new(limits: Limits) -> Self {
        Breaker {
            limits,
            connections: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
        }
    }

    fn counter(&self, which: Resource) -> (&AtomicUsize, usize) {
        match which {
            Resource::Connections => (&self.connections, self.limits.max_connections),
            Resource::Pending => (&self.pending, self.limits.max_pending_requests),
            Resource::Requests => (&self.requests, self.limits.max_requests),
        }
    }

    /// Takes one unit of `which` if under its limit; the caller must [`release`](Self::release) it.
    pub fn try_acquire(&self, which: Resource) -> bool {
        let (counter, limit) = self.counter(which);
        counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1)).is_ok()
    }

    /// Gives back one unit of `which`.
    pub fn release(&self, which: Resource) {
        let (counter, _) = self.counter(which);
        let _ = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Units of `which` in use.
    pub fn in_use(&self, which: Resource) -> usize {
        self.counter(which).0.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_releases_under_limits() {
        let b = Breaker::new(Limits { max_connections: 1, max_pending_requests: 0, max_requests: 2 });
        assert!(b.try_acquire(Resource::Requests));
        assert!(b.try_acquire(Resource::Requests));
        assert!(!b.try_acquire(Resource::Requests));
        b.release(Resource::Requests);
        assert!(b.try_acquire(Resource::Requests));
        assert!(!b.try_acquire(Resource::Pending));
        assert!(b.try_acquire(Resource::Connections));
        assert_eq!(b.in_use(Resource::Connections), 1);
        b.release(Resource::Connections);
        b.release(Resource::Connections);
        assert_eq!(b.in_use(Resource::Connections), 0, "a release never goes below zero");
    }
}
