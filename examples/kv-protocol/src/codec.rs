//! [`KvCodec`]: the `Codec` implementation. TEMPLATE: this is the file you rewrite for your protocol.

use bytes::{Bytes, BytesMut};
use metaprotocol_core::{
    check_frame_size, ByteReader, Codec, CodecError, ConfigError, KeyValues, LocalReply, Message, Metadata, Mutation,
    ReplyKind, ResponseStatus, Text, WireBuf, MAX_RESERVE,
};

use crate::factory::KvOptions;
use crate::wire::{
    self, KvType, BLOCK_LEN_OFFSET, FIXED_HEADER, ID_OFFSET, MAGIC, PREFIX, STATUS_OFFSET, TYPE_OFFSET, VERSION,
};

/// The codec's layout of one kv message: what [`encode`](Codec::encode) and the reply builders
/// need besides the frame, the message type and the request id (the proxy may move the rest of the
/// metadata out before it encodes). Decoding fills it in; nothing else looks inside.
///
/// TEMPLATE: your protocol's own fields. Keep it small and `Copy`, with types that cannot hold a
/// value your encoder would have to guess about (an enum, not a byte), and `u32` offsets (the
/// factory caps frames at [`FRAME_SIZE_LIMIT`](metaprotocol_core::FRAME_SIZE_LIMIT)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvLayout {
    /// The message type, as the frame says it.
    pub kind: KvType,
    /// The status, as the frame says it.
    pub status: ResponseStatus,
    /// Where the header block ends and the body starts.
    pub body_at: u32,
}

/// The kv codec for one connection. It has no per-connection state: the proxy clones the
/// configured codec for each connection.
#[derive(Clone, Debug, Default)]
pub struct KvCodec {
    options: KvOptions,
}

/// The value of the first entry named `key`, as a handle (for [`Metadata::service`] and
/// [`Metadata::method`]).
fn find(kvs: &KeyValues, key: &str) -> Option<Text> {
    kvs.handles().find(|(k, _)| kvs.resolve(*k).eq_ignore_ascii_case(key.as_bytes())).map(|(_, v)| v)
}

fn size(n: usize) -> Result<u32, CodecError> {
    u32::try_from(n).map_err(|_| CodecError::malformed(0, "frame over 4 GiB"))
}

/// Builds a message with a header block and no body, directly: the frame, its metadata (whose
/// key/values are spans of the frame) and its layout, exactly what decoding the frame gives.
/// This is how replies are made: no bytes are decoded back.
fn build(
    kind: KvType,
    request_id: u64,
    status: ResponseStatus,
    headers: &[(&str, &[u8])],
) -> Result<Message<KvLayout>, CodecError> {
    let block_len: usize = headers.iter().map(|(k, v)| wire::entry_len(k.as_bytes(), v)).sum();
    let mut buf = BytesMut::with_capacity(FIXED_HEADER + block_len);
    wire::put_fixed_header(&mut buf, kind, request_id, status, block_len, 0)?;
    let mut spans = Vec::with_capacity(headers.len());
    for (key, value) in headers {
        spans.push(wire::put_entry(&mut buf, key.as_bytes(), value)?);
    }
    let frame = buf.freeze();
    let mut kvs = KeyValues::over(frame.clone(), spans.len());
    for (key, value) in spans {
        kvs.push(kvs.span(key)?, kvs.span(value)?);
    }
    let metadata = Metadata {
        message_type: kind.message_type(),
        request_id,
        response_status: status,
        header_size: size(frame.len())?,
        body_size: 0,
        service: find(&kvs, "service"),
        method: find(&kvs, "method"),
        kvs,
        ..Metadata::default()
    };
    let layout = KvLayout { kind, status, body_at: size(frame.len())? };
    Ok(Message::new(metadata, frame, layout))
}

/// The error reply to request `request_id`: type error, status error, the kind and message as
/// headers.
fn error_reply(request_id: u64, kind: ReplyKind, message: &str) -> Result<Message<KvLayout>, CodecError> {
    let headers: [(&str, &[u8]); 2] = [("error-kind", kind.as_str().as_bytes()), ("error-message", message.as_bytes())];
    build(KvType::Error, request_id, ResponseStatus::Error, &headers)
}

