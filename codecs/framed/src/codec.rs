//! [`FramedCodec`]: the `Codec` implementation, over a compiled configuration shared by every
//! connection of a listener.

use std::sync::Arc;

use bytes::BytesMut;
use metaprotocol_core::{Codec, CodecError, ConfigError, LocalReply, Message, Mutation, WireBuf};

use crate::config::FramedOptions;
use crate::layout::FramedLayout;
use crate::spec::Spec;
use crate::{decode, encode, reply, selftest};

/// The framed codec for one connection. It keeps no state between messages; cloning it shares
/// the compiled configuration.
#[derive(Clone, Debug)]
pub struct FramedCodec {
    spec: Arc<Spec>,
}

impl FramedCodec {
    /// A codec for `options`, checked: the fields, the layouts and the replies (a request built
    /// from the configuration must decode, and every reply to it must decode as an error
    /// response with its id).
    pub fn new(options: &FramedOptions) -> Result<FramedCodec, ConfigError> {
        let spec = Spec::compile(options)?;
        selftest::run(&spec)?;
        Ok(FramedCodec { spec: Arc::new(spec) })
    }
}

impl Codec for FramedCodec {
    type Layout = FramedLayout;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message<FramedLayout>>, CodecError> {
        decode::decode(&self.spec, src)
    }

    fn encode(
        &mut self,
        message: &Message<FramedLayout>,
        mutation: &Mutation,
        dst: &mut WireBuf,
    ) -> Result<(), CodecError> {
        encode::encode(&self.spec, message, mutation, dst)
    }

    fn max_frame_size(&self) -> usize {
        self.spec.max_frame_size
    }

    fn request_id_limit(&self) -> u64 {
        self.spec.request_id.max()
    }

    fn local_reply(
        &self,
        request: &Message<FramedLayout>,
        reply: &LocalReply,
    ) -> Result<Message<FramedLayout>, CodecError> {
        reply::local(&self.spec, request, reply)
    }

    fn heartbeat_reply(&self, ping: &Message<FramedLayout>) -> Result<Message<FramedLayout>, CodecError> {
        reply::pong(&self.spec, ping)
    }

    /// A two-way request whose header parsed but whose sections did not gets the `bad_request`
    /// error reply, with the parse error as its text.
    fn malformed_reply(&self, error: &CodecError) -> Option<Message<FramedLayout>> {
        reply::malformed(&self.spec, error)
    }
}
