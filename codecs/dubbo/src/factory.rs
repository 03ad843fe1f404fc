//! [`DubboCodecFactory`]: the codec registered as `dubbo`, and its options.

use std::sync::Arc;

use metaprotocol_core::{parse_config, Codec, CodecFactory, ConfigError, ConfigValue, NewCodec};
use serde::Deserialize;

use crate::hessian::DEFAULT_MAX_DEPTH;
use crate::DubboCodec;

/// Dubbo's own default payload limit (`payload`, 8 MiB).
pub const DEFAULT_MAX_FRAME_SIZE: usize = 8 * 1024 * 1024;

/// Options of the Dubbo codec (a listener's `codec:` block).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DubboOptions {
    /// Largest frame, header included (default 8 MiB, as Dubbo's `payload`).
    pub max_frame_size: usize,
    /// Deepest nesting of Hessian lists, maps and objects (default 64).
    pub max_depth: usize,
}

impl Default for DubboOptions {
    fn default() -> Self {
        DubboOptions { max_frame_size: DEFAULT_MAX_FRAME_SIZE, max_depth: DEFAULT_MAX_DEPTH }
    }
}

/// `protocol: dubbo`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DubboCodecFactory;

impl CodecFactory for DubboCodecFactory {
    fn name(&self) -> &'static str {
        "dubbo"
    }

    fn configure(&self, options: &ConfigValue) -> Result<Arc<dyn NewCodec>, ConfigError> {
        let options: DubboOptions = parse_config(options)?;
        if options.max_frame_size < crate::header::HEADER_LEN + 1 {
            return Err(ConfigError::invalid("max_frame_size", "must be at least 17 bytes"));
        }
        if options.max_depth == 0 {
            return Err(ConfigError::invalid("max_depth", "must be at least 1"));
        }
        Ok(Arc::new(move || Box::new(DubboCodec::new(options.clone())) as Box<dyn Codec>))
    }
}
