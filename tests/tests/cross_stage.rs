//! Cross-stage check: stage 7 is a refactor of stage 6, so the same client script must get the
//! very same bytes back from both.

use std::time::Duration;

use xps_tests::{Client, Server, escape, workspace_binary};

/// One step of the script: a client (by number) on a port (by index) sends bytes, or leaves.
enum Step {
    Send { client: usize, port: usize, bytes: &'static [u8] },
    Close { client: usize },
}

use Step::{Close, Send};

const SCRIPT: &[Step] = &[
    Send { client: 0, port: 0, bytes: b"hello\n" },
    Send { client: 1, port: 1, bytes: b"second port\n" },
    Send { client: 2, port: 0, bytes: b"another client on a busy port\n" },
    Send { client: 3, port: 2, bytes: b"third port\n" },
    Send { client: 0, port: 0, bytes: b"\n" },
    Send { client: 1, port: 1, bytes: b"no newline" },
    Send { client: 2, port: 0, bytes: b"nul\0and \xff invalid utf-8\n" },
    Send { client: 3, port: 2, bytes: b"windows\r\n" },
    Close { client: 2 },
    Send { client: 4, port: 1, bytes: b"a fourth client after one left\n" },
    Send { client: 0, port: 0, bytes: b"still here\n" },
    Close { client: 0 },
    Send { client: 1, port: 1, bytes: b"0123456789abcdefghijklmnopqrstuvwxyz\n" },
];

/// Runs the script against `stage` and returns what each step's client received.
fn run_script(stage: &str) -> Vec<(usize, Vec<u8>)> {
    let server = Server::start_on_free_ports(workspace_binary(stage), 3);
    let mut clients: Vec<Option<Client>> = (0..5).map(|_| None).collect();
    let mut transcript = Vec::new();
    for step in SCRIPT {
        match *step {
            Send { client, port, bytes } => {
                let slot = &mut clients[client];
                if slot.is_none() {
                    let label = format!("{stage} client {client}");
                    *slot =
                        Some(Client::connect(&server, server.ports()[port], label).unwrap_or_else(|f| panic!("\n{f}")));
                }
                let c = slot.as_mut().unwrap();
                c.send(&server, bytes).unwrap_or_else(|f| panic!("\n{f}"));
                let (received, _) = c.read_up_to(bytes.len(), Duration::from_secs(5));
                transcript.push((client, received));
            }
            Close { client } => {
                if let Some(c) = clients[client].take() {
                    c.close();
                }
            }
        }
    }
    transcript
}

#[test]
fn the_same_client_script_gets_identical_bytes_from_stage06_and_stage07() {
    let stage06 = run_script("stage06");
    let stage07 = run_script("stage07");
    assert_eq!(stage06.len(), stage07.len());
    for (i, (a, b)) in stage06.iter().zip(&stage07).enumerate() {
        assert_eq!(
            a,
            b,
            "step {i} (client {}): stage06 replied {} but stage07 replied {}; stage 7 only refactors stage 6, \
             so its replies must not change",
            a.0,
            escape(&a.1),
            escape(&b.1)
        );
    }
    // And the replies are the reversals, so the comparison is not between two empty transcripts.
    assert_eq!(stage06[0].1, b"olleh\n");
}
