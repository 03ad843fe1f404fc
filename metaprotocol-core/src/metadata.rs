//! What a codec learns about one message: typed fields plus the routing key/value map.

use std::fmt;

use crate::kv::{KeyValues, Text};

/// The kind of a message, as the protocol marks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MessageType {
    /// A request that expects a response.
    #[default]
    Request,
    /// A response to a request.
    Response,
    /// A request that expects no response (Dubbo two-way flag clear, Thrift `ONEWAY`).
    Oneway,
    /// A keep-alive that asks for an answer; see [`Codec::heartbeat_reply`](crate::Codec::heartbeat_reply).
    Ping,
    /// A keep-alive answer, or one that asks for none.
    Pong,
    /// An error answer (a response carrying a protocol-level error).
    Error,
    /// Opens a stream.
    StreamInit,
    /// Carries data on an open stream.
    StreamData,
    /// Closes a stream.
    StreamClose,
}

impl MessageType {
    /// True for messages that travel from client to server and expect an answer.
    pub fn expects_response(self) -> bool {
        matches!(self, MessageType::Request | MessageType::StreamInit)
    }

    /// True for messages a server sends back (response or error).
    pub fn is_response(self) -> bool {
        matches!(self, MessageType::Response | MessageType::Error)
    }

    /// True for keep-alive messages (ping or pong).
    pub fn is_heartbeat(self) -> bool {
        matches!(self, MessageType::Ping | MessageType::Pong)
    }

    /// A stable lower-case name, used in logs and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Request => "request",
            MessageType::Response => "response",
            MessageType::Oneway => "oneway",
            MessageType::Ping => "ping",
            MessageType::Pong => "pong",
            MessageType::Error => "error",
            MessageType::StreamInit => "stream_init",
            MessageType::StreamData => "stream_data",
            MessageType::StreamClose => "stream_close",
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome a response reports. Meaningful on responses only; requests carry [`ResponseStatus::Ok`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ResponseStatus {
    /// Success.
    #[default]
    Ok,
    /// A framework or transport error (Dubbo status other than 20, Thrift `TApplicationException`).
    Error,
    /// The application threw a declared exception (Dubbo exception body, Thrift declared exception).
    BusinessException,
}

impl ResponseStatus {
    /// A stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseStatus::Ok => "ok",
            ResponseStatus::Error => "error",
            ResponseStatus::BusinessException => "business_exception",
        }
    }
}

/// Everything routing, filters and logs need to know about a message.
///
/// Byte fields are [`Text`] handles into [`kvs`](Metadata::kvs), ranges of the frame wherever the
/// protocol allows, so decoding copies nothing; read them with [`service`](Metadata::service),
/// [`method`](Metadata::method) and [`get`](Metadata::get). `request_id` is what the proxy rewrites to multiplex upstream connections: set it
/// through [`Codec::rewrite_request_id`](crate::Codec::rewrite_request_id) and the codec's encoder
/// writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Request, response, one-way, heartbeat, error or stream message.
    pub message_type: MessageType,
    /// The request id as the protocol carries it (a Thrift `i32` sequence id is kept as its
    /// unsigned 32-bit pattern).
    pub request_id: u64,
    /// The stream id, for protocols with streams.
    pub stream_id: Option<u64>,
    /// The response outcome (responses only).
    pub response_status: ResponseStatus,
    /// Bytes of the frame before the body (fixed header plus any header/attachment block the
    /// protocol places there).
    pub header_size: u32,
    /// Bytes of the body.
    pub body_size: u32,
    /// The service (Dubbo interface, Thrift multiplexed service), when the message names one: a
    /// handle into `kvs`.
    pub service: Option<Text>,
    /// The method, when the message names one: a handle into `kvs`.
    pub method: Option<Text>,
    /// String key/values for routing: protocol fields and attachments or headers.
    pub kvs: KeyValues,
}

impl Metadata {
    /// A metadata record of the given type and request id, everything else empty.
    pub fn new(message_type: MessageType, request_id: u64) -> Self {
        Metadata { message_type, request_id, ..Metadata::default() }
    }

    /// The service's bytes, when the message names one.
    pub fn service(&self) -> Option<&[u8]> {
        self.service.map(|t| self.kvs.resolve(t))
    }

    /// The method's bytes, when the message names one.
    pub fn method(&self) -> Option<&[u8]> {
        self.method.map(|t| self.kvs.resolve(t))
    }

    /// The operation name, `service/method` (or just `method`), displayed without allocating.
    pub fn operation(&self) -> Operation<'_> {
        Operation { service: self.service(), method: self.method() }
    }

    /// Shorthand for `self.kvs.get(key)`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.kvs.get(key)
    }

    /// Total frame size, header plus body.
    pub fn frame_size(&self) -> u64 {
        u64::from(self.header_size) + u64::from(self.body_size)
    }
}

/// The `service/method` name of a message; see [`Metadata::operation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation<'a> {
    /// The service part, if any.
    pub service: Option<&'a [u8]>,
    /// The method part, if any.
    pub method: Option<&'a [u8]>,
}

impl Operation<'_> {
    /// True when the message names neither a service nor a method.
    pub fn is_empty(&self) -> bool {
        self.service.is_none() && self.method.is_none()
    }
}

impl fmt::Display for Operation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.service, self.method) {
            (Some(s), Some(m)) => write!(f, "{}/{}", String::from_utf8_lossy(s), String::from_utf8_lossy(m)),
            (Some(s), None) => write!(f, "{}", String::from_utf8_lossy(s)),
            (None, Some(m)) => write!(f, "{}", String::from_utf8_lossy(m)),
            (None, None) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_name_forms() {
        let mut m = Metadata::new(MessageType::Request, 7);
        assert!(m.operation().is_empty());
        m.method = Some(Text::from_static("sayHello"));
        assert_eq!(m.operation().to_string(), "sayHello");
        m.service = Some(m.kvs.own(bytes::Bytes::from_static(b"org.demo.Greeter")));
        assert_eq!(m.operation().to_string(), "org.demo.Greeter/sayHello");
    }

    #[test]
    fn message_type_predicates() {
        assert!(MessageType::Request.expects_response());
        assert!(!MessageType::Oneway.expects_response());
        assert!(MessageType::Error.is_response());
        assert_eq!(MessageType::StreamInit.to_string(), "stream_init");
        assert!(MessageType::Ping.is_heartbeat() && MessageType::Pong.is_heartbeat());
        assert!(!MessageType::Ping.expects_response(), "pings are answered by the proxy, not routed");
    }
}
