//! [`ThriftCodecFactory`]: the codec registered as `thrift`, and its options.

use metaprotocol_core::{parse_config, CodecFactory, ConfigError, ConfigValue, FRAME_SIZE_LIMIT};
use serde::Deserialize;

use crate::protocol::Protocol;
use crate::transport::Transport;
use crate::ThriftCodec;

/// The smallest `max_frame_size` accepted: room for a small message and its framing.
pub const MIN_FRAME_SIZE: usize = 16;

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

impl TransportOption {
    /// The transport when fixed, `None` for auto-detection.
    pub fn fixed(self) -> Option<Transport> {
        match self {
            TransportOption::Auto => None,
            TransportOption::Framed => Some(Transport::Framed),
            TransportOption::Unframed => Some(Transport::Unframed),
            TransportOption::Header => Some(Transport::Header),
        }
    }
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

impl ProtocolOption {
    /// The protocol when fixed, `None` for auto-detection.
    pub fn fixed(self) -> Option<Protocol> {
        match self {
            ProtocolOption::Auto => None,
            ProtocolOption::Binary => Some(Protocol::Binary),
            ProtocolOption::Compact => Some(Protocol::Compact),
        }
    }
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
    /// Largest frame (default 16 MiB; from [`MIN_FRAME_SIZE`] to
    /// [`FRAME_SIZE_LIMIT`](metaprotocol_core::FRAME_SIZE_LIMIT)).
    pub max_frame_size: usize,
    /// Deepest struct and container nesting (default 64; at least 1, the argument struct).
    pub max_depth: usize,
    /// Largest list, set or map (default 1,000,000 elements; at least 1).
    pub max_container_size: u32,
}

impl ThriftOptions {
    /// Refuses options the codec cannot honour, naming the field.
    ///
    /// `max_frame_size` must be at least [`MIN_FRAME_SIZE`] and at most
    /// [`FRAME_SIZE_LIMIT`](metaprotocol_core::FRAME_SIZE_LIMIT): a layout keeps frame offsets as
    /// `u32` and a framed or THeader length field is a `u32`, so a larger maximum would promise
    /// frames the codec cannot describe. It is refused, not silently lowered (tokio-util's
    /// length-delimited codec clamps its maximum to what the length field can express; a
    /// configuration error says so instead). `max_depth` must be at least 1 (the argument struct
    /// itself is one level), and `max_container_size` at least 1 (0 would refuse every non-empty
    /// list, set and map).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_frame_size < MIN_FRAME_SIZE {
            return Err(ConfigError::invalid("max_frame_size", format!("must be at least {MIN_FRAME_SIZE} bytes")));
        }
        if self.max_frame_size > FRAME_SIZE_LIMIT {
            return Err(ConfigError::invalid(
                "max_frame_size",
                format!(
                    "must be at most {FRAME_SIZE_LIMIT} bytes (4 GiB - 1): Thrift frame lengths and the codec's \
                     frame offsets are 32-bit"
                ),
            ));
        }
        if self.max_depth == 0 {
            return Err(ConfigError::invalid("max_depth", "must be at least 1 (the argument struct is one level)"));
        }
        if self.max_container_size == 0 {
            return Err(ConfigError::invalid(
                "max_container_size",
                "must be at least 1 (0 would refuse every non-empty list, set and map)",
            ));
        }
        Ok(())
    }
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
    type Codec = ThriftCodec;

    fn name(&self) -> &'static str {
        "thrift"
    }

    fn configure(&self, options: &ConfigValue) -> Result<ThriftCodec, ConfigError> {
        ThriftCodec::new(parse_config(options)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metaprotocol_core::Codec;
    use serde_json::json;

    fn refused(options: ConfigValue) -> String {
        match ThriftCodecFactory.configure(&options) {
            Ok(_) => panic!("{options} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn options_parse_and_limits_are_checked() {
        let codec = ThriftCodecFactory.configure(&ConfigValue::Null).unwrap();
        assert_eq!(codec.max_frame_size(), 16 << 20);
        let fixed = ThriftCodecFactory.configure(&json!({"transport": "header", "max_frame_size": 4096})).unwrap();
        assert_eq!((fixed.max_frame_size(), fixed.options().transport), (4096, TransportOption::Header));
        assert!(refused(json!({"max_frame_size": 15})).starts_with("max_frame_size: must be at least 16"));
        assert!(refused(json!({"max_depth": 0})).starts_with("max_depth: "));
        assert!(refused(json!({"max_container_size": 0})).starts_with("max_container_size: "));
        assert!(refused(json!({"transport": "udp"})).contains("unknown variant"));
        assert!(refused(json!({"max_frame": 1})).contains("unknown field `max_frame`"));
        if usize::BITS > 32 {
            let too_big = FRAME_SIZE_LIMIT as u64 + 1;
            let e = refused(json!({ "max_frame_size": too_big }));
            assert!(e.starts_with("max_frame_size: must be at most 4294967295 bytes"), "{e}");
            let at_limit = ThriftCodecFactory.configure(&json!({ "max_frame_size": FRAME_SIZE_LIMIT })).unwrap();
            assert_eq!(at_limit.max_frame_size(), FRAME_SIZE_LIMIT);
        }
    }
}
