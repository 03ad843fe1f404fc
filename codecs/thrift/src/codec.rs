//! [`ThriftCodec`]: decoding per transport, splicing on encode, sequence-id rewrite and
//! TApplicationException replies.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use metaprotocol_core::{
    check_frame_size, Codec, CodecError, ConfigError, KeyValues, LocalReply, Message, MessageType, Metadata, Mutation,
    ResponseStatus, Text, WireBuf, MAX_RESERVE,
};

use crate::factory::ThriftOptions;
use crate::layout::{Framing, ThriftLayout};
use crate::protocol::{self, message_type, Protocol};
use crate::reply::{self, app_error, size};
use crate::skip::Skipper;
use crate::transport::{self, HeaderBlock, Transport, HEADER_SEQID_AT};

/// The Thrift codec for one connection.
///
/// Its only state is what a connection fixes once: the transport (and, for framed and unframed
/// transports, the protocol) detected from the first bytes, and an unframed scan in progress.
/// Everything a message needs to be encoded or answered travels in its [`ThriftLayout`].
#[derive(Clone, Debug, Default)]
pub struct ThriftCodec {
    options: ThriftOptions,
    /// The connection's transport, once known (fixed by options or detected).
    transport: Option<Transport>,
    /// The connection's protocol on framed and unframed transports, once known.
    protocol: Option<Protocol>,
    /// The unframed scan in progress: it resumes where it stopped when more bytes arrive.
    scan: Option<Skipper>,
}

/// The names a message carries, recorded in its key/values.
pub(crate) struct Names {
    /// The multiplexed service (the part before `:`), if any.
    pub(crate) service: Option<Text>,
    /// The method (the part after `:`, or the whole name).
    pub(crate) method: Text,
    /// Where the method lies in the frame.
    pub(crate) method_range: Range<usize>,
}

/// Records the wire name at `name` of `kvs`'s frame: `method` first, then `service` for a
/// multiplexed `Service:method` name, so that these keys are found before any THeader info header
/// of the same name.
pub(crate) fn record_name(kvs: &mut KeyValues, name: Range<usize>) -> Result<Names, CodecError> {
    let colon = kvs.frame().get(name.clone()).and_then(|n| n.iter().position(|b| *b == b':'));
    let (service, method_range) = match colon {
        Some(i) => (Some(kvs.span(name.start..name.start + i)?), name.start + i + 1..name.end),
        None => (None, name),
    };
    let method = kvs.span(method_range.clone())?;
    kvs.push(Text::from_static("method"), method);
    if let Some(s) = service {
        kvs.push(Text::from_static("service"), s);
    }
    Ok(Names { service, method, method_range })
}

/// The request id of sequence id `seqid`: its unsigned 32-bit pattern.
pub(crate) fn wire_id(seqid: i32) -> u64 {
    u64::from(u32::from_be_bytes(seqid.to_be_bytes()))
}

/// The sequence id that carries request id `id`.
fn seqid_of(id: u64) -> Result<i32, CodecError> {
    let id = u32::try_from(id).map_err(|_| CodecError::RequestIdOutOfRange { id, max: u64::from(u32::MAX) })?;
    Ok(i32::from_be_bytes(id.to_be_bytes()))
}

fn shift(e: CodecError, by: usize) -> CodecError {
    match e {
        CodecError::Malformed { offset, reason } => CodecError::Malformed { offset: offset + by, reason },
        other => other,
    }
}

fn inconsistent() -> CodecError {
    CodecError::Encode("the Thrift layout does not fit the frame".into())
}

impl ThriftCodec {
    /// A codec with `options`, refused when they cannot work (see [`ThriftOptions::validate`]).
    pub fn new(options: ThriftOptions) -> Result<Self, ConfigError> {
        options.validate()?;
        Ok(ThriftCodec {
            transport: options.transport.fixed(),
            protocol: options.protocol.fixed(),
            options,
            scan: None,
        })
    }

    /// The options the codec was made with.
    pub fn options(&self) -> &ThriftOptions {
        &self.options
    }

    fn payload_protocol(&self, first: Option<u8>) -> Result<Protocol, CodecError> {
        if let Some(p) = self.protocol {
            return Ok(p);
        }
        first
            .and_then(|b| Protocol::detect(b, self.options.lax_binary))
            .ok_or_else(|| CodecError::malformed(0, "not a Thrift binary or compact message"))
    }

