//! Checks of the load generator itself (`tests/src/bin/loadgen/main.rs`), which `scripts/bench.sh`
//! uses to measure the stages: it runs a few hundred round trips against stage07 without a
//! single error, and its reply check really fails when a server answers wrongly or not at all.
//!
//! No check here depends on how fast the machine is: a busy machine makes fewer round trips,
//! and the minimum asked for is far below what even a debug build on a loaded machine does.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::str::FromStr;
use std::thread;

use xps_tests::{Server, workspace_binary};

/// The fewest round trips the run against stage07 must complete. A debug build on a busy
/// 2-core machine does thousands in the half second asked for.
const MIN_MESSAGES: u64 = 200;

/// Runs loadgen against `127.0.0.1:port` with `args`, and returns what it printed.
fn loadgen(port: u16, args: &[&str]) -> Output {
    Command::new(workspace_binary("loadgen"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(args)
        .output()
        .expect("could not run loadgen")
}

/// Loadgen's exit status, stdout and stderr, for failure messages.
fn describe(output: &Output) -> String {
    format!(
        "loadgen {}\n--- stdout ---\n{}--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The value after `key=` in loadgen's `RESULT ...` line. Panics, showing loadgen's output, if
/// there is no such line or field.
fn result_field<T: FromStr>(output: &Output, key: &str) -> T {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rfind(|line| line.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("loadgen printed no RESULT line\n{}", describe(output)));
    line.split_whitespace()
        .filter_map(|field| field.split_once('='))
        .find(|(name, _)| *name == key)
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or_else(|| panic!("no valid `{key}` in loadgen's RESULT line\n{}", describe(output)))
}

/// Starts a server on an OS-picked port of 127.0.0.1 that gives each connection to `serve` on a
/// thread of its own, for as long as the test runs. Returns the port.
fn start_fake_server(serve: fn(TcpStream)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port for the fake server");
    let port = listener.local_addr().expect("the fake server's address").port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve(stream));
        }
    });
    port
}

/// A broken server: it sends every message back as it came, not reversed.
fn echo_unreversed(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        if stream.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

/// A broken server: it reads the first message, then closes the connection without replying.
fn close_after_first_message(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = stream.read(&mut buf);
}

#[test]
fn hundreds_of_round_trips_against_stage07_get_every_reply_right() {
    let server = Server::start_on_free_ports(workspace_binary("stage07"), 1);
    let port = server.ports()[0];

    let output = loadgen(port, &["--clients", "4", "--size", "64", "--seconds", "0.5", "--idle", "20"]);

    assert!(
        output.status.success(),
        "loadgen failed against stage07 on port {port}\n{}\nserver output (last lines):\n{}",
        describe(&output),
        server.log_tail(20)
    );
    let messages: u64 = result_field(&output, "messages");
    assert!(
        messages >= MIN_MESSAGES,
        "only {messages} round trips completed, expected at least {MIN_MESSAGES}\n{}",
        describe(&output)
    );
    assert_eq!(result_field::<u64>(&output, "wrong"), 0, "wrong replies\n{}", describe(&output));
    assert_eq!(result_field::<u64>(&output, "missing"), 0, "missing replies\n{}", describe(&output));
    assert!(result_field::<f64>(&output, "rate") > 0.0, "a zero rate\n{}", describe(&output));
    // The RESULT line echoes the run's settings, so a script can tell its rows apart.
    assert_eq!(
        (result_field::<u64>(&output, "clients"), result_field::<u64>(&output, "idle"), result_field(&output, "size")),
        (4, 20, 64),
        "RESULT does not echo the settings\n{}",
        describe(&output)
    );
}

#[test]
fn replies_that_are_not_reversed_count_as_wrong_and_exit_1() {
    let port = start_fake_server(echo_unreversed);

    let output = loadgen(port, &["--clients", "2", "--size", "64", "--seconds", "0.3"]);

    assert_eq!(output.status.code(), Some(1), "expected exit status 1\n{}", describe(&output));
    assert!(
        result_field::<u64>(&output, "wrong") > 0,
        "the unreversed replies were not counted\n{}",
        describe(&output)
    );
    assert_eq!(
        result_field::<u64>(&output, "messages"),
        0,
        "a wrong reply counted as a round trip\n{}",
        describe(&output)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in ["FAILED", "wrong replies", "first difference at byte", "got:", "expected:"] {
        assert!(stderr.contains(needle), "stderr does not say `{needle}`\n{}", describe(&output));
    }
}

#[test]
fn a_server_that_closes_without_replying_gives_a_missing_reply_and_exit_1() {
    let port = start_fake_server(close_after_first_message);

    let output = loadgen(port, &["--clients", "1", "--size", "64", "--seconds", "0.3"]);

    assert_eq!(output.status.code(), Some(1), "expected exit status 1\n{}", describe(&output));
    assert_eq!(result_field::<u64>(&output, "missing"), 1, "the missing reply was not counted\n{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("reply missing") && stderr.contains("closed the connection"),
        "stderr does not say why the reply is missing\n{}",
        describe(&output)
    );
}
