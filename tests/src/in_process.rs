//! What the in-process checks of both stages share: a connected pair of sockets to hand to the
//! page's functions, epoll's view of a loop, and a client's read with a time limit.

use std::io::{ErrorKind, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use crate::Failure;
use crate::harness::fail;

/// How long an in-process check waits for a client's `connect()` or for the loop to report.
pub const WAIT: Duration = Duration::from_secs(2);

/// A connected pair over loopback: the client's stream and the server side's socket, accepted
/// here (not by the code under test), as `accept()` would give it to the page's functions. The
/// client's reads time out after [`WAIT`].
pub fn connected_pair() -> (TcpStream, OwnedFd) {
    let listener =
        TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| fail(Failure::new(format!("bind 127.0.0.1:0: {e}"))));
    let address = listener.local_addr().unwrap_or_else(|e| fail(Failure::new(format!("getsockname: {e}"))));
    let client = TcpStream::connect_timeout(&address, WAIT)
        .unwrap_or_else(|e| fail(Failure::new(format!("connect to {address}: {e}"))));
    let (server_side, _) = listener.accept().unwrap_or_else(|e| fail(Failure::new(format!("accept: {e}"))));
    client.set_read_timeout(Some(WAIT)).unwrap_or_else(|e| fail(Failure::new(format!("a read timeout: {e}"))));
    (client, OwnedFd::from(server_side))
}

/// How many events epoll reports on `epoll_fd` within `timeout` (the loop itself is not
/// running: the check looks at what is attached).
pub fn ready_events(epoll_fd: BorrowedFd<'_>, timeout: Duration) -> usize {
    reported_data(epoll_fd, timeout).len()
}

/// The data of each event epoll reports on `epoll_fd` within `timeout`: what `xps_loop_attach()`
/// made epoll carry back (stage 6: the fd itself, the page's `event.data.fd = fd`).
pub fn reported_data(epoll_fd: BorrowedFd<'_>, timeout: Duration) -> Vec<u64> {
    let mut events = [shared::sys::empty_epoll_event(); 8];
    let n = shared::sys::epoll_wait(epoll_fd, &mut events, timeout.as_millis() as i32)
        .unwrap_or_else(|e| fail(Failure::new(format!("epoll_wait() on the loop's epoll fd failed: {e}"))));
    events[..n].iter().map(|e| e.u64).collect()
}

/// The data stage 6's loop expects with `fd`'s events: the fd number.
pub fn fd_data(fd: BorrowedFd<'_>) -> u64 {
    fd.as_raw_fd() as u64
}

/// What `client` reads until `want` bytes came, the server closed, or its timeout: the bytes,
/// and whether the server closed.
pub fn read_some(client: &mut TcpStream, want: usize) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < want {
        match client.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    (got, false)
}

/// A dup of `fd`, which keeps its socket open after the code under test closes its own fd:
/// epoll watches the socket, not the fd number, so only a detach stops its events.
pub fn keep_open(fd: BorrowedFd<'_>) -> OwnedFd {
    fd.try_clone_to_owned().unwrap_or_else(|e| fail(Failure::new(format!("dup(): {e}"))))
}
