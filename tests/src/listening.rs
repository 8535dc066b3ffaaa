//! The sockets a server listens on, as the kernel lists them (`/proc/net/tcp*`, and sock_diag
//! for `IPV6_V6ONLY`), with the process that holds each: what `ss -ltnpe` shows.
//!
//! From them: which process is the server (the one that listens, whatever wrapper started it),
//! whether this machine's checks can reach it on 127.0.0.1, and whether the course's tester,
//! which connects over IPv4 from another container, could ([`Reach`]).

use std::net::{IpAddr, SocketAddr};

use crate::procfs;

/// A TCP socket in the LISTEN state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listening {
    /// The local address it listens on (`0.0.0.0:8001`, `127.0.0.1:8001`, `[::]:8001`).
    pub addr: SocketAddr,
    /// The process that holds it, when `/proc` says (not for another user's processes).
    pub pid: Option<u32>,
    /// That process as `pid 1234 (command line)`, for messages.
    pub owner: Option<String>,
    /// For an IPv6 socket, whether it takes IPv6 connections only (`IPV6_V6ONLY`); `None` for
    /// IPv4, or when the kernel could not be asked.
    pub v6only: Option<bool>,
}

/// Who can connect to a listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Every interface, over IPv4 too: `0.0.0.0`, or `[::]` without `IPV6_V6ONLY`.
    Everywhere,
    /// IPv4 loopback only (`127.0.0.1`): this machine's own clients.
    Loopback,
    /// IPv6 loopback only (`[::1]`): this machine's own IPv6 clients.
    Ipv6Loopback,
    /// IPv6 only (`[::]` with `IPV6_V6ONLY`): IPv4 clients, 127.0.0.1 included, are refused.
    Ipv6Only,
    /// One address of this machine that is not loopback: only clients that use that address.
    OneAddress,
}

impl Listening {
    /// Who can connect to it. An IPv6 wildcard whose `IPV6_V6ONLY` could not be read counts as
    /// [`Reach::Everywhere`], Linux's default.
    pub fn reach(&self) -> Reach {
        match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => Reach::Everywhere,
            IpAddr::V4(ip) if ip.is_loopback() => Reach::Loopback,
            IpAddr::V6(ip) if ip.is_unspecified() && self.v6only == Some(true) => Reach::Ipv6Only,
            IpAddr::V6(ip) if ip.is_unspecified() => Reach::Everywhere,
            IpAddr::V6(ip) if ip.is_loopback() => Reach::Ipv6Loopback,
            IpAddr::V6(ip) if ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()) => Reach::Loopback,
            _ => Reach::OneAddress,
        }
    }

    /// Whether a client on another machine (or in the tester's container network, over IPv4)
    /// could connect.
    pub fn reachable_from_network(&self) -> bool {
        self.reach() == Reach::Everywhere
    }

    /// Whether a client on this machine connecting to 127.0.0.1 (as every check does) reaches it.
    pub fn reachable_from_127_0_0_1(&self) -> bool {
        matches!(self.reach(), Reach::Everywhere | Reach::Loopback)
    }
}

impl Reach {
    /// Who is refused, in words, for a socket that does not listen everywhere.
    pub fn who_is_refused(self) -> &'static str {
        match self {
            Reach::Everywhere => "nobody is refused",
            Reach::Loopback => "loopback only: clients on other machines, the course's tester included, are refused",
            Reach::Ipv6Loopback => {
                "IPv6 loopback only: IPv4 clients (127.0.0.1, and the course's tester) and other machines are refused"
            }
            Reach::Ipv6Only => {
                "IPv6 only (IPV6_V6ONLY is set): IPv4 clients, 127.0.0.1 and the course's tester included, are refused"
            }
            Reach::OneAddress => {
                "one address of this machine only: clients that connect to any other (127.0.0.1, or the address \
                 of the course's tester's container) are refused"
            }
        }
    }

    /// How to listen everywhere instead, in the course's C.
    pub fn fix(self) -> &'static str {
        match self {
            Reach::Ipv6Only => {
                "bind to 0.0.0.0 (AF_INET, INADDR_ANY) as the course does, or clear the option before bind(): \
                 `int no = 0; setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &no, sizeof(no));`"
            }
            _ => {
                "bind to INADDR_ANY, 0.0.0.0 (every interface): the host you pass to \
                 xps_listener_create()/getaddrinfo(), or `addr.sin_addr.s_addr = htonl(INADDR_ANY)`"
            }
        }
    }
}

/// The listening TCP sockets held by the processes `keep(pid)` selects.
pub fn held_by(keep: impl Fn(u32) -> bool) -> Vec<Listening> {
    let owners = procfs::socket_owners(keep);
    procfs::listening_tcp()
        .into_iter()
        .filter_map(|s| owners.get(&s.inode).map(|&pid| listening(s, Some(pid))))
        .collect()
}

/// Every TCP socket listening on `port` on this machine, with its owner where `/proc` tells
/// (processes of other users are not shown).
pub fn on_port(port: u16) -> Vec<Listening> {
    let on_port: Vec<procfs::TcpSocket> =
        procfs::listening_tcp().into_iter().filter(|s| s.local.port() == port).collect();
    if on_port.is_empty() {
        return Vec::new();
    }
    let owners = procfs::socket_owners(|_| true);
    on_port
        .into_iter()
        .map(|s| {
            let pid = owners.get(&s.inode).copied();
            listening(s, pid)
        })
        .collect()
}

fn listening(socket: procfs::TcpSocket, pid: Option<u32>) -> Listening {
    Listening {
        addr: socket.local,
        pid,
        owner: pid.map(|pid| {
            format!("pid {pid} ({})", procfs::command(pid).split_whitespace().collect::<Vec<_>>().join(" "))
        }),
        v6only: socket.v6only,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(addr: &str, v6only: Option<bool>) -> Listening {
        Listening { addr: addr.parse().unwrap(), pid: None, owner: None, v6only }
    }

    #[test]
    fn each_address_is_reached_by_whom_it_should_be() {
        assert_eq!(at("0.0.0.0:8001", None).reach(), Reach::Everywhere);
        assert_eq!(at("127.0.0.1:8001", None).reach(), Reach::Loopback);
        assert_eq!(at("[::]:8001", Some(false)).reach(), Reach::Everywhere);
        assert_eq!(at("[::]:8001", None).reach(), Reach::Everywhere);
        assert_eq!(at("[::]:8001", Some(true)).reach(), Reach::Ipv6Only);
        assert_eq!(at("[::1]:8001", Some(false)).reach(), Reach::Ipv6Loopback);
        assert_eq!(at("192.168.1.5:8001", None).reach(), Reach::OneAddress);
        assert!(!at("[::]:8001", Some(true)).reachable_from_127_0_0_1());
        assert!(at("[::]:8001", Some(false)).reachable_from_network());
        assert!(!at("127.0.0.1:8001", None).reachable_from_network());
    }
}
