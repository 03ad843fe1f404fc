//! Configuration: the YAML shape ([`model`]) and loading with validation ([`load_file`]).

mod load;
pub mod model;
mod zookeeper;

pub use load::{load_file, load_str, ConfigVersion, LoadError, ProxyConfig, DEFAULT_ADMIN_ADDRESS};