    fn too_big(&self, src: &BytesMut) -> Result<(), CodecError> {
        check_frame_size(src.len() as u64, self.options.max_frame_size).map(|_| ())
    }

    /// A whole length-prefixed frame at the front of `src`, or `Ok(None)`.
    fn cut_length_prefixed(&self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        let Some(len) = src.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()) else { return Ok(None) };
        let total = check_frame_size(u64::from(u32::from_be_bytes(len)) + 4, self.options.max_frame_size)?;
        if src.len() < total {
            src.reserve((total - src.len()).min(MAX_RESERVE));
            return Ok(None);
        }
        Ok(Some(src.split_to(total).freeze()))
    }

    /// A whole unframed message at the front of `src`, found by skipping its struct, or `Ok(None)`.
    fn cut_unframed(&mut self, protocol: Protocol, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        let lax = self.options.lax_binary;
        if self.scan.is_none() {
            let Some(hlen) = protocol::header_len(protocol, src, lax) else {
                return self.too_big(src).map(|_| None);
            };
            protocol::read_header(protocol, src, lax)?;
            let (depth, containers) = (self.options.max_depth, self.options.max_container_size);
            self.scan = Some(Skipper::new(protocol, hlen, depth, containers));
        }
        let Some(scan) = self.scan.as_mut() else { return Ok(None) };
        match scan.run(src)? {
            Some(end) => {
                self.scan = None;
                check_frame_size(end as u64, self.options.max_frame_size)?;
                Ok(Some(src.split_to(end).freeze()))
            }
            None => self.too_big(src).map(|_| None),
        }
    }

    /// The framing and protocol of a length-prefixed `frame` of `transport`, with the THeader
    /// block when there is one. `fixed` is the protocol of a framed connection, when known.
    fn open(
        frame: &[u8],
        transport: Transport,
        fixed: Option<Protocol>,
        lax: bool,
    ) -> Result<(Framing, Protocol, Option<HeaderBlock>), CodecError> {
        if transport == Transport::Header {
            let block = transport::read_header_block(frame)?;
            let payload_at = size(block.payload_at)?;
            return Ok((Framing::Header { flags: block.flags, payload_at }, block.protocol, Some(block)));
        }
        let protocol = fixed
            .or_else(|| frame.get(4).and_then(|b| Protocol::detect(*b, lax)))
            .ok_or_else(|| CodecError::malformed(4, "not a Thrift binary or compact message"))?;
        Ok((Framing::Framed, protocol, None))
    }

    /// The message in a whole `frame`.
    fn message(
        &self,
        frame: Bytes,
        framing: Framing,
        protocol: Protocol,
        block: Option<&HeaderBlock>,
    ) -> Result<Message<ThriftLayout>, CodecError> {
        let msg_at = framing.message_at();
        let msg = frame.get(msg_at..).unwrap_or(&[]);
        let h = protocol::read_header(protocol, msg, self.options.lax_binary).map_err(|e| shift(e, msg_at))?;
        let request_id = wire_id(h.seqid);
        let header_size = msg_at + h.end;
        let body = frame.get(header_size..).unwrap_or(&[]);
        let (message_type, response_status) = match h.kind {
            message_type::CALL => (MessageType::Request, ResponseStatus::Ok),
            message_type::ONEWAY => (MessageType::Oneway, ResponseStatus::Ok),
            message_type::EXCEPTION => (MessageType::Error, ResponseStatus::Error),
            _ => match protocol::first_field_id(protocol, body) {
                Ok(Some(id)) if id >= 1 => (MessageType::Response, ResponseStatus::BusinessException),
                _ => (MessageType::Response, ResponseStatus::Ok),
            },
        };
        let mut kvs = KeyValues::over(frame.clone(), 4);
        let names = record_name(&mut kvs, msg_at + h.name.start..msg_at + h.name.end)?;
        if let Some(block) = block {
            transport::read_info(block, &mut kvs)?;
        }
        // A call's body is forwarded unread, but on a framed transport its bounds are checked
        // (cheaply) so that a call whose header parsed and whose body cannot be a struct is
        // answered with PROTOCOL_ERROR. Unframed bodies were already walked to find their end.
        if message_type == MessageType::Request && framing != Framing::Unframed {
            if let Err(e) = protocol::check_struct_bounds(protocol, body) {
                drop(kvs);
                return Err(CodecError::bad_request(request_id, frame, shift(e, header_size)));
            }
        }
        let seqid_at = msg_at + h.seqid_at.start..msg_at + h.seqid_at.end;
        let layout = ThriftLayout::new(framing, protocol, seqid_at, names.method_range)?;
        let metadata = Metadata {
            message_type,
            request_id,
            response_status,
            header_size: size(header_size)?,
            body_size: size(frame.len().saturating_sub(header_size))?,
            service: names.service,
            method: Some(names.method),
            kvs,
            ..Metadata::default()
        };
        Ok(Message::new(metadata, frame, layout))
    }

    /// The THeader info block of `frame` with `mutation` applied, as spans of the frame plus the
    /// values the mutation set.
    fn mutated_info(frame: &Bytes, mutation: &Mutation) -> Result<KeyValues, CodecError> {
        let block = transport::read_header_block(frame)?;
        let mut info = KeyValues::over(frame.clone(), 4);
        transport::read_info(&block, &mut info)?;
        mutation.apply_to(&mut info);
        Ok(info)
    }
}

