//! [`DubboCodec`]: decode, splice-on-encode, request-id rewrite, error replies, heartbeats.

use bytes::{BufMut, Bytes, BytesMut};
use metaprotocol_core::{
    Codec, CodecError, Layout, LocalReply, Message, MessageType, Metadata, Mutation, ReplyKind, ResponseStatus, WireBuf,
};

use crate::body::{
    self, SLOT_ATTACH_END, SLOT_ATTACH_START, SLOT_FLAGS, SLOT_HAS_MAP, SLOT_KIND, SLOT_KIND_END, SLOT_KIND_START,
    SLOT_MUTABLE,
};
use crate::factory::DubboOptions;
use crate::header::{self, small_number, status, Header, FLAG_EVENT, FLAG_REQUEST, HEADER_LEN, HESSIAN2, ID_OFFSET};
use crate::hessian;

/// The Dubbo codec for one connection.
#[derive(Clone, Debug, Default)]
pub struct DubboCodec {
    options: DubboOptions,
    /// The header of the last request whose body failed to decode, for [`Codec::malformed_reply`].
    failed: Option<Header>,
}

impl DubboCodec {
    /// A codec with `options`.
    pub fn new(options: DubboOptions) -> Self {
        DubboCodec { options, failed: None }
    }

    fn metadata(&self, frame: &Bytes, h: &Header) -> Result<(Metadata, Layout), CodecError> {
        let layout = Layout::new().with(SLOT_FLAGS, u32::from(h.flags));
        let bare = |message_type| Metadata {
            message_type,
            request_id: h.request_id,
            header_size: HEADER_LEN as u32,
            body_size: h.body_len as u32,
            ..Metadata::default()
        };
        if h.is_event() {
            let mut m = bare(MessageType::Heartbeat);
            m.kvs.push(
                Bytes::from_static(b"event"),
                Bytes::from_static(if h.is_request() { b"request" } else { b"response" }),
            );
            return Ok((m, layout));
        }
        if h.serialization() != HESSIAN2 {
            // Another serialization: header-level metadata only, marked as such; forwarded untouched.
            let message_type = match (h.is_request(), h.is_two_way(), h.status == status::OK) {
                (true, true, _) => MessageType::Request,
                (true, false, _) => MessageType::Oneway,
                (false, _, true) => MessageType::Response,
                (false, _, false) => MessageType::Error,
            };
            let mut m = bare(message_type);
            if message_type == MessageType::Error {
                m.response_status = ResponseStatus::Error;
            }
            m.kvs.push(Bytes::from_static(b"serialization"), Bytes::from_static(small_number(h.serialization())));
            m.kvs.push(Bytes::from_static(b"body"), Bytes::from_static(b"not decoded: serialization is not hessian2"));
            return Ok((m, layout));
        }
        if h.is_request() {
            body::request(frame, h, self.options.max_depth)
        } else {
            body::response(frame, h, self.options.max_depth)
        }
    }

    /// Decodes a frame this codec built itself (replies), through the same path as wire data.
    fn decode_built(&self, frame: BytesMut) -> Result<Message, CodecError> {
        let mut buf = frame;
        self.clone().decode(&mut buf)?.ok_or(CodecError::Encode("built an incomplete Dubbo frame".into()))
    }
}

