//! A zero-copy Hessian 2.0 reader and a small writer, written for this crate.
//!
//! It reads what Dubbo routing needs and skips everything else:
//!
//! * [`Reader::skip_value`] skips any value over the whole grammar (null, booleans, every int,
//!   long, double and date form, strings and binary of every size including chunked ones, typed
//!   and untyped lists and maps of fixed and variable length, class definitions and objects,
//!   value and type references) without allocating; only the class-definition table grows, since
//!   later objects in the same stream refer to it. Lengths are checked, nesting is limited
//!   ([`DEFAULT_MAX_DEPTH`]), and any input gives a value or an error, never a panic.
//! * [`Reader::read_string`], [`Reader::read_int`], [`Reader::read_long`], [`Reader::read_bool`]
//!   and [`Reader::read_null`] read simple values; strings come back as ranges of the data.
//! * [`Reader::read_map`] reads a map as key/value pairs (Dubbo attachments); a value of another
//!   type is given as its raw encoded span.
//! * [`write_string`], [`write_int`], [`write_null`] and the map helpers write what the codec
//!   produces (attachment maps, error replies).
//!
//! Strings are counted in UTF-16 units, as Hessian specifies; a supplementary character is a
//! surrogate pair of two 3-byte sequences (CESU-8, as Java writes it), and a 4-byte UTF-8 sequence
//! is accepted as the two units it stands for. A lone surrogate is carried as bytes.
//!
//! Why not `hessian_rs`: it is GPL-3.0, a pre-1.0 release candidate, and builds an allocated value
//! tree without byte positions, which rules out splicing.

mod error;
mod map;
mod reader;
mod skip;
mod write;

pub use error::HessianError;
pub use map::{MapEntry, MapValue};
pub use reader::{Reader, StrValue, DEFAULT_MAX_DEPTH};
pub(crate) use write::{int_len, string_len, write_string_at};
pub use write::{write_int, write_map_end, write_map_start, write_null, write_string};
