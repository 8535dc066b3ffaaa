//! Thin, safe wrappers around the Linux calls the course makes.
//!
//! The course calls `socket()`, `bind()`, `getaddrinfo()`, `accept()`, `recv()`, `send()` and
//! `epoll_*()` from its C directly and checks `errno`. Each function here is one such call: it returns
//! `io::Result`, built from `io::Error::last_os_error()` right after the call fails, so the
//! caller can log the OS error text exactly where the C calls `perror()`.
//!
//! File descriptors are passed as `BorrowedFd` (an fd someone keeps open for the duration of
//! the call) and returned as `OwnedFd` (closed exactly once, when dropped). This is the only
//! module of the workspace's servers that calls `libc` through `unsafe`.
//!
//! Calls that block are retried when a signal interrupts them (`EINTR`): a signal is not an
//! error the course wants logged, and `epoll_wait` is never restarted by the kernel itself.

use std::ffi::CStr;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

pub use libc::epoll_event;
pub use libc::{EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP};

/// Turns a `-1` return into the OS error, anything else into `Ok`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// Like [`check`] for calls returning `ssize_t`.
fn check_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret as usize) }
}

/// Runs `call` again while it fails with `EINTR`.
fn retry<T>(mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Wraps a fresh fd returned by the kernel.
fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful socket/accept/epoll_create/eventfd call, so
    // it is open and nothing else owns it; the OwnedFd becomes its only owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn to_sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value (it is what C's memset does).
    let mut sa: libc::sockaddr_in = unsafe { zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = addr.port().to_be();
    sa.sin_addr.s_addr = u32::from(*addr.ip()).to_be();
    sa
}

fn from_sockaddr_in(sa: &libc::sockaddr_in) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)), u16::from_be(sa.sin_port))
}

/// `socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)`: a non-blocking IPv4 TCP socket, as the
/// course creates its listening sockets (also close-on-exec, so children never inherit it).
pub fn socket_nonblocking() -> io::Result<OwnedFd> {
    let flags = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket() takes no pointers; it only returns a new fd or -1.
    check(unsafe { libc::socket(libc::AF_INET, flags, 0) }).map(owned)
}

/// `setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, 1)`: lets a restarted server bind its port at once
/// instead of waiting for old connections in TIME_WAIT to expire.
pub fn set_reuseaddr(fd: BorrowedFd<'_>) -> io::Result<()> {
    let enable: libc::c_int = 1;
    // SAFETY: the option value points to a live c_int and its exact size is passed.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&raw const enable).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check(ret).map(drop)
}

/// `bind(fd, addr)`.
pub fn bind(fd: BorrowedFd<'_>, addr: SocketAddrV4) -> io::Result<()> {
    let sa = to_sockaddr_in(addr);
    // SAFETY: `sa` is a valid sockaddr_in that lives across the call, and its size is passed.
    let ret = unsafe {
        libc::bind(fd.as_raw_fd(), (&raw const sa).cast(), size_of::<libc::sockaddr_in>() as libc::socklen_t)
    };
    check(ret).map(drop)
}

/// `listen(fd, backlog)`.
pub fn listen(fd: BorrowedFd<'_>, backlog: i32) -> io::Result<()> {
    // SAFETY: listen() takes no pointers.
    check(unsafe { libc::listen(fd.as_raw_fd(), backlog) }).map(drop)
}

/// `getsockname()`: the address a socket is bound to (the real port after binding port 0).
pub fn local_addr(fd: BorrowedFd<'_>) -> io::Result<SocketAddrV4> {
    // SAFETY: zeroed sockaddr_in is valid; getsockname writes at most `len` bytes into it.
    let mut sa: libc::sockaddr_in = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: both pointers point to live locals of the sizes given.
    check(unsafe { libc::getsockname(fd.as_raw_fd(), (&raw mut sa).cast(), &mut len) })?;
    Ok(from_sockaddr_in(&sa))
}

/// `getpeername()`: the address of the other end of a connected socket.
pub fn peer_addr(fd: BorrowedFd<'_>) -> io::Result<SocketAddrV4> {
    // SAFETY: zeroed sockaddr_in is valid; getpeername writes at most `len` bytes into it.
    let mut sa: libc::sockaddr_in = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: both pointers point to live locals of the sizes given.
    check(unsafe { libc::getpeername(fd.as_raw_fd(), (&raw mut sa).cast(), &mut len) })?;
    Ok(from_sockaddr_in(&sa))
}

