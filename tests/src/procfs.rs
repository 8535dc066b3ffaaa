//! Everything the kit reads from `/proc`, in one place: processes (state, parent, group,
//! session, command line, environment, CPU time, the kernel function each thread waits in, open
//! files and limits), TCP sockets (`/proc/net/tcp` and `tcp6`), which fds an epoll instance
//! watches, and who holds a `flock()`.
//!
//! Linux publishes what the kernel knows about a process as text files under `/proc/<pid>/`;
//! the course's debugging habits (`ls -l /proc/PID/fd`, `cat /proc/PID/wchan`, `ss -ltn`) read
//! the same files. Each function here reads one of them and parses it; none changes anything.
//! A process that has exited since, or belongs to another user, reads as `None` or an error:
//! callers treat that as "gone" or "unknown".
//!
//! What `/proc` cannot tell: whether an IPv6 socket is `IPV6_V6ONLY`. `/proc/net/tcp6` lists a
//! `[::]` listener the same way whether it also takes IPv4 connections or not; only the
//! kernel's sock_diag netlink interface (`INET_DIAG_SKV6ONLY`, what `ss -ltne` prints as
//! `v6only:0/1`) tells: [`listening_tcp`] asks it ([`crate::sock_diag`]) for the IPv6
//! listeners' [`TcpSocket::v6only`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// `R` running, `S` sleeping, `D` in an uninterruptible wait, `Z` zombie (exited, not yet
    /// reaped by its parent), `T` stopped, ...
    pub state: char,
    /// The parent's pid.
    pub ppid: u32,
    /// The process group (what `kill(-pgrp, sig)` reaches).
    pub pgrp: u32,
    /// The session (a process that called `setsid()` leads a session of its own).
    pub session: u32,
    /// CPU time in user mode, in clock ticks.
    pub utime: u64,
    /// CPU time in kernel mode, in clock ticks.
    pub stime: u64,
    /// When the process started, in clock ticks after boot: with the pid, it names one process
    /// for good (a pid alone may be reused once the process is gone).
    pub start_time: u64,
}

impl Stat {
    /// Whether the process has exited and waits to be reaped (or is being torn down).
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// Every process id in `/proc` (this pid namespace, the processes this user may see).
pub fn pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()
}

/// `/proc/<pid>/stat`, parsed; `None` if the process is gone.
pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// A `/proc/<pid>/stat` line. The command name in parentheses may itself contain spaces and
/// parentheses, so the fields are counted from the last `)`.
fn parse_stat(line: &str) -> Option<Stat> {
    let fields: Vec<&str> = line.rsplit_once(')')?.1.split_whitespace().collect();
    // After `pid (comm)`: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
    // cmajflt utime stime cutime cstime priority nice num_threads itrealvalue starttime
    let number = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: number(1)? as u32,
        pgrp: number(2)? as u32,
        session: number(3)? as u32,
        utime: number(11)?,
        stime: number(12)?,
        start_time: number(19)?,
    })
}

/// The CPU time (user + system) process `pid` has used so far.
pub fn cpu_time(pid: u32) -> io::Result<Duration> {
    let stat = stat(pid).ok_or_else(|| gone(pid))?;
    // SAFETY: sysconf() takes no pointers.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_millis((stat.utime + stat.stime) * 1000 / hz))
}

fn gone(pid: u32) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no process {pid} in /proc"))
}

/// The command line of `pid`, one string per argument; `None` if gone, or empty for a zombie
/// or a kernel thread.
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(bytes.split(|&b| b == 0).filter(|w| !w.is_empty()).map(|w| String::from_utf8_lossy(w).into_owned()).collect())
}

/// The command line of `pid`, arguments joined by spaces, for messages (`?` if unknown).
pub fn command(pid: u32) -> String {
    match cmdline(pid) {
        Some(words) if !words.is_empty() => words.join(" "),
        _ => "?".into(),
    }
}

/// The value of environment variable `name` in process `pid`, as it was when the process
/// started (`/proc/<pid>/environ`). `None` if unset, unreadable (another user's process), or
/// the process is a zombie (its memory, and with it the environment, is gone).
pub fn env_var(pid: u32, name: &str) -> Option<String> {
    let bytes = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    bytes.split(|&b| b == 0).find_map(|entry| {
        let value = entry.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
        Some(String::from_utf8_lossy(value).into_owned())
    })
}

/// One open file descriptor: its number and what it points to (`socket:[1234]`, a path,
/// `anon_inode:[eventpoll]`, `pipe:[99]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fd {
    /// The descriptor number.
    pub fd: i32,
    /// The link's target.
    pub target: PathBuf,
}

