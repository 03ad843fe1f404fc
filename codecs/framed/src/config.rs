//! The options of the `framed` codec, as written in a listener's `codec:` block (YAML or JSON),
//! deserialized with `serde`. [`FramedCodec::new`](crate::FramedCodec::new) checks them and turns them
//! into the codec's working form; nothing here is used on the hot path.
//!
//! Integers that are protocol values (message type values, statuses, constants) may be written
//! as numbers or as strings (`"0x81"`, `"129"`); byte strings (magic) as hex strings (`"dabb"`,
//! `"0xda 0xbb"`).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::field::Endian;

/// An integer written as a number or as a decimal or `0x` hexadecimal string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Num(pub u64);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer, or a string such as \"0x81\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                u64::try_from(v).map(Num).map_err(|_| E::custom(format!("{v} is negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                parse_int(v).map(Num).ok_or_else(|| E::custom(format!("`{v}` is not an integer")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses `"129"`, `"0x81"` or `"0b1000_0001"`.
fn parse_int(s: &str) -> Option<u64> {
    let t: String = s.trim().chars().filter(|c| *c != '_').collect();
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if let Some(bin) = t.strip_prefix("0b") {
        u64::from_str_radix(bin, 2).ok()
    } else {
        t.parse().ok()
    }
}

/// A byte string written in hex: `"dabb"`, `"0xdabb"`, `"da bb"` or `"0xda 0xbb"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HexBytes(pub Vec<u8>);

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_hex(&s).map(HexBytes).ok_or_else(|| de::Error::custom(format!("`{s}` is not a hex byte string")))
    }
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let digits: String = s
        .split_whitespace()
        .map(|p| p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")).unwrap_or(p))
        .collect::<Vec<_>>()
        .concat();
    if digits.is_empty() || digits.len() % 2 != 0 {
        return None;
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| digits.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect()
}

/// The codec's options: everything about the protocol, in one block.
///
/// ```yaml
/// codec:
///   max_frame_size: 1048576
///   magic: { offset: 0, any_of: ["80", "81"] }
///   request_id: { offset: 12, width: 4 }
///   message_type: { offset: 0, width: 1, request: [0x80], response: [0x81],
///                   heartbeat: { offset: 1, width: 1, values: [0x0a] } }
///   status: { offset: 6, width: 2, ok: [0], business: [1, 2, 5] }
///   frame:
///     header_size: 24
///     length: { offset: 8, width: 4, counts: body }
///     fields: [{ key: opcode, offset: 1, width: 1 }]
///     sections:
///       - { name: extras, length: { offset: 4, width: 1 } }
///       - { name: key, length: { offset: 2, width: 2 }, key: key }
///       - { name: value, rest: true }
///   error_reply:
///     set: [{ offset: 0, width: 1, value: 0x81 }]
///     copy: [{ offset: 1, width: 1 }]
///     status: { default: 0x84, timeout: 0x86 }
///     text: { section: value }
///   heartbeat_reply:
///     set: [{ offset: 0, width: 1, value: 0x81 }]
///     copy: [{ offset: 1, width: 1 }]
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FramedOptions {
    /// Largest frame accepted, in bytes (default 8 MiB; at most
    /// [`FRAME_SIZE_LIMIT`](metaprotocol_core::FRAME_SIZE_LIMIT)).
    #[serde(default = "default_max_frame_size")]
    pub max_frame_size: u64,
    /// Byte order of every integer field that does not name its own (default `big`).
    #[serde(default)]
    pub endian: Endian,
    /// Bytes every frame starts with (at an offset), if the protocol has them.
    #[serde(default)]
    pub magic: Option<MagicOptions>,
    /// Where the request id lies: the proxy rewrites it to multiplex upstream connections.
    pub request_id: FieldOptions,
    /// How the message type is read.
    pub message_type: MessageTypeOptions,
    /// How a response's status is read (responses only).
    #[serde(default)]
    pub status: Option<StatusOptions>,
    /// The layout of every frame (of requests only, when `response_frame` is given).
    pub frame: FrameOptions,
    /// The layout of responses (responses, errors and pongs), when it differs from `frame`.
    #[serde(default)]
    pub response_frame: Option<FrameOptions>,
    /// The metadata key whose value names the service (for the operation name in logs).
    #[serde(default)]
    pub service_key: Option<String>,
    /// The metadata key whose value names the method (for the operation name in logs).
    #[serde(default)]
    pub method_key: Option<String>,
    /// How the proxy builds an error response to a request.
    pub error_reply: ErrorReplyOptions,
    /// How the proxy answers a heartbeat ping (needed when `message_type` can give pings).
    #[serde(default)]
    pub heartbeat_reply: Option<HeartbeatReplyOptions>,
}

/// 8 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: u64 = 8 * 1024 * 1024;

fn default_max_frame_size() -> u64 {
    DEFAULT_MAX_FRAME_SIZE
}

/// An integer field of the fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldOptions {
    /// First byte, from the start of the frame.
    pub offset: u32,
    /// Bytes: 1, 2, 4 or 8.
    pub width: u8,
    /// Byte order (default: the codec's `endian`).
    #[serde(default)]
    pub endian: Option<Endian>,
    /// Only these bits hold the value (shifted down to bit 0 when read).
    #[serde(default)]
    pub mask: Option<Num>,
}

