//! Circuit breakers: per-cluster counters of connections, pending and in-flight requests, each
//! held by an RAII guard so that every path that ends a request or a connection releases it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::Limits;

/// Counters and limits of one cluster.
#[derive(Debug)]
pub struct Breaker {
    limits: Limits,
    connections: AtomicUsize,
    pending: AtomicUsize,
    requests: AtomicUsize,
}

/// Holds one unit of a counter until dropped.
#[derive(Debug)]
pub struct Guard {
    breaker: Arc<Breaker>,
    which: Which,
}

#[derive(Clone, Copy, Debug)]
enum Which {
    Connections,
    Pending,
    Requests,
}

impl Breaker {
    /// A breaker with `limits`, all counters at zero.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Breaker {
            limits,
            connections: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
        })
    }

    fn counter(&self, which: Which) -> (&AtomicUsize, usize) {
        match which {
            Which::Connections => (&self.connections, self.limits.max_connections),
            Which::Pending => (&self.pending, self.limits.max_pending),
            Which::Requests => (&self.requests, self.limits.max_requests),
        }
    }

    fn acquire(self: &Arc<Self>, which: Which) -> Option<Guard> {
        let (counter, limit) = self.counter(which);
        counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1)).ok()?;
        Some(Guard { breaker: self.clone(), which })
    }

    /// One more request in flight, if under `max_requests`.
    pub fn request(self: &Arc<Self>) -> Option<Guard> {
        self.acquire(Which::Requests)
    }

    /// One more request waiting for a connection, if under `max_pending`.
    pub fn pending(self: &Arc<Self>) -> Option<Guard> {
        self.acquire(Which::Pending)
    }

    /// One more upstream connection, if under `max_connections`.
    pub fn connection(self: &Arc<Self>) -> Option<Guard> {
        self.acquire(Which::Connections)
    }

    /// Open upstream connections.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    /// Requests in flight.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Acquire)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.breaker.counter(self.which).0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_and_release() {
        let b = Breaker::new(Limits { max_connections: 1, max_pending: 0, max_requests: 2 });
        let r1 = b.request().unwrap();
        let _r2 = b.request().unwrap();
        assert!(b.request().is_none());
        drop(r1);
        assert!(b.request().is_some());
        assert!(b.pending().is_none());
        let c = b.connection().unwrap();
        assert_eq!(b.connections(), 1);
        drop(c);
        assert_eq!(b.connections(), 0);
    }
}
