//! The shutdown check must be able to fail: a server that exits 0 on SIGINT without destroying
//! its core passes every symptom a client can see (end-of-file, the port free again), so the
//! check must catch it by the missing DEBUG lines, and say so.

use std::process::Command;

use xps_tests::{Server, checks};

/// A server on one OS-picked port that reverses what it gets and, on SIGINT, exits 0 at once
/// without destroying anything (no `destroyed ...` lines), as a learner's C might with
/// `exit(0)` in its handler. `destroy_lines` makes it print the page's lines first instead.
fn fake_server(destroy_lines: bool) -> Server {
    let script = format!(
        r#"
import os, signal, socket, sys, threading, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(64)
port = s.getsockname()[1]
print("[INFO] main() : Server listening on port %d" % port, flush=True)
conns = []
def on_sigint(*_):
    print("[WARNING] sigint_handler() : SIGINT received", flush=True)
    if {destroy_lines}:
        for c in conns:
            c.close(); print("[DEBUG] xps_connection_destroy() : destroyed connection", flush=True)
        s.close(); print("[DEBUG] xps_listener_destroy() : destroyed listener on port %d" % port, flush=True)
        print("[DEBUG] xps_core_destroy() : destroyed core", flush=True)
    os._exit(0)
signal.signal(signal.SIGINT, on_sigint)
def serve(c):
    while True:
        data = c.recv(100000)
        if not data:
            return
        body, nl = (data[:-1], b"\n") if data.endswith(b"\n") else (data, b"")
        c.sendall(body[::-1] + nl)
def accept():
    while True:
        c, _ = s.accept(); conns.append(c)
        threading.Thread(target=serve, args=(c,), daemon=True).start()
threading.Thread(target=accept, daemon=True).start()
# Not signal.pause(): the kernel may hand SIGINT to another thread, and pause() in the main
# thread would then never return. Python runs the handler in the main thread at its next check.
while True:
    time.sleep(0.05)
"#,
        destroy_lines = if destroy_lines { "True" } else { "False" }
    );
    let mut cmd = Command::new("python3");
    cmd.args(["-c", &script]);
    Server::spawn(cmd, 1).unwrap_or_else(|f| panic!("the fake server did not start (is python3 installed?)\n{f}"))
}

#[test]
fn a_server_that_exits_0_without_destroying_its_core_fails_the_shutdown_check() {
    let mut server = fake_server(false);
    let failure = checks::shutdown::shutdown_destroys_every_instance_then_exits_0(&mut server, libc::SIGINT)
        .expect_err("exit 0 without destroying anything is not the graceful path");
    let text = failure.to_string();
    println!("what a learner sees:\n{text}");
    assert!(text.contains("it did not destroy the core first"), "{text}");
    assert!(text.contains("xps_core_destroy()"), "the hint names the function to look at: {text}");
}

#[test]
fn a_server_that_destroys_everything_then_exits_0_passes_the_shutdown_check() {
    let mut server = fake_server(true);
    checks::shutdown::shutdown_destroys_every_instance_then_exits_0(&mut server, libc::SIGINT)
        .unwrap_or_else(|f| panic!("\n{f}"));
}
