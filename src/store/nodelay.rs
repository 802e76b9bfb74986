//! TCP_NODELAY on PostgreSQL connections.
//!
//! sqlx 0.9.0 stopped setting TCP_NODELAY on its sockets (transact-rs/sqlx
//! issue 4335; fixed upstream, not yet released). Without it a statement
//! larger than one TCP segment ends with a partial segment that Nagle's
//! algorithm holds until the server's delayed ACK, about 40 ms later: over
//! loopback TCP the ingest benchmark fell from 31,000 to 6,000–13,000
//! records per second. sqlx gives no handle on its socket, so after each
//! new connection every TCP socket of this process gets TCP_NODELAY. That
//! is idempotent and harmless for the others (hyper sets it on its own).
//! Remove this when sqlx sets it again.

use std::os::fd::BorrowedFd;

/// Sets TCP_NODELAY on every TCP socket of this process that lacks it and
/// returns how many it changed.
pub fn set_on_tcp_sockets() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut changed = 0;
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor is only borrowed for two setsockopt-style
        // calls and never closed. Should it be closed and reused meanwhile,
        // the calls fail (not a TCP socket) or set an option that is
        // harmless on any TCP socket.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&fd);
        if sock.tcp_nodelay().is_ok_and(|on| !on) && sock.set_tcp_nodelay(true).is_ok() {
            changed += 1;
        }
    }
    changed
}

/// The TCP_NODELAY setting of every TCP socket of this process connected to
/// `port` (for tests: the database connections).
pub fn tcp_nodelay_to_port(port: u16) -> Vec<bool> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let fd = entry.file_name().to_str()?.parse::<i32>().ok()?;
            // SAFETY: as above, borrowed for read-only queries.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let sock = socket2::SockRef::from(&fd);
            let peer = sock.peer_addr().ok()?.as_socket()?;
            (peer.port() == port)
                .then(|| sock.tcp_nodelay().ok())
                .flatten()
        })
        .collect()
}
