//! What stage 7 adds to stage 6's behaviour (`cargo test -p stage07`): Ctrl+C, Experiment #1,
//! and the debug log following the page's function call order.

use std::process::Command;
use std::time::{Duration, Instant};

use xps_tests::{Client, Server, checks};

const BIN: &str = env!("CARGO_BIN_EXE_stage07");

/// `stage07 --host 127.0.0.1 PORTS...` with `XPS_DEBUG=1`, started and listening.
fn start_debug(ports: &[u16]) -> Server {
    let mut cmd = Command::new(BIN);
    cmd.env("XPS_DEBUG", "1").args(["--host", "127.0.0.1"]).args(ports.iter().map(u16::to_string));
    Server::spawn(cmd, ports.len()).unwrap_or_else(|f| panic!("\n{f}"))
}

#[test]
fn ctrl_c_with_clients_connected_exits_0_closes_every_client_and_frees_the_ports() {
    let mut server = start_debug(&[0, 0, 0, 0]);
    let ports = server.ports().to_vec();
    let mut clients = Vec::new();
    for (i, &port) in ports.iter().enumerate() {
        let mut client = Client::connect(&server, port, format!("client {}", i + 1)).unwrap();
        client.round_trip(&server, b"before ctrl+c\n").unwrap_or_else(|f| panic!("\n{f}"));
        clients.push(client);
    }

    let sent = Instant::now();
    server.sigint();
    let status = server.wait_exit(Duration::from_secs(2));
    assert!(
        status.is_some_and(|s| s.code() == Some(0)),
        "after SIGINT the server must exit with status 0 within 2 s; it {} after {:?}\n{}",
        status.map_or("is still running".into(), |s| format!("ended with {s}")),
        sent.elapsed(),
        server.log_tail(20)
    );
    assert!(server.log_contains("[WARNING] sigint_handler() : SIGINT received"), "{}", server.log_tail(20));
    assert!(
        server.log_contains("[DEBUG] xps_core_destroy() : destroyed core"),
        "the core must be destroyed on the main thread before exiting\n{}",
        server.log_tail(20)
    );
    for mut client in clients {
        client.expect_eof(&server, Duration::from_secs(1)).unwrap_or_else(|f| panic!("\n{f}"));
    }

    // A new server binds the very same ports at once.
    let again = start_debug(&ports);
    assert_eq!(again.ports(), ports);
    xps_tests::run(&again, checks::one_client_on_each_port_gets_its_reversal);
}

#[test]
fn ctrl_c_while_blocked_in_send_forces_the_exit_within_2_seconds() {
    let mut server = start_debug(&[0, 0]);
    let sender = Client::connect(&server, server.ports()[0], "sender (never reads)").unwrap();
    checks::fill_until_blocked(sender.stream(), &server)
        .unwrap_or_else(|why| panic!("the server never blocked: {why}"));

    let sent = Instant::now();
    server.sigint();
    let status = server.wait_exit(Duration::from_secs(2));
    assert!(
        status.is_some(),
        "stuck in send(), the server must still exit within 2 s of SIGINT; after {:?} it runs\n{}",
        sent.elapsed(),
        server.log_tail(10)
    );
    assert_eq!(status.unwrap().code(), Some(1), "a forced exit (the core was not destroyed) exits 1");
    assert!(server.log_contains("forcing the exit"), "it must say it is forcing the exit\n{}", server.log_tail(10));
    drop(sender);
}

/// Experiment #1 of the page, as a test: the documented stage 7 behaviour that stage 8 fixes.
#[test]
fn experiment_1_stage7_blocks_everyone_while_one_client_does_not_read_and_recovers_when_it_quits() {
    let server = Server::start_on_free_ports(BIN, 4);
    xps_tests::run(&server, checks::experiment_1_blocking_send_stalls_everyone_until_the_sender_quits);
}

/// With `XPS_DEBUG=1` the debug lines follow the page's function call order.
#[test]
fn debug_log_follows_the_pages_function_call_order() {
    let mut server = start_debug(&[0]);
    let mut client = Client::connect(&server, server.ports()[0], "client").unwrap();
    client.round_trip(&server, b"hello\n").unwrap_or_else(|f| panic!("\n{f}"));
    client.close();
    assert!(server.wait_for_log("destroyed connection", Duration::from_secs(5)), "{}", server.log_tail(30));
    server.sigint();
    server.wait_exit(Duration::from_secs(2));

    let expected = [
        "[DEBUG] xps_loop_create() : created loop",
        "[DEBUG] xps_core_create() : created core",
        "[DEBUG] xps_start() : starting core",
        "[DEBUG] event_create() : created event",
        "[DEBUG] xps_listener_create() : created listener on port",
        "[INFO] xps_core_start() : Server listening on port",
        "[DEBUG] xps_loop_run() : epoll wait",
        "[DEBUG] xps_loop_run() : epoll wait over",
        "[DEBUG] xps_loop_run() : handling 1 events",
        "[DEBUG] xps_loop_run() : handling event no. 1",
        "[DEBUG] handle_epoll_events() : EVENT / read",
        "[DEBUG] event_create() : created event",
        "[DEBUG] xps_connection_create() : created connection",
        "[INFO] listener_connection_handler() : new connection",
        "[CLIENT MESSAGE] hello",
        "[INFO] connection_read_handler() : peer closed connection",
        "[DEBUG] event_destroy() : destroyed event",
        "[DEBUG] xps_connection_destroy() : destroyed connection",
        "[WARNING] sigint_handler() : SIGINT received",
        "[DEBUG] event_destroy() : destroyed event",
        "[DEBUG] xps_listener_destroy() : destroyed listener on port",
        "[DEBUG] xps_loop_destroy() : destroyed loop",
        "[DEBUG] xps_core_destroy() : destroyed core",
    ];
    let log = server.log_tail(1000);
    let mut lines = log.lines();
    for want in expected {
        assert!(
            lines.any(|line| line.starts_with(want)),
            "expected `{want}` after the lines before it in the list, in this order:\n{log}"
        );
    }
}
