//! [`KvCodecFactory`]: registers the codec under the name `kv`, with its options.

use metaprotocol_core::{parse_config, CodecFactory, ConfigError, ConfigValue, FRAME_SIZE_LIMIT};
use serde::Deserialize;

use crate::wire::FIXED_HEADER;
use crate::KvCodec;

/// Options of the kv codec (the listener's `codec:` block).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvOptions {
    /// The largest frame accepted, in bytes (default 4 MiB; from 20, the fixed header, to
    /// [`FRAME_SIZE_LIMIT`](metaprotocol_core::FRAME_SIZE_LIMIT)).
    pub max_frame_size: usize,
}

impl Default for KvOptions {
    fn default() -> Self {
        KvOptions { max_frame_size: 4 * 1024 * 1024 }
    }
}

impl KvOptions {
    /// Refuses options the codec cannot honour, naming the field. TEMPLATE: check every limit of
    /// yours here, so that a configuration that cannot work fails when it is loaded.
    ///
    /// A `max_frame_size` over [`FRAME_SIZE_LIMIT`](metaprotocol_core::FRAME_SIZE_LIMIT) is
    /// refused rather than lowered: the layout keeps `u32` offsets, and a frame the codec could
    /// not describe must not be accepted.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_frame_size < FIXED_HEADER {
            return Err(ConfigError::invalid("max_frame_size", format!("must be at least {FIXED_HEADER} bytes")));
        }
        if self.max_frame_size > FRAME_SIZE_LIMIT {
            return Err(ConfigError::invalid(
                "max_frame_size",
                format!("must be at most {FRAME_SIZE_LIMIT} bytes (the codec's offsets are 32-bit)"),
            ));
        }
        Ok(())
    }
}

/// The factory: `protocol: kv` in the proxy's configuration. TEMPLATE: your protocol's name.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvCodecFactory;

impl CodecFactory for KvCodecFactory {
    type Codec = KvCodec;

    fn name(&self) -> &'static str {
        "kv"
    }

    fn configure(&self, options: &ConfigValue) -> Result<KvCodec, ConfigError> {
        // The configured codec is cloned for every connection.
        KvCodec::new(parse_config(options)?)
    }
}

#[cfg(test)]
// Tests panic on purpose when an expectation fails.
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use metaprotocol_core::Codec;

    #[test]
    fn options_parse_and_validate() {
        let f = KvCodecFactory;
        assert_eq!(f.configure(&serde_json::Value::Null).unwrap().max_frame_size(), 4 << 20);
        let small = serde_json::json!({"max_frame_size": 4096});
        assert_eq!(f.configure(&small).unwrap().max_frame_size(), 4096);
        let err = f.configure(&serde_json::json!({"max_frame": 1})).err().unwrap().to_string();
        assert!(err.contains("unknown field `max_frame`"), "{err}");
        assert!(f.configure(&serde_json::json!({"max_frame_size": 3})).is_err());
        if usize::BITS > 32 {
            let over = serde_json::json!({ "max_frame_size": FRAME_SIZE_LIMIT as u64 + 1 });
            let err = f.configure(&over).err().unwrap().to_string();
            assert!(err.starts_with("max_frame_size: must be at most"), "{err}");
        }
    }
}
