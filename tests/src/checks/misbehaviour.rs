//! What a client does to its own connection is not the server's failure, and a client's bytes
//! are shown, never obeyed: checks beyond the course.
//!
//! - Clients that reset their connections, before or after they were accepted, are logged at
//!   INFO at most (the page logs every `recv()` failure as ERROR; nginx keeps ERROR for the
//!   server's own failures): no client can fill the log with ERROR lines.
//! - A client's message cannot clear the learner's terminal with an escape sequence or forge a
//!   log line: control characters are printed escaped, and every line of a message is marked
//!   `[CLIENT MESSAGE]`.

use std::thread;
use std::time::Duration;

use super::ports;
use crate::{Client, Failure, Role, Server};

/// The ERROR lines in the server's output.
fn error_lines(server: &Server) -> Vec<String> {
    server.log_tail(100_000).lines().filter(|l| l.starts_with("[ERROR]")).map(str::to_string).collect()
}

/// A new client still gets its reply.
fn still_serves(server: &Server, port: u16) -> Result<(), Failure> {
    Client::connect(server, port, "new client")?.round_trip(server, b"still serving?\n")
}

/// 50 clients each get a reply and then reset their connection: each reset is logged with the
/// OS error text, none as ERROR, and the server serves on.
pub fn clients_that_reset_their_connection_are_logged_at_info_never_error(server: &Server) -> Result<(), Failure> {
    let port = ports(server, 1)?[0];
    for i in 0..50 {
        let mut client = Client::connect(server, port, format!("client {i}"))?;
        client.round_trip(server, b"about to reset\n")?;
        client.reset();
    }
    if !server.wait_for_log("Connection reset by peer", Duration::from_secs(5)) {
        return Err(Failure::new("50 clients reset their connections, and the server logged none of the resets")
            .detail("expected", "a line with the OS error text `Connection reset by peer` (at INFO)")
            .blame(
                Role::ReadHandler,
                "recv() fails with ECONNRESET there: log it with the OS error text, then destroy the connection",
            )
            .log_of(server));
    }
    still_serves(server, port)?;
    let errors = error_lines(server);
    if let Some(first) = errors.first() {
        return Err(Failure::new(format!(
            "50 clients that reset their own connections produced {} ERROR lines",
            errors.len()
        ))
        .detail("expected", "the resets logged at INFO: a reset is the client's doing, not the server's failure")
        .detail("received", first.clone())
        .blame(Role::ReadHandler, "log recv()'s ECONNRESET at INFO (see shared::xps_utils::client_error_level)")
        .log_of(server));
    }
    Ok(())
}

/// 20 clients connect and reset while the server is stopped (SIGSTOP), so each is still in the
/// listen queue: once it runs again, none of them is logged as ERROR, and the server serves on.
pub fn clients_that_reset_before_they_are_accepted_log_no_error(server: &Server) -> Result<(), Failure> {
    let port = ports(server, 1)?[0];
    server.signal(libc::SIGSTOP);
    let mut connected = Ok(());
    for i in 0..20 {
        match Client::connect(server, port, format!("client {i}")) {
            Ok(client) => client.reset(),
            Err(f) => {
                connected = Err(f);
                break;
            }
        }
    }
    server.signal(libc::SIGCONT);
    connected?;
    thread::sleep(Duration::from_millis(500));
    still_serves(server, port)?;
    let errors = error_lines(server);
    if let Some(first) = errors.first() {
        return Err(Failure::new(format!(
            "20 clients that reset before accept() produced {} ERROR lines",
            errors.len()
        ))
        .detail(
            "expected",
            "no ERROR: getpeername() fails with ENOTCONN for such a client, which left; the server did nothing wrong",
        )
        .detail("received", first.clone())
        .blame(
            Role::ConnectionCreate,
            "get_remote_ip()'s ENOTCONN is the client's doing: log it at DEBUG and go on with no address",
        )
        .log_of(server));
    }
    Ok(())
}

/// A message with an escape sequence, a carriage return and a forged log line is printed
/// escaped, each of its lines marked `[CLIENT MESSAGE]`.
pub fn client_bytes_cannot_clear_the_terminal_or_forge_a_log_line(server: &Server) -> Result<(), Failure> {
    let port = ports(server, 1)?[0];
    let mut client = Client::connect(server, port, "client")?;
    client.round_trip(server, b"\x1b[2Jcleared?\r\n")?;
    client.round_trip(server, b"hi\n[ERROR] main() : forged by a client\n")?;
    still_serves(server, port)?;
    let log = server.log_tail(100);
    let problem = if !log.contains(r"[CLIENT MESSAGE] \x1b[2Jcleared?\x0d") {
        Some(
            "the escape sequence and the carriage return must be printed escaped, as \\x1b and \\x0d, not sent to the terminal",
        )
    } else if !log.contains("[CLIENT MESSAGE] [ERROR] main() : forged by a client") {
        Some("each line of a client's message must be marked [CLIENT MESSAGE]")
    } else if log.lines().any(|l| l.starts_with("[ERROR] main() : forged")) {
        Some("a client forged a log line")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(Failure::new(problem)
            .detail("sent", "\"\\x1b[2Jcleared?\\r\\n\" then \"hi\\n[ERROR] main() : forged by a client\\n\"")
            .blame(
                Role::ReadHandler,
                "print the message with shared::xps_utils::print_client_message, which escapes it",
            )
            .log_of(server)),
    }
}
