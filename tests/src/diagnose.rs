//! What the server under test shows when a check fails: its log tail, a panic with its
//! backtrace, a crash report; and what its sockets show once it has started.

use std::thread;
use std::time::{Duration, Instant};

use crate::panic::Panic;
use crate::{Failure, Role, Server};

/// How many of the server's last lines a failure shows.
const LOG_LINES: usize = 25;

impl Failure {
    /// Attaches what `server` shows: the tail of its output, and a panic (a `todo!()` still to
    /// write, a `RefCell` borrowed twice) or a crash report, which the harness reads its blame
    /// from.
    pub fn log_of(mut self, server: &Server) -> Self {
        self.log_tail = server.log_tail(LOG_LINES);
        if self.panic.is_none() {
            self.panic = Panic::parse(&server.log_tail(usize::MAX));
        }
        if self.panic.is_none() && self.crash.is_empty() {
            self.crash = server.crash_lines();
        }
        self
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