impl Codec for ThriftCodec {
    type Layout = ThriftLayout;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message<ThriftLayout>>, CodecError> {
        if src.is_empty() {
            return Ok(None);
        }
        let transport = match self.transport {
            Some(t) => t,
            None => match Transport::detect(src)? {
                Some(t) => {
                    self.transport = Some(t);
                    t
                }
                None => return Ok(None),
            },
        };
        let lax = self.options.lax_binary;
        let (frame, framing, protocol, block) = if transport == Transport::Unframed {
            let protocol = self.payload_protocol(src.first().copied())?;
            let Some(frame) = self.cut_unframed(protocol, src)? else { return Ok(None) };
            (frame, Framing::Unframed, protocol, None)
        } else {
            let Some(frame) = self.cut_length_prefixed(src)? else { return Ok(None) };
            let (framing, protocol, block) = Self::open(&frame, transport, self.protocol, lax)?;
            (frame, framing, protocol, block)
        };
        if transport != Transport::Header && self.protocol.is_none() {
            self.protocol = Some(protocol);
        }
        self.message(frame, framing, protocol, block.as_ref()).map(Some)
    }

    fn encode(
        &mut self,
        message: &Message<ThriftLayout>,
        mutation: &Mutation,
        dst: &mut WireBuf,
    ) -> Result<(), CodecError> {
        let (frame, layout) = (message.frame(), message.layout());
        let framing = layout.framing();
        let mutate = !mutation.is_empty() && matches!(framing, Framing::Header { .. });
        if !mutation.is_empty() && !mutate {
            tracing::debug!(
                ops = mutation.len(),
                "thrift: framed and unframed transports carry no headers; mutation ignored"
            );
        }
        if !mutate && !message.request_id_changed() {
            dst.push(frame.clone());
            return Ok(());
        }
        // Re-encode the head (transport prefix, message header up to a new sequence id) and
        // splice the rest of the frame.
        let seqid = seqid_of(message.metadata.request_id)?;
        let (protocol, msg_at, seq) = (layout.protocol(), layout.message_at(), layout.seqid());
        let before_seqid = frame.get(msg_at..seq.start()).ok_or_else(inconsistent)?;
        let rest = frame.get(seq.end()..).map(|_| frame.slice(seq.end()..)).ok_or_else(inconsistent)?;
        let seqid_len = match protocol {
            Protocol::Binary => 4,
            Protocol::Compact => protocol::varint_len(wire_id(seqid)),
        };
        let payload_len = before_seqid.len() + seqid_len + rest.len();
        let info = if mutate { Some(Self::mutated_info(frame, mutation)?) } else { None };
        // The transport prefix: rebuilt around the mutated info, else the frame's own (framed:
        // the length; THeader: length to header block, with the length and sequence id patched).
        let prefix = frame.get(..msg_at).ok_or_else(inconsistent)?;
        let prefix_len = info.as_ref().map_or(msg_at, |info| transport::header_prefix_len(protocol, info));
        let total = prefix_len + payload_len;
        if total > self.options.max_frame_size {
            return Err(CodecError::Encode("the frame would exceed the maximum frame size".into()));
        }
        let length = u32::try_from(total.saturating_sub(4)).map_err(|_| inconsistent())?.to_be_bytes();
        dst.push_built(|buf| {
            match (framing, &info) {
                (Framing::Unframed, _) => {}
                (Framing::Framed, _) => buf.put_slice(&length),
                (Framing::Header { flags, .. }, Some(info)) => {
                    // Checks every size before writing: on error the chunk stays empty.
                    transport::put_header_prefix(buf, flags, seqid, protocol, info, payload_len)?
                }
                (Framing::Header { .. }, None) => {
                    let start = buf.len();
                    buf.put_slice(prefix);
                    if let Some(len) = buf.get_mut(start..start + 4) {
                        len.copy_from_slice(&length);
                    }
                    let at = start + HEADER_SEQID_AT;
                    if let Some(id) = buf.get_mut(at..at + 4) {
                        id.copy_from_slice(&seqid.to_be_bytes());
                    }
                }
            }
            buf.put_slice(before_seqid);
            protocol::put_seqid(buf, protocol, seqid);
            Ok::<(), CodecError>(())
        })?;
        dst.push(rest);
        Ok(())
    }