impl Fd {
    /// The inode of the socket this descriptor is, if it is one.
    pub fn socket_inode(&self) -> Option<u64> {
        self.target.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
    }
}

/// The open descriptors of `pid`, sorted by number (`/proc/<pid>/fd`).
pub fn fds(pid: u32) -> io::Result<Vec<Fd>> {
    fds_in(&format!("/proc/{pid}/fd"))
}

/// The open descriptors of this process.
pub fn own_fds() -> io::Result<Vec<Fd>> {
    fds_in("/proc/self/fd")
}

fn fds_in(dir: &str) -> io::Result<Vec<Fd>> {
    let mut fds: Vec<Fd> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|entry| {
            let fd = entry.file_name().to_str()?.parse().ok()?;
            // A descriptor closed since the listing has no link any more.
            let target = std::fs::read_link(entry.path()).ok()?;
            Some(Fd { fd, target })
        })
        .collect();
    fds.sort_by_key(|f| f.fd);
    Ok(fds)
}

/// How many descriptors `pid` has open.
pub fn fd_count(pid: u32) -> io::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// The fds an epoll instance watches: the `tfd:` lines of `/proc/<pid>/fdinfo/<epfd>`
/// (`tfd:        5 events:       19 data: ...`), sorted.
pub fn epoll_targets(pid: u32, epfd: i32) -> io::Result<Vec<i32>> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{epfd}"))?;
    Ok(parse_epoll_targets(&info))
}

fn parse_epoll_targets(info: &str) -> Vec<i32> {
    let mut fds: Vec<i32> =
        info.lines().filter_map(|l| l.strip_prefix("tfd:")?.split_whitespace().next()?.parse().ok()).collect();
    fds.sort_unstable();
    fds
}

/// The kernel function the main thread of `pid` sleeps in (`/proc/<pid>/wchan`: `pipe_write`,
/// `wait_woken`, `do_epoll_wait`, ...); `None` if gone, empty or `0` when running.
pub fn wchan(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/wchan")).ok().map(|w| w.trim().to_string())
}

/// The calling thread's id (its `/proc/self/task/<tid>`), from `/proc/thread-self`.
pub fn current_tid() -> Option<i32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.to_str()?.rsplit('/').next()?.parse().ok()
}

/// The kernel function thread `tid` of this process sleeps in (`do_epoll_wait`, ...); `None`
/// when it is running, or gone.
pub fn own_thread_wchan(tid: i32) -> Option<String> {
    let wchan = std::fs::read_to_string(format!("/proc/self/task/{tid}/wchan")).ok()?;
    let wchan = wchan.trim();
    (!wchan.is_empty() && wchan != "0").then(|| wchan.to_string())
}

/// The kernel function each thread of `pid` sleeps in (`/proc/<pid>/task/*/wchan`), leaving out
/// threads that run (`0` or empty).
pub fn thread_wchans(pid: u32) -> io::Result<Vec<String>> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/task"))?
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("wchan")).ok())
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty() && w != "0")
        .collect())
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes; `Ok(None)` if the file
/// has no such line.
pub fn status_bytes(pid: u32, field: &str) -> io::Result<Option<u64>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status.lines().find_map(|line| {
        let kb = line.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim();
        kb.parse::<u64>().ok().map(|kb| kb * 1024)
    }))
}

/// The soft limit on open files of `pid` (`Max open files` in `/proc/<pid>/limits`); `Ok(None)`
/// if unlimited or missing.
pub fn open_files_limit(pid: u32) -> io::Result<Option<u64>> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))?;
    Ok(limits.lines().find_map(|line| line.strip_prefix("Max open files")?.split_whitespace().next()?.parse().ok()))
}

// ---------------------------------------------------------------------------------------------
// TCP sockets
// ---------------------------------------------------------------------------------------------

/// A TCP socket's state, as `/proc/net/tcp` numbers them (`include/net/tcp_states.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs, reason = "the kernel's own state names")]
pub enum TcpState {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    NewSynRecv,
    /// A number this list does not know.
    Other(u8),
}

impl TcpState {
    fn from_code(code: u8) -> TcpState {
        use TcpState::*;
        match code {
            0x01 => Established,
            0x02 => SynSent,
            0x03 => SynRecv,
            0x04 => FinWait1,
            0x05 => FinWait2,
            0x06 => TimeWait,
            0x07 => Close,
            0x08 => CloseWait,
            0x09 => LastAck,
            0x0A => Listen,
            0x0B => Closing,
            0x0C => NewSynRecv,
            other => Other(other),
        }
    }
}

