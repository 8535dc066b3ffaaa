//! The kit's checks must be able to fail: run them against servers that are wrong on purpose
//! (small Python servers that log like ours) and look at what a learner would be shown.

use std::process::Command;

use xps_tests::{Role, Server, checks};

/// A server that logs `Server listening on port N` for one OS-picked port and then answers
/// every recv() with `reply_expr` (a Python expression of `data`).
fn fake_server(reply_expr: &str) -> Server {
    let script = format!(
        r#"
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(64)
print("[INFO] main() : Server listening on port %d" % s.getsockname()[1], flush=True)
def serve(c):
    while True:
        data = c.recv(100000)
        if not data:
            return
        print("[CLIENT MESSAGE] %r" % data, flush=True)
        c.sendall({reply_expr})
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#
    );
    let mut cmd = Command::new("python3");
    cmd.args(["-c", &script]);
    Server::spawn(cmd, 1).unwrap_or_else(|f| panic!("the fake server did not start (is python3 installed?)\n{f}"))
}

#[test]
fn a_server_that_echoes_instead_of_reversing_fails_with_sent_expected_received_and_its_log() {
    let server = fake_server("data");
    let port = server.ports()[0];
    let failure =
        checks::milestone_2::one_client_on_each_port_gets_its_reversal(&server).expect_err("an echo server must fail");
    let text = failure.to_string();
    println!("what a learner sees:\n{text}");
    for needle in [
        format!("client 1 on port {port} got a wrong reply"),
        r#"sent:     "message 1 from client 1\n""#.to_string(),
        r#"expected: "1 tneilc morf 1 egassem\n""#.to_string(),
        r#"received: "message 1 from client 1\n""#.to_string(),
        "fix:".to_string(),
        "[CLIENT MESSAGE]".to_string(),
    ] {
        assert!(text.contains(&needle), "the failure should contain {needle:?}; it was:\n{text}");
    }
    assert_eq!(failure.blamed_role(), Some(Role::ReadHandler), "a wrong reply blames the read handler:\n{text}");
}

#[test]
fn a_server_that_never_answers_fails_with_no_reply() {
    let server = fake_server("b''");
    let failure = checks::course::ten_clients_at_once_on_one_port(&server).expect_err("a silent server must fail");
    let text = failure.to_string();
    assert!(text.contains("got no reply"), "{text}");
    assert!(text.contains(r#"expected: "0-gnirts\n""#), "{text}");
}

#[test]
fn a_server_that_keeps_reading_fails_experiment_1() {
    // Python's sendall to a client that never reads blocks only this thread: other clients
    // are still served, which is stage 8's behaviour, not stage 7's.
    let server = fake_server("data[::-1]");
    let failure = checks::stage7::experiment_1_blocking_send_stalls_everyone_until_the_sender_quits(&server)
        .expect_err("a server that serves others while one client is stuck is not stage 7");
    let text = failure.to_string();
    assert!(text.contains("Experiment #1"), "{text}");
}
