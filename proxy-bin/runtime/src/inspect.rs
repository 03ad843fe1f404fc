//! The capture inspector: decodes the raw bytes of one direction of a TCP stream with a registered
//! codec and writes one JSON object per message.
//!
//! Each line holds the file, the message's byte offset and size, its message type, request id,
//! stream id, response status, header and body sizes, operation, and every key/value in wire
//! order (values that are not UTF-8 are shown with replacement characters). A decode failure stops
//! the file with an error naming the byte offset.

use std::io::Write;

use bytes::BytesMut;
use metaprotocol_core::{Codec, Metadata};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::plan::Summary;
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
