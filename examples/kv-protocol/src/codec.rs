//! [`KvCodec`]: the `Codec` implementation. TEMPLATE: this is the file you rewrite for your protocol.

use bytes::{BufMut, Bytes, BytesMut};
use metaprotocol_core::{
    check_frame_size, ByteReader, Codec, CodecError, KeyValues, Layout, LocalReply, Message, Metadata, Mutation,
    ResponseStatus, WireBuf,
};

use crate::factory::KvOptions;
use crate::wire::{self, KvType, FIXED_HEADER, ID_OFFSET, MAGIC, PREFIX, VERSION};

/// Layout slot holding the offset where the header block ends and the body starts.
const SLOT_BODY_START: usize = 0;
/// Layout slot holding the message type byte.
const SLOT_KIND: usize = 1;

/// The kv codec for one connection.
#[derive(Clone, Debug, Default)]
pub struct KvCodec {
    options: KvOptions,
}

impl KvCodec {
    /// A codec with the given options.
    pub fn new(options: KvOptions) -> Self {
        KvCodec { options }
    }

    /// Checks the bytes available of the 8-byte prefix and returns the whole frame length once the
    /// length field is there. Wrong magic or version is reported as soon as its byte arrives.
    fn frame_len(&self, src: &[u8]) -> Result<Option<usize>, CodecError> {
        for (i, (got, want)) in src.iter().zip(MAGIC.iter().chain(std::iter::once(&VERSION))).enumerate() {
            if got != want {
                return Err(if i < 2 {
                    CodecError::malformed(i, "bad magic: not a kv frame")
                } else {
                    CodecError::Unsupported(format!("kv version {got}").into())
                });
            }
        }
        let Some(len) = src.get(4..PREFIX) else { return Ok(None) };
        let mut r = ByteReader::with_base(len, 4);
        let declared = u64::from(r.u32_be("length")?) + PREFIX as u64;
        let total = check_frame_size(declared, self.options.max_frame_size)?;
        if total < FIXED_HEADER {
            return Err(CodecError::malformed(4, "length shorter than the fixed header"));
        }
        Ok(Some(total))
    }
}

impl Codec for KvCodec {
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        let Some(total) = self.frame_len(src)? else { return Ok(None) };
        if src.len() < total {
            // Reserve exactly what is missing so the next read can complete the frame.
            src.reserve(total - src.len());
            return Ok(None);
        }
        let frame = src.split_to(total).freeze();
        let mut r = ByteReader::new(&frame);
        r.skip(3, "prefix")?;
        let kind_byte = r.u8("message type")?;
        let kind = KvType::from_byte(kind_byte).ok_or_else(|| CodecError::malformed(3, "unknown message type"))?;
        r.skip(4, "length")?;
        let request_id = r.u64_be("request id")?;
        let status = wire::status_from_byte(r.u8("status")?).map_err(|e| CodecError::malformed(16, e))?;
        r.skip(1, "reserved")?;
        let block_len = r.u16_be("header block length")? as usize;
        let body_start = FIXED_HEADER + block_len;
        if body_start > total {
            return Err(CodecError::malformed(18, "header block longer than the frame"));
        }
        let kvs = wire::parse_block(&frame, FIXED_HEADER, body_start)?;
        let metadata = Metadata {
            message_type: kind.message_type(),
            request_id,
            response_status: status,
            header_size: body_start as u32,
            body_size: (total - body_start) as u32,
            service: kvs.get("service").cloned(),
            method: kvs.get("method").cloned(),
            kvs,
            ..Metadata::default()
        };
        let layout = Layout::new().with(SLOT_BODY_START, body_start as u32).with(SLOT_KIND, u32::from(kind_byte));
        Ok(Some(Message::new(metadata, frame, layout)))
    }

    fn encode(&mut self, message: &Message, mutation: &Mutation, dst: &mut WireBuf) -> Result<(), CodecError> {
        let frame = message.frame();
        let body_start = message.layout().offset(SLOT_BODY_START);
        let fixed = frame.get(..FIXED_HEADER).ok_or(CodecError::Encode("frame shorter than the kv header".into()))?;
        if mutation.is_empty() {
            if !message.request_id_changed() {
                // Passthrough: the frame itself, by reference count.
                dst.push(frame.clone());
                return Ok(());
            }
            // Only the id changes: a fresh 20-byte header, then the rest of the frame uncopied.
            return dst.push_patched(frame, FIXED_HEADER, ID_OFFSET, &message.metadata.request_id.to_be_bytes());
        }
        // A mutation: re-encode the header block from the frame's own entries (filters' edits to
        // `metadata.kvs` are for routing only), then splice the body.
        let mut kvs: KeyValues = wire::parse_block(frame, FIXED_HEADER, body_start)?;
        mutation.apply_to(&mut kvs);
        let block_len: usize = kvs.iter().map(|e| 3 + e.key.len() + e.value.len()).sum();
        let body = frame.slice(body_start..);
        let kind = message.layout().get(SLOT_KIND) as u8;
        let status = fixed.get(16).copied().unwrap_or(0);
        let mut head = BytesMut::with_capacity(FIXED_HEADER + block_len);
        wire::put_fixed_header(&mut head, kind, message.metadata.request_id, status, block_len, body.len())?;
        for e in kvs.iter() {
            wire::put_entry(&mut head, &e.key, &e.value)?;
        }
        check_frame_size((head.len() + body.len()) as u64, self.options.max_frame_size)
            .map_err(|_| CodecError::Encode("the mutation makes the frame exceed the maximum frame size".into()))?;
        dst.push(head.freeze());
        dst.push(body);
        Ok(())
    }

    fn max_frame_size(&self) -> usize {
        self.options.max_frame_size
    }

    fn local_reply(&self, request: &Metadata, reply: &LocalReply) -> Result<Message, CodecError> {
        let frame = crate::FrameBuilder::new(KvType::Error, request.request_id)
            .status(ResponseStatus::Error)
            .header("error-kind", reply.kind.as_str())
            .header("error-message", reply.message.as_bytes())
            .build()?;
        self.decode_built(frame)
    }

    fn heartbeat_reply(&self, heartbeat: &Message) -> Result<Option<Message>, CodecError> {
        if heartbeat.layout().get(SLOT_KIND) != KvType::Ping as u32 {
            return Ok(None);
        }
        let frame = crate::FrameBuilder::new(KvType::Pong, heartbeat.metadata.request_id).build()?;
        self.decode_built(frame).map(Some)
    }
}

