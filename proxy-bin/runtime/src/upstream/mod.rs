//! Upstreams as every worker shares them: cluster specs, the shared endpoint sets, circuit
//! breakers, load balancing, DNS discovery, active health checking ([`health`]) and outlier
//! detection ([`outlier`]). Connections and pools are not here: each worker owns its own (see the
//! `worker` module).

mod breaker;
mod cluster;
pub mod dns;
mod error;
pub mod health;
pub mod lb;
pub mod outlier;
pub mod spec;
pub mod zookeeper;

pub use breaker::{Breaker, Resource};
pub use cluster::{ClusterEvents, EndpointSet, Health, SharedCluster, SharedEndpoint};
pub use error::UpstreamError;
pub use spec::{ClusterSpec, DnsSpec, EndpointSpec, HealthCheckKind, HealthCheckSpec, LbPolicy, Limits, OutlierSpec};