impl KvCodec {
    /// A codec with the given options, refused when they cannot work (see [`KvOptions::validate`]).
    pub fn new(options: KvOptions) -> Result<Self, ConfigError> {
        options.validate()?;
        Ok(KvCodec { options })
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
    type Layout = KvLayout;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message<KvLayout>>, CodecError> {
        let Some(total) = self.frame_len(src)? else { return Ok(None) };
        if src.len() < total {
            // Reserve what is missing (up to MAX_RESERVE: a large frame grows the buffer as its
            // bytes arrive, not as its header declares) so the next read can complete the frame.
            src.reserve((total - src.len()).min(MAX_RESERVE));
            return Ok(None);
        }
        // Cut the frame off the read buffer: metadata below are ranges of it, nothing is copied.
        let frame: Bytes = src.split_to(total).freeze();
        let mut r = ByteReader::new(&frame);
        r.skip(TYPE_OFFSET, "prefix")?;
        let kind = KvType::from_byte(r.u8("message type")?)
            .ok_or_else(|| CodecError::malformed(TYPE_OFFSET, "unknown message type"))?;
        r.skip(4, "length")?;
        let request_id = r.u64_be("request id")?;
        let status = wire::status_from_byte(r.u8("status")?).map_err(|e| CodecError::malformed(STATUS_OFFSET, e))?;
        r.skip(1, "reserved")?;
        let body_at = FIXED_HEADER + usize::from(r.u16_be("header block length")?);
        if body_at > total {
            return Err(CodecError::malformed(BLOCK_LEN_OFFSET, "header block longer than the frame"));
        }
        // The fixed header parsed, so the frame is cut and the request id known: a request whose
        // header block does not parse is a bad request, which `malformed_reply` answers.
        let mut kvs = KeyValues::over(frame.clone(), 4);
        if let Err(e) = wire::parse_block(&mut kvs, FIXED_HEADER, body_at) {
            drop(kvs);
            return Err(if kind == KvType::Request { CodecError::bad_request(request_id, frame, e) } else { e });
        }
        let metadata = Metadata {
            message_type: kind.message_type(),
            request_id,
            response_status: status,
            header_size: size(body_at)?,
            body_size: size(total - body_at)?,
            service: find(&kvs, "service"),
            method: find(&kvs, "method"),
            kvs,
            ..Metadata::default()
        };
        Ok(Some(Message::new(metadata, frame, KvLayout { kind, status, body_at: size(body_at)? })))
    }

    fn encode(
        &mut self,
        message: &Message<KvLayout>,
        mutation: &Mutation,
        dst: &mut WireBuf,
    ) -> Result<(), CodecError> {
        let frame = message.frame();
        if mutation.is_empty() {
            if !message.request_id_changed() {
                // Passthrough: the frame itself, by reference count.
                dst.push(frame.clone());
                return Ok(());
            }
            // Only the id changes: a fresh 20-byte header in scratch space, then the rest of the
            // frame uncopied.
            return dst.push_patched(frame, FIXED_HEADER, ID_OFFSET, &message.metadata.request_id.to_be_bytes());
        }
        // A mutation: re-encode the header block from the frame's own entries (filters' edits to
        // `metadata.kvs` are for routing only, and the proxy may have moved them out), then splice
        // the body.
        let layout = message.layout();
        let body_at = layout.body_at as usize;
        let mut kvs = KeyValues::over(frame.clone(), 4);
        wire::parse_block(&mut kvs, FIXED_HEADER, body_at)?;
        mutation.apply_to(&mut kvs);
        let body =
            frame.get(body_at..).map(|_| frame.slice(body_at..)).ok_or(CodecError::Encode("bad layout".into()))?;
        // Check every size before writing: what `push_built`'s closure writes is queued as is.
        let mut block_len = 0;
        for (key, value) in kvs.iter() {
            wire::check_entry(key, value)?;
            block_len += wire::entry_len(key, value);
        }
        check_frame_size((FIXED_HEADER + block_len + body.len()) as u64, self.options.max_frame_size)
            .map_err(|_| CodecError::Encode("the mutation makes the frame exceed the maximum frame size".into()))?;
        if block_len > usize::from(u16::MAX) {
            return Err(CodecError::Encode("kv header block over 65535 bytes".into()));
        }
        let id = message.metadata.request_id;
        dst.push_built(|head| {
            wire::put_fixed_header(head, layout.kind, id, layout.status, block_len, body.len())?;
            for (key, value) in kvs.iter() {
                wire::put_entry(head, key, value)?;
            }
            Ok::<(), CodecError>(())
        })?;
        dst.push(body);
        Ok(())
    }

    fn max_frame_size(&self) -> usize {
        self.options.max_frame_size
    }

    fn local_reply(&self, request: &Message<KvLayout>, reply: &LocalReply) -> Result<Message<KvLayout>, CodecError> {
        // Only the request's id is needed: kv has one wire variant. (A protocol with several
        // reads the request's own from its layout, never from what the codec decoded last.)
        error_reply(request.metadata.request_id, reply.kind, &reply.message)
    }

    fn heartbeat_reply(&self, ping: &Message<KvLayout>) -> Result<Message<KvLayout>, CodecError> {
        if ping.layout().kind != KvType::Ping {
            return Err(CodecError::Encode("only a ping is answered with a pong".into()));
        }
        build(KvType::Pong, ping.metadata.request_id, ResponseStatus::Ok, &[])
    }

    fn malformed_reply(&self, error: &CodecError) -> Option<Message<KvLayout>> {
        // Everything comes from the error: the bad request's id, and what was wrong with it.
        let CodecError::BadRequest { request_id, source, .. } = error else { return None };
        error_reply(*request_id, ReplyKind::BadRequest, &source.to_string()).ok()
    }
}

#[cfg(test)]
// Tests panic on purpose when an expectation fails.
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::FrameBuilder;
    use metaprotocol_core::MessageType;

