//! [`ThriftCodecFactory`]: the codec registered as `thrift`, and its options.

use std::sync::Arc;

use metaprotocol_core::{parse_config, Codec, CodecFactory, ConfigError, ConfigValue, NewCodec};
use serde::Deserialize;

use crate::ThriftCodec;

/// Which transport a listener speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportOption {
    /// Detected from each connection's first bytes (as Envoy's `AUTO_TRANSPORT`).
    #[default]
    Auto,
    /// A 4-byte length before each message.
    Framed,
    /// No framing (TBufferedTransport); message ends are found by skipping.
    Unframed,
    /// THeader.
    Header,
}

/// Which protocol a listener speaks (THeader says it per message).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolOption {
    /// Detected from each connection's first message.
    #[default]
    Auto,
    /// TBinaryProtocol.
    Binary,
    /// TCompactProtocol.
    Compact,
}

/// Options of the Thrift codec (a listener's `codec:` block).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThriftOptions {
    /// Transport (default auto).
    pub transport: TransportOption,
    /// Protocol (default auto).
    pub protocol: ProtocolOption,
    /// Accept binary messages without a version word (old clients); needs a fixed transport
    /// other than auto to be detected reliably.
    pub lax_binary: bool,
    /// Largest frame (default 16 MiB).
    pub max_frame_size: usize,
    /// Deepest struct and container nesting (default 64).
    pub max_depth: usize,
    /// Largest list, set or map (default 1,000,000 elements).
    pub max_container_size: u32,
}

impl Default for ThriftOptions {
    fn default() -> Self {
        ThriftOptions {
            transport: TransportOption::Auto,
            protocol: ProtocolOption::Auto,
            lax_binary: false,
            max_frame_size: 16 << 20,
            max_depth: 64,
            max_container_size: 1_000_000,
        }
    }
}

/// `protocol: thrift`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThriftCodecFactory;

impl CodecFactory for ThriftCodecFactory {
    fn name(&self) -> &'static str {
        "thrift"
    }

    fn configure(&self, options: &ConfigValue) -> Result<Arc<dyn NewCodec>, ConfigError> {
        let options: ThriftOptions = parse_config(options)?;
        if options.max_frame_size < 16 {
            return Err(ConfigError::invalid("max_frame_size", "must be at least 16 bytes"));
        }
        if options.max_depth == 0 {
            return Err(ConfigError::invalid("max_depth", "must be at least 1"));
        }
        Ok(Arc::new(move || Box::new(ThriftCodec::new(options.clone())) as Box<dyn Codec>))
    }
}
