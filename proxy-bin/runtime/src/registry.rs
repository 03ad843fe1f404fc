//! [`Registry`]: codecs and filters by name, and the point where a codec's type is erased.
//!
//! Registering a [`CodecFactory`] keeps its concrete type: when a listener's `protocol:` is
//! configured, the registry wraps the configured codec in a [`Protocol`](crate::plan::Protocol)
//! whose methods call the runtime's generic code with that type. From there on the proxy's hot
//! path makes no dynamic call into the codec.

use std::collections::BTreeMap;
use std::sync::Arc;

use metaprotocol_core::{CodecFactory, ConfigError, ConfigValue, Filter, FilterFactory};

use crate::plan::Protocol;
use crate::protocol::ProtocolImpl;

/// A codec factory with its codec type erased.
trait ErasedFactory: Send + Sync {
    fn configure(&self, options: &ConfigValue) -> Result<Arc<dyn Protocol>, ConfigError>;
}

struct Erased<F>(F);

impl<F: CodecFactory> ErasedFactory for Erased<F> {
    fn configure(&self, options: &ConfigValue) -> Result<Arc<dyn Protocol>, ConfigError> {
        let codec = self.0.configure(options)?;
        // Listeners with the same protocol and options share upstream pools; `Value`'s text has
        // its object keys sorted, so equal options give equal keys.
        let key = format!("{}:{options}", self.0.name());
        Ok(Arc::new(ProtocolImpl::new(self.0.name(), key, codec)))
    }
}

/// Codec and filter factories by name.
#[derive(Clone, Default)]
pub struct Registry {
    codecs: BTreeMap<&'static str, Arc<dyn ErasedFactory>>,
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
    pub fn register_codec<F: CodecFactory>(&mut self, factory: F) -> Result<&mut Self, ConfigError> {
        let name = factory.name();
        if self.codecs.contains_key(name) {
            return Err(ConfigError::Duplicate { kind: "codec", name: name.to_string() });
        }
        self.codecs.insert(name, Arc::new(Erased(factory)));
        Ok(self)
    }

    /// Registers a filter factory. A second factory under the same name is refused.
    pub fn register_filter(&mut self, factory: Arc<dyn FilterFactory>) -> Result<&mut Self, ConfigError> {
        let name = factory.name();
        if self.filters.contains_key(name) {
            return Err(ConfigError::Duplicate { kind: "filter", name: name.to_string() });
        }
        self.filters.insert(name, factory);
        Ok(self)
    }

    /// Configures codec `name` with `options`: the listener's protocol, type erased.
    pub fn configure_codec(&self, name: &str, options: &ConfigValue) -> Result<Arc<dyn Protocol>, ConfigError> {
        let factory = self.codecs.get(name).ok_or_else(|| ConfigError::Unknown {
            kind: "codec",
            name: name.to_string(),
            known: self.codec_names().collect::<Vec<_>>().join(", "),
        })?;
        factory.configure(options)
    }

    /// Configures filter `name` with `config`.
    pub fn configure_filter(&self, name: &str, config: &ConfigValue) -> Result<Arc<dyn Filter>, ConfigError> {
        let factory = self.filters.get(name).ok_or_else(|| ConfigError::Unknown {
            kind: "filter",
            name: name.to_string(),
            known: self.filter_names().collect::<Vec<_>>().join(", "),
        })?;
        factory.configure(config)
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