/// One line of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSocket {
    /// The local address (`0.0.0.0:8001`, `127.0.0.1:8001`, `[::]:8001`).
    pub local: SocketAddr,
    /// The peer's address (`0.0.0.0:0` for a listener).
    pub remote: SocketAddr,
    /// Its state.
    pub state: TcpState,
    /// How many received bytes wait in it, not yet read by its owner.
    pub rx_queue: u32,
    /// Its inode: `/proc/<pid>/fd/N -> socket:[inode]` names the same socket; 0 for a connection
    /// still waiting in its listener's queue to be accepted.
    pub inode: u64,
    /// Whether an IPv6 listening socket takes IPv6 connections only (`IPV6_V6ONLY`), from
    /// sock_diag (see the module's documentation): `None` for IPv4 sockets, for sockets that
    /// are not listening, and when the kernel could not be asked.
    pub v6only: Option<bool>,
}

/// Every TCP socket of this network namespace, IPv4 and IPv6.
pub fn tcp_sockets() -> Vec<TcpSocket> {
    let mut found = Vec::new();
    for (path, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        if let Ok(table) = std::fs::read_to_string(path) {
            found.extend(table.lines().skip(1).filter_map(|line| parse_tcp_line(line, v6)));
        }
    }
    found
}

/// Every TCP socket in the LISTEN state in this network namespace, the IPv6 ones with their
/// [`TcpSocket::v6only`].
pub fn listening_tcp() -> Vec<TcpSocket> {
    let mut listening: Vec<TcpSocket> = tcp_sockets().into_iter().filter(|s| s.state == TcpState::Listen).collect();
    if listening.iter().any(|s| s.local.is_ipv6()) {
        let v6only = crate::sock_diag::v6only_listeners().unwrap_or_default();
        for socket in listening.iter_mut().filter(|s| s.local.is_ipv6()) {
            socket.v6only = v6only.get(&socket.inode).copied();
        }
    }
    listening
}

/// The epoll instances among `pid`'s descriptors, each with the descriptors it watches.
pub fn epolls(pid: u32) -> io::Result<Vec<(i32, Vec<i32>)>> {
    Ok(fds(pid)?
        .into_iter()
        .filter(|f| f.target.to_str() == Some("anon_inode:[eventpoll]"))
        .filter_map(|f| Some((f.fd, epoll_targets(pid, f.fd).ok()?)))
        .collect())
}

/// The socket fds of `pid` that are not listening sockets (its connections), in order.
pub fn connection_fds(pid: u32) -> io::Result<Vec<i32>> {
    let listening: std::collections::HashSet<u64> = listening_tcp().into_iter().map(|s| s.inode).collect();
    let mut found: Vec<i32> = fds(pid)?
        .into_iter()
        .filter(|f| f.socket_inode().is_some_and(|inode| !listening.contains(&inode)))
        .map(|f| f.fd)
        .collect();
    found.sort_unstable();
    Ok(found)
}

/// The TCP state of descriptor `fd` of `pid` (`CloseWait` for a connection whose peer has
/// closed and that the server has not closed yet); `None` if it is not a TCP socket.
pub fn tcp_state_of_fd(pid: u32, fd: i32) -> Option<TcpState> {
    let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    let inode = Fd { fd, target }.socket_inode()?;
    tcp_sockets().into_iter().find(|s| s.inode == inode).map(|s| s.state)
}

fn parse_tcp_line(line: &str, v6: bool) -> Option<TcpSocket> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    if fields.len() < 10 {
        return None;
    }
    Some(TcpSocket {
        local: parse_proc_addr(fields[1], v6)?,
        remote: parse_proc_addr(fields[2], v6)?,
        state: TcpState::from_code(u8::from_str_radix(fields[3], 16).ok()?),
        rx_queue: u32::from_str_radix(fields[4].split_once(':')?.1, 16).ok()?,
        inode: fields[9].parse().ok()?,
        v6only: None,
    })
}

/// `0100007F:1F41` (IPv4) or 32 hex digits and a port (IPv6), as `/proc/net/tcp*` prints them:
/// each 32-bit word of the address in the host's byte order.
fn parse_proc_addr(text: &str, v6: bool) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    if ip.len() % 8 != 0 {
        return None;
    }
    let words: Vec<u32> =
        (0..ip.len() / 8).map(|i| u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16)).collect::<Result<_, _>>().ok()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let ip: IpAddr = match (v6, bytes.len()) {
        (false, 4) => Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).into(),
        (true, 16) => Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).into(),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The socket inodes held by the processes `keep(pid)` selects, each with the first pid found
