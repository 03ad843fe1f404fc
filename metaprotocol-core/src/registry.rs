//! Plugins by name: [`CodecFactory`] and [`FilterFactory`].
//!
//! The proxy and third-party plugins register codecs and filters the same way: implement the
//! factory, register it in the runtime's registry, and name it in the configuration
//! (`protocol: NAME`, `filters: [{name}]`). Options arrive as a [`ConfigValue`] (the YAML node, as
//! JSON data model) and are parsed with [`parse_config`] into the factory's own `serde` type.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::codec::Codec;
use crate::error::ConfigError;
use crate::filter::Filter;

/// Options of a codec or filter as written in the configuration, before parsing.
pub type ConfigValue = serde_json::Value;

/// A protocol, registered under [`name`](CodecFactory::name) (`protocol: NAME` in the config).
///
/// The runtime is generic over [`Codec`](CodecFactory::Codec): registering a factory is where the
/// codec's type is erased (as pingora erases a `ProxyHttp` behind a service), so the proxy's hot
/// path calls the codec directly, with no dynamic dispatch.
pub trait CodecFactory: Send + Sync + 'static {
    /// The codec this factory configures.
    type Codec: Codec;

    /// The protocol's registry name, such as `dubbo`.
    fn name(&self) -> &'static str;

    /// Parses `options` (the listener's `codec:` block; `null` when absent) into a configured
    /// codec, which the proxy clones for every connection. Unknown or invalid options are errors,
    /// and so are limits the codec cannot honour (a `max_frame_size` over
    /// [`FRAME_SIZE_LIMIT`](crate::FRAME_SIZE_LIMIT), say).
    fn configure(&self, options: &ConfigValue) -> Result<Self::Codec, ConfigError>;
}

/// A filter type, registered under [`name`](FilterFactory::name) (`filters: [{name, config}]`).
pub trait FilterFactory: Send + Sync + 'static {
    /// The filter's registry name, such as `local_ratelimit`.
    fn name(&self) -> &'static str;

    /// Parses `config` (`null` when absent) into a filter instance shared by every connection of
    /// the listener.
    fn configure(&self, config: &ConfigValue) -> Result<Arc<dyn Filter>, ConfigError>;
}

/// Parses a factory's options into `T`. `null` (options left out) gives `T::default()`; errors
/// name the offending field as `serde` reports it.
pub fn parse_config<T: DeserializeOwned + Default>(config: &ConfigValue) -> Result<T, ConfigError> {
    if config.is_null() {
        return Ok(T::default());
    }
    T::deserialize(config).map_err(|e| ConfigError::invalid("", e.to_string()))
}
