//! Sending one `ExportTraceServiceRequest` to the collector, as a list of `Bytes` (the envelope,
//! then the workers' encoded spans, never copied into one buffer): OTLP/gRPC (the
//! `TraceService/Export` unary call over HTTP/2, prior knowledge) or OTLP/HTTP (`POST` of
//! `application/x-protobuf`), both through `hyper`'s client, which keeps its connection between
//! calls. The caller bounds each call with its timeout.
//!
//! gRPC is spoken here with `hyper` rather than `tonic` because a `tonic` codec must copy the
//! message into tonic's own buffer; on a saturated core every copy of the spans' bytes costs
//! throughput. What gRPC adds to HTTP/2 for a unary call is small: the 5-byte message prefix,
//! `content-type: application/grpc`, `te: trailers`, and the `grpc-status` trailer (or header,
//! for a trailers-only answer).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

#[cfg(test)]
use bytes::BytesMut;
use bytes::{BufMut, Bytes};
use http::header::{HeaderValue, CONTENT_TYPE, TE};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::{ExporterSpec, OtlpProtocol};
use crate::otlp::Envelope;

/// The gRPC method OTLP exports traces with.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Why an export call failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The collector's address is not a valid URI.
    #[error("invalid collector endpoint {endpoint}")]
    Endpoint {
        /// As configured.
        endpoint: String,
        /// Why.
        #[source]
        source: http::Error,
    },
    /// The request could not be sent or its answer read (connection refused or reset, say).
    #[error("the export request failed")]
    Request(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The collector answered with an HTTP status other than success.
    #[error("the collector answered HTTP {0}")]
    HttpStatus(u16),
    /// The collector answered the gRPC call with a status other than OK.
    #[error("the collector answered gRPC status {code}: {message}")]
    GrpcStatus {
        /// `grpc-status`.
        code: String,
        /// `grpc-message`, as sent (percent-encoded).
        message: String,
    },
    /// The collector's gRPC answer has no `grpc-status`.
    #[error("the collector's gRPC answer has no grpc-status")]
    NoGrpcStatus,
}

/// A connection to one collector.
#[derive(Debug)]
pub(crate) struct Transport {
    client: Client<HttpConnector, Chunks>,
    uri: http::Uri,
    protocol: OtlpProtocol,
}

impl Transport {
    /// A client for `spec`'s collector; connects on the first call (and again after a failure).
    /// Must be called inside a tokio runtime.
    pub(crate) fn new(spec: &ExporterSpec) -> Result<Transport, TransportError> {
        let invalid = |source: http::Error| TransportError::Endpoint { endpoint: spec.endpoint.clone(), source };
        let mut builder = Client::builder(TokioExecutor::new());
        let uri = match spec.protocol {
            OtlpProtocol::Grpc => {
                builder.http2_only(true);
                let base = spec.endpoint.trim_end_matches('/');
                http::Uri::try_from(format!("{base}{EXPORT_PATH}")).map_err(|e| invalid(e.into()))?
            }
            OtlpProtocol::Http => http::Uri::try_from(spec.endpoint.as_str()).map_err(|e| invalid(e.into()))?,
        };
        Ok(Transport { client: builder.build_http(), uri, protocol: spec.protocol })
    }

    /// Sends `spans` (fields written by the workers' `SpanWriter`s, `len` bytes in all) in one
    /// request inside `envelope`, and waits for the collector's answer.
    pub(crate) async fn send(&self, envelope: &Envelope, spans: Vec<Bytes>, len: usize) -> Result<(), TransportError> {
        let request = match self.protocol {
            OtlpProtocol::Grpc => {
                // The gRPC message prefix: not compressed, then the message's length.
                let header = envelope.header(len, |message, out| {
                    out.put_u8(0);
                    out.put_u32(u32::try_from(message).unwrap_or(u32::MAX));
                });
                http::Request::post(self.uri.clone())
                    .header(CONTENT_TYPE, HeaderValue::from_static("application/grpc"))
                    .header(TE, HeaderValue::from_static("trailers"))
                    .body(Chunks::new(header, spans))
            }
            OtlpProtocol::Http => http::Request::post(self.uri.clone())
                .header(CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"))
                .body(Chunks::new(envelope.header(len, |_, _| {}), spans)),
        }
        .map_err(|e| TransportError::Request(Box::new(e)))?;
        let response = self.client.request(request).await.map_err(|e| TransportError::Request(Box::new(e)))?;
        let (parts, body) = response.into_parts();
        // Read the answer (an ExportTraceServiceResponse, and gRPC's trailers) so the connection
        // can be reused.
        let collected = body.collect().await.map_err(|e| TransportError::Request(Box::new(e)))?;
        if !parts.status.is_success() {
            return Err(TransportError::HttpStatus(parts.status.as_u16()));
        }
        if self.protocol == OtlpProtocol::Http {
            return Ok(());
        }
        // A trailers-only answer carries the status in its headers.
        let trailers = collected.trailers();
        let field = |name: &str| {
            trailers
                .and_then(|t| t.get(name))
                .or_else(|| parts.headers.get(name))
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        match field("grpc-status") {
            Some(code) if code == "0" => Ok(()),
            Some(code) => Err(TransportError::GrpcStatus { code, message: field("grpc-message").unwrap_or_default() }),
            None => Err(TransportError::NoGrpcStatus),
        }
    }
}

/// A request body made of `Bytes` sent one after another, without joining them.
#[derive(Debug, Default)]
pub(crate) struct Chunks {
    chunks: VecDeque<Bytes>,
    remaining: u64,
}

impl Chunks {
    fn new(header: Bytes, spans: Vec<Bytes>) -> Chunks {
        let mut chunks = VecDeque::with_capacity(spans.len() + 1);
        chunks.push_back(header);
        chunks.extend(spans);
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        Chunks { chunks, remaining }
    }

    /// The whole body in one buffer (tests).
    #[cfg(test)]
    pub(crate) fn concat(self) -> Bytes {
        let mut out = BytesMut::new();
        for c in self.chunks {
            out.extend_from_slice(&c);
        }
        out.freeze()
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self.chunks.pop_front();
        if let Some(chunk) = &next {
            self.remaining = self.remaining.saturating_sub(chunk.len() as u64);
        }
        Poll::Ready(next.map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_chunked_body_is_its_chunks_in_order_and_knows_its_length() {
        let body = Chunks::new(Bytes::from_static(b"ab"), vec![Bytes::from_static(b"cde"), Bytes::new()]);
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(!body.is_end_stream());
        assert_eq!(&body.concat()[..], b"abcde");
    }
}
