//! [`ThriftCodec`]: decoding per transport, splicing on encode, sequence-id rewrite and
//! TApplicationException replies.

use bytes::{BufMut, Bytes, BytesMut};
use metaprotocol_core::{
    check_frame_size, Codec, CodecError, KeyValues, Layout, LocalReply, Message, MessageType, Metadata, Mutation,
    ReplyKind, ResponseStatus, WireBuf,
};

use crate::factory::{ProtocolOption, ThriftOptions, TransportOption};
use crate::protocol::{self, message_type, Protocol};
use crate::skip::Skipper;
use crate::transport::{self, Transport};

const SLOT_TRANSPORT: usize = 0;
const SLOT_PROTOCOL: usize = 1;
const SLOT_MSG_AT: usize = 2;
const SLOT_SEQID_AT: usize = 3;
const SLOT_SEQID_END: usize = 4;
const SLOT_FLAGS: usize = 5;

/// TApplicationException types.
pub mod app_error {
    /// Unknown.
    pub const UNKNOWN: i32 = 0;
    /// The method is not known (no route).
    pub const UNKNOWN_METHOD: i32 = 1;
    /// Something failed while processing.
    pub const INTERNAL_ERROR: i32 = 6;
    /// The request could not be read.
    pub const PROTOCOL_ERROR: i32 = 7;
}

/// The Thrift codec for one connection.
#[derive(Clone, Debug, Default)]
pub struct ThriftCodec {
    options: ThriftOptions,
    /// The connection's transport and protocol, once known (fixed by options or detected).
    transport: Option<Transport>,
    protocol: Option<Protocol>,
    /// THeader flags of the last message, for replies in the same form.
    header_flags: u16,
    /// The protocol of the last message (THeader may carry either), for replies.
    last_protocol: Option<Protocol>,
    /// The unframed scan in progress: it resumes where it stopped when more bytes arrive.
    scan: Option<Skipper>,
}

/// A whole frame and what its transport said about it.
struct Framed {
    frame: Bytes,
    /// Where the message starts.
    msg_at: usize,
    protocol: Protocol,
    /// THeader flags (0 for other transports).
    flags: u16,
    /// THeader info headers (empty for other transports).
    headers: KeyValues,
}

fn transport_code(t: Transport) -> u32 {
    match t {
        Transport::Framed => 0,
        Transport::Unframed => 1,
        Transport::Header => 2,
    }
}

fn protocol_of(code: u32) -> Protocol {
    if code == 1 {
        Protocol::Compact
    } else {
        Protocol::Binary
    }
}

impl ThriftCodec {
    /// A codec with `options`.
    pub fn new(options: ThriftOptions) -> Self {
        let transport = match options.transport {
            TransportOption::Auto => None,
            TransportOption::Framed => Some(Transport::Framed),
            TransportOption::Unframed => Some(Transport::Unframed),
            TransportOption::Header => Some(Transport::Header),
        };
        let protocol = match options.protocol {
            ProtocolOption::Auto => None,
            ProtocolOption::Binary => Some(Protocol::Binary),
            ProtocolOption::Compact => Some(Protocol::Compact),
        };
        ThriftCodec { options, transport, protocol, header_flags: 0, last_protocol: None, scan: None }
    }

    fn payload_protocol(&self, first: Option<u8>) -> Result<Protocol, CodecError> {
        if let Some(p) = self.protocol {
            return Ok(p);
        }
        first
            .and_then(|b| Protocol::detect(b, self.options.lax_binary))
            .ok_or_else(|| CodecError::malformed(0, "not a Thrift binary or compact message"))
    }

