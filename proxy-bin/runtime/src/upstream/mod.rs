//! Upstreams: clusters, endpoints, load balancing, circuit breakers, and multiplexed connection
//! pools.

mod breaker;
mod cluster;
mod connection;
mod error;
mod pool;

pub use breaker::{Breaker, Guard};
pub use cluster::{Cluster, Endpoint, EndpointSet, PickError};
pub use error::UpstreamError;
pub use pool::{Pool, Reply};