/// holding it (a socket inherited across `fork()` is held by several).
pub fn socket_owners(keep: impl Fn(u32) -> bool) -> HashMap<u64, u32> {
    let mut owners = HashMap::new();
    for pid in pids().into_iter().filter(|&pid| keep(pid)) {
        for inode in fds(pid).unwrap_or_default().iter().filter_map(Fd::socket_inode) {
            owners.entry(inode).or_insert(pid);
        }
    }
    owners
}

// ---------------------------------------------------------------------------------------------
// File locks
// ---------------------------------------------------------------------------------------------

/// The pid that took a `flock()` on the file with inode `inode`, from `/proc/locks`
/// (`1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`; waiters' lines have `->` and are
/// skipped). That process may have exited since, leaving the lock to others that share the open
/// file (a shell's `flock 9` command does).
pub fn flock_holder(inode: u64) -> Option<u32> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    parse_flock_holder(&locks, inode)
}

fn parse_flock_holder(locks: &str, inode: u64) -> Option<u32> {
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 6 || fields[1] != "FLOCK" {
            return None;
        }
        let file_inode = fields[5].rsplit(':').next()?.parse::<u64>().ok()?;
        if file_inode != inode {
            return None;
        }
        fields[4].parse().ok()
    })
}

/// The processes other than this one that have `path` open.
pub fn openers_of(path: &Path) -> Vec<u32> {
    let me = std::process::id();
    pids()
        .into_iter()
        .filter(|&pid| pid != me)
        .filter(|&pid| fds(pid).is_ok_and(|fds| fds.iter().any(|fd| fd.target == path)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_addresses_are_read_in_host_byte_order() {
        let v4 = parse_proc_addr(&format!("{:08X}:1F41", u32::from_ne_bytes([127, 0, 0, 1])), false);
        assert_eq!(v4, Some("127.0.0.1:8001".parse().unwrap()));
        assert_eq!(parse_proc_addr("00000000:1F42", false), Some("0.0.0.0:8002".parse().unwrap()));
        let any6 = parse_proc_addr(&format!("{}:1F43", "0".repeat(32)), true);
        assert_eq!(any6, Some("[::]:8003".parse().unwrap()));
        assert_eq!(parse_proc_addr("0000:1F43", false), None);
    }

    #[test]
    fn a_tcp_line_gives_addresses_state_and_inode() {
        let line = "   0: 0100007F:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 1";
        let socket = parse_tcp_line(line, false).expect("a valid line");
        if cfg!(target_endian = "little") {
            assert_eq!(socket.local, "127.0.0.1:8001".parse().unwrap());
        }
        assert_eq!(socket.state, TcpState::Listen);
        assert_eq!(socket.inode, 12345);
        assert_eq!(TcpState::from_code(0x08), TcpState::CloseWait);
    }

    #[test]
    fn a_stat_line_is_read_past_a_command_with_spaces_and_parentheses() {
        let line = "4242 (my (odd) server) S 1 4242 4200 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 98765 0 0";
        let stat = parse_stat(line).expect("a valid line");
        assert_eq!(
            stat,
            Stat { state: 'S', ppid: 1, pgrp: 4242, session: 4200, utime: 7, stime: 3, start_time: 98765 }
        );
    }

    #[test]
    fn epoll_fdinfo_lists_the_watched_fds() {
        let info = "pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\n\
                    tfd:        5 events:       19 data:                5  pos:0 ino:3c1 sdev:8\n\
                    tfd:        4 events:       19 data:                4  pos:0 ino:3c0 sdev:8\n";
        assert_eq!(parse_epoll_targets(info), vec![4, 5]);
    }

    #[test]
    fn proc_locks_names_the_pid_that_took_the_lock() {
        let locks = "1: POSIX  ADVISORY  WRITE 99 08:01:1111 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 4321 08:01:5678 0 EOF\n";
        assert_eq!(parse_flock_holder(locks, 5678), Some(1234));
        assert_eq!(parse_flock_holder(locks, 1111), None);
    }

    #[test]
    fn this_process_is_read_from_proc() {
        let me = std::process::id();
        let stat = stat(me).expect("our own stat");
        assert!(!stat.is_zombie());
        assert!(!command(me).is_empty());
        assert!(env_var(me, "PATH").is_some() || std::env::var_os("PATH").is_none());
        assert!(fd_count(me).unwrap() >= 3);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let owners = socket_owners(|pid| pid == me);
        let found = listening_tcp().into_iter().find(|s| s.local.port() == port).expect("our listener");
        assert_eq!(owners.get(&found.inode), Some(&me));
    }
}
