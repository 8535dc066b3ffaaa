//! The course's tester, exactly (eXpServer/expserver-tester, stages 6 and 7): its three checks as
//! it runs them, its reply comparison (the first chunk received), its strings.

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::bytes::{AFTER_REPLY, describe_extra, extra_bytes_hint, read_briefly};
use crate::{Client, Failure, Rng, Role, Server};

/// The ports the course's tester checks, for stage 6 and stage 7 alike.
pub const TESTER_PORTS: [u16; 4] = [8001, 8002, 8003, 8004];

/// The tester reads one chunk per reply: what one read returns. How long we wait for it (the
/// tester itself would wait for ever).
const FIRST_CHUNK_TIMEOUT: Duration = Duration::from_secs(5);

/// The first chunk that arrives on `stream` (one read, as the tester's `data` event), or why none
/// did.
fn first_chunk(stream: &TcpStream) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut buf = vec![0u8; 64 * 1024];
    let mut stream = stream;
    stream.set_read_timeout(Some(FIRST_CHUNK_TIMEOUT)).map_err(|e| e.to_string())?;
    loop {
        return match stream.read(&mut buf) {
            Ok(0) => Err("the server closed the connection".into()),
            Ok(n) => Ok(buf[..n].to_vec()),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(format!("nothing within {FIRST_CHUNK_TIMEOUT:?} (the tester would wait for ever)"))
            }
            Err(e) => Err(format!("the socket failed: {e}")),
        };
    }
}

/// Sends `msg` and compares the first chunk that comes back with its reversal, as the tester does.
fn tester_round_trip(server: &Server, client: &Client, msg: &[u8]) -> Result<(), Failure> {
    let mut stream = client.stream();
    if let Err(e) = stream.write_all(msg) {
        return Err(Failure::new(format!("{} could not send: {e}", client.label()))
            .detail("sending", crate::escape(msg))
            .blame(Role::ReadHandler, "the server closed this connection; look for an ERROR line below")
            .log_of(server));
    }
    expect_first_chunk(server, client, msg)
}

/// Reads the first chunk that arrives for `msg` and compares it with the reversal, as the tester
/// does; a failure says what was wrong with it (pieces, extra bytes, wrong bytes).
fn expect_first_chunk(server: &Server, client: &Client, msg: &[u8]) -> Result<(), Failure> {
    let expected = crate::expected_reply(msg);
    let first = match first_chunk(client.stream()) {
        Ok(first) if first == expected => return Ok(()),
        Ok(first) => first,
        Err(why) => {
            return Err(Failure::new(format!("{} got no reply", client.label()))
                .detail("sent", crate::escape(msg))
                .detail("expected", crate::escape(&expected))
                .detail("received", why)
                .blame(Role::Dispatch, "the loop must hand this connection's read events to its read handler")
                .hint("look for an ERROR line below")
                .log_of(server));
        }
    };
    // Say why the first chunk is not the reply: more of it came later, or bytes came with it.
    let rest = read_briefly(client.stream(), AFTER_REPLY);
    let (what, hint) = if expected.starts_with(&first) && first.len() + rest.len() >= expected.len() {
        let rest_shown = &rest[..rest.len().min(expected.len() - first.len())];
        (
            format!("got the reply in pieces: {} first, then {}", crate::escape(&first), crate::escape(rest_shown)),
            "the tester compares only the first chunk it receives with the reply: send the whole reply \
             with one send() (a loop that continues after a partial send() is fine)"
                .to_string(),
        )
    } else if first.starts_with(&expected) {
        let extra = &first[expected.len()..];
        (format!("got {} after the reply", describe_extra(extra)), extra_bytes_hint(extra))
    } else if expected.starts_with(&first) {
        ("got only part of the reply".to_string(), "does the server send() every byte of the message?".to_string())
    } else {
        (
            "got a wrong reply".to_string(),
            "the reply must be the message reversed, a trailing \\n kept last, and nothing else; bytes \
             left over from an earlier reply also make the first chunk wrong"
                .to_string(),
        )
    };
    let mut received = crate::escape(&first);
    if !rest.is_empty() {
        received.push_str(&format!(" (first chunk), then {}", crate::escape(&rest)));
    }
    Err(Failure::new(format!("{} {what}", client.label()))
        .detail("sent", crate::escape(msg))
        .detail("expected", crate::escape(&expected))
        .detail("received", received)
        .blame(Role::ReadHandler, hint)
        .log_of(server))
}

/// A random string as the tester makes them: 0 to `max_len - 1` letters and digits, then `\n`.
fn tester_string(rng: &mut Rng, max_len: u64) -> Vec<u8> {
    let len = rng.below(max_len) as usize;
    let mut s = rng.alphanumeric(len);
    s.push(b'\n');
    s
}

/// The tester's check 1, "Single client - input output", on one `port`: one client sends 1000
/// strings of 0-99 letters and digits and `\n` (the tester calls `generateRandomStrings(100,
/// 1000)`: at most 100 long, 1000 of them), one at a time; the first chunk received after each
/// must be its reversal.
pub fn tester_check_1_on_port(server: &Server, port: u16, seed: u64) -> Result<(), Failure> {
    let mut rng = Rng::new(seed ^ u64::from(port));
    let client = Client::connect(server, port, "tester's client")?;
    for n in 1..=1000 {
        let msg = tester_string(&mut rng, 100);
        tester_round_trip(server, &client, &msg)
            .map_err(|f| f.detail("string", format!("{n} of 1000 (random seed {seed})")))?;
    }
    Ok(())
}

/// The tester's check 2, "Multiple clients to same port": 10 clients connect to `port` and each
/// sends `string-<i>\n` as soon as it is connected; the first chunk each receives must be its
/// own reversal.
pub fn tester_check_2(server: &Server, port: u16) -> Result<(), Failure> {
    let mut clients = Vec::new();
    for i in 0..10 {
        let client = Client::connect(server, port, format!("client {i}"))?;
        let msg = format!("string-{i}\n").into_bytes();
        let mut stream = client.stream();
        stream.write_all(&msg).map_err(|e| {
            Failure::new(format!("{} could not send: {e}", client.label()))
                .blame(Role::ReadHandler, "the server closed this connection; look for an ERROR line below")
                .log_of(server)
        })?;
        clients.push((client, msg));
    }
    for (client, msg) in &clients {
        expect_first_chunk(server, client, msg)?;
    }
    Ok(())
}

/// The tester's check 3, "Error handling": a client connects, a second connects, and the first
/// disconnects at once without sending anything; then the second sends a string of 0-9 letters
/// and digits and `\n` and must get its reversal, then a new client does the same. (The server
/// must also still be running afterwards; the caller checks that.)
pub fn tester_check_3(server: &Server, port: u16, seed: u64) -> Result<(), Failure> {
    let mut rng = Rng::new(seed);
    let leaving = Client::connect(server, port, "client that disconnects")?;
    let existing = Client::connect(server, port, "existing client")?;
    leaving.close();
    tester_round_trip(server, &existing, &tester_string(&mut rng, 10))?;
    let new = Client::connect(server, port, "new client")?;
    tester_round_trip(server, &new, &tester_string(&mut rng, 10))
}
