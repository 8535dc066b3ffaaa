//! What the server under test shows when a check fails: its log tail, a panic with its
//! backtrace, a crash report; and what its sockets show once it has started.

use std::thread;
use std::time::{Duration, Instant};

use std::net::TcpStream;

use crate::panic::Panic;
use crate::{Failure, Role, Server, procfs};

/// How many of the server's last lines a failure shows.
const LOG_LINES: usize = 25;

impl Failure {
    /// Attaches what `server` shows: the tail of its output, and a panic (a `todo!()` still to
    /// write, a `RefCell` borrowed twice) or a crash report, which the harness reads its blame
    /// from.
    pub fn log_of(mut self, server: &Server) -> Self {
        self.log_tail = server.log_tail(LOG_LINES);
        if self.panic.is_none() {
            self.panic = settled_panic(server);
        }
        if self.panic.is_none() && self.crash.is_empty() {
            self.crash = server.crash_lines();
        }
        self
    }
}

/// The server's panic, if it panicked, with its whole backtrace: the report's frames come a
/// moment after its first line (symbolizing them takes time, and a busy machine makes it
/// longer), and the blame is read from them, so this waits up to 10 s for the report's closing
/// `note:` line. (The server's exit says nothing here: its last bytes may still be in the pipe.)
fn settled_panic(server: &Server) -> Option<Panic> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let output = server.log_tail(usize::MAX);
        let panic = Panic::parse(&output)?;
        let report = &output[output.find(" panicked at ").unwrap_or(0)..];
        if report.lines().any(|l| l.starts_with("note: ")) || Instant::now() >= deadline {
            return Some(panic);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Checks that a server that logged `Server listening on port N` lines really listens on those
/// ports: a log line with the wrong value (the port asked for, 0, instead of the one the OS
/// picked), a listener dropped right after it was logged (not kept in the list), and a server
/// that exits instead of running its loop are each told apart and blamed.
pub fn verify_listening(server: &Server) -> Result<(), Failure> {
    let listening: Vec<u16> = server.listening().iter().map(|l| l.addr.port()).collect();
    let logged = server.ports();
    let missing: Vec<u16> = logged.iter().copied().filter(|p| !listening.contains(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    // A server on its way out has closed its sockets before the kernel reports its exit.
    let deadline = Instant::now() + Duration::from_millis(500);
    while server.exited().is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    if let Some(status) = server.exited() {
        return Err(Failure::new(format!(
            "{} exited right after logging its ports: {}",
            server.name(),
            Server::describe_status(Some(status))
        ))
        .blame(Role::Start, "after creating the listeners it must run the loop, which does not return")
        .log_of(server));
    }
    let unlogged: Vec<u16> = listening.iter().copied().filter(|p| !logged.contains(p)).collect();
    let failure =
        Failure::new(format!("{} logs `Server listening on port N` for ports it does not listen on", server.name()))
            .detail("expected", format!("it listens on every port it logs: {logged:?}"))
            .detail("received", format!("it listens on {listening:?}"));
    let failure = if unlogged.is_empty() {
        failure.blame(
            Role::ListenerCreate,
            "the listener's socket was closed right after it was logged: keep the listener in its list, which owns it",
        )
    } else {
        failure.blame(
            Role::Start,
            "log each listener's own port (listener.port: the port the OS picked), not the port asked for",
        )
    };
    Err(failure.log_of(server))
}

/// Why `client` got no reply, read from the server's sockets: still waiting to be accepted,
/// accepted but attached to no epoll instance, attached with its bytes still unread, or read and
/// not answered. Each points to the page function whose part it is. `None` when `/proc` does not
/// tell (the connection is gone, or the server belongs to another user).
pub fn no_reply(server: &Server, client: &TcpStream) -> Option<(Role, &'static str)> {
    let (mine, theirs) = (client.local_addr().ok()?, client.peer_addr().ok()?);
    let socket = procfs::tcp_sockets().into_iter().find(|s| s.local == theirs && s.remote == mine)?;
    if socket.inode == 0 {
        return Some((
            Role::Dispatch,
            "the client is still waiting in the listener's queue: when epoll reports the listening socket, \
             the loop must call the listener's handler, which accept()s it and creates its connection",
        ));
    }
    let (pid, fd) = server.pids().into_iter().find_map(|pid| {
        let fd = procfs::fds(pid).ok()?.into_iter().find(|f| f.socket_inode() == Some(socket.inode))?;
        Some((pid, fd.fd))
    })?;
    let attached = procfs::epolls(pid).ok()?.iter().any(|(_, watched)| watched.contains(&fd));
    Some(if !attached {
        (
            Role::ConnectionCreate,
            "the server accepted the client, but no epoll instance watches its socket: creating the \
             connection must attach it to the loop",
        )
    } else if socket.rx_queue > 0 {
        (
            Role::Dispatch,
            "the client's bytes wait unread in its socket, which the loop watches: when epoll reports it, \
             the loop must call the connection's read handler",
        )
    } else {
        (Role::ReadHandler, "the server read the client's bytes and sent nothing back")
    })
}
