//! Sending an encoded `ExportTraceServiceRequest` to the collector: OTLP/gRPC through `tonic`
//! (the `TraceService/Export` unary call, with a codec that passes the bytes through), or
//! OTLP/HTTP through `hyper` (`POST` of `application/x-protobuf`). Both clients keep their
//! connection between calls. The caller bounds each call with its timeout.

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};

use crate::config::{ExporterSpec, OtlpProtocol};

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
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The gRPC call failed (connection, or a status other than OK).
    #[error("gRPC export failed")]
    Grpc(#[source] Box<tonic::Status>),
    /// The HTTP request failed.
    #[error("HTTP export failed")]
    Http(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The collector answered with an HTTP status other than success.
    #[error("the collector answered HTTP {0}")]
    HttpStatus(u16),
}

/// A connection to one collector.
pub(crate) enum Transport {
    Grpc(tonic::client::Grpc<Channel>),
    Http { client: Client<HttpConnector, Full<Bytes>>, uri: http::Uri },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Grpc(_) => "Transport::Grpc",
            Transport::Http { .. } => "Transport::Http",
        })
    }
}

impl Transport {
    /// A client for `spec`'s collector; connects on the first call (and again after a failure).
    /// Must be called inside a tokio runtime.
    pub(crate) fn new(spec: &ExporterSpec) -> Result<Transport, TransportError> {
        let invalid = |source: Box<dyn std::error::Error + Send + Sync>| TransportError::Endpoint {
            endpoint: spec.endpoint.clone(),
            source,
        };
        match spec.protocol {
            OtlpProtocol::Grpc => {
                let endpoint = Endpoint::from_shared(spec.endpoint.clone()).map_err(|e| invalid(Box::new(e)))?;
                Ok(Transport::Grpc(tonic::client::Grpc::new(endpoint.connect_lazy())))
            }
            OtlpProtocol::Http => {
                let uri: http::Uri = spec.endpoint.parse().map_err(|e| invalid(Box::new(e)))?;
                let client = Client::builder(TokioExecutor::new()).build_http();
                Ok(Transport::Http { client, uri })
            }
        }
    }

    /// Sends one encoded request and waits for the collector's answer.
    pub(crate) async fn send(&mut self, body: Bytes) -> Result<(), TransportError> {
        match self {
            Transport::Grpc(grpc) => {
                grpc.ready()
                    .await
                    .map_err(|e| TransportError::Grpc(Box::new(tonic::Status::unavailable(e.to_string()))))?;
                let path = http::uri::PathAndQuery::from_static(EXPORT_PATH);
                grpc.unary(tonic::Request::new(body), path, RawCodec)
                    .await
                    .map(drop)
                    .map_err(|status| TransportError::Grpc(Box::new(status)))
            }
            Transport::Http { client, uri } => {
                let request = http::Request::post(uri.clone())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(Full::new(body))
                    .map_err(|e| TransportError::Http(Box::new(e)))?;
                let response = client.request(request).await.map_err(|e| TransportError::Http(Box::new(e)))?;
                let status = response.status();
                // Read the answer (an ExportTraceServiceResponse) so the connection can be reused.
                let _ = response.into_body().collect().await;
                if status.is_success() {
                    Ok(())
                } else {
                    Err(TransportError::HttpStatus(status.as_u16()))
                }
            }
        }
    }
}

/// A gRPC codec for bytes already encoded: sends them as they are and skips the answer (an
/// `ExportTraceServiceResponse`, whose partial-success counts the proxy does not use).
#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put(dst, item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = ();
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        let n = src.remaining();
        src.advance(n);
        Ok(Some(()))
    }
}
