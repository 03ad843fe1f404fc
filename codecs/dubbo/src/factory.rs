//! [`DubboCodecFactory`]: the codec registered as `dubbo`, and its options.

use metaprotocol_core::{parse_config, CodecFactory, ConfigError, ConfigValue};
use serde::Deserialize;

use crate::header::{HEADER_LEN, MAX_FRAME_SIZE};
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
}

impl Default for DubboOptions {
    fn default() -> Self {
        DubboOptions { max_frame_size: DEFAULT_MAX_FRAME_SIZE, max_depth: DEFAULT_MAX_DEPTH }
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
            // The Hessian skipper recurses once per level: a deeper limit would let one request
            // exhaust a worker's stack.
            return Err(ConfigError::invalid(
                "max_depth",
                format!("must be at most {MAX_DEPTH_LIMIT} (nesting is read recursively)"),
            ));
        }
        Ok(())
    }
}

/// The deepest nesting `max_depth` may allow.
pub const MAX_DEPTH_LIMIT: usize = 512;

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
