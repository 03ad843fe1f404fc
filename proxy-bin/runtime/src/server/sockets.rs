//! Listening sockets: one per worker and listener, all bound to the listener's address with
//! `SO_REUSEPORT`, so the kernel spreads connections over the workers with no shared accept queue
//! and no hand-off between threads.

use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use crate::RuntimeError;

/// Connections waiting to be accepted, per socket.
const BACKLOG: i32 = 1024;

fn bind_one(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// `count` sockets listening on `address` (port 0 picks one port for all); returns them and the
/// address they are bound to.
pub fn bind(address: SocketAddr, count: usize) -> Result<(Vec<TcpListener>, SocketAddr), RuntimeError> {
    let first = bind_one(address).map_err(|source| RuntimeError::Bind { address, source })?;
    let bound = first.local_addr().map_err(|source| RuntimeError::Bind { address, source })?;
    let mut sockets = vec![first];
    for _ in 1..count.max(1) {
        sockets.push(bind_one(bound).map_err(|source| RuntimeError::Bind { address: bound, source })?);
    }
    Ok((sockets, bound))
}