impl KvCodec {
    /// Decodes a frame this codec just built (local replies go through the same path as wire data).
    fn decode_built(&self, frame: Bytes) -> Result<Message, CodecError> {
        let mut buf = BytesMut::with_capacity(frame.len());
        buf.put_slice(&frame);
        self.clone().decode(&mut buf)?.ok_or(CodecError::Encode("built an incomplete kv frame".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metaprotocol_core::{MessageType, ReplyKind};

    fn decode(bytes: &[u8]) -> Result<Option<Message>, CodecError> {
        KvCodec::default().decode(&mut BytesMut::from(bytes))
    }

    #[test]
    fn decodes_metadata_as_slices_of_the_frame() {
        let bytes = crate::FrameBuilder::request(42, "Greeter", "sayHello")
            .header("batchjob", "true")
            .body("hi")
            .build()
            .unwrap();
        let msg = decode(&bytes).unwrap().unwrap();
        let md = &msg.metadata;
        assert_eq!(md.message_type, MessageType::Request);
        assert_eq!(md.request_id, 42);
        assert_eq!(md.operation().to_string(), "Greeter/sayHello");
        assert_eq!(md.kvs.get_str("BatchJob"), Some("true"));
        assert_eq!(md.body_size, 2);
        assert_eq!(md.header_size as usize, bytes.len() - 2);
        let frame = msg.frame().as_ptr() as usize..msg.frame().as_ptr() as usize + msg.len();
        assert!(md.kvs.iter().all(|e| frame.contains(&(e.value.as_ptr() as usize))));
    }

    #[test]
    fn refuses_bad_magic_at_once() {
        assert!(matches!(decode(b"X"), Err(CodecError::Malformed { offset: 0, .. })));
        assert!(matches!(decode(b"KV\x02"), Err(CodecError::Unsupported(_))));
        assert!(decode(b"KV\x01").unwrap().is_none());
    }

    #[test]
    fn local_reply_carries_kind_and_message() {
        let req = decode(&crate::FrameBuilder::request(9, "S", "m").build().unwrap()).unwrap().unwrap();
        let reply = KvCodec::default()
            .local_reply(&req.metadata, &LocalReply::new(ReplyKind::Timeout, "took too long"))
            .unwrap();
        assert_eq!(reply.metadata.message_type, MessageType::Error);
        assert_eq!(reply.metadata.request_id, 9);
        assert_eq!(reply.metadata.kvs.get_str("error-kind"), Some("timeout"));
        assert_eq!(reply.metadata.kvs.get_str("error-message"), Some("took too long"));
    }

    #[test]
    fn oversized_length_is_refused_before_buffering() {
        let codec = KvCodec::new(KvOptions { max_frame_size: 1024 });
        let mut buf = BytesMut::from(&b"KV\x01\x00\x00\x00\x04\x00"[..]);
        let mut c = codec.clone();
        assert_eq!(c.decode(&mut buf).unwrap_err(), CodecError::FrameTooLarge { declared: 1032, max: 1024 });
        assert!(buf.capacity() < 1024);
    }
}
