//! [`ProtocolImpl`]: a configured codec of a concrete type behind the erased
//! [`Protocol`](crate::plan::Protocol) trait. Its methods are where the runtime's generic code
//! (the workers, the inspector) is instantiated for that codec.

use std::io::Write;
use std::net::SocketAddr;

use futures_util::future::BoxFuture;
use metaprotocol_core::Codec;

use crate::plan::{ListenerRun, Protocol, Summary, WorkerScope};
use crate::upstream::health::{self, HealthCheckError};
use crate::upstream::HealthCheckKind;
use crate::RuntimeError;

/// A configured codec `C`.
pub(crate) struct ProtocolImpl<C: Codec> {
    name: &'static str,
    key: String,
    codec: C,
}

impl<C: Codec> ProtocolImpl<C> {
    /// `codec`, registered as `name`, sharing pools with protocols of the same `key`.
    pub fn new(name: &'static str, key: String, codec: C) -> Self {
        ProtocolImpl { name, key, codec }
    }
}

impl<C: Codec> std::fmt::Debug for ProtocolImpl<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protocol").field("name", &self.name).field("key", &self.key).finish()
    }
}

impl<C: Codec> Protocol for ProtocolImpl<C> {
    fn name(&self) -> &str {
        self.name
    }

    fn pool_key(&self) -> &str {
        &self.key
    }

    fn serve(&self, worker: &WorkerScope, listener: ListenerRun) -> Result<(), RuntimeError> {
        crate::worker::serve(worker, &self.codec, self.name, &self.key, listener)
    }

    fn inspect(&self, name: &str, data: &[u8], out: &mut dyn Write) -> Result<Summary, RuntimeError> {
        crate::inspect::inspect_stream(self.codec.clone(), name, data, out)
    }

    fn health_check(
        &self,
        address: SocketAddr,
        kind: HealthCheckKind,
        request: Option<bytes::Bytes>,
    ) -> BoxFuture<'static, Result<(), HealthCheckError>> {
        let codec = self.codec.clone();
        Box::pin(async move { health::check_with_codec(&codec, address, kind, request).await })
    }
}
