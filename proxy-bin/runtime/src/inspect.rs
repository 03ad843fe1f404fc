//! The capture inspector: decodes the raw bytes of one direction of a TCP stream with a registered
//! codec and writes one JSON object per message.
//!
//! Each line holds the file, the message's byte offset and size, its message type, request id,
//! stream id, response status, header and body sizes, operation, and every key/value in wire
//! order (values that are not UTF-8 are shown with replacement characters). A decode failure stops
//! the file with an error naming the byte offset.

use std::io::Write;
use std::path::Path;

use bytes::BytesMut;
use metaprotocol_core::{Codec, ConfigValue, Metadata};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::plan::Summary;
use crate::registry::Registry;
use crate::RuntimeError;

#[derive(Serialize)]
struct Line<'a> {
    file: &'a str,
    offset: u64,
    size: usize,
    message_type: &'static str,
    request_id: u64,
    stream_id: Option<u64>,
    status: &'static str,
    header_size: u32,
    body_size: u32,
    operation: String,
    #[serde(serialize_with = "kvs_as_map")]
    kvs: &'a Metadata,
}

fn kvs_as_map<S: Serializer>(metadata: &&Metadata, s: S) -> Result<S::Ok, S::Error> {
    let kvs = &metadata.kvs;
    let mut map = s.serialize_map(Some(kvs.len()))?;
    for (k, v) in kvs.iter() {
        map.serialize_entry(&String::from_utf8_lossy(k), &String::from_utf8_lossy(v))?;
    }
    map.end()
}

/// Decodes every message in `path` with codec `protocol` (configured with `options`) and writes
/// one JSON line per message to `out`.
pub fn inspect_file(
    registry: &Registry,
    protocol: &str,
    options: &ConfigValue,
    path: &Path,
    out: &mut dyn Write,
) -> Result<Summary, RuntimeError> {
    let data = std::fs::read(path).map_err(|source| RuntimeError::Io { path: path.to_path_buf(), source })?;
    let protocol = registry.configure_codec(protocol, options)?;
    protocol.inspect(&path.display().to_string(), &data, out).map_err(|e| match e {
        RuntimeError::Decode { offset, source, .. } => {
            RuntimeError::Decode { path: path.to_path_buf(), offset, source }
        }
        RuntimeError::Truncated { offset, left, .. } => {
            RuntimeError::Truncated { path: path.to_path_buf(), offset, left }
        }
        other => other,
    })
}

/// Decodes `data` (named `name` in the output) with `codec` and writes one JSON line per message.
pub fn inspect_stream<C: Codec>(
    mut codec: C,
    name: &str,
    data: &[u8],
    out: &mut dyn Write,
) -> Result<Summary, RuntimeError> {
    let mut buf = BytesMut::from(data);
    let mut summary = Summary::default();
    loop {
        let offset = summary.bytes;
        match codec.decode(&mut buf) {
            Ok(Some(msg)) => {
                let md = &msg.metadata;
                let line = Line {
                    file: name,
                    offset,
                    size: msg.len(),
                    message_type: md.message_type.as_str(),
                    request_id: md.request_id,
                    stream_id: md.stream_id,
                    status: md.response_status.as_str(),
                    header_size: md.header_size,
                    body_size: md.body_size,
                    operation: md.operation().to_string(),
                    kvs: md,
                };
                serde_json::to_writer(&mut *out, &line).map_err(|e| RuntimeError::Output(e.into()))?;
                out.write_all(b"\n").map_err(RuntimeError::Output)?;
                summary.messages += 1;
                summary.bytes += msg.len() as u64;
            }
            Ok(None) if buf.is_empty() => return Ok(summary),
            Ok(None) => return Err(RuntimeError::Truncated { path: name.into(), offset, left: buf.len() }),
            Err(source) => {
                let at = offset + source.offset().unwrap_or(0) as u64;
                return Err(RuntimeError::Decode { path: name.into(), offset: at, source });
            }
        }
    }
}
