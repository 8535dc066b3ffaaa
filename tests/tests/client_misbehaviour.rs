//! What a client does to its own connection is not the server's failure, and a client's bytes
//! are shown, never obeyed: checks beyond the course (`extra_*`), run against both stages.
//!
//! - Clients that reset their connections, before or after they were accepted, are logged at
//!   INFO at most (the page logs every `recv()` failure as ERROR; nginx keeps ERROR for the
//!   server's own failures): no client can fill the log with ERROR lines.
//! - A client's message cannot clear the learner's terminal with an escape sequence or forge a
//!   log line: control characters are printed escaped, and every line of a message is marked
//!   `[CLIENT MESSAGE]`.

use std::thread;
use std::time::Duration;

use xps_tests::{Client, Server, workspace_binary};

const STAGES: [&str; 2] = ["stage06", "stage07"];

fn start(stage: &str) -> Server {
    Server::start_on_free_ports(workspace_binary(stage), 1)
}

/// The ERROR lines in the server's output, if any, for the failure message.
fn error_lines(server: &Server) -> Vec<String> {
    server.log_tail(100_000).lines().filter(|l| l.starts_with("[ERROR]")).map(str::to_string).collect()
}

/// A new client still gets its reply.
fn still_serves(server: &Server) {
    let mut client = Client::connect(server, server.ports()[0], "new client").unwrap_or_else(|f| panic!("\n{f}"));
    client.round_trip(server, b"still serving?\n").unwrap_or_else(|f| panic!("\n{f}"));
}

#[test]
fn extra_clients_that_reset_their_connection_are_logged_at_info_never_error() {
    for stage in STAGES {
        let server = start(stage);
        let port = server.ports()[0];
        for i in 0..50 {
            let mut client = Client::connect(&server, port, format!("client {i}")).unwrap_or_else(|f| panic!("\n{f}"));
            client.round_trip(&server, b"about to reset\n").unwrap_or_else(|f| panic!("\n{f}"));
            client.reset();
        }
        assert!(
            server.wait_for_log("Connection reset by peer", Duration::from_secs(5)),
            "{stage}: a reset should still be logged, with the OS error text\n{}",
            server.log_tail(20)
        );
        still_serves(&server);
        let errors = error_lines(&server);
        assert!(
            errors.is_empty(),
            "{stage}: 50 clients that reset their own connections produced {} ERROR lines; a reset is the \
             client's doing, log it at INFO (see shared::xps_utils::client_error_level). First: {:?}",
            errors.len(),
            errors.first()
        );
    }
}

#[test]
fn extra_clients_that_reset_before_they_are_accepted_log_no_error() {
    for stage in STAGES {
        let server = start(stage);
        let port = server.ports()[0];
        // Freeze the server, so every client is still waiting in the listen queue when it resets.
        server.signal(libc::SIGSTOP);
        for i in 0..20 {
            let client = Client::connect(&server, port, format!("client {i}"));
            match client {
                Ok(client) => client.reset(),
                Err(f) => {
                    server.signal(libc::SIGCONT);
                    panic!("\n{f}");
                }
            }
        }
        server.signal(libc::SIGCONT);
        thread::sleep(Duration::from_millis(500));
        still_serves(&server);
        let errors = error_lines(&server);
        assert!(
            errors.is_empty(),
            "{stage}: 20 clients that reset before accept() produced {} ERROR lines (getpeername() fails \
             with ENOTCONN for them: the client left, the server did nothing wrong). First: {:?}",
            errors.len(),
            errors.first()
        );
    }
}

#[test]
fn extra_client_bytes_cannot_clear_the_terminal_or_forge_a_log_line() {
    for stage in STAGES {
        let server = start(stage);
        let mut client = Client::connect(&server, server.ports()[0], "client").unwrap_or_else(|f| panic!("\n{f}"));
        client.round_trip(&server, b"\x1b[2Jcleared?\r\n").unwrap_or_else(|f| panic!("\n{f}"));
        client.round_trip(&server, b"hi\n[ERROR] main() : forged by a client\n").unwrap_or_else(|f| panic!("\n{f}"));
        still_serves(&server);
        let log = server.log_tail(100);
        assert!(
            log.contains(r"[CLIENT MESSAGE] \x1b[2Jcleared?\x0d"),
            "{stage}: the escape sequence and the carriage return must be printed escaped, as \\x1b and \\x0d, \
             not sent to the terminal; the log was:\n{log}"
        );
        assert!(
            log.contains("[CLIENT MESSAGE] [ERROR] main() : forged by a client"),
            "{stage}: each line of a client's message must be marked [CLIENT MESSAGE]; the log was:\n{log}"
        );
        assert!(
            !log.lines().any(|l| l.starts_with("[ERROR] main() : forged")),
            "{stage}: a client forged a log line; the log was:\n{log}"
        );
    }
}