/// The magic bytes.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MagicOptions {
    /// Where they start.
    pub offset: u32,
    /// The accepted byte strings (hex), all of one length; a frame starting otherwise is refused.
    pub any_of: Vec<HexBytes>,
}

/// A condition on a header field: its value is one of `values`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionOptions {
    /// First byte.
    pub offset: u32,
    /// Bytes: 1, 2, 4 or 8.
    pub width: u8,
    /// Byte order (default: the codec's `endian`).
    #[serde(default)]
    pub endian: Option<Endian>,
    /// Only these bits.
    #[serde(default)]
    pub mask: Option<Num>,
    /// The values that satisfy the condition.
    pub values: Vec<Num>,
}

/// How a frame's message type is read: a field (or the bits of a mask) whose values map to
/// types; every value not listed is refused as malformed.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageTypeOptions {
    /// First byte of the type field.
    pub offset: u32,
    /// Bytes: 1, 2, 4 or 8.
    pub width: u8,
    /// Byte order (default: the codec's `endian`).
    #[serde(default)]
    pub endian: Option<Endian>,
    /// Only these bits.
    #[serde(default)]
    pub mask: Option<Num>,
    /// Values of requests that expect one answer.
    #[serde(default)]
    pub request: Vec<Num>,
    /// Values of requests that expect no answer.
    #[serde(default)]
    pub oneway: Vec<Num>,
    /// Values of responses.
    #[serde(default)]
    pub response: Vec<Num>,
    /// Values of heartbeat requests (answered by the proxy).
    #[serde(default)]
    pub ping: Vec<Num>,
    /// Values of heartbeat answers.
    #[serde(default)]
    pub pong: Vec<Num>,
    /// A second field that marks heartbeats: when it holds one of its values, a request is a
    /// ping and a response or one-way message a pong.
    #[serde(default)]
    pub heartbeat: Option<ConditionOptions>,
}

/// How a response's status is read.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusOptions {
    /// First byte of the status field (in the response layout).
    pub offset: u32,
    /// Bytes: 1, 2, 4 or 8.
    pub width: u8,
    /// Byte order (default: the codec's `endian`).
    #[serde(default)]
    pub endian: Option<Endian>,
    /// Values meaning success.
    pub ok: Vec<Num>,
    /// Values meaning the application answered with a declared failure (a business exception, a
    /// cache miss): still a response, not an error.
    #[serde(default)]
    pub business: Vec<Num>,
}

/// What a frame length counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Counts {
    /// The bytes after the length field (after the last of the summed fields).
    Rest,
    /// The whole frame, header included.
    Frame,
    /// The bytes after the header (`header_size`, or `header_length` when given).
    Body,
}

