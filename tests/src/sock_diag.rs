//! What `/proc/net/tcp6` cannot tell: whether an IPv6 listening socket takes IPv6 connections
//! only (`IPV6_V6ONLY`), asked of the kernel through its sock_diag netlink interface, the one
//! `ss -ltne` uses (it prints `v6only:1`).
//!
//! A server that listens on `[::]` takes IPv4 connections too (as `::ffff:127.0.0.1`), unless
//! the socket has `IPV6_V6ONLY` set, by the program or by the system's default
//! (`net.ipv6.bindv6only`). The course's tester connects over IPv4, so the difference decides
//! whether it can reach the server. One request, "every TCP socket of this network namespace in
//! the LISTEN state, IPv6", comes back as one message per socket: its inode (the same number
//! `/proc/<pid>/fd` and `/proc/net/tcp6` give) and, for a listener, the attribute
//! `INET_DIAG_SKV6ONLY`.
//!
//! Built by hand on libc's socket calls: the messages are laid out in bytes here, as
//! `linux/inet_diag.h` and `linux/netlink.h` define them.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `SOCK_DIAG_BY_FAMILY` (`linux/sock_diag.h`): the request type for a family's sockets.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NLMSG_ERROR` and `NLMSG_DONE` (`linux/netlink.h`).
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// `INET_DIAG_SKV6ONLY` (`linux/inet_diag.h`): a `u8`, 1 if the socket is IPv6-only.
const INET_DIAG_SKV6ONLY: u16 = 11;
/// `TCP_LISTEN` (`include/net/tcp_states.h`).
const TCP_LISTEN: u32 = 10;
/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDRLEN: usize = 16;
/// `sizeof(struct inet_diag_req_v2)`.
const REQUEST_LEN: usize = 56;
/// `sizeof(struct inet_diag_msg)`, and where its `idiag_inode` is.
const DIAG_MSG_LEN: usize = 72;
const DIAG_INODE_AT: usize = 68;

/// For every IPv6 TCP socket listening in this network namespace, by inode: whether it is
/// IPv6-only. An error if the kernel cannot be asked (no sock_diag, a seccomp filter).
pub fn v6only_listeners() -> io::Result<HashMap<u64, bool>> {
    // SAFETY: socket() takes no pointers; the descriptor it returns is owned by `fd` below.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::NETLINK_SOCK_DIAG) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let timeout = libc::timeval { tv_sec: 2, tv_usec: 0 };
    // SAFETY: `timeout` is a live timeval and its size is passed with it.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    let request = listeners_request();
    // SAFETY: the buffer is live for the call and its length is passed with it; a netlink
    // socket with no address given sends to the kernel.
    if unsafe { libc::send(fd.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = HashMap::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: `buf` is live and writable for its whole length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if parse_replies(&buf[..n as usize], &mut found)? {
            return Ok(found);
        }
    }
}

/// A `struct nlmsghdr` followed by a `struct inet_diag_req_v2` asking for every IPv6 TCP
/// socket in the LISTEN state.
fn listeners_request() -> Vec<u8> {
    let mut msg = Vec::with_capacity(NLMSG_HDRLEN + REQUEST_LEN);
    msg.extend(((NLMSG_HDRLEN + REQUEST_LEN) as u32).to_ne_bytes()); // nlmsg_len
    msg.extend(SOCK_DIAG_BY_FAMILY.to_ne_bytes()); // nlmsg_type
    msg.extend(((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes()); // nlmsg_flags
    msg.extend(1u32.to_ne_bytes()); // nlmsg_seq
    msg.extend(0u32.to_ne_bytes()); // nlmsg_pid: the kernel
    msg.push(libc::AF_INET6 as u8); // sdiag_family
    msg.push(libc::IPPROTO_TCP as u8); // sdiag_protocol
    msg.push(0); // idiag_ext: no extensions (SKV6ONLY comes with every listener)
    msg.push(0); // pad
    msg.extend((1u32 << TCP_LISTEN).to_ne_bytes()); // idiag_states
    msg.resize(NLMSG_HDRLEN + REQUEST_LEN, 0); // id: any socket
    msg
}

/// Reads the messages of one datagram into `found`; `Ok(true)` once the dump is done.
fn parse_replies(mut data: &[u8], found: &mut HashMap<u64, bool>) -> io::Result<bool> {
    let u16_at = |b: &[u8], i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    while data.len() >= NLMSG_HDRLEN {
        let len = u32_at(data, 0) as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "a sock_diag message with a bad length"));
        }
        let (message, kind) = (&data[NLMSG_HDRLEN..len], u16_at(data, 4));
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = if message.len() >= 4 { -(u32_at(message, 0) as i32) } else { libc::EIO };
                return Err(io::Error::from_raw_os_error(errno));
            }
            SOCK_DIAG_BY_FAMILY if message.len() >= DIAG_MSG_LEN => {
                let inode = u64::from(u32_at(message, DIAG_INODE_AT));
                if let Some(v6only) = attribute(&message[DIAG_MSG_LEN..], INET_DIAG_SKV6ONLY) {
                    found.insert(inode, v6only.first().is_some_and(|&b| b != 0));
                }
            }
            _ => {}
        }
        data = &data[align4(len).min(data.len())..];
    }
    Ok(false)
}

