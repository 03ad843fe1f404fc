//! Registration by name: [`CodecFactory`], [`FilterFactory`] and the [`Registry`] that holds them.
//!
//! The proxy and third-party plugins register codecs and filters the same way: implement the
//! factory, register it, and name it in the configuration (`protocol: NAME`, `filters: [{name}]`).
//! Options arrive as a [`ConfigValue`] (the YAML node, as JSON data model) and are parsed with
//! [`parse_config`] into the factory's own `serde` type.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::codec::Codec;
use crate::error::ConfigError;
use crate::filter::Filter;

/// Options of a codec or filter as written in the configuration, before parsing.
pub type ConfigValue = serde_json::Value;

/// Makes a fresh codec for each connection, from options parsed once.
pub trait NewCodec: Send + Sync {
    /// A new codec for one connection.
    fn new_codec(&self) -> Box<dyn Codec>;
}

impl<F> NewCodec for F
where
    F: Fn() -> Box<dyn Codec> + Send + Sync,
{
    fn new_codec(&self) -> Box<dyn Codec> {
        self()
    }
}

/// A protocol, registered under [`name`](CodecFactory::name) (`protocol: NAME` in the config).
pub trait CodecFactory: Send + Sync + 'static {
    /// The protocol's registry name, such as `dubbo`.
    fn name(&self) -> &'static str;

    /// Parses `options` (the listener's `codec:` block; `null` when absent) and returns what makes
    /// codecs for connections. Unknown or invalid options are errors.
    fn configure(&self, options: &ConfigValue) -> Result<Arc<dyn NewCodec>, ConfigError>;
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

/// Codec and filter factories by name.
#[derive(Clone, Default)]
pub struct Registry {
    codecs: BTreeMap<&'static str, Arc<dyn CodecFactory>>,
    filters: BTreeMap<&'static str, Arc<dyn FilterFactory>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("codecs", &self.codecs.keys().collect::<Vec<_>>())
            .field("filters", &self.filters.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers a codec factory. A second factory under the same name is refused.
    pub fn register_codec(&mut self, factory: impl CodecFactory) -> Result<&mut Self, ConfigError> {
        let name = factory.name();
        if self.codecs.contains_key(name) {
            return Err(ConfigError::Duplicate { kind: "codec", name: name.to_string() });
        }
        self.codecs.insert(name, Arc::new(factory));
        Ok(self)
    }

    /// Registers a filter factory. A second factory under the same name is refused.
    pub fn register_filter(&mut self, factory: impl FilterFactory) -> Result<&mut Self, ConfigError> {
        let name = factory.name();
        if self.filters.contains_key(name) {
            return Err(ConfigError::Duplicate { kind: "filter", name: name.to_string() });
        }
        self.filters.insert(name, Arc::new(factory));
        Ok(self)
    }

    /// The codec factory registered as `name`.
    pub fn codec(&self, name: &str) -> Result<&Arc<dyn CodecFactory>, ConfigError> {
        self.codecs.get(name).ok_or_else(|| ConfigError::Unknown {
            kind: "codec",
            name: name.to_string(),
            known: self.codec_names().collect::<Vec<_>>().join(", "),
        })
    }

    /// The filter factory registered as `name`.
    pub fn filter(&self, name: &str) -> Result<&Arc<dyn FilterFactory>, ConfigError> {
        self.filters.get(name).ok_or_else(|| ConfigError::Unknown {
            kind: "filter",
            name: name.to_string(),
            known: self.filter_names().collect::<Vec<_>>().join(", "),
        })
    }

    /// Looks up codec `name` and configures it with `options`.
    pub fn configure_codec(&self, name: &str, options: &ConfigValue) -> Result<Arc<dyn NewCodec>, ConfigError> {
        self.codec(name)?.configure(options)
    }

    /// Looks up filter `name` and configures it with `config`.
    pub fn configure_filter(&self, name: &str, config: &ConfigValue) -> Result<Arc<dyn Filter>, ConfigError> {
        self.filter(name)?.configure(config)
    }

    /// Registered codec names, sorted.
    pub fn codec_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.codecs.keys().copied()
    }

    /// Registered filter names, sorted.
    pub fn filter_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.filters.keys().copied()
    }
}