    /// A whole frame for `transport` at the front of `src`, or `Ok(None)`.
    fn frame(&mut self, transport: Transport, src: &mut BytesMut) -> Result<Option<Framed>, CodecError> {
        match transport {
            Transport::Framed | Transport::Header => {
                let Some(len) = src.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()) else { return Ok(None) };
                let len = u32::from_be_bytes(len);
                let total = check_frame_size(u64::from(len) + 4, self.options.max_frame_size)?;
                if src.len() < total {
                    src.reserve(total - src.len());
                    return Ok(None);
                }
                let frame = src.split_to(total).freeze();
                if transport == Transport::Framed {
                    let p = self.payload_protocol(frame.get(4).copied())?;
                    Ok(Some(Framed { frame, msg_at: 4, protocol: p, flags: 0, headers: KeyValues::new() }))
                } else {
                    let h = transport::read_header_block(&frame)?;
                    self.header_flags = h.flags;
                    Ok(Some(Framed {
                        frame,
                        msg_at: h.payload_at,
                        protocol: h.protocol,
                        flags: h.flags,
                        headers: h.info,
                    }))
                }
            }
            Transport::Unframed => {
                let p = self.payload_protocol(src.first().copied())?;
                if self.scan.is_none() {
                    let Some(hlen) = protocol::header_len(p, src, self.options.lax_binary) else {
                        return self.too_big(src).map(|_| None);
                    };
                    protocol::read_header(p, src, self.options.lax_binary)?;
                    self.scan = Some(Skipper::new(p, hlen, self.options.max_depth, self.options.max_container_size));
                }
                let Some(scan) = self.scan.as_mut() else { return Ok(None) };
                match scan.run(src)? {
                    Some(end) => {
                        self.scan = None;
                        check_frame_size(end as u64, self.options.max_frame_size)?;
                        let frame = src.split_to(end).freeze();
                        Ok(Some(Framed { frame, msg_at: 0, protocol: p, flags: 0, headers: KeyValues::new() }))
                    }
                    None => self.too_big(src).map(|_| None),
                }
            }
        }
    }

    fn too_big(&self, src: &BytesMut) -> Result<(), CodecError> {
        check_frame_size(src.len() as u64, self.options.max_frame_size).map(|_| ())
    }

    fn reply_frame(
        &self,
        protocol: Protocol,
        method: &[u8],
        seqid: i32,
        message: &str,
        kind: i32,
    ) -> Result<Bytes, CodecError> {
        let mut payload = BytesMut::with_capacity(64 + message.len());
        protocol::put_header(&mut payload, protocol, message_type::EXCEPTION, method, seqid);
        match protocol {
            Protocol::Binary => {
                payload.put_u8(11);
                payload.put_i16(1);
                payload.put_u32(message.len() as u32);
                payload.put_slice(message.as_bytes());
                payload.put_u8(8);
                payload.put_i16(2);
                payload.put_i32(kind);
                payload.put_u8(0);
            }
            Protocol::Compact => {
                payload.put_u8(0x18);
                protocol::put_varint(&mut payload, message.len() as u64);
                payload.put_slice(message.as_bytes());
                payload.put_u8(0x15);
                protocol::put_varint(&mut payload, protocol::zigzag32(kind));
                payload.put_u8(0);
            }
        }
        let mut frame = BytesMut::with_capacity(payload.len() + 32);
        match self.transport.unwrap_or(Transport::Framed) {
            Transport::Framed => frame.put_u32(payload.len() as u32),
            Transport::Unframed => {}
            Transport::Header => transport::put_header_prefix(
                &mut frame,
                self.header_flags,
                seqid,
                protocol,
                &KeyValues::new(),
                payload.len(),
            )?,
        }
        frame.put_slice(&payload);
        Ok(frame.freeze())
    }

    fn decode_own(&self, frame: Bytes) -> Result<Message, CodecError> {
        let mut c = self.clone();
        c.scan = None;
        c.decode(&mut BytesMut::from(&frame[..]))?.ok_or(CodecError::Encode("built an incomplete Thrift frame".into()))
    }
}

