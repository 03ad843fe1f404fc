//! Inspecting a pcap or pcapng file: packets to TCP connections, connections to two reassembled
//! byte streams, streams to messages.
//!
//! A connection is known by its two addresses. Its client is the side that sent the SYN; when the
//! capture started after the handshake, the side whose port is a listener's or an endpoint's
//! (`--config`), or a protocol's well-known port, is the server, else the side with the lower
//! port — and a `midstream` event says so. A connection ends at its RST, once both FINs are handed
//! on, at a new SYN on the same addresses, or at the end of the file; then its holes become gaps,
//! what its streams hold undecoded is reported, and its requests left waiting are unanswered.
//!
//! Messages are reported as their last byte arrives, with that packet's capture time, so lines
//! come in capture order.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;

use super::codec::StreamCodec;
use super::dryrun::Leg;
use super::guess::{by_port, Candidate, Guess, Held};
use super::output::{Place, Ts};
use super::packet::{self, Parsed, Segment};
use super::pcap::{CaptureReader, FileKind, ReadError};
use super::session::{Session, StreamAt};
use super::stream::{StreamDecoder, StreamEvent};
use super::tcp::{Delivery, GapCause, HalfStream};
use crate::RuntimeError;

/// The codecs a capture may be decoded with.
pub struct Codecs {
    /// `--protocol`: every connection is decoded with it.
    pub fixed: Option<Candidate>,
    /// Every registered codec, for guessing.
    pub candidates: Vec<Candidate>,
}

/// The most ended connections remembered (to ignore their last ACKs).
const MAX_CLOSED: usize = 65_536;

const DIRECTIONS: [&str; 2] = ["client_to_server", "server_to_client"];

enum State {
    Decided { protocol: String, codec: Box<dyn StreamCodec>, decoders: [Option<StreamDecoder>; 2] },
    Guessing(Guess),
    Undecodable,
}

struct Conn {
    id: u64,
    client: SocketAddr,
    server: SocketAddr,
    halves: [HalfStream; 2],
    state: State,
    leg: Leg,
    ts: u64,
}

/// What happened in a connection's streams, to report.
enum Item {
    Stream(StreamEvent),
    Gap { offset: u64, bytes: u64, cause: GapCause },
}

impl State {
    fn decided(protocol: String, codec: Box<dyn StreamCodec>) -> State {
        State::Decided { protocol, codec, decoders: [None, None] }
    }

    /// Takes what reassembly hands on for direction `side`.
    fn take(&mut self, side: usize, ts: u64, in_sync: bool, d: Delivery<'_>, items: &mut Vec<(usize, Item)>) {
        let mut events = Vec::new();
        match (self, d) {
            (State::Decided { codec, decoders, .. }, d) => {
                let Some(slot) = decoders.get_mut(side) else { return };
                let decoder = slot.get_or_insert_with(|| StreamDecoder::new(codec.fresh(), 0, in_sync));
                match d {
                    Delivery::Data { bytes, .. } => decoder.push(bytes, &mut events),
                    Delivery::Gap { offset, bytes, cause } => {
                        items.push((side, Item::Gap { offset, bytes, cause }));
                        decoder.gap(bytes, &mut events);
                    }
                }
            }
            (State::Guessing(g), Delivery::Data { bytes, .. }) => {
                g.hold(side, Held::Data { ts, bytes: bytes.to_vec() })
            }
            (State::Guessing(g), Delivery::Gap { offset, bytes, cause }) => {
                items.push((side, Item::Gap { offset, bytes, cause }));
                g.hold(side, Held::Gap { ts, offset, bytes, cause });
            }
            (State::Undecodable, Delivery::Gap { offset, bytes, cause }) => {
                items.push((side, Item::Gap { offset, bytes, cause }));
            }
            (State::Undecodable, Delivery::Data { .. }) => {}
        }
        items.extend(events.into_iter().map(|e| (side, Item::Stream(e))));
    }

    fn protocol(&self) -> Option<&str> {
        match self {
            State::Decided { protocol, .. } => Some(protocol),
            _ => None,
        }
    }
}

