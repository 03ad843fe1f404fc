//! Outlier detection, with Envoy's semantics: an endpoint that gets `consecutive_errors` errors in
//! a row (connect failures, resets, timeouts, and answers the codec marks as server errors, such
//! as Dubbo statuses 70 and 80) is ejected from load balancing for `base_ejection_time` times the
//! number of times it was ejected, unless `max_ejection_percent` of the cluster is ejected
//! already (one endpoint may always be). Every `interval` a sweep returns the endpoints whose
//! time is up to service and lowers the multiplier of those that stayed in service.
//!
//! The request path only touches the endpoint's error counter: an error adds one (an atomic add,
//! on the error path only), a success loads it and writes zero only when it was not zero, so a
//! healthy endpoint's counter is read, never written, by every worker. The ejection decision,
//! rare, takes the cluster's ejection lock.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;

use super::cluster::{SharedCluster, SharedEndpoint};
use super::spec::OutlierSpec;

/// The longest an ejection lasts, whatever the multiplier (Envoy's `max_ejection_time`
/// default), unless `base_ejection_time` is longer.
const MAX_EJECTION_TIME: Duration = Duration::from_secs(300);

impl SharedCluster {
    /// `endpoint` failed a request (or a connection): counts towards its ejection.
    pub fn outlier_error(&self, endpoint: &SharedEndpoint) {
        let Some(spec) = self.spec.outlier_detection else { return };
        let errors = endpoint.consecutive_errors.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        if errors >= spec.consecutive_errors {
            self.try_eject(endpoint, &spec);
        }
    }

    /// `endpoint` answered a request: its run of errors is over.
    pub fn outlier_success(&self, endpoint: &SharedEndpoint) {
        if self.spec.outlier_detection.is_some() && endpoint.consecutive_errors.load(Ordering::Relaxed) != 0 {
            endpoint.consecutive_errors.store(0, Ordering::Relaxed);
        }
    }

    fn try_eject(&self, endpoint: &SharedEndpoint, spec: &OutlierSpec) {
        let Ok(_decide) = self.eject_lock.lock() else { return };
        let now = self.now_ms();
        if endpoint.ejected_until(now).is_some() {
            // Answers to requests sent before the ejection: it is out already.
            return;
        }
        endpoint.consecutive_errors.store(0, Ordering::Release);
        let set = self.endpoints();
        let total = set.endpoints.len();
        let ejected = set.endpoints.iter().filter(|e| e.ejected_until(now).is_some()).count();
        if ejected > 0 && (ejected + 1) * 100 > usize::from(spec.max_ejection_percent) * total {
            self.events.ejections_overflow.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                cluster = %self.name(),
                endpoint = %endpoint.address,
                ejected,
                max_ejection_percent = spec.max_ejection_percent,
                "outlier detection: not ejecting, too many endpoints are ejected already"
            );
            return;
        }
        let times = endpoint.ejections.fetch_add(1, Ordering::AcqRel).saturating_add(1);
        let duration =
            spec.base_ejection_time.saturating_mul(times).min(MAX_EJECTION_TIME.max(spec.base_ejection_time));
        self.eject_for(endpoint, duration);
        self.events.ejections_enforced.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            cluster = %self.name(),
            endpoint = %endpoint.address,
            errors = spec.consecutive_errors,
            ejected_for = ?duration,
            "outlier detection: endpoint ejected"
        );
    }

    /// One sweep: returns endpoints whose ejection is over to service, and lowers the
    /// multiplier of those that stayed in service since the last sweep.
    pub fn outlier_sweep(&self) {
        self.sweep_at(self.now_ms());
    }

    fn sweep_at(&self, now: u64) {
        for e in &self.endpoints().endpoints {
            let until = e.ejected_until.load(Ordering::Acquire);
            if until > now {
                continue;
            }
            if until != 0 {
                e.ejected_until.store(0, Ordering::Release);
                tracing::info!(cluster = %self.name(), endpoint = %e.address, "outlier detection: endpoint returned to service");
            } else if e.ejections.load(Ordering::Acquire) > 0 {
                let _ = e.ejections.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
            }
        }
    }

    /// Endpoints ejected now.
    pub fn ejected_now(&self) -> usize {
        let now = self.now_ms();
        self.endpoints().endpoints.iter().filter(|e| e.ejected_until(now).is_some()).count()
    }
}