impl Codec for ThriftCodec {
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
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
        let Some(Framed { frame, msg_at, protocol, flags, headers }) = self.frame(transport, src)? else {
            return Ok(None);
        };
        if self.protocol.is_none() && transport != Transport::Header {
            self.protocol = Some(protocol);
        }
        self.last_protocol = Some(protocol);
        let msg = frame.get(msg_at..).unwrap_or(&[]);
        let h = protocol::read_header(protocol, msg, self.options.lax_binary).map_err(|e| shift(e, msg_at))?;
        let name = frame.slice(msg_at + h.name.start..msg_at + h.name.end);
        let (service, method) = match name.iter().position(|b| *b == b':') {
            Some(i) => (Some(name.slice(..i)), name.slice(i + 1..)),
            None => (None, name.clone()),
        };
        // THeader info headers were read with the frame; the method and service follow them.
        let mut kvs = headers;
        kvs.push(Bytes::from_static(b"method"), method.clone());
        if let Some(s) = &service {
            kvs.push(Bytes::from_static(b"service"), s.clone());
        }
        let body = msg.get(h.end..).unwrap_or(&[]);
        let (message_type, response_status) = match h.kind {
            message_type::CALL => (MessageType::Request, ResponseStatus::Ok),
            message_type::ONEWAY => (MessageType::Oneway, ResponseStatus::Ok),
            message_type::EXCEPTION => (MessageType::Error, ResponseStatus::Error),
            _ => match protocol::first_field_id(protocol, body) {
                Ok(Some(id)) if id >= 1 => (MessageType::Response, ResponseStatus::BusinessException),
                _ => (MessageType::Response, ResponseStatus::Ok),
            },
        };
        let header_size = (msg_at + h.end) as u32;
        let metadata = Metadata {
            message_type,
            request_id: u64::from(h.seqid as u32),
            response_status,
            header_size,
            body_size: frame.len() as u32 - header_size,
            service,
            method: Some(method),
            kvs,
            ..Metadata::default()
        };
        let layout = Layout::new()
            .with(SLOT_TRANSPORT, transport_code(transport))
            .with(SLOT_PROTOCOL, u32::from(protocol == Protocol::Compact))
            .with(SLOT_MSG_AT, msg_at as u32)
            .with(SLOT_SEQID_AT, (msg_at + h.seqid_at.start) as u32)
            .with(SLOT_SEQID_END, (msg_at + h.seqid_at.end) as u32)
            .with(SLOT_FLAGS, u32::from(flags));
        Ok(Some(Message::new(metadata, frame, layout)))
    }

    fn encode(&mut self, message: &Message, mutation: &Mutation, dst: &mut WireBuf) -> Result<(), CodecError> {
        let (frame, l) = (message.frame(), message.layout());
        let transport = match l.get(SLOT_TRANSPORT) {
            0 => Transport::Framed,
            1 => Transport::Unframed,
            _ => Transport::Header,
        };
        let mutate = !mutation.is_empty() && transport == Transport::Header;
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
        let protocol = protocol_of(l.get(SLOT_PROTOCOL));
        let (msg_at, seq_at, seq_end) = (l.offset(SLOT_MSG_AT), l.offset(SLOT_SEQID_AT), l.offset(SLOT_SEQID_END));
        let seqid = message.metadata.request_id as u32 as i32;
        let before_seqid = frame.get(msg_at..seq_at).ok_or(CodecError::Encode("inconsistent Thrift layout".into()))?;
        let rest = frame.slice(seq_end.min(frame.len())..);
        let mut prefix = BytesMut::with_capacity(before_seqid.len() + 5);
        prefix.put_slice(before_seqid);
        protocol::put_seqid(&mut prefix, protocol, seqid);
        let payload_len = prefix.len() + rest.len();
        let mut head = BytesMut::with_capacity(payload_len.min(256) + 32);
        match transport {
            Transport::Framed => {
                head.put_u32(u32::try_from(payload_len).map_err(|_| CodecError::Encode("frame over 4 GiB".into()))?)
            }
            Transport::Unframed => {}
            Transport::Header => {
                let mut block = transport::read_header_block(frame)?;
                mutation.apply_to(&mut block.info);
                transport::put_header_prefix(
                    &mut head,
                    l.get(SLOT_FLAGS) as u16,
                    seqid,
                    block.protocol,
                    &block.info,
                    payload_len,
                )?;
            }
        }
        head.put_slice(&prefix);
        if head.len() + rest.len() > self.options.max_frame_size {
            return Err(CodecError::Encode("the frame would exceed the maximum frame size".into()));
        }
        dst.push(head.freeze());
        dst.push(rest);
        Ok(())
    }

    fn max_frame_size(&self) -> usize {
        self.options.max_frame_size
    }

    fn request_id_limit(&self) -> u64 {
        u64::from(u32::MAX)
    }

    fn local_reply(&self, request: &Metadata, reply: &LocalReply) -> Result<Message, CodecError> {
        let kind = match reply.kind {
            ReplyKind::RouteNotFound => app_error::UNKNOWN_METHOD,
            ReplyKind::BadRequest => app_error::PROTOCOL_ERROR,
            _ => app_error::INTERNAL_ERROR,
        };
        let protocol = self.last_protocol.or(self.protocol).unwrap_or(Protocol::Binary);
        let method = request.method.as_deref().unwrap_or(b"");
        let text = format!("metaproxy {}: {}", reply.kind, reply.message);
        let frame = self.reply_frame(protocol, method, request.request_id as u32 as i32, &text, kind)?;
        self.decode_own(frame)
    }

    fn heartbeat_reply(&self, _heartbeat: &Message) -> Result<Option<Message>, CodecError> {
        // Thrift has no heartbeats.
        Ok(None)
    }
}

fn shift(e: CodecError, by: usize) -> CodecError {
    match e {
        CodecError::Malformed { offset, reason } => CodecError::Malformed { offset: offset + by, reason },
        other => other,
    }
}
