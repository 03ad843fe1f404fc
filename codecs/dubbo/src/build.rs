//! Building whole Dubbo frames with string arguments and attachments: what a simple client or
//! provider writes (the demo, tests, benchmarks and load generators use it).

use bytes::{BufMut, Bytes, BytesMut};

use crate::header::{self, status, FLAG_REQUEST, FLAG_TWO_WAY, HEADER_LEN, HESSIAN2};
use crate::hessian::{write_int, write_map_end, write_map_start, write_string, HessianError};

/// A request whose parameters are all `java.lang.String`.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// Request id.
    pub id: u64,
    /// False for a one-way request.
    pub two_way: bool,
    /// Service path (interface).
    pub service: &'a str,
    /// Service version.
    pub version: &'a str,
    /// Method name.
    pub method: &'a str,
    /// String arguments.
    pub args: &'a [&'a str],
    /// Attachments.
    pub attachments: &'a [(&'a str, &'a str)],
}

fn map(out: &mut BytesMut, pairs: &[(&str, &str)]) -> Result<(), HessianError> {
    write_map_start(out);
    for (k, v) in pairs {
        write_string(out, k.as_bytes())?;
        write_string(out, v.as_bytes())?;
    }
    write_map_end(out);
    Ok(())
}

fn frame(flags: u8, status: u8, id: u64, body: &[u8]) -> Bytes {
    let mut f = BytesMut::with_capacity(HEADER_LEN + body.len());
    // A body over 2 GiB cannot be built from these inputs; the header write cannot fail here.
    let _ = header::write(&mut f, flags, status, id, body.len());
    f.put_slice(body);
    f.freeze()
}

impl Request<'_> {
    /// The encoded frame (Dubbo 2.0.2, Hessian 2).
    pub fn to_frame(&self) -> Result<Bytes, HessianError> {
        let mut b = BytesMut::new();
        let types = "Ljava/lang/String;".repeat(self.args.len());
        for s in ["2.0.2", self.service, self.version, self.method, &types] {
            write_string(&mut b, s.as_bytes())?;
        }
        for a in self.args {
            write_string(&mut b, a.as_bytes())?;
        }
        let mut attachments: Vec<(&str, &str)> =
            vec![("path", self.service), ("interface", self.service), ("version", self.version)];
        attachments.extend_from_slice(self.attachments);
        map(&mut b, &attachments)?;
        let flags = FLAG_REQUEST | HESSIAN2 | if self.two_way { FLAG_TWO_WAY } else { 0 };
        Ok(frame(flags, 0, self.id, &b))
    }
}

/// A status-20 response carrying a string value, with attachments (body kind 4) or without (1).
pub fn value_response(id: u64, value: &str, attachments: &[(&str, &str)]) -> Result<Bytes, HessianError> {
    let mut b = BytesMut::new();
    write_int(&mut b, if attachments.is_empty() { 1 } else { 4 });
    write_string(&mut b, value.as_bytes())?;
    if !attachments.is_empty() {
        map(&mut b, attachments)?;
    }
    Ok(frame(HESSIAN2, status::OK, id, &b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use metaprotocol_core::{Codec, MessageType};

    #[test]
    fn built_frames_decode() {
        let req = Request {
            id: 9,
            two_way: true,
            service: "S",
            version: "1.0",
            method: "m",
            args: &["a", "b"],
            attachments: &[("batchjob", "true")],
        };
        let mut buf = BytesMut::from(&req.to_frame().unwrap()[..]);
        let m = crate::DubboCodec::default().decode(&mut buf).unwrap().unwrap();
        assert_eq!(m.metadata.kvs.get_str("parameter_types"), Some("Ljava/lang/String;Ljava/lang/String;"));
        assert_eq!(m.metadata.kvs.get_str("batchjob"), Some("true"));
        let mut buf = BytesMut::from(&value_response(9, "hi", &[("served-by", "p1")]).unwrap()[..]);
        let r = crate::DubboCodec::default().decode(&mut buf).unwrap().unwrap();
        assert_eq!(r.metadata.message_type, MessageType::Response);
        assert_eq!(r.metadata.kvs.get_str("served-by"), Some("p1"));
    }
}
