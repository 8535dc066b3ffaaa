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
