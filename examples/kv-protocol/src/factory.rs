//! [`KvCodecFactory`]: registers the codec under the name `kv`, with its options.

use std::sync::Arc;

use metaprotocol_core::{parse_config, Codec, CodecFactory, ConfigError, ConfigValue, NewCodec};
use serde::Deserialize;

use crate::KvCodec;

/// Options of the kv codec (the listener's `codec:` block).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvOptions {
    /// The largest frame accepted, in bytes (default 4 MiB).
    pub max_frame_size: usize,
}

impl Default for KvOptions {
    fn default() -> Self {
        KvOptions { max_frame_size: 4 * 1024 * 1024 }
    }
}

/// The factory: `protocol: kv` in the proxy's configuration.
#[derive(Clone, Copy, Debug, Default)]
pub struct KvCodecFactory;

impl CodecFactory for KvCodecFactory {
    fn name(&self) -> &'static str {
        "kv"
    }

    fn configure(&self, options: &ConfigValue) -> Result<Arc<dyn NewCodec>, ConfigError> {
        let options: KvOptions = parse_config(options)?;
        if options.max_frame_size < crate::wire::FIXED_HEADER {
            return Err(ConfigError::invalid("max_frame_size", "must be at least 20 bytes"));
        }
        Ok(Arc::new(move || Box::new(KvCodec::new(options.clone())) as Box<dyn Codec>))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_validate() {
        let f = KvCodecFactory;
        assert_eq!(f.configure(&serde_json::Value::Null).unwrap().new_codec().max_frame_size(), 4 << 20);
        let small = serde_json::json!({"max_frame_size": 4096});
        assert_eq!(f.configure(&small).unwrap().new_codec().max_frame_size(), 4096);
        let err = f.configure(&serde_json::json!({"max_frame": 1})).err().unwrap().to_string();
        assert!(err.contains("unknown field `max_frame`"), "{err}");
        assert!(f.configure(&serde_json::json!({"max_frame_size": 3})).is_err());
    }
}