/// Sweeps every `interval` while the cluster lives and until `shutdown` turns true.
pub async fn sweep_forever(cluster: Weak<SharedCluster>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        let Some(c) = cluster.upgrade() else { return };
        c.outlier_sweep();
        drop::<Arc<SharedCluster>>(c);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::upstream::spec::{ClusterSpec, EndpointSpec, LbPolicy, Limits};

    fn cluster(n: u16, max_ejection_percent: u8) -> Arc<SharedCluster> {
        SharedCluster::new(ClusterSpec {
            name: Arc::from("c"),
            lb: LbPolicy::RoundRobin,
            connect_timeout: Duration::from_secs(1),
            endpoints: (0..n)
                .map(|i| EndpointSpec { address: ([127, 0, 0, 1], 2000 + i).into(), labels: BTreeMap::new() })
                .collect(),
            dns: None,
            subsets: BTreeMap::new(),
            connections_per_endpoint: 1,
            limits: Limits { max_connections: 10, max_pending_requests: 10, max_requests: 10 },
            health_check: None,
            outlier_detection: Some(OutlierSpec {
                consecutive_errors: 3,
                interval: Duration::from_secs(10),
                base_ejection_time: Duration::from_secs(30),
                max_ejection_percent,
            }),
            healthy_panic_threshold: 50,
        })
    }

    #[test]
    fn consecutive_errors_eject_and_a_success_resets_the_run() {
        let c = cluster(2, 10);
        let set = c.endpoints();
        let e = &set.endpoints[0];
        c.outlier_error(e);
        c.outlier_error(e);
        c.outlier_success(e);
        c.outlier_error(e);
        c.outlier_error(e);
        assert!(e.ejected_until(c.now_ms()).is_none(), "the success broke the run");
        c.outlier_error(e);
        let until = e.ejected_until(c.now_ms()).expect("three in a row eject");
        assert!(until >= 29_000 && until <= c.now_ms() + 30_000, "{until}");
        assert_eq!((e.ejections(), e.consecutive_errors()), (1, 0));
        assert_eq!(c.events.ejections_enforced.load(Ordering::Relaxed), 1);
        assert!(!SharedCluster::is_available(e, c.now_ms()));
    }

    #[test]
    fn the_ejection_time_grows_with_the_number_of_ejections_and_sweeps_return_endpoints() {
        let c = cluster(1, 100);
        let set = c.endpoints();
        let e = &set.endpoints[0];
        for _ in 0..3 {
            c.outlier_error(e);
        }
        // A sweep after its time is up returns it.
        c.sweep_at(c.now_ms() + 3_600_000);
        assert_eq!(e.ejected_until.load(Ordering::Acquire), 0);
        for _ in 0..3 {
            c.outlier_error(e);
        }
        let until = e.ejected_until(c.now_ms()).unwrap();
        assert!(until >= 59_000, "twice the base time: {until}");
        // A sweep in service lowers the multiplier.
        e.ejected_until.store(0, Ordering::Release);
        assert_eq!(e.ejections(), 2);
        c.outlier_sweep();
        assert_eq!(e.ejections(), 1);
    }

    #[test]
    fn max_ejection_percent_bounds_ejections_but_one_is_always_allowed() {
        let c = cluster(4, 10);
        let set = c.endpoints();
        for e in &set.endpoints {
            for _ in 0..3 {
                c.outlier_error(e);
            }
        }
        assert_eq!(c.ejected_now(), 1, "10% of 4 is less than one, and one is allowed");
        assert_eq!(c.events.ejections_overflow.load(Ordering::Relaxed), 3);
        let c = cluster(4, 50);
        let set = c.endpoints();
        for e in &set.endpoints {
            for _ in 0..3 {
                c.outlier_error(e);
            }
        }
        assert_eq!(c.ejected_now(), 2);
    }

    #[test]
    fn without_outlier_detection_nothing_is_ejected() {
        let c = SharedCluster::new(ClusterSpec { outlier_detection: None, ..cluster(1, 10).spec.clone() });
        let set = c.endpoints();
        for _ in 0..100 {
            c.connect_failed(&set.endpoints[0]);
        }
        assert!(SharedCluster::is_available(&set.endpoints[0], c.now_ms()));
    }
}
