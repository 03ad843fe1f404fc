//! From a captured packet to a TCP segment: the link layer (Ethernet, which is also what
//! `tcpdump -i lo` writes on Linux; Linux cooked v1 and v2, which `-i any` writes; raw IPv4/IPv6;
//! BSD loopback), then IPv4 or IPv6, then TCP, parsed by the `etherparse` crate in its lax mode so
//! that a packet cut short by the capture's snap length still yields the bytes it holds.

use std::net::SocketAddr;

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};

/// LINKTYPE_NULL: BSD loopback, a 4-byte address family in host byte order.
const LINK_NULL: u32 = 0;
/// LINKTYPE_ETHERNET.
const LINK_ETHERNET: u32 = 1;
/// LINKTYPE_RAW, and the values some BSDs use for it.
const LINK_RAW: [u32; 3] = [101, 12, 14];
/// LINKTYPE_LOOP: OpenBSD loopback, the address family in network byte order.
const LINK_LOOP: u32 = 108;
/// LINKTYPE_LINUX_SLL: Linux cooked capture v1 (16-byte header, protocol at 14).
const LINK_LINUX_SLL: u32 = 113;
/// LINKTYPE_IPV4 and LINKTYPE_IPV6.
const LINK_IP: [u32; 2] = [228, 229];
/// LINKTYPE_LINUX_SLL2: Linux cooked capture v2 (20-byte header, protocol at 0).
const LINK_LINUX_SLL2: u32 = 276;

/// One TCP segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    /// The sender.
    pub src: SocketAddr,
    /// The receiver.
    pub dst: SocketAddr,
    /// The sequence number.
    pub seq: u32,
    /// The acknowledgment number, when the ACK flag is set.
    pub ack: Option<u32>,
    /// SYN flag.
    pub syn: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
    /// The payload bytes the capture holds.
    pub payload: &'a [u8],
    /// Payload bytes the capture did not keep (cut by the snap length).
    pub missing: u32,
}

/// What a packet turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A TCP segment.
    Tcp(Segment<'a>),
    /// Something else (UDP, ARP, ICMP…), or an IP fragment: not ours.
    Other,
    /// A link type this reader does not know.
    UnknownLink(u32),
    /// Headers that do not parse (why).
    Malformed(String),
}

/// Parses `data`, a packet of link type `link` that was `orig_len` bytes long on the wire.
pub fn parse(link: u32, data: &[u8], orig_len: u32) -> Parsed<'_> {
    let sliced = match link {
        LINK_ETHERNET => LaxSlicedPacket::from_ethernet(data).map_err(|e| e.to_string()),
        LINK_NULL | LINK_LOOP => ip(data.get(4..)),
        l if LINK_RAW.contains(&l) || LINK_IP.contains(&l) => ip(Some(data)),
        LINK_LINUX_SLL => cooked(data.get(14..16), data.get(16..)),
        LINK_LINUX_SLL2 => cooked(data.get(..2), data.get(20..)),
        other => return Parsed::UnknownLink(other),
    };
    let sliced = match sliced {
        Ok(s) => s,
        Err(e) => return Parsed::Malformed(e),
    };
    let Some(net) = &sliced.net else { return Parsed::Other };
    let (src_ip, dst_ip) = match net {
        LaxNetSlice::Ipv4(v4) => (v4.header().source_addr().into(), v4.header().destination_addr().into()),
        LaxNetSlice::Ipv6(v6) => (v6.header().source_addr().into(), v6.header().destination_addr().into()),
        LaxNetSlice::Arp(_) => return Parsed::Other,
    };
    let Some(ip_payload) = net.ip_payload_ref() else { return Parsed::Other };
    if ip_payload.fragmented {
        return Parsed::Other;
    }
    let tcp = match &sliced.transport {
        Some(TransportSlice::Tcp(tcp)) => tcp,
        Some(_) => return Parsed::Other,
        None if ip_payload.ip_number == etherparse::IpNumber::TCP => {
            let why = sliced.stop_err.as_ref().map_or_else(|| "no TCP header".to_string(), |(e, _)| e.to_string());
            return Parsed::Malformed(why);
        }
        None => return Parsed::Other,
    };
    // A packet cut by the snap length: the IP header says there is more than was captured; what
    // is missing is the end of the TCP payload.
    let captured = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let missing = if ip_payload.incomplete { orig_len.saturating_sub(captured) } else { 0 };
    Parsed::Tcp(Segment {
        src: SocketAddr::new(src_ip, tcp.source_port()),
        dst: SocketAddr::new(dst_ip, tcp.destination_port()),
        seq: tcp.sequence_number(),
        ack: tcp.ack().then(|| tcp.acknowledgment_number()),
        syn: tcp.syn(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        payload: tcp.payload(),
        missing,
    })
}

fn ip(data: Option<&[u8]>) -> Result<LaxSlicedPacket<'_>, String> {
    let data = data.ok_or_else(|| "shorter than its link-layer header".to_string())?;
    LaxSlicedPacket::from_ip(data).map_err(|e| e.to_string())
}

fn cooked<'a>(protocol: Option<&[u8]>, rest: Option<&'a [u8]>) -> Result<LaxSlicedPacket<'a>, String> {
    let (Some(&[hi, lo]), Some(rest)) = (protocol, rest) else {
        return Err("shorter than its Linux cooked header".to_string());
    };
    Ok(LaxSlicedPacket::from_ether_type(EtherType(u16::from_be_bytes([hi, lo])), rest))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let builder = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 2], 64)
            .tcp(40000, 20880, 1000, 512)
            .ack(77)
            .psh();
        let mut out = Vec::new();
        builder.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn an_ethernet_tcp_segment() {
        let f = frame(b"hello");
        let Parsed::Tcp(s) = parse(LINK_ETHERNET, &f, f.len() as u32) else { panic!() };
        assert_eq!(s.src, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(s.dst, "127.0.0.2:20880".parse().unwrap());
        assert_eq!((s.seq, s.ack, s.syn, s.fin, s.rst), (1000, Some(77), false, false, false));
        assert_eq!((s.payload, s.missing), (&b"hello"[..], 0));
    }

    #[test]
    fn a_packet_cut_by_the_snap_length_says_what_is_missing() {
        let f = frame(b"hello world");
        let cut = &f[..f.len() - 6];
        let Parsed::Tcp(s) = parse(LINK_ETHERNET, cut, f.len() as u32) else { panic!() };
        assert_eq!((s.payload, s.missing), (&b"hello"[..], 6));
    }

    #[test]
    fn cooked_raw_and_loopback_link_types() {
        let f = frame(b"x");
        let ip = &f[14..];
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(ip);
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0; 18]);
        sll2.extend_from_slice(ip);
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(ip);
        for (link, data) in [(113, &sll[..]), (276, &sll2[..]), (101, ip), (228, ip), (0, &null[..])] {
            assert!(matches!(parse(link, data, data.len() as u32), Parsed::Tcp(s) if s.payload == b"x"), "{link}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        assert_eq!(parse(999, b"", 0), Parsed::UnknownLink(999));
        let f = frame(b"hello");
        for link in [0, 1, 12, 101, 108, 113, 228, 229, 276] {
            for end in 0..f.len() {
                let _ = parse(link, &f[..end], f.len() as u32);
                let _ = parse(link, &f[end..], f.len() as u32);
            }
        }
    }
}