/// The frame length: one field, or the sum of several, plus an adjustment.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LengthOptions {
    /// First byte of the length field (or give `sum`).
    #[serde(default)]
    pub offset: Option<u32>,
    /// Bytes of the length field: 1, 2, 4 or 8.
    #[serde(default)]
    pub width: Option<u8>,
    /// Byte order (default: the codec's `endian`).
    #[serde(default)]
    pub endian: Option<Endian>,
    /// Several fields whose values add up to the length (instead of `offset`/`width`).
    #[serde(default)]
    pub sum: Vec<FieldOptions>,
    /// What the length counts.
    pub counts: Counts,
    /// Added to the value read (may be negative).
    #[serde(default)]
    pub adjust: i64,
}

/// A header whose size a field gives (the body starts after it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderLengthOptions {
    /// First byte of the field.
    pub offset: u32,
    /// Bytes: 1, 2, 4 or 8.
    pub width: u8,
    /// Byte order (default: the codec's `endian`).
    #[serde(default)]
    pub endian: Option<Endian>,
    /// The field counts units of this many bytes (default 1).
    #[serde(default = "one")]
    pub unit: u32,
    /// Added to the size in bytes (may be negative).
    #[serde(default)]
    pub adjust: i64,
}

fn one() -> u32 {
    1
}

/// The layout of one kind of frame.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameOptions {
    /// Bytes of the fixed header: every field lies within it.
    pub header_size: u32,
    /// The header's whole size from a field, when it varies (default: `header_size`).
    #[serde(default)]
    pub header_length: Option<HeaderLengthOptions>,
    /// The frame length.
    pub length: LengthOptions,
    /// Header fields exposed as metadata keys.
    #[serde(default)]
    pub fields: Vec<KeyFieldOptions>,
    /// The variable part after the fixed header, in order.
    #[serde(default)]
    pub sections: Vec<SectionOptions>,
}

/// How an exposed field's value is written as text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldFormat {
    /// The unsigned integer in decimal.
    #[default]
    Int,
    /// The raw bytes (zero-copy).
    Bytes,
}

/// Which messages a field is read from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Every message of the layout.
    #[default]
    All,
    /// Requests, one-way requests and pings only.
    Requests,
    /// Responses, errors and pongs only.
    Responses,
}

/// A header field exposed as a metadata key.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFieldOptions {
    /// The metadata key.
    pub key: String,
    /// First byte.
    pub offset: u32,
    /// Bytes: 1, 2, 4 or 8 (any width up to the header for `format: bytes`).
    pub width: u32,
    /// Byte order (default: the codec's `endian`).
    #[serde(default)]
    pub endian: Option<Endian>,
    /// Only these bits (integers only).
    #[serde(default)]
    pub mask: Option<Num>,
    /// `int` (default) or `bytes`.
    #[serde(default)]
    pub format: FieldFormat,
    /// Which messages carry it (default: all).
    #[serde(default)]
    pub on: Direction,
}

/// A length field of a section (in the fixed header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectionLengthOptions {
    /// First byte.
    pub offset: u32,
    /// Bytes: 1, 2, 4 or 8.
    pub width: u8,
    /// Byte order (default: the codec's `endian`).
    #[serde(default)]
    pub endian: Option<Endian>,
}

/// Key/value pairs, each key and value preceded by its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairsOptions {
    /// Bytes of each length prefix: 1, 2 or 4. A prefix of all ones (-1) is a null value.
    pub width: u8,
    /// Byte order (default: the codec's `endian`).
    #[serde(default)]
    pub endian: Option<Endian>,
}

/// One section of the variable part. Its length comes from a header field (`length`), from a
/// prefix of its own (`prefix`, in bytes), or is the rest of the frame (`rest: true`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectionOptions {
    /// A name for `error_reply.text.section` (and error messages).
    #[serde(default)]
    pub name: Option<String>,
    /// The header field giving its length in bytes.
    #[serde(default)]
    pub length: Option<SectionLengthOptions>,
    /// Or: its length precedes it, in a prefix of this many bytes (1, 2, 4 or 8).
    #[serde(default)]
    pub prefix: Option<u8>,
    /// Or: it runs to the end of the frame (last section only).
    #[serde(default)]
    pub rest: bool,
    /// Expose the section's bytes as this metadata key.
    #[serde(default)]
    pub key: Option<String>,
    /// Or: the section is a block of key/value pairs, each exposed under its own key, and
    /// rewritten by mutations.
    #[serde(default)]
    pub pairs: Option<PairsOptions>,
}

