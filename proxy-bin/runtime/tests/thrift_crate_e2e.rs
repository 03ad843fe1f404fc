//! Apache Thrift's Rust library (the `thrift` crate) as client and server, through metaproxy, in
//! every transport and protocol the crate speaks: framed and buffered (unframed), binary and
//! compact. Routing on the method name; an unrouted method reaches the client as the crate's
//! `ApplicationError` (UNKNOWN_METHOD); one-way calls pass through.

// Tests panic on purpose when an expectation fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TCompactInputProtocol, TCompactOutputProtocol, TFieldIdentifier,
    TInputProtocol, TMessageIdentifier, TMessageType, TOutputProtocol, TStructIdentifier, TType,
};
use thrift::transport::{TBufferedReadTransport, TBufferedWriteTransport, TFramedReadTransport, TFramedWriteTransport};
use thrift::{ApplicationError, ApplicationErrorKind};

#[derive(Clone, Copy, Debug)]
enum Tr {
    Framed,
    Buffered,
}

#[derive(Clone, Copy, Debug)]
enum Pr {
    Binary,
    Compact,
}

type Protocols = (Box<dyn TInputProtocol + Send>, Box<dyn TOutputProtocol + Send>);

fn protocols(stream: TcpStream, t: Tr, p: Pr) -> Protocols {
    let read = stream.try_clone().unwrap();
    let (r, w): (Box<dyn Read + Send>, Box<dyn Write + Send>) = match t {
        Tr::Framed => (Box::new(TFramedReadTransport::new(read)), Box::new(TFramedWriteTransport::new(stream))),
        Tr::Buffered => (Box::new(TBufferedReadTransport::new(read)), Box::new(TBufferedWriteTransport::new(stream))),
    };
    match p {
        Pr::Binary => (Box::new(TBinaryInputProtocol::new(r, true)), Box::new(TBinaryOutputProtocol::new(w, true))),
        Pr::Compact => (Box::new(TCompactInputProtocol::new(r)), Box::new(TCompactOutputProtocol::new(w))),
    }
}

/// Reads an args struct and returns its field 1 if it is a string.
fn read_args(i: &mut dyn TInputProtocol) -> thrift::Result<String> {
    let mut arg = String::new();
    i.read_struct_begin()?;
    loop {
        let f = i.read_field_begin()?;
        if f.field_type == TType::Stop {
            break;
        }
        if f.id == Some(1) && f.field_type == TType::String {
            arg = i.read_string()?;
        } else {
            i.skip(f.field_type)?;
        }
        i.read_field_end()?;
    }
    i.read_struct_end()?;
    Ok(arg)
}

fn write_string_struct(o: &mut dyn TOutputProtocol, id: i16, value: &str) -> thrift::Result<()> {
    o.write_struct_begin(&TStructIdentifier::new("s"))?;
    o.write_field_begin(&TFieldIdentifier::new("f", TType::String, id))?;
    o.write_string(value)?;
    o.write_field_end()?;
    o.write_field_stop()?;
    o.write_struct_end()
}

/// A `thrift`-crate server: `sayHello(name)` answers "Hello NAME from rust"; `log` is one-way.
fn server(t: Tr, p: Pr) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let logs = Arc::new(AtomicUsize::new(0));
    let l = logs.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let l = l.clone();
            std::thread::spawn(move || {
                let (mut i, mut o) = protocols(stream, t, p);
                while let Ok(m) = i.read_message_begin() {
                    let arg = read_args(&mut *i).unwrap();
                    i.read_message_end().unwrap();
                    if m.name == "log" {
                        l.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    o.write_message_begin(&TMessageIdentifier::new(&m.name, TMessageType::Reply, m.sequence_number))
                        .unwrap();
                    write_string_struct(&mut *o, 0, &format!("Hello {arg} from rust")).unwrap();
                    o.write_message_end().unwrap();
                    o.flush().unwrap();
                }
            });
        }
    });
    (port, logs)
}

/// A `thrift`-crate client connection.
struct Client {
    i: Box<dyn TInputProtocol + Send>,
    o: Box<dyn TOutputProtocol + Send>,
    seq: i32,
}

impl Client {
    fn connect(port: u16, t: Tr, p: Pr) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let (i, o) = protocols(stream, t, p);
        Client { i, o, seq: 0 }
    }

    fn send(&mut self, method: &str, kind: TMessageType, arg: &str) {
        self.seq += 1;
        self.o.write_message_begin(&TMessageIdentifier::new(method, kind, self.seq)).unwrap();
        write_string_struct(&mut *self.o, 1, arg).unwrap();
        self.o.write_message_end().unwrap();
        self.o.flush().unwrap();
    }

    fn call(&mut self, method: &str, arg: &str) -> Result<String, ApplicationError> {
        self.send(method, TMessageType::Call, arg);
        let m = self.i.read_message_begin().unwrap();
        assert_eq!(m.sequence_number, self.seq, "the client's sequence id comes back");
        if m.message_type == TMessageType::Exception {
            let e = thrift::Error::read_application_error_from_in_protocol(&mut *self.i).unwrap();
            self.i.read_message_end().unwrap();
            return Err(e);
        }
        let mut value = String::new();
        self.i.read_struct_begin().unwrap();
        loop {
            let f = self.i.read_field_begin().unwrap();
            if f.field_type == TType::Stop {
                break;
            }
            value = self.i.read_string().unwrap();
            self.i.read_field_end().unwrap();
        }
        self.i.read_struct_end().unwrap();
        self.i.read_message_end().unwrap();
        Ok(value)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thrift_crate_client_and_server_through_metaproxy() {
    for (t, p) in
        [(Tr::Framed, Pr::Binary), (Tr::Framed, Pr::Compact), (Tr::Buffered, Pr::Binary), (Tr::Buffered, Pr::Compact)]
    {
        let (upstream, logs) = server(t, p);
        let yaml = format!(
            r#"
listeners:
  - name: in
    address: 127.0.0.1:0
    protocol: thrift
    routes:
      - name: greeter
        match: [{{ key: method, regex: "sayHello|log" }}]
        route: {{ cluster: rust }}
clusters:
  # One upstream connection: the one-way call and the next call keep their order.
  - {{ name: rust, connections_per_endpoint: 1, endpoints: [{{ address: "127.0.0.1:{upstream}" }}] }}
access_log: {{ enabled: false }}
"#
        );
        let registry = metaproxy_runtime::default_registry().unwrap();
        let cfg = metaproxy_runtime::config::load_str(&yaml, "thrift.yaml", &registry).unwrap();
        let running = metaproxy_runtime::server::start(cfg).await.unwrap();
        let port = running.address("in").unwrap().port();
        let (logs2, label) = (logs.clone(), format!("{t:?}/{p:?}"));
        tokio::task::spawn_blocking(move || {
            let mut c = Client::connect(port, t, p);
            for n in 0..3 {
                assert_eq!(c.call("sayHello", &format!("n{n}")).unwrap(), format!("Hello n{n} from rust"), "{label}");
            }
            c.send("log", TMessageType::OneWay, "a line");
            let e = c.call("charge", "acct").unwrap_err();
            assert_eq!(e.kind, ApplicationErrorKind::UnknownMethod, "{label}: {e:?}");
            assert!(e.message.contains("route_not_found"), "{label}: {e:?}");
            // The connection is still usable after the error reply, and the one-way call arrived.
            assert_eq!(c.call("sayHello", "again").unwrap(), "Hello again from rust", "{label}");
            assert_eq!(logs2.load(Ordering::SeqCst), 1, "{label}");
        })
        .await
        .unwrap();
        running.shutdown().await;
    }
}
