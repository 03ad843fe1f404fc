//! Writes Thrift messages for tests: args structs with every type, in both protocols, wrapped in
//! each transport.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use bytes::{BufMut, Bytes, BytesMut};
use metaprotocol_core::KeyValues;
use metaprotocol_thrift::protocol::{put_header, put_varint, zigzag32, Protocol};
use metaprotocol_thrift::transport::{put_header_prefix, Transport};

/// A struct writer for one protocol.
pub struct W {
    pub p: Protocol,
    pub out: BytesMut,
    last: Vec<i16>,
}

// Binary type ids and their compact equivalents.
const T: [(u8, u8); 12] =
    [(2, 1), (3, 3), (4, 7), (6, 4), (8, 5), (10, 6), (11, 8), (12, 12), (13, 11), (14, 10), (15, 9), (16, 13)];

fn compact(t: u8) -> u8 {
    T.iter().find(|(b, _)| *b == t).map(|(_, c)| *c).unwrap()
}

impl W {
    pub fn new(p: Protocol) -> W {
        W { p, out: BytesMut::new(), last: vec![0] }
    }
    fn field(&mut self, t: u8, id: i16, bool_value: Option<bool>) {
        match self.p {
            Protocol::Binary => {
                self.out.put_u8(t);
                self.out.put_i16(id);
                if let Some(b) = bool_value {
                    self.out.put_u8(u8::from(b));
                }
            }
            Protocol::Compact => {
                let last = *self.last.last().unwrap();
                let ct = match bool_value {
                    Some(true) => 1,
                    Some(false) => 2,
                    None => compact(t),
                };
                let delta = id - last;
                if (1..=15).contains(&delta) {
                    self.out.put_u8(((delta as u8) << 4) | ct);
                } else {
                    self.out.put_u8(ct);
                    put_varint(&mut self.out, zigzag32(i32::from(id)));
                }
                *self.last.last_mut().unwrap() = id;
            }
        }
    }
    pub fn boolean(&mut self, id: i16, v: bool) -> &mut Self {
        self.field(2, id, Some(v));
        self
    }
    pub fn i32(&mut self, id: i16, v: i32) -> &mut Self {
        self.field(8, id, None);
        self.raw_i32(v);
        self
    }
    fn raw_i32(&mut self, v: i32) {
        match self.p {
            Protocol::Binary => self.out.put_i32(v),
            Protocol::Compact => put_varint(&mut self.out, zigzag32(v)),
        }
    }
    fn raw_i64(&mut self, v: i64) {
        match self.p {
            Protocol::Binary => self.out.put_i64(v),
            Protocol::Compact => put_varint(&mut self.out, ((v << 1) ^ (v >> 63)) as u64),
        }
    }
    fn raw_string(&mut self, s: &[u8]) {
        match self.p {
            Protocol::Binary => self.out.put_u32(s.len() as u32),
            Protocol::Compact => put_varint(&mut self.out, s.len() as u64),
        }
        self.out.put_slice(s);
    }
    pub fn string(&mut self, id: i16, s: &[u8]) -> &mut Self {
        self.field(11, id, None);
        self.raw_string(s);
        self
    }
    pub fn double(&mut self, id: i16, v: f64) -> &mut Self {
        self.field(4, id, None);
        match self.p {
            Protocol::Binary => self.out.put_f64(v),
            Protocol::Compact => self.out.put_f64_le(v),
        }
        self
    }
    fn list_header(&mut self, elem: u8, n: usize) {
        match self.p {
            Protocol::Binary => {
                self.out.put_u8(elem);
                self.out.put_u32(n as u32);
            }
            Protocol::Compact if n < 15 => self.out.put_u8(((n as u8) << 4) | compact(elem)),
            Protocol::Compact => {
                self.out.put_u8(0xf0 | compact(elem));
                put_varint(&mut self.out, n as u64);
            }
        }
    }
    pub fn list_i64(&mut self, id: i16, v: &[i64]) -> &mut Self {
        self.field(15, id, None);
        self.list_header(10, v.len());
        for x in v {
            self.raw_i64(*x);
        }
        self
    }
    pub fn set_string(&mut self, id: i16, v: &[&str]) -> &mut Self {
        self.field(14, id, None);
        self.list_header(11, v.len());
        for x in v {
            self.raw_string(x.as_bytes());
        }
        self
    }
    pub fn map_string_i32(&mut self, id: i16, v: &[(&str, i32)]) -> &mut Self {
        self.field(13, id, None);
        match self.p {
            Protocol::Binary => {
                self.out.put_u8(11);
                self.out.put_u8(8);
                self.out.put_u32(v.len() as u32);
            }
            Protocol::Compact => {
                put_varint(&mut self.out, v.len() as u64);
                if !v.is_empty() {
                    self.out.put_u8((compact(11) << 4) | compact(8));
                }
            }
        }
        for (k, x) in v {
            self.raw_string(k.as_bytes());
            self.raw_i32(*x);
        }
        self
    }
    pub fn begin_struct(&mut self, id: i16) -> &mut Self {
        self.field(12, id, None);
        self.last.push(0);
        self
    }
    pub fn end_struct(&mut self) -> &mut Self {
        self.out.put_u8(0);
        if self.last.len() > 1 {
            self.last.pop();
        }
        self
    }
    pub fn finish(&mut self) -> Bytes {
        self.out.put_u8(0);
        self.out.split().freeze()
    }
}

/// A rich args struct: every type, nested struct, containers.
pub fn rich_args(p: Protocol, name: &str) -> Bytes {
    let mut w = W::new(p);
    w.string(1, name.as_bytes())
        .boolean(2, true)
        .boolean(3, false)
        .i32(4, -7)
        .double(5, 2.5)
        .list_i64(6, &[1, -2, 300_000_000_000])
        .set_string(7, &["a", "bb"])
        .map_string_i32(8, &[("x", 1), ("y", 2)])
        .begin_struct(9)
        .string(1, b"inner")
        .list_i64(2, &(0..20).collect::<Vec<_>>())
        .end_struct()
        .map_string_i32(10, &[])
        .i32(300, 5);
    w.finish()
}

/// A message in `transport`; `headers` only for THeader.
pub fn message(
    transport: Transport,
    p: Protocol,
    kind: u8,
    name: &str,
    seqid: i32,
    body: &[u8],
    headers: &[(&str, &str)],
) -> Bytes {
    let mut payload = BytesMut::new();
    put_header(&mut payload, p, kind, name.as_bytes(), seqid);
    payload.put_slice(body);
    let mut out = BytesMut::new();
    match transport {
        Transport::Framed => out.put_u32(payload.len() as u32),
        Transport::Unframed => {}
        Transport::Header => {
            let info: KeyValues = headers
                .iter()
                .map(|(k, v)| (Bytes::copy_from_slice(k.as_bytes()), Bytes::copy_from_slice(v.as_bytes())))
                .collect();
            put_header_prefix(&mut out, 0, seqid, p, &info, payload.len()).unwrap();
        }
    }
    out.put_slice(&payload);
    out.freeze()
}

/// A reply body: success (field 0) with a string, or a declared exception (field 1).
pub fn reply_body(p: Protocol, exception: bool) -> Bytes {
    let mut w = W::new(p);
    if exception {
        w.begin_struct(1).string(1, b"negative").i32(2, 7).end_struct();
    } else {
        w.string(0, b"Hello world");
    }
    w.finish()
}