/// The payload of attribute `wanted` among `struct rtattr`s (`u16` length, `u16` type, data).
fn attribute(mut attrs: &[u8], wanted: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < 4 || len > attrs.len() {
            return None;
        }
        if kind == wanted {
            return Some(&attrs[4..len]);
        }
        attrs = &attrs[align4(len).min(attrs.len())..];
    }
    None
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv6Addr, TcpListener};

    /// An IPv6 listener on `ip` (a loopback address: tests listen on nothing else) and an
    /// OS-picked port, with `IPV6_V6ONLY` cleared; its inode.
    fn listener(ip: Ipv6Addr) -> (OwnedFd, u64) {
        // SAFETY: socket() takes no pointers; the descriptor is owned by `fd` at once.
        let fd = unsafe { OwnedFd::from_raw_fd(libc::socket(libc::AF_INET6, libc::SOCK_STREAM, 0)) };
        let flag: libc::c_int = 0;
        // SAFETY: `flag` is a live int and its size is passed with it.
        let set = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                (&raw const flag).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0, "setsockopt(IPV6_V6ONLY): {}", io::Error::last_os_error());
        let listener = TcpListener::from(fd);
        // Bound by hand: std binds before it could set the option.
        let addr = libc::sockaddr_in6 {
            sin6_family: libc::AF_INET6 as libc::sa_family_t,
            sin6_port: 0,
            sin6_flowinfo: 0,
            sin6_addr: libc::in6_addr { s6_addr: ip.octets() },
            sin6_scope_id: 0,
        };
        // SAFETY: `addr` is a live sockaddr_in6 and its size is passed with it; listen() takes
        // no pointers.
        unsafe {
            let bound = libc::bind(
                listener.as_raw_fd(),
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            );
            assert_eq!(bound, 0, "bind([{ip}]:0): {}", io::Error::last_os_error());
            assert_eq!(libc::listen(listener.as_raw_fd(), 1), 0);
        }
        let inode = crate::procfs::own_fds()
            .unwrap()
            .into_iter()
            .find(|f| f.fd == listener.as_raw_fd())
            .and_then(|f| f.socket_inode())
            .expect("the listener's inode in /proc/self/fd");
        (OwnedFd::from(listener), inode)
    }

    #[test]
    fn an_ipv6_listener_is_told_apart_with_and_without_v6only() {
        // Binding to one IPv6 address ([::1]) makes the socket IPv6-only, as IPV6_V6ONLY does
        // (the kernel sets it in inet6_bind()); an IPv4-mapped address keeps it dual.
        let (_only, only_inode) = listener(Ipv6Addr::LOCALHOST);
        let (_dual, dual_inode) = listener(std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped());
        let found = v6only_listeners().expect("sock_diag answers");
        assert_eq!(found.get(&only_inode), Some(&true), "the [::1] listener, in {found:?}");
        assert_eq!(found.get(&dual_inode), Some(&false), "the [::ffff:127.0.0.1] listener, in {found:?}");
    }

    #[test]
    fn a_truncated_or_failed_reply_is_an_error_not_a_guess() {
        let mut found = HashMap::new();
        assert!(parse_replies(&[40, 0, 0, 0, 20, 0], &mut found).is_ok(), "too short for a header: nothing read");
        let mut error = vec![0u8; 20];
        error[0] = 20;
        error[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        error[16..20].copy_from_slice(&(-libc::EPERM).to_ne_bytes());
        let e = parse_replies(&error, &mut found).expect_err("an NLMSG_ERROR is an error");
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    }
}
