//! Reading capture files: pcap (`tcpdump -w`, microsecond or nanosecond timestamps, either byte
//! order) and pcapng (`dumpcap`, `tshark`, `editcap -F pcapng`), told apart from raw byte streams
//! by their magic numbers. Records are parsed by the `pcap-file` crate; this module turns them into
//! [`Packet`]s with a link type and a timestamp in nanoseconds.
//!
//! A file that ends inside a record (a capture that was killed, or copied while written) yields
//! [`ReadError::Truncated`]; a record that does not parse yields [`ReadError::Corrupt`]. Both end
//! the file: what came before is used.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{PcapError, TsResolution};

use crate::RuntimeError;

/// What a file holds, from its first four bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A pcap file.
    Pcap,
    /// A pcapng file.
    PcapNg,
    /// Anything else: raw bytes of one direction of a stream.
    Raw,
}

impl FileKind {
    /// The kind of a file starting with `head`.
    pub fn of(head: &[u8]) -> FileKind {
        match head.get(..4) {
            // Microsecond and nanosecond pcap, in either byte order.
            Some(
                [0xa1, 0xb2, 0xc3, 0xd4]
                | [0xd4, 0xc3, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0x3c, 0x4d]
                | [0x4d, 0x3c, 0xb2, 0xa1],
            ) => FileKind::Pcap,
            // The section header block's type.
            Some([0x0a, 0x0d, 0x0d, 0x0a]) => FileKind::PcapNg,
            _ => FileKind::Raw,
        }
    }

    /// The kind of the file at `path`.
    pub fn sniff(path: &Path) -> Result<FileKind, RuntimeError> {
        let io = |source| RuntimeError::Io { path: path.to_path_buf(), source };
        let mut head = [0u8; 4];
        let mut file = File::open(path).map_err(io)?;
        let mut got = 0;
        while got < head.len() {
            let Some(rest) = head.get_mut(got..) else { break };
            match file.read(rest).map_err(io)? {
                0 => break,
                n => got += n,
            }
        }
        Ok(FileKind::of(head.get(..got).unwrap_or(&[])))
    }
}

/// One captured packet.
#[derive(Debug)]
pub struct Packet<'a> {
    /// 1-based record number in the file (as Wireshark numbers frames).
    pub number: u64,
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The link-layer header type (LINKTYPE_* number).
    pub link: u32,
    /// The captured bytes.
    pub data: Cow<'a, [u8]>,
    /// The packet's length on the wire (more than `data.len()` when the capture cut it short).
    pub orig_len: u32,
}

/// Why reading a capture stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file ends inside a record.
    #[error("the file ends inside record {record}")]
    Truncated {
        /// The incomplete record's number.
        record: u64,
    },
    /// A record does not parse.
    #[error("record {record} is corrupt: {source}")]
    Corrupt {
        /// The record's number.
        record: u64,
        /// What `pcap-file` said.
        source: PcapError,
    },
}

/// A pcapng interface: its link type and timestamp units.
#[derive(Clone, Copy, Debug)]
struct Interface {
    link: u32,
    /// Timestamp units per second (`if_tsresol`; microseconds by default).
    units_per_second: u128,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_seconds: u64,
}

