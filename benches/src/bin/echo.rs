//! `echo-upstream`: a fast upstream for benchmarks. Answers every Dubbo or framed-Thrift request
//! with a fixed response (a string value of `--payload` bytes) carrying the request's id. It reads
//! frame boundaries and ids only, reads into a large buffer, and answers a whole read's worth of
//! requests in one write. One thread (the default) runs a current-thread event loop.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use metaprotocol_benches::load::{next_frame, Proto, RecvBuf, Template};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

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
    /// Threads (1: a current-thread event loop; more: a multi-threaded runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Answer each request this long after it arrived, such as `2ms` (a slow upstream; answers
    /// still pipeline: a connection holds any number of requests in that time).
    #[arg(long, default_value = "0ms")]
    delay: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let built = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()
    };
    let Ok(rt) = built else {
        eprintln!("echo-upstream: cannot start the runtime");
        return ExitCode::FAILURE;
    };
    let delay = match metaprotocol_core::route::config::parse_duration(&args.delay) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("echo-upstream: --delay: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("echo-upstream: cannot bind {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        println!("LISTENING {}", args.listen);
        let response = Template::response(args.protocol, args.payload);
        if response.is_empty() {
            eprintln!("echo-upstream: cannot build the response");
            return ExitCode::FAILURE;
        }
        loop {
            match listener.accept().await {
                Ok((sock, _)) => {
                    let response = response.clone();
                    if delay.is_zero() {
                        tokio::spawn(serve(sock, args.protocol, response));
                    } else {
                        tokio::spawn(serve_delayed(sock, args.protocol, response, delay));
                    }
                }
                // Out of descriptors and the like: keep serving the connections there are.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    })
}

/// Answers the requests of one connection until it closes.
async fn serve(mut sock: TcpStream, proto: Proto, response: Template) {
    let _ = sock.set_nodelay(true);
    let mut inbuf = RecvBuf::new(256 * 1024);
    let mut out = Vec::with_capacity(64 * 1024);
    while inbuf.read_from(&mut sock).await.unwrap_or(0) > 0 {
        while let Some((len, id, _)) = next_frame(proto, inbuf.pending()) {
            // Heartbeats and one-way requests are not answered by this simple upstream.
            inbuf.consume(len);
            response.write(&mut out, id);
        }
        if !out.is_empty() {
            if sock.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
    }
}

/// [`serve`], answering each read's requests `delay` after they arrived: the reader hands each
/// batch of answers with its due time to a writer, which writes them in order when due.
async fn serve_delayed(sock: TcpStream, proto: Proto, response: Template, delay: std::time::Duration) {
    let _ = sock.set_nodelay(true);
    let (mut rd, mut wr) = sock.into_split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, batch)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if wr.write_all(&batch).await.is_err() {
                break;
            }
        }
    });
    let mut inbuf = RecvBuf::new(256 * 1024);
    while inbuf.read_from(&mut rd).await.unwrap_or(0) > 0 {
        let mut out = Vec::new();
        while let Some((len, id, _)) = next_frame(proto, inbuf.pending()) {
            inbuf.consume(len);
            response.write(&mut out, id);
        }
        if !out.is_empty() && tx.send((tokio::time::Instant::now() + delay, out)).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}
