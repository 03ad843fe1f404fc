//! The configuration check that needs the codec itself: a request built from the configuration
//! must decode as a request, every error reply to it as an error response with its id, and a
//! ping (when the configuration has pings) must get an answer that decodes as a pong. A
//! configuration that fails here could compile but never work, so `check` refuses it.

use bytes::BytesMut;
use metaprotocol_core::{ConfigError, LocalReply, MessageType, ReplyKind, ResponseStatus};

use crate::build::build;
use crate::decode::decode_whole;
use crate::reply;
use crate::spec::{invalid, Spec, Variant};

/// The id the sample frames carry.
const SAMPLE_ID: u64 = 1;

/// Runs the check.
pub(crate) fn run(spec: &Spec) -> Result<(), ConfigError> {
    let request =
        sample(spec, false).map_err(|e| invalid("frame", format!("a request built from this configuration: {e}")))?;
    let what = |t: MessageType| {
        format!("a request built from this configuration (type value of `message_type.request`, every section empty) decodes as {t}")
    };
    if request.metadata.message_type != MessageType::Request || request.metadata.request_id != SAMPLE_ID {
        return Err(invalid("message_type", what(request.metadata.message_type)));
    }
    for kind in ReplyKind::ALL {
        let made = reply::local(spec, &request, &LocalReply::new(kind, "check"))
            .map_err(|e| invalid("error_reply", format!("the {kind} reply cannot be built: {e}")))?;
        let m = &made.metadata;
        if !m.message_type.is_response() || m.response_status == ResponseStatus::Ok || m.request_id != SAMPLE_ID {
            return Err(invalid(
                "error_reply",
                format!(
                    "the {kind} reply decodes as a {} with status {} and id {}: it must be an error response with the \
                     request's id (set the response's message type value with `set`)",
                    m.message_type,
                    m.response_status.as_str(),
                    m.request_id
                ),
            ));
        }
    }
    let has_pings = spec.heartbeat.is_some() || spec.kinds.iter().any(|(_, t)| *t == MessageType::Ping);
    if has_pings {
        let ping = sample(spec, true)
            .map_err(|e| invalid("message_type.heartbeat", format!("a ping built from this configuration: {e}")))?;
        if ping.metadata.message_type != MessageType::Ping {
            return Err(invalid(
                "message_type.heartbeat",
                format!("a ping built from this configuration decodes as {}", ping.metadata.message_type),
            ));
        }
        reply::pong(spec, &ping).map_err(|e| invalid("heartbeat_reply", e.to_string()))?;
    }
    Ok(())
}

/// A request (or ping) with every section empty.
fn sample(
    spec: &Spec,
    ping: bool,
) -> Result<metaprotocol_core::Message<crate::FramedLayout>, metaprotocol_core::CodecError> {
    let mut head = BytesMut::zeroed(spec.request.header_size);
    if let Some(m) = &spec.magic {
        if let (Some(slot), Some(first)) = (head.get_mut(m.offset..m.offset + m.len), m.any_of.first()) {
            slot.copy_from_slice(first);
        }
    }
    let of = |t: MessageType| spec.kinds.iter().find(|(_, k)| *k == t).map(|(v, _)| *v);
    let value = match (ping, of(MessageType::Ping)) {
        (true, Some(v)) => v,
        _ => of(MessageType::Request).unwrap_or(0),
    };
    spec.kind.write(&mut head, value);
    if let Some(h) = &spec.heartbeat {
        let marker = if ping {
            h.values.first().copied()
        } else {
            (0..=h.field.max().min(1 << 16)).find(|v| !h.values.contains(v))
        };
        if let Some(v) = marker {
            h.field.write(&mut head, v);
        }
    }
    spec.request_id.write(&mut head, SAMPLE_ID);
    decode_whole(spec, build(spec, Variant::Request, head, None)?)
}