/// Reads one capture file into `session`.
pub struct CaptureFile<'s, 'a> {
    session: &'s mut Session<'a>,
    codecs: &'s Codecs,
    file: &'s str,
    conns: HashMap<(SocketAddr, SocketAddr), Conn>,
    /// Connections that ended with FIN or RST: their last ACKs open no new connection.
    closed: HashSet<(SocketAddr, SocketAddr)>,
    unknown_links: Vec<u32>,
    last_ts: u64,
}

fn key(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

impl<'s, 'a> CaptureFile<'s, 'a> {
    /// Inspects the capture at `path` (of kind `kind`), reporting as `file`.
    pub fn inspect(
        session: &'s mut Session<'a>,
        codecs: &'s Codecs,
        path: &Path,
        file: &'s str,
        kind: FileKind,
    ) -> Result<(), RuntimeError> {
        let mut reader = CaptureReader::open(path, kind)?;
        let mut me = CaptureFile {
            session,
            codecs,
            file,
            conns: HashMap::new(),
            closed: HashSet::new(),
            unknown_links: Vec::new(),
            last_ts: 0,
        };
        me.session.totals.files += 1;
        let stopped = loop {
            match reader.next_packet() {
                Ok(Some(p)) => {
                    me.session.totals.packets += 1;
                    me.last_ts = p.ts_ns;
                    match packet::parse(p.link, &p.data, p.orig_len) {
                        Parsed::Tcp(seg) => me.segment(p.ts_ns, seg)?,
                        Parsed::Other => me.session.totals.other_packets += 1,
                        Parsed::UnknownLink(link) => me.unknown_link(link)?,
                        Parsed::Malformed(why) => {
                            me.session.totals.malformed_packets += 1;
                            let place = me.file_place();
                            me.session.event(
                                &place,
                                "malformed_packet",
                                None,
                                None,
                                format!("packet {}: {why}", p.number),
                            )?;
                        }
                    }
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        let mut conns: Vec<Conn> = me.conns.drain().map(|(_, c)| c).collect();
        conns.sort_by_key(|c| c.id);
        for c in conns {
            me.end(c)?;
        }
        let place = me.file_place();
        match stopped {
            None => Ok(()),
            Some(e @ ReadError::Truncated { .. }) => {
                let detail = format!("{e}: the capture stops there (it was cut while being written?)");
                me.session.event(&place, "truncated_capture", None, None, detail)
            }
            Some(e) => {
                me.session.event(&place, "corrupt_capture", None, None, e.to_string())?;
                Err(RuntimeError::Capture { path: path.to_path_buf(), source: e })
            }
        }
    }

    fn file_place(&self) -> Place<'s> {
        Place { ts: Some(Ts(self.last_ts)), file: self.file, ..Place::default() }
    }

    fn unknown_link(&mut self, link: u32) -> Result<(), RuntimeError> {
        self.session.totals.malformed_packets += 1;
        if self.unknown_links.contains(&link) {
            return Ok(());
        }
        self.unknown_links.push(link);
        let place = self.file_place();
        let detail = format!("link-layer type {link} is not supported; its packets are skipped");
        self.session.event(&place, "unknown_link_type", None, None, detail)
    }

    fn place(&self, conn: &Conn, side: usize) -> Place<'s> {
        let (src, dst) = if side == 0 { (conn.client, conn.server) } else { (conn.server, conn.client) };
        Place {
            ts: Some(Ts(conn.ts)),
            file: self.file,
            connection: Some(conn.id),
            src: Some(src),
            dst: Some(dst),
            direction: DIRECTIONS.get(side).copied(),
            protocol: None,
        }
    }

    /// Tells client from server for a connection first seen with `seg`: `(client, server, how)`.
    fn roles(&self, seg: &Segment<'_>) -> (SocketAddr, SocketAddr, &'static str) {
        let (src, dst) = (seg.src, seg.dst);
        if seg.syn {
            return if seg.ack.is_none() { (src, dst, "the SYN") } else { (dst, src, "the SYN-ACK") };
        }
        if let Some(dry) = &self.session.dry {
            if dry.leg(dst) != Leg::Unknown {
                return (src, dst, "the configuration's ports");
            }
            if dry.leg(src) != Leg::Unknown {
                return (dst, src, "the configuration's ports");
            }
        }
        if by_port(&self.codecs.candidates, dst.port()).is_some() {
            return (src, dst, "a well-known port");
        }
        if by_port(&self.codecs.candidates, src.port()).is_some() {
            return (dst, src, "a well-known port");
        }
        if dst.port() <= src.port() {
            (src, dst, "the lower port")
        } else {
            (dst, src, "the lower port")
        }
    }

    fn open(&mut self, seg: &Segment<'_>, ts: u64) -> Result<Conn, RuntimeError> {
        let (client, server, how) = self.roles(seg);
        let leg = self.session.dry.as_ref().map_or(Leg::Unknown, |d| d.leg(server));
        let protocol = match (&self.session.dry, &leg) {
            (Some(d), Leg::Listener(i)) => d.listener_protocol(*i).cloned(),
            (Some(d), Leg::Upstream { cluster, .. }) => d.cluster_protocol(*cluster).cloned(),
            _ => None,
        };
        let state = match (&self.codecs.fixed, protocol) {
            (Some(f), _) => State::decided(f.name.clone(), f.codec.fresh()),
            (None, Some(p)) => State::decided(p.name().to_string(), <dyn StreamCodec>::of(&*p)?),
            (None, None) => match by_port(&self.codecs.candidates, server.port()) {
                Some(i) => match self.codecs.candidates.get(i) {
                    Some(c) => State::decided(c.name.clone(), c.codec.fresh()),
                    None => State::Guessing(Guess::default()),
                },
                None => State::Guessing(Guess::default()),
            },
        };
        let id = self.session.new_connection();
        let conn = Conn { id, client, server, halves: Default::default(), state, leg, ts };
        if !seg.syn {
            let place = self.place(&conn, usize::from(seg.src != client));
            let detail = format!(
                "no SYN in the capture: the connection started before it; client and server told apart by {how}; decoding starts at the first frame the codec recognises"
            );
            self.session.event(&place, "midstream", None, None, detail)?;
        }
        Ok(conn)
    }

    fn segment(&mut self, ts: u64, seg: Segment<'_>) -> Result<(), RuntimeError> {
        let k = key(seg.src, seg.dst);
        if seg.syn && seg.ack.is_none() {
            // A new SYN where a connection is held: a new connection on the same addresses
            // (unless it is the same SYN again).
            let again = self
                .conns
                .get(&k)
                .is_some_and(|c| c.client == seg.src && c.halves[0].base() == Some(seg.seq.wrapping_add(1)));
            if !again {
                if let Some(old) = self.conns.remove(&k) {
                    self.end(old)?;
                }
            }
        }
        let mut conn = match self.conns.remove(&k) {
            Some(c) => c,
            // A bare ACK (or the last ones of a connection that ended) says nothing about a
            // stream: no connection is opened for it.
            None if !seg.syn && !seg.fin && !seg.rst && seg.payload.is_empty() && seg.missing == 0 => return Ok(()),
            None if !seg.syn && seg.payload.is_empty() && self.closed.contains(&k) => return Ok(()),
            None => self.open(&seg, ts)?,
        };
        if seg.syn {
            self.closed.remove(&k);
        }
        conn.ts = ts;
        let side = usize::from(seg.src != conn.client);
        let other = 1 - side;
        let mut items = Vec::new();
        {
            let Conn { halves, state, .. } = &mut conn;
            let [h0, h1] = halves;
            let (mine, theirs) = if side == 0 { (h0, h1) } else { (h1, h0) };
            if seg.syn {
                mine.on_syn(seg.seq);
            }
            let in_sync = mine.from_syn();
            mine.on_segment(seg.seq, seg.payload, seg.missing, seg.fin, &mut |d| {
                state.take(side, ts, in_sync, d, &mut items)
            });
            if let Some(ack) = seg.ack {
                let in_sync = theirs.from_syn();
                theirs.on_ack(ack, &mut |d| state.take(other, ts, in_sync, d, &mut items));
            }
        }
        self.decide(&mut conn, false, &mut items)?;
        self.report(&conn, items)?;
        let ended = seg.rst || conn.halves.iter().all(HalfStream::closed);
        if ended {
            if self.closed.len() >= MAX_CLOSED {
                self.closed.clear();
            }
            self.closed.insert(k);
            self.end(conn)
        } else {
            self.conns.insert(k, conn);
            Ok(())
        }
    }

    /// While guessing: picks a codec when one decodes (or when it must: `last`, or enough held),
    /// then decodes what was held.
    fn decide(&mut self, conn: &mut Conn, last: bool, items: &mut Vec<(usize, Item)>) -> Result<(), RuntimeError> {
        let State::Guessing(guess) = &conn.state else { return Ok(()) };
        let in_sync = [conn.halves[0].from_syn(), conn.halves[1].from_syn()];
        let last = last || guess.full();
        match guess.pick(&self.codecs.candidates, [0, 0], in_sync, last) {
            Some(i) => {
                let Some(c) = self.codecs.candidates.get(i) else { return Ok(()) };
                let State::Guessing(guess) =
                    std::mem::replace(&mut conn.state, State::decided(c.name.clone(), c.codec.fresh()))
                else {
                    return Ok(());
                };
                for (side, held) in guess.held.into_iter().enumerate() {
                    for h in held {
                        let (ts, d) = match &h {
                            Held::Data { ts, bytes } => (*ts, Delivery::Data { offset: 0, bytes }),
                            Held::Gap { ts, offset, bytes, cause } => {
                                (*ts, Delivery::Gap { offset: *offset, bytes: *bytes, cause: *cause })
                            }
                        };
                        // The gap was reported when it was held.
                        let mut replayed = Vec::new();
                        conn.state.take(side, ts, in_sync.get(side).copied().unwrap_or(false), d, &mut replayed);
                        items.extend(replayed.into_iter().filter(|(_, i)| matches!(i, Item::Stream(_))));
                    }
                }
                Ok(())
            }
            None if last => {
                let had_data = !guess.no_data();
                conn.state = State::Undecodable;
                if had_data {
                    let place = self.place(conn, 0);
                    let tried: Vec<_> = self.codecs.candidates.iter().map(|c| c.name.as_str()).collect();
                    let detail = format!(
                        "no registered codec ({}) decodes this connection; name one with --protocol",
                        tried.join(", ")
                    );
                    self.session.event(&place, "no_codec", None, None, detail)?;
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn report(&mut self, conn: &Conn, items: Vec<(usize, Item)>) -> Result<(), RuntimeError> {
        for (side, item) in items {
            let mut place = self.place(conn, side);
            place.protocol = conn.state.protocol();
            let at = StreamAt { place, connection: conn.id, side, from_client: side == 0, leg: conn.leg.clone() };
            match item {
                Item::Stream(e) => self.session.stream_event(&at, e)?,
                Item::Gap { offset, bytes, cause } => self.session.gap(&at, offset, bytes, cause)?,
            }
        }
        Ok(())
    }

    /// The connection ended (or the capture did).
    fn end(&mut self, mut conn: Conn) -> Result<(), RuntimeError> {
        let mut items = Vec::new();
        {
            let Conn { halves, state, ts, .. } = &mut conn;
            for (side, half) in halves.iter_mut().enumerate() {
                let in_sync = half.from_syn();
                half.finish(&mut |d| state.take(side, *ts, in_sync, d, &mut items));
            }
        }
        self.decide(&mut conn, true, &mut items)?;
        if let State::Decided { decoders, .. } = &mut conn.state {
            for (side, decoder) in decoders.iter_mut().enumerate() {
                if let Some(d) = decoder {
                    let mut events = Vec::new();
                    d.finish(&mut events);
                    items.extend(events.into_iter().map(|e| (side, Item::Stream(e))));
                }
            }
        }
        self.report(&conn, items)?;
        let t = &mut self.session.totals;
        for h in &conn.halves {
            t.retransmitted_bytes = t.retransmitted_bytes.saturating_add(h.retransmitted);
        }
        let place = self.place(&conn, 0);
        self.session.close(&place, conn.id)
    }
}
