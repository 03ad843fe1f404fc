//! DNS discovery: resolve a cluster's `dns.address` before serving, then every `refresh`, and
//! install the answers (with the static endpoints) as the cluster's endpoint set.

use std::sync::{Arc, Weak};

use tokio::sync::watch;

use super::cluster::SharedCluster;
use super::spec::{DnsSpec, EndpointSpec};

/// Resolves `dns` once and installs the endpoints; on failure the last endpoints stay.
pub async fn resolve(cluster: &SharedCluster, dns: &DnsSpec) {
    match tokio::net::lookup_host(&dns.address).await {
        Ok(addrs) => {
            let mut found: Vec<EndpointSpec> =
                addrs.map(|address| EndpointSpec { address, labels: dns.labels.clone() }).collect();
            found.sort_by_key(|e| e.address);
            found.dedup();
            let mut all = cluster.spec.endpoints.clone();
            all.extend(found);
            cluster.set_endpoints(&all);
        }
        Err(error) => {
            tracing::warn!(cluster = %cluster.name(), %error, "DNS resolution failed; keeping the last endpoints")
        }
    }
}

/// Re-resolves every `refresh` while the cluster lives and until `shutdown` turns true.
pub async fn refresh_forever(cluster: Weak<SharedCluster>, dns: DnsSpec, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(dns.refresh) => {}
            _ = shutdown.changed() => return,
        }
        let Some(c) = cluster.upgrade() else { return };
        resolve(&c, &dns).await;
        drop::<Arc<SharedCluster>>(c);
    }
}
