//! Pairing responses with their requests.
//!
//! Every request-like message (request, one-way, ping, stream frames) opens an *exchange*, numbered
//! from 1 in the order the requests appear. A request that expects an answer (request, stream
//! init, ping) waits, per connection and request id, for an answer from the other side: a response
//! or error for a request, a pong for a ping. Several waiting with the same id (Thrift clients that
//! always send sequence id 0, one after the other) are answered first in, first out. Whatever is
//! still waiting when its connection ends is unanswered.
//!
//! Memory is bounded: at most [`MAX_WAITING`] requests wait per connection; past that, new ones
//! are not tracked (and say so).

use std::collections::{HashMap, VecDeque};

use metaprotocol_core::MessageType;

/// The most requests waiting for an answer per connection.
pub const MAX_WAITING: usize = 65_536;

/// A request waiting for its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// Its exchange number.
    pub exchange: u64,
    /// Which side sent it (a connection's direction, or a raw file's index).
    pub side: usize,
    /// Its request id.
    pub request_id: u64,
    /// When it was captured (nanoseconds since the epoch), if known.
    pub ts_ns: Option<u64>,
    kind: MessageType,
}

/// What pairing says about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pairing {
    /// A request that opens exchange `exchange` and waits for an answer.
    Opened(u64),
    /// A request that expects no answer: its own exchange.
    Alone(u64),
    /// A request that expects an answer but could not be tracked (too many waiting).
    Untracked(u64),
    /// The answer to this waiting request.
    Answers(Waiting),
    /// An answer with no request in the capture.
    Unpaired,
}

impl Pairing {
    /// The exchange number, if the message belongs to one.
    pub fn exchange(&self) -> Option<u64> {
        match self {
            Pairing::Opened(e) | Pairing::Alone(e) | Pairing::Untracked(e) => Some(*e),
            Pairing::Answers(w) => Some(w.exchange),
            Pairing::Unpaired => None,
        }
    }
}

/// Requests waiting for answers, per connection.
#[derive(Debug, Default)]
pub struct Pairer {
    waiting: HashMap<u64, Connection>,
    next_exchange: u64,
}

#[derive(Debug, Default)]
struct Connection {
    by_id: HashMap<u64, VecDeque<Waiting>>,
    count: usize,
}

/// True when messages of type `t` answer ones of type `request`.
fn answers(t: MessageType, request: MessageType) -> bool {
    match t {
        MessageType::Pong => request == MessageType::Ping,
        MessageType::Response | MessageType::Error => {
            matches!(request, MessageType::Request | MessageType::StreamInit)
        }
        _ => false,
    }
}

impl Pairer {
    /// A message of type `kind` with id `request_id`, sent by `side` on connection `conn`.
    pub fn on_message(
        &mut self,
        conn: u64,
        side: usize,
        kind: MessageType,
        request_id: u64,
        ts_ns: Option<u64>,
    ) -> Pairing {
        if matches!(kind, MessageType::Pong | MessageType::Response | MessageType::Error) {
            return self.answer(conn, side, kind, request_id);
        }
        self.next_exchange = self.next_exchange.saturating_add(1);
        let exchange = self.next_exchange;
        if !matches!(kind, MessageType::Request | MessageType::StreamInit | MessageType::Ping) {
            return Pairing::Alone(exchange);
        }
        let c = self.waiting.entry(conn).or_default();
        if c.count >= MAX_WAITING {
            return Pairing::Untracked(exchange);
        }
        c.count += 1;
        c.by_id.entry(request_id).or_default().push_back(Waiting { exchange, side, request_id, ts_ns, kind });
        Pairing::Opened(exchange)
    }

    fn answer(&mut self, conn: u64, side: usize, kind: MessageType, request_id: u64) -> Pairing {
        let Some(c) = self.waiting.get_mut(&conn) else { return Pairing::Unpaired };
        let Some(queue) = c.by_id.get_mut(&request_id) else { return Pairing::Unpaired };
        let Some(at) = queue.iter().position(|w| w.side != side && answers(kind, w.kind)) else {
            return Pairing::Unpaired;
        };
        let Some(found) = queue.remove(at) else { return Pairing::Unpaired };
        if queue.is_empty() {
            c.by_id.remove(&request_id);
        }
        c.count = c.count.saturating_sub(1);
        Pairing::Answers(found)
    }

    /// Connection `conn` ended: its requests still waiting, oldest exchange first.
    pub fn close(&mut self, conn: u64) -> Vec<Waiting> {
        let Some(c) = self.waiting.remove(&conn) else { return Vec::new() };
        let mut left: Vec<Waiting> = c.by_id.into_values().flatten().collect();
        left.sort_by_key(|w| w.exchange);
        left
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;
    use MessageType::*;

    #[test]
    fn same_ids_pair_first_in_first_out_and_only_across_sides() {
        let mut p = Pairer::default();
        assert_eq!(p.on_message(1, 0, Request, 0, Some(10)), Pairing::Opened(1));
        assert_eq!(p.on_message(1, 0, Request, 0, Some(20)), Pairing::Opened(2));
        // A response from the same side answers nothing.
        assert_eq!(p.on_message(1, 0, Response, 0, None), Pairing::Unpaired);
        let Pairing::Answers(w) = p.on_message(1, 1, Response, 0, Some(30)) else { panic!() };
        assert_eq!((w.exchange, w.ts_ns), (1, Some(10)));
        assert_eq!(p.on_message(1, 1, Error, 0, None).exchange(), Some(2));
        assert_eq!(p.on_message(1, 1, Response, 0, None), Pairing::Unpaired);
    }

    #[test]
    fn pings_pair_with_pongs_oneways_stand_alone_and_leftovers_are_reported() {
        let mut p = Pairer::default();
        assert_eq!(p.on_message(7, 1, Ping, 5, None), Pairing::Opened(1));
        assert_eq!(p.on_message(7, 0, Request, 5, None), Pairing::Opened(2));
        assert_eq!(p.on_message(7, 0, Oneway, 5, None), Pairing::Alone(3));
        assert_eq!(p.on_message(7, 0, Pong, 5, None).exchange(), Some(1));
        assert_eq!(p.on_message(8, 0, Request, 1, None), Pairing::Opened(4));
        let left = p.close(7);
        assert_eq!(left.iter().map(|w| w.exchange).collect::<Vec<_>>(), [2]);
        assert!(p.close(7).is_empty());
        assert_eq!(p.close(8).len(), 1);
    }

    #[test]
    fn waiting_requests_are_bounded_per_connection() {
        let mut p = Pairer::default();
        for i in 0..MAX_WAITING as u64 {
            assert!(matches!(p.on_message(1, 0, Request, i, None), Pairing::Opened(_)));
        }
        assert!(matches!(p.on_message(1, 0, Request, 0, None), Pairing::Untracked(_)));
        assert!(matches!(p.on_message(2, 0, Request, 0, None), Pairing::Opened(_)));
    }
}
