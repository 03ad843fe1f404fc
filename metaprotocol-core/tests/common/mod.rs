//! `tiny`: the smallest conforming codec, for the core's own tests (the core must not depend on a
//! plugin crate). It is not an example to copy: `examples/kv-protocol` is.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | magic `TY` |
//! | 2 | 1 | type: 0 request, 1 response, 2 one-way, 3 ping, 4 pong, 5 error |
//! | 3 | 1 | status: 0 ok, 1 error |
//! | 4 | 8 | request id |
//! | 12 | 2 | key/value block length |
//! | 14 | 4 | body length |
//! | 18 | n | entries: key length (1), key, value length (1), value |
//! | 18 + n | .. | body |

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use bytes::{BufMut, Bytes, BytesMut};
use metaprotocol_core::{
    check_frame_size, Codec, CodecError, KeyValues, LocalReply, Message, MessageType, Metadata, Mutation,
    ResponseStatus, Text, WireBuf,
};

pub const FIXED: usize = 18;

/// Where the key/value block ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TinyLayout {
    pub kv_end: u32,
}

#[derive(Clone, Debug)]
pub struct Tiny {
    pub max_frame_size: usize,
}

impl Default for Tiny {
    fn default() -> Self {
        Tiny { max_frame_size: 1 << 20 }
    }
}

fn kind(t: MessageType) -> u8 {
    match t {
        MessageType::Response => 1,
        MessageType::Oneway => 2,
        MessageType::Ping => 3,
        MessageType::Pong => 4,
        MessageType::Error => 5,
        _ => 0,
    }
}

/// Builds a frame.
pub fn frame(t: MessageType, id: u64, kvs: &[(&str, &str)], body: &[u8]) -> Bytes {
    let block: usize = kvs.iter().map(|(k, v)| 2 + k.len() + v.len()).sum();
    let mut b = BytesMut::new();
    b.put_slice(b"TY");
    b.put_u8(kind(t));
    b.put_u8(u8::from(t == MessageType::Error));
    b.put_u64(id);
    b.put_u16(block as u16);
    b.put_u32(body.len() as u32);
    for (k, v) in kvs {
        b.put_u8(k.len() as u8);
        b.put_slice(k.as_bytes());
        b.put_u8(v.len() as u8);
        b.put_slice(v.as_bytes());
    }
    b.put_slice(body);
    b.freeze()
}

fn parse_block(kvs: &mut KeyValues, mut at: usize, end: usize) -> Result<(), CodecError> {
    let frame = kvs.frame().clone();
    while at < end {
        let klen = *frame.get(at).ok_or(CodecError::malformed(at, "key length"))? as usize;
        let key = kvs.span(at + 1..at + 1 + klen)?;
        let vat = at + 1 + klen;
        let vlen = *frame.get(vat).ok_or(CodecError::malformed(vat, "value length"))? as usize;
        let value = kvs.span(vat + 1..vat + 1 + vlen)?;
        at = vat + 1 + vlen;
        if at > end {
            return Err(CodecError::malformed(at, "entry past the block"));
        }
        kvs.push(key, value);
    }
    Ok(())
}

