//! Upstreams as every worker shares them: cluster specs, the shared endpoint sets, circuit
//! breakers, load balancing and DNS discovery. Connections and pools are not here: each worker
//! owns its own (see the `worker` module).

mod breaker;
mod cluster;
pub mod dns;
mod error;
pub mod lb;
pub mod spec;

pub use breaker::{Breaker, Resource};
pub use cluster::{EndpointSet, SharedCluster, SharedEndpoint, EJECT_FOR};
pub use error::UpstreamError;
pub use spec::{ClusterSpec, DnsSpec, EndpointSpec, LbPolicy, Limits};