/// A constant written into a reply's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetOptions {
    /// First byte.
    pub offset: u32,
    /// Bytes: 1, 2, 4 or 8.
    pub width: u8,
    /// Byte order (default: the codec's `endian`).
    #[serde(default)]
    pub endian: Option<Endian>,
    /// Only these bits.
    #[serde(default)]
    pub mask: Option<Num>,
    /// The value.
    pub value: Num,
}

/// Bytes copied from the request's header into the reply's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyOptions {
    /// First byte in the request.
    pub offset: u32,
    /// Number of bytes.
    pub width: u32,
    /// First byte in the reply (default: `offset`).
    #[serde(default)]
    pub to: Option<u32>,
}

/// How a reply's text is encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextFormat {
    /// The UTF-8 bytes as they are.
    #[default]
    Raw,
    /// A Hessian string (`S`, a 16-bit length, the characters; non-ASCII characters become `?`),
    /// which Hessian 1 and 2 readers both take.
    HessianString,
}

/// A text format chosen by a field of the request.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextOverrideOptions {
    /// The condition on the request's header.
    #[serde(rename = "when")]
    pub condition: ConditionOptions,
    /// The format when it holds.
    pub format: TextFormat,
    /// Bytes (hex) written before the text when it holds (default none).
    #[serde(default)]
    pub prefix: Option<HexBytes>,
    /// Bytes (hex) written after the text when it holds (default none).
    #[serde(default)]
    pub suffix: Option<HexBytes>,
}

/// Where an error reply's text goes.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextOptions {
    /// The name of a section of the response layout (not a `pairs` section).
    pub section: String,
    /// The format (default `raw`).
    #[serde(default)]
    pub format: TextFormat,
    /// Bytes (hex) written before the text: what a client expects around it (the start of a
    /// serialized exception object whose message the text is, say).
    #[serde(default)]
    pub prefix: Option<HexBytes>,
    /// Bytes (hex) written after the text.
    #[serde(default)]
    pub suffix: Option<HexBytes>,
    /// Other formats for requests whose header says so (first match wins).
    #[serde(default)]
    pub overrides: Vec<TextOverrideOptions>,
}

/// How the proxy builds an error response: a response header of zeros, then `copy` from the
/// request, then `set`, then the request id, the status for the reply kind and the lengths; the
/// text in its section, every other section empty.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorReplyOptions {
    /// Constants (the response's message type value, a version byte...).
    #[serde(default)]
    pub set: Vec<SetOptions>,
    /// Bytes copied from the request (an opcode, a codec byte...).
    #[serde(default)]
    pub copy: Vec<CopyOptions>,
    /// The status value per reply kind (`route_not_found`, `timeout`, ... and `default` for the
    /// rest); needs `status`.
    #[serde(default)]
    pub status: BTreeMap<String, Num>,
    /// Where the text goes (default: nowhere).
    #[serde(default)]
    pub text: Option<TextOptions>,
}

/// How the proxy answers a ping: a response header of zeros, then `copy`, then `set`, then the
/// ping's id, the first `ok` status and the lengths, every section empty.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatReplyOptions {
    /// Constants.
    #[serde(default)]
    pub set: Vec<SetOptions>,
    /// Bytes copied from the ping.
    #[serde(default)]
    pub copy: Vec<CopyOptions>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_hex() {
        assert_eq!(parse_int("0x81"), Some(129));
        assert_eq!(parse_int("1_000"), Some(1000));
        assert_eq!(parse_int("0b101"), Some(5));
        assert_eq!(parse_int("x"), None);
        assert_eq!(parse_hex("0xda 0xbb"), Some(vec![0xda, 0xbb]));
        assert_eq!(parse_hex("dabb"), Some(vec![0xda, 0xbb]));
        assert_eq!(parse_hex("dab"), None);
        assert_eq!(parse_hex(""), None);
        assert_eq!(parse_hex("zz"), None);
    }
}
