//! [`DubboCodecFactory`]: the codec registered as `dubbo`, and its options.

use metaprotocol_core::{parse_config, CodecFactory, ConfigError, ConfigValue};
use serde::Deserialize;

use crate::header::{HEADER_LEN, HESSIAN2, MAX_FRAME_SIZE, SERIALIZATION_MASK};
use crate::hessian::DEFAULT_MAX_DEPTH;
use crate::DubboCodec;

/// Dubbo's own default payload limit (`payload`, 8 MiB).
pub const DEFAULT_MAX_FRAME_SIZE: usize = 8 * 1024 * 1024;

/// Options of the Dubbo codec (a listener's `codec:` block).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DubboOptions {
    /// Largest frame, header included (default 8 MiB, as Dubbo's `payload`; at most
    /// [`MAX_FRAME_SIZE`], 16 bytes plus 2 GiB − 1, the most a Dubbo header can declare).
    pub max_frame_size: usize,
    /// Deepest nesting of Hessian lists, maps and objects (default 64, at least 1).
    pub max_depth: usize,
    /// Serialization ids besides Hessian 2 (2) whose requests are forwarded untouched, for
    /// providers that read them (Dubbo 3's fastjson2 is 23, protobuf 22). Default: none. The proxy
    /// cannot read the service, method or attachments of such a request, and a provider that does
    /// not speak the serialization closes the connection, failing every request multiplexed on it;
    /// so requests in any other serialization are refused with a status-40 reply.
    pub forward_serializations: Vec<u8>,
}

impl Default for DubboOptions {
    fn default() -> Self {
        DubboOptions {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_depth: DEFAULT_MAX_DEPTH,
            forward_serializations: Vec::new(),
        }
    }
}

impl DubboOptions {
    /// Refuses options the codec cannot honour: a `max_frame_size` below a header and one byte, or
    /// above what a Dubbo header can declare (and the `u32` offsets of a layout can hold), and a
    /// `max_depth` of 0 or over [`MAX_DEPTH_LIMIT`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_frame_size <= HEADER_LEN {
            return Err(ConfigError::invalid("max_frame_size", format!("must be at least {} bytes", HEADER_LEN + 1)));
        }
        let limit = MAX_FRAME_SIZE.min(metaprotocol_core::FRAME_SIZE_LIMIT);
        if self.max_frame_size > limit {
            return Err(ConfigError::invalid(
                "max_frame_size",
                format!(
                    "{} bytes is over the largest Dubbo frame, {limit} bytes (a 16-byte header and a body \
                     length that is a signed 32-bit integer)",
                    self.max_frame_size
                ),
            ));
        }
        if self.max_depth == 0 {
            return Err(ConfigError::invalid("max_depth", "must be at least 1"));
        }
        if self.max_depth > MAX_DEPTH_LIMIT {
            return Err(ConfigError::invalid(
                "max_depth",
                format!(
                    "{} is over {MAX_DEPTH_LIMIT}, deeper than any object graph a Dubbo peer sends \
                     (each level costs the codec work on every request)",
                    self.max_depth
                ),
            ));
        }
        if let Some(id) = self.forward_serializations.iter().find(|id| **id > SERIALIZATION_MASK || **id == 0) {
            return Err(ConfigError::invalid(
                "forward_serializations",
                format!("{id} is not a Dubbo serialization id (1 to {SERIALIZATION_MASK})"),
            ));
        }
        Ok(())
    }

    /// Whether requests in serialization `id` are decoded (Hessian 2) or forwarded untouched.
    pub fn accepts_serialization(&self, id: u8) -> bool {
        id == HESSIAN2 || self.forward_serializations.contains(&id)
    }
}

/// The deepest nesting `max_depth` may allow. The Hessian skipper walks nesting with a heap stack,
/// so this bounds the work one frame can ask for, not the thread's stack.
pub const MAX_DEPTH_LIMIT: usize = 4096;

/// `protocol: dubbo`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DubboCodecFactory;

impl CodecFactory for DubboCodecFactory {
    type Codec = DubboCodec;

    fn name(&self) -> &'static str {
        "dubbo"
    }

    fn configure(&self, options: &ConfigValue) -> Result<DubboCodec, ConfigError> {
        let options: DubboOptions = parse_config(options)?;
        options.validate()?;
        Ok(DubboCodec::new(options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metaprotocol_core::Codec;
    use serde_json::json;

    #[test]
    fn options_are_checked() {
        let f = DubboCodecFactory;
        assert_eq!(f.configure(&ConfigValue::Null).unwrap().max_frame_size(), DEFAULT_MAX_FRAME_SIZE);
        let c = f.configure(&json!({"max_frame_size": 1024, "max_depth": 8})).unwrap();
        assert_eq!((c.max_frame_size(), c.options().max_depth), (1024, 8));
        assert_eq!(f.configure(&json!({"max_frame_size": MAX_FRAME_SIZE})).unwrap().max_frame_size(), MAX_FRAME_SIZE);
        for (bad, field) in [
            (json!({"max_frame_size": 16}), "max_frame_size"),
            (json!({"max_frame_size": MAX_FRAME_SIZE + 1}), "max_frame_size"),
            (json!({"max_frame_size": u64::MAX}), "max_frame_size"),
            (json!({"max_depth": 0}), "max_depth"),
            (json!({"max_depth": 1_000_000}), "max_depth"),
        ] {
            match f.configure(&bad) {
                Err(ConfigError::Invalid { field: got, message }) => assert_eq!(got, field, "{bad}: {message}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(f.configure(&json!({"max_frame": 1})).is_err(), "unknown fields are refused");
    }
}