    fn max_frame_size(&self) -> usize {
        self.options.max_frame_size
    }

    fn request_id_limit(&self) -> u64 {
        u64::from(u32::MAX)
    }

    fn local_reply(
        &self,
        request: &Message<ThriftLayout>,
        reply: &LocalReply,
    ) -> Result<Message<ThriftLayout>, CodecError> {
        let layout = request.layout();
        let method = request.frame().get(layout.method().range()).ok_or_else(inconsistent)?;
        let seqid = seqid_of(request.metadata.request_id)?;
        let text = format!("metaproxy {}: {}", reply.kind, reply.message);
        reply::exception(layout.framing(), layout.protocol(), method, seqid, &text, reply::app_error_type(reply.kind))
    }

    fn heartbeat_reply(&self, _ping: &Message<ThriftLayout>) -> Result<Message<ThriftLayout>, CodecError> {
        Err(CodecError::Unsupported("Thrift has no heartbeats".into()))
    }

    /// Answers a [`CodecError::BadRequest`] (a call on a framed or THeader transport whose header
    /// parsed but whose body cannot be a struct) with a PROTOCOL_ERROR TApplicationException, in
    /// the framing and protocol its frame shows. Nothing else is answered.
    /// Transport × protocol: framed, unframed or THeader, binary or compact.
    fn wire_variant(&self, message: &Message<ThriftLayout>) -> u8 {
        let layout = message.layout();
        let transport = match layout.framing() {
            Framing::Framed => 0,
            Framing::Unframed => 1,
            Framing::Header { .. } => 2,
        };
        let protocol = match layout.protocol() {
            Protocol::Binary => 0,
            Protocol::Compact => 1,
        };
        transport * 2 + protocol
    }

    fn malformed_reply(&self, error: &CodecError) -> Option<Message<ThriftLayout>> {
        let CodecError::BadRequest { request_id, frame, source } = error else { return None };
        let transport = match self.options.transport.fixed() {
            Some(Transport::Unframed) => return None,
            Some(t) => t,
            None => Transport::of_length_prefixed(frame),
        };
        let lax = self.options.lax_binary;
        let (framing, protocol, _) = Self::open(frame, transport, self.options.protocol.fixed(), lax).ok()?;
        let msg = frame.get(framing.message_at()..)?;
        let h = protocol::read_header(protocol, msg, lax).ok()?;
        if h.kind != message_type::CALL || wire_id(h.seqid) != *request_id {
            return None;
        }
        let name = msg.get(h.name)?;
        let method = match name.iter().position(|b| *b == b':') {
            Some(i) => name.get(i + 1..)?,
            None => name,
        };
        let text = format!("metaproxy bad_request: {source}");
        reply::exception(framing, protocol, method, h.seqid, &text, app_error::PROTOCOL_ERROR).ok()
    }
}