    fn decode(bytes: &[u8]) -> Result<Option<Message<KvLayout>>, CodecError> {
        KvCodec::default().decode(&mut BytesMut::from(bytes))
    }

    #[test]
    fn decodes_metadata_as_spans_of_the_frame() {
        let bytes =
            FrameBuilder::request(42, "Greeter", "sayHello").header("batchjob", "true").body("hi").build().unwrap();
        let msg = decode(&bytes).unwrap().unwrap();
        let md = &msg.metadata;
        assert_eq!(md.message_type, MessageType::Request);
        assert_eq!(md.request_id, 42);
        assert_eq!(md.operation().to_string(), "Greeter/sayHello");
        assert_eq!(md.kvs.get_str("BatchJob"), Some("true"));
        assert_eq!(md.body_size, 2);
        assert_eq!(md.header_size as usize, bytes.len() - 2);
        let frame = msg.frame().as_ptr() as usize..msg.frame().as_ptr() as usize + msg.len();
        assert!(md.kvs.iter().all(|(_, v)| frame.contains(&(v.as_ptr() as usize))));
        assert_eq!(
            *msg.layout(),
            KvLayout { kind: KvType::Request, status: ResponseStatus::Ok, body_at: md.header_size }
        );
    }

    #[test]
    fn refuses_bad_magic_at_once() {
        assert!(matches!(decode(b"X"), Err(CodecError::Malformed { offset: 0, .. })));
        assert!(matches!(decode(b"KV\x02"), Err(CodecError::Unsupported(_))));
        assert!(decode(b"KV\x01").unwrap().is_none());
    }

    #[test]
    fn local_reply_carries_kind_and_message_and_needs_no_metadata() {
        let mut req = decode(&FrameBuilder::request(9, "S", "m").build().unwrap()).unwrap().unwrap();
        let _ = req.take_metadata();
        let reply = KvCodec::default()
            .local_reply(&req, &LocalReply::new(ReplyKind::UpstreamReset, "connection lost"))
            .unwrap();
        assert_eq!(reply.metadata.message_type, MessageType::Error);
        assert_eq!(reply.metadata.request_id, 9);
        assert_eq!(reply.metadata.kvs.get_str("error-kind"), Some("upstream_reset"));
        assert_eq!(reply.metadata.kvs.get_str("error-message"), Some("connection lost"));
        assert_eq!(decode(reply.frame()).unwrap().unwrap(), reply, "built as it decodes");
    }

    #[test]
    fn pings_get_pongs() {
        let ping = decode(&FrameBuilder::new(KvType::Ping, 5).build().unwrap()).unwrap().unwrap();
        assert_eq!(ping.metadata.message_type, MessageType::Ping);
        let pong = KvCodec::default().heartbeat_reply(&ping).unwrap();
        assert_eq!((pong.metadata.message_type, pong.metadata.request_id), (MessageType::Pong, 5));
        assert_eq!(decode(pong.frame()).unwrap().unwrap(), pong);
        assert!(KvCodec::default().heartbeat_reply(&pong).is_err());
    }

    #[test]
    fn a_request_with_a_broken_header_block_is_a_bad_request() {
        // A header block of 4 bytes holding an entry that claims a 9-byte key.
        let mut bytes = FrameBuilder::request(7, "S", "m").body("x").build().unwrap().to_vec();
        let good = bytes.clone();
        bytes[FIXED_HEADER] = 200;
        let mut codec = KvCodec::default();
        let mut buf = BytesMut::from(&bytes[..]);
        buf.extend_from_slice(&good);
        let err = codec.decode(&mut buf).unwrap_err();
        let CodecError::BadRequest { request_id: 7, frame, .. } = &err else { panic!("{err}") };
        assert_eq!(&frame[..], &bytes[..]);
        assert_eq!(buf.len(), good.len(), "the bad frame was consumed, the next one is intact");
        let reply = codec.malformed_reply(&err).unwrap();
        assert_eq!((reply.metadata.message_type, reply.metadata.request_id), (MessageType::Error, 7));
        assert_eq!(reply.metadata.kvs.get_str("error-kind"), Some("bad_request"));
        // The same block on a response is only an error: nobody waits for an answer to it.
        bytes[3] = KvType::Response as u8;
        assert!(matches!(decode(&bytes), Err(CodecError::Malformed { .. })));
    }

    #[test]
    fn oversized_length_is_refused_before_buffering() {
        let mut codec = KvCodec::new(KvOptions { max_frame_size: 1024 }).unwrap();
        let mut buf = BytesMut::from(&b"KV\x01\x00\x00\x00\x04\x00"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap_err(), CodecError::FrameTooLarge { declared: 1032, max: 1024 });
        assert!(buf.capacity() < 1024);
    }
}
