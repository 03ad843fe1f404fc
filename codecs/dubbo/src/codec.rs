//! [`DubboCodec`]: decode, splice-on-encode, request-id rewrite, error replies, heartbeats.

use bytes::{Bytes, BytesMut};
use metaprotocol_core::{Codec, CodecError, LocalReply, Message, Mutation, MutationOp, WireBuf, MAX_RESERVE};

use crate::attachments;
use crate::body;
use crate::factory::DubboOptions;
use crate::header::{self, FLAG_EVENT, FLAG_REQUEST, FLAG_TWO_WAY, HEADER_LEN, ID_OFFSET};
use crate::hessian;
use crate::layout::{Attachments, Body, DubboLayout, ResponseKind};
use crate::reply;

/// The Dubbo codec for one connection. It keeps no state between messages: cloning it is
/// copying its options.
#[derive(Clone, Debug, Default)]
pub struct DubboCodec {
    options: DubboOptions,
}

impl DubboCodec {
    /// A codec with `options`. The factory checks them first
    /// ([`DubboOptions::validate`]); a `max_frame_size` over
    /// [`MAX_FRAME_SIZE`](crate::header::MAX_FRAME_SIZE) is harmless here, since no Dubbo header
    /// can declare more.
    pub fn new(options: DubboOptions) -> Self {
        DubboCodec { options }
    }

    /// The options this codec runs with.
    pub fn options(&self) -> &DubboOptions {
        &self.options
    }

    /// Writes `message` unchanged, but for its request id.
    fn passthrough(message: &Message<DubboLayout>, dst: &mut WireBuf) -> Result<(), CodecError> {
        let frame = message.frame();
        if !message.request_id_changed() {
            dst.push(frame.clone());
            return Ok(());
        }
        dst.push_patched(frame, HEADER_LEN, ID_OFFSET, &message.metadata.request_id.to_be_bytes())
    }
}

impl DubboCodec {
    /// [`Codec::encode`] of a mutation that only adds keys the message does not carry
    /// ([`Mutation::is_append_only`]) to an untyped attachment map (`H` ... `Z`): the frame goes
    /// out as it is up to the map's `Z`, then the new entries and the `Z`, without reading the
    /// map. `None` when the message has no such map (the general path handles it).
    fn encode_appended(
        &self,
        message: &Message<DubboLayout>,
        attachments: Attachments,
        kind: Option<(ResponseKind, u32)>,
        mutation: &Mutation,
        dst: &mut WireBuf,
    ) -> Option<Result<(), CodecError>> {
        let Attachments::Map(span) = attachments else { return None };
        let frame = message.frame();
        let map = span.range();
        let (first, last) = (frame.get(map.start).copied()?, frame.get(map.end.checked_sub(1)?).copied()?);
        if first != b'H' || last != b'Z' || map.start >= map.end - 1 || map.end > frame.len() {
            return None;
        }
        // A response that has a map already says so in its kind: the kind stays as it is.
        let kind_end = match kind {
            Some((_, end)) => end as usize,
            None => HEADER_LEN,
        };
        if kind_end > map.start {
            return Some(Err(CodecError::Encode("inconsistent Dubbo layout".into())));
        }
        let mut added = 0usize;
        for op in mutation.ops() {
            let MutationOp::Set { key, value } = op else { return None };
            match (hessian::string_len(key), hessian::string_len(value)) {
                (Ok(k), Ok(v)) => added += k + v,
                (Err(e), _) | (_, Err(e)) => return Some(Err(e.into())),
            }
        }
        let body_len = frame.len() - HEADER_LEN + added;
        if HEADER_LEN + body_len > self.options.max_frame_size {
            return Some(Err(CodecError::Encode("the mutation makes the frame exceed the maximum frame size".into())));
        }
        let body_len = match header::body_length(body_len) {
            Ok(n) => n,
            Err(e) => return Some(Err(e)),
        };
        let Some(status) = frame.get(3).copied() else {
            return Some(Err(CodecError::Encode("frame shorter than a Dubbo header".into())));
        };
        let layout = message.layout();
        dst.push_built(|b| header::put(b, layout.flags, status, message.metadata.request_id, body_len));
        dst.push(frame.slice(HEADER_LEN..map.end - 1));
        let written = dst.push_built(|b| {
            for op in mutation.ops() {
                if let MutationOp::Set { key, value } = op {
                    hessian::write_string(b, key)?;
                    hessian::write_string(b, value)?;
                }
            }
            hessian::write_map_end(b);
            Ok::<(), CodecError>(())
        });
        if let Err(e) = written {
            return Some(Err(e));
        }
        dst.push(frame.slice(map.end..));
        Some(Ok(()))
    }
}

