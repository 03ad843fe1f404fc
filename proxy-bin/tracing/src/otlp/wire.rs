//! Protobuf's wire format as OTLP needs it: varints, keys, length-delimited fields, fixed64,
//! `KeyValue`s and their `AnyValue`s, written with `prost`'s primitives.

use bytes::{BufMut, BytesMut};
use opentelemetry::Value;
use prost::encoding::{encoded_len_varint, key_len, WireType};

use super::{MAX_STRING, SPAN_ATTRIBUTES};

/// A varint: one byte below 128 (every key and nearly every length here), else `prost`'s.
#[inline]
pub(super) fn encode_varint(v: u64, buf: &mut impl BufMut) {
    match u8::try_from(v) {
        Ok(b) if b < 0x80 => buf.put_u8(b),
        _ => prost::encoding::encode_varint(v, buf),
    }
}

/// A field's key (tag and wire type).
#[inline]
pub(super) fn encode_key(tag: u32, wire_type: WireType, buf: &mut impl BufMut) {
    encode_varint(u64::from(tag << 3 | wire_type as u32), buf);
}

/// The bytes a length-delimited field of `len` bytes takes with its key and length.
#[inline]
pub(super) fn field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

#[inline]
pub(super) fn put_bytes(buf: &mut impl BufMut, tag: u32, data: &[u8]) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(data.len() as u64, buf);
    buf.put_slice(data);
}

#[inline]
pub(super) fn put_str(buf: &mut impl BufMut, tag: u32, text: &str) {
    put_bytes(buf, tag, text.as_bytes());
}

#[inline]
pub(super) fn put_fixed64(buf: &mut impl BufMut, tag: u32, v: u64) {
    encode_key(tag, WireType::SixtyFourBit, buf);
    buf.put_u64_le(v);
}

/// `text`, cut to at most [`MAX_STRING`] bytes at a character boundary.
pub(super) fn clip(text: &str) -> &str {
    if text.len() <= MAX_STRING {
        return text;
    }
    let mut end = MAX_STRING;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// An `AnyValue`'s one field: what a `KeyValue` holds.
#[derive(Clone, Copy)]
pub(super) enum Any<'a> {
    /// `string_value`.
    Str(&'a str),
    /// `bool_value`.
    Bool(bool),
    /// `int_value`.
    Int(i64),
    /// `double_value`.
    Double(f64),
}

impl Any<'_> {
    /// The `AnyValue` message's length.
    #[inline]
    pub(super) fn len(self) -> usize {
        match self {
            Any::Str(s) => field_len(1, s.len()),
            Any::Bool(_) => key_len(2) + 1,
            Any::Int(i) => key_len(3) + encoded_len_varint(i as u64),
            Any::Double(_) => key_len(4) + 8,
        }
    }

    #[inline]
    pub(super) fn write(self, buf: &mut impl BufMut) {
        match self {
            Any::Str(s) => put_str(buf, 1, s),
            Any::Bool(b) => {
                encode_key(2, WireType::Varint, buf);
                encode_varint(u64::from(b), buf);
            }
            Any::Int(i) => {
                encode_key(3, WireType::Varint, buf);
                encode_varint(i as u64, buf);
            }
            Any::Double(d) => put_fixed64(buf, 4, d.to_bits()),
        }
    }
}

/// A `KeyValue` as field `tag` (`Span.attributes` is 9, `Resource.attributes` 1).
#[inline]
pub(super) fn put_kv(buf: &mut impl BufMut, tag: u32, key: &str, value: Any<'_>) {
    let value = match value {
        Any::Str(s) => Any::Str(clip(s)),
        other => other,
    };
    let any = value.len();
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint((field_len(1, key.len()) + field_len(2, any)) as u64, buf);
    put_str(buf, 1, key);
    encode_key(2, WireType::LengthDelimited, buf);
    encode_varint(any as u64, buf);
    value.write(buf);
}

/// A span's attribute (`Span.attributes`). The common case, a key and a value short enough for
/// every length to take one byte, is written with four copies; anything longer as `put_kv` does.
#[inline]
pub(super) fn put_span_attribute(buf: &mut BytesMut, key: &str, value: Any<'_>) {
    let value = match value {
        Any::Str(s) => Any::Str(clip(s)),
        other => other,
    };
    let any = value.len();
    let kv = 2 + key.len() + 2 + any;
    let (Ok(kv_len), Ok(key_len), Ok(any_len)) = (u8::try_from(kv), u8::try_from(key.len()), u8::try_from(any)) else {
        return put_kv(buf, SPAN_ATTRIBUTES, key, value);
    };
    if kv_len >= 0x80 {
        return put_kv(buf, SPAN_ATTRIBUTES, key, value);
    }
    buf.reserve(kv + 2);
    // KeyValue (field 9) { key (1): key, value (2): AnyValue { one field } }.
    buf.extend_from_slice(&[(SPAN_ATTRIBUTES << 3 | 2) as u8, kv_len, 0x0a, key_len]);
    buf.extend_from_slice(key.as_bytes());
    match value {
        // AnyValue.string_value (1): every length fits one byte, as `kv` does.
        Any::Str(s) => {
            buf.extend_from_slice(&[0x12, any_len, 0x0a, s.len() as u8]);
            buf.extend_from_slice(s.as_bytes());
        }
        other => {
            buf.extend_from_slice(&[0x12, any_len]);
            other.write(buf);
        }
    }
}

/// An SDK attribute (the resource's).
pub(super) fn put_attribute(buf: &mut Vec<u8>, tag: u32, key: &str, value: &Value) {
    match value {
        Value::Bool(b) => put_kv(buf, tag, key, Any::Bool(*b)),
        Value::I64(i) => put_kv(buf, tag, key, Any::Int(*i)),
        Value::F64(d) => put_kv(buf, tag, key, Any::Double(*d)),
        Value::String(s) => put_kv(buf, tag, key, Any::Str(s.as_str())),
        other => put_kv(buf, tag, key, Any::Str(&other.to_string())),
    }
}