impl Codec for DubboCodec {
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        let Some(h) = header::parse(src, self.options.max_frame_size)? else { return Ok(None) };
        let total = h.frame_len();
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        let frame = src.split_to(total).freeze();
        let (metadata, layout) = self.metadata(&frame, &h).inspect_err(|_| {
            if h.is_request() && h.is_two_way() && !h.is_event() {
                self.failed = Some(h);
            }
        })?;
        Ok(Some(Message::new(metadata, frame, layout)))
    }

    fn encode(&mut self, message: &Message, mutation: &Mutation, dst: &mut WireBuf) -> Result<(), CodecError> {
        let frame = message.frame();
        let layout = message.layout();
        let head = frame.get(..HEADER_LEN).ok_or(CodecError::Encode("frame shorter than a Dubbo header".into()))?;
        let mutable = layout.get(SLOT_MUTABLE) == 1;
        if mutation.is_empty() || !mutable {
            if !mutation.is_empty() {
                tracing::debug!(ops = mutation.len(), "dubbo: this message cannot carry attachments; mutation ignored");
            }
            if !message.request_id_changed() {
                dst.push(frame.clone());
                return Ok(());
            }
            return dst.push_patched(frame, HEADER_LEN, ID_OFFSET, &message.metadata.request_id.to_be_bytes());
        }
        let (start, end) = (layout.offset(SLOT_ATTACH_START), layout.offset(SLOT_ATTACH_END));
        if start < HEADER_LEN || end < start || end > frame.len() {
            return Err(CodecError::Encode("inconsistent Dubbo layout".into()));
        }
        let Some(map) = crate::attachments::rewrite(
            frame,
            start..end,
            layout.get(SLOT_HAS_MAP) == 1,
            mutation,
            self.options.max_depth,
        )?
        else {
            // Nothing to write and nothing was there: the frame goes out as it came (with its id).
            return self.encode(message, &Mutation::new(), dst);
        };
        // A response gains attachments by moving to the body kind "with attachments" (1 -> 4, ...).
        let flags = head.get(2).copied().unwrap_or(0);
        let mut kind_bytes = BytesMut::new();
        let (mut middle_start, is_response) = (HEADER_LEN, flags & FLAG_REQUEST == 0);
        if is_response {
            let kind = layout.get(SLOT_KIND) as i32;
            let new_kind = if kind <= body::kind::NULL_VALUE { kind + 3 } else { kind };
            hessian::write_int(&mut kind_bytes, new_kind);
            middle_start = layout.offset(SLOT_KIND_END);
            if layout.offset(SLOT_KIND_START) != HEADER_LEN {
                return Err(CodecError::Encode("inconsistent Dubbo response layout".into()));
            }
        }
        let middle = frame.slice(middle_start..start);
        let tail = frame.slice(end..);
        let body_len = kind_bytes.len() + middle.len() + map.len() + tail.len();
        let mut out = BytesMut::with_capacity(HEADER_LEN + kind_bytes.len());
        header::write(&mut out, flags, head.get(3).copied().unwrap_or(0), message.metadata.request_id, body_len)?;
        out.put_slice(&kind_bytes);
        if HEADER_LEN + body_len > self.options.max_frame_size {
            return Err(CodecError::Encode("the mutation makes the frame exceed the maximum frame size".into()));
        }
        dst.push(out.freeze());
        dst.push(middle);
        dst.push(map.freeze());
        dst.push(tail);
        Ok(())
    }

    fn max_frame_size(&self) -> usize {
        self.options.max_frame_size
    }

    fn local_reply(&self, request: &Metadata, reply: &LocalReply) -> Result<Message, CodecError> {
        let code = match reply.kind {
            ReplyKind::RouteNotFound => status::SERVICE_NOT_FOUND,
            ReplyKind::Timeout => status::SERVER_TIMEOUT,
            ReplyKind::OverLimit => status::SERVER_THREADPOOL_EXHAUSTED,
            ReplyKind::BadRequest => status::BAD_REQUEST,
            _ => status::SERVER_ERROR,
        };
        let text = format!("metaproxy {}: {} ({})", reply.kind, reply.message, request.operation());
        let mut body = BytesMut::with_capacity(text.len() + 3);
        hessian::write_string(&mut body, text.as_bytes())?;
        let mut frame = BytesMut::with_capacity(HEADER_LEN + body.len());
        header::write(&mut frame, HESSIAN2, code, request.request_id, body.len())?;
        frame.put_slice(&body);
        self.decode_built(frame)
    }

    fn heartbeat_reply(&self, heartbeat: &Message) -> Result<Option<Message>, CodecError> {
        let flags = heartbeat.layout().get(SLOT_FLAGS) as u8;
        let two_way_request = flags & FLAG_REQUEST != 0 && flags & header::FLAG_TWO_WAY != 0;
        if heartbeat.metadata.message_type != MessageType::Heartbeat || !two_way_request {
            return Ok(None);
        }
        let mut frame = BytesMut::with_capacity(HEADER_LEN + 1);
        header::write(
            &mut frame,
            FLAG_EVENT | (flags & header::SERIALIZATION_MASK),
            status::OK,
            heartbeat.metadata.request_id,
            1,
        )?;
        hessian::write_null(&mut frame);
        self.decode_built(frame).map(Some)
    }

    fn request_id_limit(&self) -> u64 {
        u64::MAX
    }

    /// A request whose header parsed but whose body did not gets a status 40 (bad request) reply.
    fn malformed_reply(&self, error: &CodecError) -> Option<Message> {
        let h = self.failed?;
        let request = Metadata::new(MessageType::Request, h.request_id);
        self.local_reply(&request, &LocalReply::new(ReplyKind::BadRequest, error.to_string())).ok()
    }
}