/// A frame refused from its header alone (too large): a two-way request still gets its status-40
/// reply, built from the header, before the connection closes.
fn refused_at_header(src: &[u8], error: CodecError) -> CodecError {
    let Some(head) = src.get(..HEADER_LEN) else { return error };
    let flags = head.get(2).copied().unwrap_or(0);
    let two_way_request =
        flags & (FLAG_REQUEST | FLAG_TWO_WAY) == FLAG_REQUEST | FLAG_TWO_WAY && flags & FLAG_EVENT == 0;
    if !two_way_request {
        return error;
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(head.get(ID_OFFSET..ID_OFFSET + 8).unwrap_or(&[0; 8]));
    CodecError::bad_request(u64::from_be_bytes(id), Bytes::copy_from_slice(head), error)
}

impl Codec for DubboCodec {
    type Layout = DubboLayout;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message<DubboLayout>>, CodecError> {
        let h = match header::parse(src, self.options.max_frame_size) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(None),
            Err(error @ CodecError::FrameTooLarge { .. }) => return Err(refused_at_header(src, error)),
            Err(error) => return Err(error),
        };
        let total = h.frame_len();
        if src.len() < total {
            src.reserve((total - src.len()).min(MAX_RESERVE));
            return Ok(None);
        }
        let frame = src.split_to(total).freeze();
        if h.is_request() && !h.is_event() && !self.options.accepts_serialization(h.serialization()) {
            let error = CodecError::Unsupported(
                format!(
                    "serialization {} (this listener decodes Hessian 2, and forwards {:?} untouched: codec option \
                     forward_serializations)",
                    h.serialization(),
                    self.options.forward_serializations
                )
                .into(),
            );
            return Err(if h.is_two_way() { CodecError::bad_request(h.request_id, frame, error) } else { error });
        }
        body::decode(frame, &h, self.options.max_depth)
    }

    fn encode(
        &mut self,
        message: &Message<DubboLayout>,
        mutation: &Mutation,
        dst: &mut WireBuf,
    ) -> Result<(), CodecError> {
        if mutation.is_empty() {
            return Self::passthrough(message, dst);
        }
        let layout = message.layout();
        let (attachments, kind) = match layout.body {
            Body::Request(r) => (r.attachments, None),
            Body::Response(r) => (r.attachments, Some((r.kind, r.kind_end))),
            Body::ErrorMessage | Body::Event | Body::NotDecoded => {
                tracing::debug!(ops = mutation.len(), "dubbo: this message cannot carry attachments; mutation ignored");
                return Self::passthrough(message, dst);
            }
        };
        let frame = message.frame();
        if mutation.is_append_only() {
            if let Some(result) = self.encode_appended(message, attachments, kind, mutation, dst) {
                return result;
            }
        }
        let Some(map) = attachments::plan(frame, attachments, mutation, self.options.max_depth)? else {
            // Nothing to write and nothing was there: the frame goes out as it came (with its id).
            return Self::passthrough(message, dst);
        };
        let span = attachments.span().range();
        // A response gains attachments by moving to the body kind "with attachments" (1 -> 4, ...).
        let (kind, middle_start) = match kind {
            Some((kind, end)) => (Some(kind.with_attachments()), end as usize),
            None => (None, HEADER_LEN),
        };
        if middle_start > span.start || span.start > span.end || span.end > frame.len() {
            return Err(CodecError::Encode("inconsistent Dubbo layout".into()));
        }
        let kind_len = match kind {
            Some(k) => hessian::int_len(k.to_wire()),
            None => 0,
        };
        let (middle, tail) = (frame.slice(middle_start..span.start), frame.slice(span.end..));
        let body_len = kind_len + middle.len() + map.len() + tail.len();
        if HEADER_LEN + body_len > self.options.max_frame_size {
            return Err(CodecError::Encode("the mutation makes the frame exceed the maximum frame size".into()));
        }
        let body_len = header::body_length(body_len)?;
        let status = frame.get(3).copied().ok_or(CodecError::Encode("frame shorter than a Dubbo header".into()))?;
        dst.push_built(|b| {
            header::put(b, layout.flags, status, message.metadata.request_id, body_len);
            if let Some(k) = kind {
                hessian::write_int(b, k.to_wire());
            }
        });
        dst.push(middle);
        dst.push_built(|b| map.write(frame, b))?;
        dst.push(tail);
        Ok(())
    }

    fn max_frame_size(&self) -> usize {
        self.options.max_frame_size
    }

    fn local_reply(
        &self,
        request: &Message<DubboLayout>,
        reply: &LocalReply,
    ) -> Result<Message<DubboLayout>, CodecError> {
        reply::local(request, reply)
    }

    fn heartbeat_reply(&self, ping: &Message<DubboLayout>) -> Result<Message<DubboLayout>, CodecError> {
        reply::pong(ping)
    }

    /// A two-way request whose header parsed but whose body did not gets a status 40 (bad
    /// request) reply carrying the parse error.
    fn malformed_reply(&self, error: &CodecError) -> Option<Message<DubboLayout>> {
        reply::malformed(error)
    }

    /// A two-way request refused before its body arrived is named by its header: it gets its
    /// status-40 reply.
    fn refuse_partial(&self, src: &[u8], reason: CodecError) -> CodecError {
        refused_at_header(src, reason)
    }

    /// Dubbo's readonly event (`R`), as a Java provider sends it when it shuts down: clients stop
    /// choosing this address for new requests.
    fn goaway(&self) -> Option<Message<DubboLayout>> {
        reply::readonly_event().ok()
    }

    /// Dubbo's heartbeat: a two-way event request with a null body, which a provider answers
    /// with an event response (a pong) carrying the same id.
    fn health_check_request(&self) -> Option<Message<DubboLayout>> {
        reply::ping().ok()
    }
}