impl Codec for Tiny {
    type Layout = TinyLayout;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message<TinyLayout>>, CodecError> {
        for (i, (got, want)) in src.iter().zip(b"TY").enumerate() {
            if got != want {
                return Err(CodecError::malformed(i, "bad magic"));
            }
        }
        if src.len() < FIXED {
            return Ok(None);
        }
        let block = u16::from_be_bytes([src[12], src[13]]) as usize;
        let body = u32::from_be_bytes([src[14], src[15], src[16], src[17]]) as u64;
        let total = check_frame_size(FIXED as u64 + block as u64 + body, self.max_frame_size)?;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        let frame = src.split_to(total).freeze();
        let message_type = match frame[2] {
            0 => MessageType::Request,
            1 => MessageType::Response,
            2 => MessageType::Oneway,
            3 => MessageType::Ping,
            4 => MessageType::Pong,
            5 => MessageType::Error,
            _ => return Err(CodecError::malformed(2, "unknown type")),
        };
        let id = u64::from_be_bytes(frame[4..12].try_into().unwrap());
        let mut kvs = KeyValues::over(frame.clone(), 4);
        if let Err(e) = parse_block(&mut kvs, FIXED, FIXED + block) {
            return Err(if message_type == MessageType::Request { CodecError::bad_request(id, frame, e) } else { e });
        }
        let find = |kvs: &KeyValues, name: &str| {
            kvs.handles().find(|(k, _)| kvs.resolve(*k).eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
        };
        let metadata = Metadata {
            message_type,
            request_id: id,
            response_status: if frame[3] == 0 { ResponseStatus::Ok } else { ResponseStatus::Error },
            header_size: (FIXED + block) as u32,
            body_size: body as u32,
            service: find(&kvs, "service"),
            method: find(&kvs, "method"),
            kvs,
            ..Metadata::default()
        };
        Ok(Some(Message::new(metadata, frame, TinyLayout { kv_end: (FIXED + block) as u32 })))
    }

    fn encode(&mut self, m: &Message<TinyLayout>, mutation: &Mutation, dst: &mut WireBuf) -> Result<(), CodecError> {
        let frame = m.frame();
        if mutation.is_empty() {
            if !m.request_id_changed() {
                dst.push(frame.clone());
                return Ok(());
            }
            return dst.push_patched(frame, FIXED, 4, &m.metadata.request_id.to_be_bytes());
        }
        let kv_end = m.layout().kv_end as usize;
        let mut kvs = KeyValues::over(frame.clone(), 4);
        parse_block(&mut kvs, FIXED, kv_end)?;
        mutation.apply_to(&mut kvs);
        let block: usize = kvs.iter().map(|(k, v)| 2 + k.len() + v.len()).sum();
        dst.push_built(|b| {
            b.put_slice(&frame[..4]);
            b.put_u64(m.metadata.request_id);
            b.put_u16(block as u16);
            b.put_slice(&frame[14..FIXED]);
            for (k, v) in kvs.iter() {
                b.put_u8(k.len() as u8);
                b.put_slice(k);
                b.put_u8(v.len() as u8);
                b.put_slice(v);
            }
        });
        dst.push(frame.slice(kv_end..));
        Ok(())
    }

    fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    fn local_reply(
        &self,
        request: &Message<TinyLayout>,
        reply: &LocalReply,
    ) -> Result<Message<TinyLayout>, CodecError> {
        let text = reply.message.to_string();
        let f = frame(MessageType::Error, request.metadata.request_id, &[("error", &text)], b"");
        let mut kvs = KeyValues::over(f.clone(), 1);
        let value = kvs.span(FIXED + 7..FIXED + 7 + text.len())?;
        kvs.push(Text::from_static("error"), value);
        let metadata = Metadata {
            message_type: MessageType::Error,
            request_id: request.metadata.request_id,
            response_status: ResponseStatus::Error,
            header_size: f.len() as u32,
            kvs,
            ..Metadata::default()
        };
        Ok(Message::new(metadata, f.clone(), TinyLayout { kv_end: f.len() as u32 }))
    }

    fn heartbeat_reply(&self, ping: &Message<TinyLayout>) -> Result<Message<TinyLayout>, CodecError> {
        let f = frame(MessageType::Pong, ping.metadata.request_id, &[], b"");
        let metadata = Metadata {
            header_size: FIXED as u32,
            kvs: KeyValues::over(f.clone(), 0),
            ..Metadata::new(MessageType::Pong, ping.metadata.request_id)
        };
        Ok(Message::new(metadata, f, TinyLayout { kv_end: FIXED as u32 }))
    }

    fn malformed_reply(&self, error: &CodecError) -> Option<Message<TinyLayout>> {
        let CodecError::BadRequest { request_id, .. } = error else { return None };
        let request =
            Message::new(Metadata::new(MessageType::Request, *request_id), Bytes::new(), TinyLayout { kv_end: 0 });
        self.local_reply(&request, &LocalReply::new(metaprotocol_core::ReplyKind::BadRequest, "bad request")).ok()
    }
}
