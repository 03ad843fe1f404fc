//! Builds Dubbo frames for tests, the way a Hessian 2 client lays them out.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use bytes::{BufMut, Bytes, BytesMut};
use metaprotocol_dubbo::hessian::{write_int, write_map_end, write_map_start, write_null, write_string};

pub fn frame(flags: u8, status: u8, id: u64, body: &[u8]) -> Bytes {
    let mut f = BytesMut::new();
    f.put_slice(&[0xda, 0xbb, flags, status]);
    f.put_u64(id);
    f.put_u32(body.len() as u32);
    f.put_slice(body);
    f.freeze()
}

pub fn s(out: &mut BytesMut, text: &str) {
    write_string(out, text.as_bytes()).unwrap();
}

pub fn attachments(out: &mut BytesMut, pairs: &[(&str, &str)]) {
    write_map_start(out);
    for (k, v) in pairs {
        s(out, k);
        s(out, v);
    }
    write_map_end(out);
}

/// A two-way Hessian 2 request: sayHello(String, int) with attachments.
pub fn request(id: u64, two_way: bool, arg: &str, pairs: &[(&str, &str)]) -> Bytes {
    let mut b = BytesMut::new();
    s(&mut b, "2.0.2");
    s(&mut b, "org.apache.dubbo.demo.DemoService");
    s(&mut b, "1.0.0");
    s(&mut b, "sayHello");
    s(&mut b, "Ljava/lang/String;I");
    s(&mut b, arg);
    write_int(&mut b, 42);
    attachments(&mut b, pairs);
    frame(if two_way { 0xc2 } else { 0x82 }, 0, id, &b)
}

/// A request whose argument is an object with a class definition, a list and a map.
pub fn request_with_object(id: u64) -> Bytes {
    let mut b = BytesMut::new();
    s(&mut b, "2.0.2");
    s(&mut b, "org.demo.UserService");
    s(&mut b, "");
    s(&mut b, "save");
    s(&mut b, "Lorg/demo/User;Ljava/util/List;");
    // class def org.demo.User { name, age } and an instance
    b.put_u8(b'C');
    s(&mut b, "org.demo.User");
    write_int(&mut b, 2);
    s(&mut b, "name");
    s(&mut b, "age");
    b.put_u8(0x60);
    s(&mut b, "alice");
    write_int(&mut b, 30);
    // untyped list [1, "x", null]
    b.put_u8(0x7b);
    write_int(&mut b, 1);
    s(&mut b, "x");
    write_null(&mut b);
    attachments(&mut b, &[("path", "org.demo.UserService"), ("group", "gold"), ("batchjob", "true"), ("trace", "t-1")]);
    frame(0xc2, 0, id, &b)
}

/// A response with status 20 and the given body kind.
pub fn response(id: u64, kind: i32, pairs: &[(&str, &str)]) -> Bytes {
    let mut b = BytesMut::new();
    write_int(&mut b, kind);
    match kind {
        0 | 3 => {
            // a "Throwable" object: class def + instance with a message
            b.put_u8(b'C');
            s(&mut b, "java.lang.RuntimeException");
            write_int(&mut b, 1);
            s(&mut b, "detailMessage");
            b.put_u8(0x60);
            s(&mut b, "boom");
        }
        1 | 4 => s(&mut b, "Hello, world"),
        _ => {}
    }
    if kind >= 3 {
        attachments(&mut b, pairs);
    }
    frame(0x02, 20, id, &b)
}

pub fn error_response(id: u64, status: u8, message: &str) -> Bytes {
    let mut b = BytesMut::new();
    s(&mut b, message);
    frame(0x02, status, id, &b)
}

pub fn heartbeat_request(id: u64) -> Bytes {
    frame(0xe2, 0, id, b"N")
}

pub fn heartbeat_response(id: u64) -> Bytes {
    frame(0x22, 20, id, b"N")
}