/// `getaddrinfo(host, NULL, {AF_INET, SOCK_STREAM})`: the first IPv4 address `host` resolves
/// to. The list `getaddrinfo()` allocates is freed (`freeaddrinfo()`) before this returns. On
/// failure the error's text is the resolver's own (`gai_strerror()`: "Name or service not
/// known"), or the OS error when the resolver reports one (`EAI_SYSTEM`).
pub fn getaddrinfo_ipv4(host: &CStr) -> io::Result<Ipv4Addr> {
    // SAFETY: addrinfo is plain old data; all-zero is the "no hints" value C code memsets to.
    let mut hints: libc::addrinfo = unsafe { zeroed() };
    hints.ai_family = libc::AF_INET;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: `host` is NUL-terminated, `hints` and `list` are live locals; on success the
    // resolver stores in `list` a list we free below with freeaddrinfo().
    let ret = unsafe { libc::getaddrinfo(host.as_ptr(), std::ptr::null(), &hints, &mut list) };
    if ret == libc::EAI_SYSTEM {
        return Err(io::Error::last_os_error());
    }
    if ret != 0 {
        // SAFETY: gai_strerror returns a pointer to a static NUL-terminated message.
        let reason = unsafe { CStr::from_ptr(libc::gai_strerror(ret)) };
        return Err(io::Error::other(reason.to_string_lossy()));
    }
    // SAFETY: getaddrinfo succeeded, so `list` points to at least one entry; with AF_INET hints
    // every entry's ai_addr is a sockaddr_in.
    let ip = unsafe { *from_sockaddr_in(&*(*list).ai_addr.cast::<libc::sockaddr_in>()).ip() };
    // SAFETY: `list` came from getaddrinfo and is freed exactly once, after its last use above.
    unsafe { libc::freeaddrinfo(list) };
    Ok(ip)
}

/// `accept()` on a listening socket. The new connection socket is *blocking*, as in the course
/// (stage 7's Experiment #1 depends on it); it is close-on-exec.
pub fn accept(listen_fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    retry(|| {
        // SAFETY: null address pointers are allowed: we do not ask for the peer's address here.
        let fd = unsafe {
            libc::accept4(listen_fd.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC)
        };
        check(fd).map(owned)
    })
}

/// `recv(fd, buf, len, 0)`: `Ok(0)` means the peer closed the connection.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    retry(|| {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call.
        check_size(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) })
    })
}

/// `send(fd, buf, len, MSG_NOSIGNAL)`: may send fewer bytes than asked; a peer that is gone gives
/// `EPIPE` instead of killing the process with SIGPIPE.
pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    retry(|| {
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the whole call.
        check_size(unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) })
    })
}

/// `epoll_create1(EPOLL_CLOEXEC)`: a new epoll instance.
pub fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: epoll_create1() takes no pointers.
    check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }).map(owned)
}

/// `epoll_ctl(EPOLL_CTL_ADD)`: watch `fd` for `events`; `data` comes back with each event.
pub fn epoll_add(epoll_fd: BorrowedFd<'_>, fd: BorrowedFd<'_>, events: u32, data: u64) -> io::Result<()> {
    let mut event = epoll_event { events, u64: data };
    // SAFETY: `event` is a valid epoll_event that lives across the call.
    check(unsafe { libc::epoll_ctl(epoll_fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut event) }).map(drop)
}

/// `epoll_ctl(EPOLL_CTL_DEL)`: stop watching `fd`.
pub fn epoll_del(epoll_fd: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: since Linux 2.6.9 the event pointer may be null for EPOLL_CTL_DEL.
    check(unsafe { libc::epoll_ctl(epoll_fd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd.as_raw_fd(), std::ptr::null_mut()) })
        .map(drop)
}

/// `epoll_wait()`: fills `events` with ready events and returns how many; `timeout_ms` of -1
/// waits for ever. A signal arriving during the wait is retried, not reported.
pub fn epoll_wait(epoll_fd: BorrowedFd<'_>, events: &mut [epoll_event], timeout_ms: i32) -> io::Result<usize> {
    let max = events.len().min(i32::MAX as usize) as i32;
    retry(|| {
        // SAFETY: `events` is valid for writes of `max` epoll_event values for the whole call.
        check(unsafe { libc::epoll_wait(epoll_fd.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) })
            .map(|n| n as usize)
    })
}

/// An empty `epoll_event`, to fill an array for [`epoll_wait`].
pub const fn empty_epoll_event() -> epoll_event {
    epoll_event { events: 0, u64: 0 }
}

/// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`: a counter another thread can write to wake a loop.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd() takes no pointers.
    check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) }).map(owned)
}

/// Adds 1 to an eventfd's counter, making it readable.
pub fn eventfd_signal(fd: BorrowedFd<'_>) -> io::Result<()> {
    let one: u64 = 1;
    // SAFETY: writes exactly the 8 bytes of a live u64, as eventfd requires.
    check_size(unsafe { libc::write(fd.as_raw_fd(), (&raw const one).cast(), size_of::<u64>()) }).map(drop)
}

/// Reads and resets an eventfd's counter (`Ok(0)` if it was not signalled).
pub fn eventfd_drain(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut count: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live u64, as eventfd requires.
    match check_size(unsafe { libc::read(fd.as_raw_fd(), (&raw mut count).cast(), size_of::<u64>()) }) {
        Ok(_) => Ok(count),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        Err(e) => Err(e),
    }
}

/// Writes `message` to stderr (fd 2) with one `write()`, taking no lock: for a last word from
/// a thread while another thread may hold Rust's stdout or stderr lock (stuck in a blocked
/// write). Best effort: nothing is reported if it fails.
pub fn write_stderr_unlocked(message: &[u8]) {
    // SAFETY: `message` is valid for reads of `message.len()` bytes for the whole call; fd 2 is
    // only written to, never closed or owned here.
    let _ = unsafe { libc::write(libc::STDERR_FILENO, message.as_ptr().cast(), message.len()) };
}

/// Ends the process at once with `status` (`_exit()`): no destructors, no `atexit` handlers,
/// no flushing of buffers another thread may be stuck holding.
pub fn exit_immediately(status: i32) -> ! {
    // SAFETY: _exit() takes no pointers and does not return.
    unsafe { libc::_exit(status) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn bind_port_zero_then_accept_recv_send() {
        let listener = socket_nonblocking().unwrap();
        set_reuseaddr(listener.as_fd()).unwrap();
        bind(listener.as_fd(), SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
        listen(listener.as_fd(), 8).unwrap();
        let port = local_addr(listener.as_fd()).unwrap().port();
        assert_ne!(port, 0, "getsockname must report the port the OS picked");

        let mut client = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        let conn = retry(|| match accept(listener.as_fd()) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::ErrorKind::Interrupted.into()),
            other => other,
        })
        .unwrap();
        assert_eq!(peer_addr(conn.as_fd()).unwrap().ip(), &Ipv4Addr::LOCALHOST);

        client.write_all(b"hi\n").unwrap();
        let mut buf = [0u8; 16];
        let n = recv(conn.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hi\n");
        assert_eq!(send(conn.as_fd(), b"ih\n").unwrap(), 3);
        let mut reply = [0u8; 3];
        client.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"ih\n");
        drop(client);
        assert_eq!(recv(conn.as_fd(), &mut buf).unwrap(), 0, "recv returns 0 once the peer closed");
    }

    #[test]
    fn getaddrinfo_ipv4_resolves_or_says_why_not() {
        assert_eq!(getaddrinfo_ipv4(c"127.0.0.1").unwrap(), Ipv4Addr::LOCALHOST);
        assert_eq!(getaddrinfo_ipv4(c"localhost").unwrap(), Ipv4Addr::LOCALHOST);
        let err = getaddrinfo_ipv4(c"no-such-host.invalid").unwrap_err();
        assert!(!err.to_string().is_empty(), "the resolver's reason is the error's text");
    }

    #[test]
    fn epoll_reports_an_eventfd_with_its_data() {
        let ep = epoll_create().unwrap();
        let efd = eventfd().unwrap();
        epoll_add(ep.as_fd(), efd.as_fd(), EPOLLIN as u32, 42).unwrap();
        let mut events = [empty_epoll_event(); 4];
        assert_eq!(epoll_wait(ep.as_fd(), &mut events, 0).unwrap(), 0);
        eventfd_signal(efd.as_fd()).unwrap();
        assert_eq!(epoll_wait(ep.as_fd(), &mut events, 1000).unwrap(), 1);
        assert_eq!({ events[0].u64 }, 42);
        assert_eq!(eventfd_drain(efd.as_fd()).unwrap(), 1);
        assert_eq!(eventfd_drain(efd.as_fd()).unwrap(), 0);
        epoll_del(ep.as_fd(), efd.as_fd()).unwrap();
        let err = epoll_del(ep.as_fd(), efd.as_fd()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }
}
