//! The checks that talk to a server, each written once and run against every stage (through
//! the registry, [`crate::registry`]) and, through `scripts/check-build.sh`, against a learner's
//! own build.
//!
//! A server check takes the running [`Server`] and returns `Err(Failure)` with what it saw:
//! which client on which port, the bytes sent, expected and received (escaped), the server's log
//! tail, and the page function its observation points to.

pub mod bytes;
pub mod command_line;
pub mod course;
pub mod hardening;
pub mod leaks;
pub mod milestone_2;
pub mod misbehaviour;
pub mod shutdown;
pub mod stage7;
pub mod tester;

use crate::{Failure, Server};

/// A check against a running server.
pub type ServerCheck = fn(&Server) -> Result<(), Failure>;

/// One message a check sends, named after the client that sends it.
pub(crate) fn message(client: &str, n: usize) -> Vec<u8> {
    format!("message {n} from {client}\n").into_bytes()
}

/// At least `n` ports, or a failure saying the server has too few.
pub(crate) fn ports(server: &Server, n: usize) -> Result<&[u16], Failure> {
    if server.ports().len() < n {
        return Err(Failure::new(format!(
            "this check needs {n} ports, the server listens on {}",
            server.ports().len()
        ))
        .log_of(server));
    }
    Ok(server.ports())
}

/// Every port the server was to listen on, or a failure naming those it does not listen on:
/// for the checks that go through every port (a learner's build started on the course's ports
/// may have forgotten one).
pub(crate) fn every_port(server: &Server) -> Result<&[u16], Failure> {
    let missing = server.missing_ports();
    if missing.is_empty() {
        return Ok(server.ports());
    }
    let list = |ports: &[u16]| ports.iter().map(u16::to_string).collect::<Vec<_>>().join(" ");
    let mut all = [server.ports(), missing].concat();
    all.sort_unstable();
    Err(Failure::new(format!(
        "{} does not listen on port {} (it should listen on {})",
        server.name(),
        list(missing),
        list(&all)
    ))
    .blame(crate::Role::ListenerCreate, "create a listener on every port of the stage")
    .log_of(server))
}
