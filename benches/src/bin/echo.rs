//! `echo-upstream`: a fast upstream for benchmarks. Answers every Dubbo or framed-Thrift request
//! with a fixed response (a string value of `--payload` bytes) carrying the request's id. It reads
//! frame boundaries and ids only, and answers a whole read's worth of requests in one write.

#![forbid(unsafe_code)]

use bytes::{Buf, BytesMut};
use clap::Parser;
use metaprotocol_benches::load::{next_frame, Proto, Template};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A fast echo upstream.
#[derive(Debug, Parser)]
#[command(name = "echo-upstream", about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:31001")]
    listen: std::net::SocketAddr,
    /// Protocol.
    #[arg(long, short = 'p', value_enum, default_value = "dubbo")]
    protocol: Proto,
    /// Response value size in bytes.
    #[arg(long, default_value_t = 1024)]
    payload: usize,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads.max(1)).enable_all().build()
    else {
        return std::process::ExitCode::FAILURE;
    };
    rt.block_on(async move {
        let Ok(listener) = tokio::net::TcpListener::bind(args.listen).await else {
            eprintln!("echo-upstream: cannot bind {}", args.listen);
            return std::process::ExitCode::FAILURE;
        };
        println!("LISTENING {}", args.listen);
        let response = Template::response(args.protocol, args.payload);
        while let Ok((mut sock, _)) = listener.accept().await {
            let (response, proto) = (response.clone(), args.protocol);
            tokio::spawn(async move {
                let _ = sock.set_nodelay(true);
                let (mut inbuf, mut out) = (BytesMut::with_capacity(64 * 1024), BytesMut::with_capacity(64 * 1024));
                while sock.read_buf(&mut inbuf).await.unwrap_or(0) > 0 {
                    while let Some((len, id, _)) = next_frame(proto, &inbuf) {
                        // Heartbeats and one-way requests are not answered by this simple upstream.
                        inbuf.advance(len);
                        response.write(&mut out, id);
                    }
                    if sock.write_all(&out).await.is_err() {
                        break;
                    }
                    out.clear();
                }
            });
        }
        std::process::ExitCode::SUCCESS
    })
}