impl Interface {
    fn new(link: u32, options: &[InterfaceDescriptionOption<'_>]) -> Interface {
        let mut units_per_second = 1_000_000;
        let mut offset_seconds = 0;
        for option in options {
            match option {
                InterfaceDescriptionOption::IfTsResol(r) if r & 0x80 != 0 => {
                    units_per_second = 1u128.checked_shl(u32::from(r & 0x7f)).unwrap_or(u128::MAX);
                }
                InterfaceDescriptionOption::IfTsResol(r) => {
                    units_per_second = 10u128.checked_pow(u32::from(*r)).unwrap_or(u128::MAX);
                }
                InterfaceDescriptionOption::IfTsOffset(s) => offset_seconds = *s,
                _ => {}
            }
        }
        Interface { link, units_per_second: units_per_second.max(1), offset_seconds }
    }

    fn nanos(&self, units: u64) -> u64 {
        let ns = u128::from(units).saturating_mul(1_000_000_000) / self.units_per_second;
        let ns = ns.saturating_add(u128::from(self.offset_seconds).saturating_mul(1_000_000_000));
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

enum Inner {
    Pcap { reader: PcapReader<BufReader<File>>, link: u32, nanos: bool },
    PcapNg { reader: Box<PcapNgReader<BufReader<File>>>, interfaces: Vec<Interface>, last_ts: u64 },
}

/// Reads the packets of a pcap or pcapng file one at a time (memory: one record at a time, in a
/// buffer of `pcap-file`'s).
pub struct CaptureReader {
    inner: Inner,
    records: u64,
    done: bool,
}

impl CaptureReader {
    /// Opens `path`, a file of kind `kind` (pcap or pcapng), and reads its header.
    pub fn open(path: &Path, kind: FileKind) -> Result<CaptureReader, RuntimeError> {
        let file = File::open(path).map_err(|source| RuntimeError::Io { path: path.to_path_buf(), source })?;
        let file = BufReader::new(file);
        let bad = |source| RuntimeError::CaptureHeader { path: path.to_path_buf(), source };
        let inner = match kind {
            FileKind::Pcap => {
                let reader = PcapReader::new(file).map_err(bad)?;
                let header = reader.header();
                let nanos = header.ts_resolution == TsResolution::NanoSecond;
                Inner::Pcap { link: header.datalink.into(), reader, nanos }
            }
            _ => Inner::PcapNg {
                reader: Box::new(PcapNgReader::new(file).map_err(bad)?),
                interfaces: Vec::new(),
                last_ts: 0,
            },
        };
        Ok(CaptureReader { inner, records: 0, done: false })
    }

    /// The next packet, `Ok(None)` at the end of the file. After an error, `Ok(None)`.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, ReadError> {
        if self.done {
            return Ok(None);
        }
        let result = match &mut self.inner {
            Inner::Pcap { reader, link, nanos } => next_pcap(reader, *link, *nanos, &mut self.records),
            Inner::PcapNg { reader, interfaces, last_ts } => {
                next_pcapng(reader, interfaces, last_ts, &mut self.records)
            }
        };
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result
    }
}

fn classify(record: u64, e: PcapError) -> ReadError {
    match e {
        PcapError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => ReadError::Truncated { record },
        PcapError::IncompleteBuffer => ReadError::Truncated { record },
        source => ReadError::Corrupt { record, source },
    }
}

fn next_pcap<'a>(
    reader: &'a mut PcapReader<BufReader<File>>,
    link: u32,
    nanos: bool,
    records: &mut u64,
) -> Result<Option<Packet<'a>>, ReadError> {
    let number = records.saturating_add(1);
    // Raw records: `pcap-file` refuses a record whose original length exceeds the snap length,
    // which is exactly what `tcpdump -s N` writes for a long packet.
    let Some(raw) = reader.next_raw_packet() else { return Ok(None) };
    let raw = raw.map_err(|e| classify(number, e))?;
    *records = number;
    let frac = if nanos { u64::from(raw.ts_frac) } else { u64::from(raw.ts_frac).saturating_mul(1000) };
    let ts_ns = u64::from(raw.ts_sec).saturating_mul(1_000_000_000).saturating_add(frac);
    let orig_len = raw.orig_len.max(u32::try_from(raw.data.len()).unwrap_or(u32::MAX));
    Ok(Some(Packet { number, ts_ns, link, data: raw.data, orig_len }))
}

fn next_pcapng(
    reader: &mut PcapNgReader<BufReader<File>>,
    interfaces: &mut Vec<Interface>,
    last_ts: &mut u64,
    records: &mut u64,
) -> Result<Option<Packet<'static>>, ReadError> {
    // Blocks other than packets (interfaces, statistics, name resolution) are read past. A packet
    // is copied out of the reader's buffer (`into_owned`): returning a borrow of it from inside
    // this loop is what the borrow checker cannot yet prove sound.
    loop {
        let number = records.saturating_add(1);
        let Some(block) = reader.next_block() else { return Ok(None) };
        let block = block.map_err(|e| classify(number, e))?;
        *records = number;
        let (interface_id, units, data, orig_len) = match block {
            Block::SectionHeader(_) => {
                interfaces.clear();
                continue;
            }
            Block::InterfaceDescription(idb) => {
                interfaces.push(Interface::new(idb.linktype.into(), &idb.options));
                continue;
            }
            Block::EnhancedPacket(p) => {
                let units = u64::try_from(p.timestamp.as_nanos()).unwrap_or(u64::MAX);
                (p.interface_id, Some(units), p.data, p.original_len)
            }
            Block::Packet(p) => (u32::from(p.interface_id), Some(p.timestamp), p.data, p.original_len),
            Block::SimplePacket(p) => (0, None, p.data, p.original_len),
            _ => continue,
        };
        let interface = interfaces
            .get(usize::try_from(interface_id).unwrap_or(usize::MAX))
            .copied()
            .ok_or(ReadError::Corrupt { record: number, source: PcapError::InvalidInterfaceId(interface_id) })?;
        // A simple packet block carries no timestamp: it gets the previous packet's.
        let ts_ns = units.map_or(*last_ts, |u| interface.nanos(u));
        *last_ts = ts_ns;
        let orig_len = orig_len.max(u32::try_from(data.len()).unwrap_or(u32::MAX));
        let data = Cow::Owned(data.into_owned());
        return Ok(Some(Packet { number, ts_ns, link: interface.link, data, orig_len }));
    }
}
