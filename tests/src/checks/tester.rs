//! The course's tester, exactly (eXpServer/expserver-tester, `backend/src/tests/stages/stage6.ts`
//! and `stage7.ts`, with `string.ts`, `loadtests.ts` and `errorhandling.ts`): its three checks as
//! it runs them, its reply comparison (the first chunk received), its strings.
//!
//! The tester's clients have no timeout: a reply that never comes leaves it waiting for ever.
//! Here a client that hears nothing for [`SILENCE`] calls the reply missing and says that the
//! tester would wait for ever. Each check hands its clients back still connected: the tester
//! resolves a check on its last reply and only then disconnects, so what the server does when
//! they leave belongs to what comes after (the caller decides).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use super::bytes::{AFTER_REPLY, describe_extra, extra_bytes_hint, read_briefly};
use crate::{Client, Failure, Listening, Rng, Role, Server};

/// The ports the course's tester checks, for stage 6 and stage 7 alike.
pub const TESTER_PORTS: [u16; 4] = [8001, 8002, 8003, 8004];

/// How many strings the tester's check 1 sends on each port (`generateRandomStrings(100, 1000)`).
pub const STRINGS_PER_PORT: usize = 1000;

/// How long a client here waits without a byte before it calls a reply missing (the tester
/// itself would wait for ever).
pub const SILENCE: Duration = Duration::from_secs(5);

/// Why no first chunk came.
enum NoChunk {
    /// Nothing within [`SILENCE`].
    Silent,
    /// The server closed the connection.
    Closed,
    /// The server reset the connection (it died, or closed it with unread data).
    Reset,
    /// The socket failed.
    Failed(String),
}

/// The first chunk that arrives on `stream` (one read, as the tester's `data` event).
fn first_chunk(stream: &TcpStream) -> Result<Vec<u8>, NoChunk> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut stream = stream;
    stream.set_read_timeout(Some(SILENCE)).map_err(|e| NoChunk::Failed(e.to_string()))?;
    loop {
        return match stream.read(&mut buf) {
            Ok(0) => Err(NoChunk::Closed),
            Ok(n) => Ok(buf[..n].to_vec()),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Err(NoChunk::Silent),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Err(NoChunk::Reset),
            Err(e) => Err(NoChunk::Failed(e.to_string())),
        };
    }
}

/// The failure for a reply that did not come to `msg`, `what` naming it (`string 3 of 1000`).
fn no_reply(server: &Server, client: &Client, msg: &[u8], what: &str, why: NoChunk) -> Failure {
    let closed = matches!(why, NoChunk::Closed | NoChunk::Reset);
    let (summary, received) = match why {
        NoChunk::Silent => (
            format!(
                "{} got no reply within {} s to {what}: the tester has no timeout, it would wait for ever",
                client.label(),
                SILENCE.as_secs()
            ),
            format!("nothing within {} s", SILENCE.as_secs()),
        ),
        NoChunk::Closed => {
            (format!("{} got no reply to {what}", client.label()), "the server closed the connection".into())
        }
        NoChunk::Reset => {
            (format!("{} got no reply to {what}", client.label()), "the server reset the connection".into())
        }
        NoChunk::Failed(e) => (format!("{} got no reply to {what}", client.label()), format!("the socket failed: {e}")),
    };
    let failure = Failure::new(summary)
        .detail("sent", crate::escape(msg))
        .detail("expected", crate::escape(&crate::expected_reply(msg)))
        .detail("received", received);
    let failure = if closed {
        failure
            .blame(Role::ReadHandler, "the server closed this connection without a reply: look for an ERROR line below")
    } else {
        failure
            .blame(Role::Dispatch, "the loop must hand this connection's read events to its read handler")
            .hint("look for an ERROR line below")
    };
    failure.log_of(server)
}

/// Sends `msg` and compares the first chunk that comes back with its reversal, as the tester does.
fn tester_round_trip(server: &Server, client: &Client, msg: &[u8], what: &str) -> Result<(), Failure> {
    let mut stream = client.stream();
    if let Err(e) = stream.write_all(msg) {
        return Err(Failure::new(format!("{} could not send {what}: {e}", client.label()))
            .detail("sending", crate::escape(msg))
            .blame(Role::ReadHandler, "the server closed this connection; look for an ERROR line below")
            .log_of(server));
    }
    let waiting = Instant::now();
    let first = first_chunk(client.stream());
    server.note(|seen| seen.exchange(client.label(), crate::escape(msg), waiting.elapsed(), first.is_ok()));
    match first {
        Ok(first) => judge_first_chunk(server, client, msg, first),
        Err(why) => Err(no_reply(server, client, msg, what, why)),
    }
}

/// Compares the first chunk that came for `msg` with the reversal, as the tester does; a
/// failure says what was wrong with it (pieces, extra bytes, wrong bytes).
fn judge_first_chunk(server: &Server, client: &Client, msg: &[u8], first: Vec<u8>) -> Result<(), Failure> {
    let expected = crate::expected_reply(msg);
    if first == expected {
        return Ok(());
    }
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

/// `3 h 20 min`, `12 min`, `45 s`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

/// Why check 1 failed on a port.
#[derive(Debug)]
pub struct PortFailed {
    /// What the client saw.
    pub failure: Failure,
    /// Whether the replies came too slowly to finish (the other ports would be as slow).
    pub too_slow: bool,
}

/// How long check 1 watches the replies' pace before it may call a server too slow.
const PACE_SAMPLE: Duration = Duration::from_secs(2);

/// The tester's check 1, "Single client - input output", on one `port`: one client sends 1000
/// strings of 0-99 letters and digits and `\n` (the tester calls `generateRandomStrings(100,
/// 1000)`: at most 100 long, 1000 of them), one at a time; the first chunk received after each
/// must be its reversal. Returns the client, still connected.
///
/// The tester has no time limit; this check has `limit` for the whole of check 1 (four ports).
/// Once replies have come for `PACE_SAMPLE`, if they come so slowly that the four ports would
/// take longer than that, it stops and says how long the tester would take: a check that
/// slow counts as failed, though the tester itself would sit on it for that long.
pub fn tester_check_1_on_port(server: &Server, port: u16, seed: u64, limit: Duration) -> Result<Client, PortFailed> {
    let failed = |failure: Failure| PortFailed { failure, too_slow: false };
    let mut rng = Rng::new(seed ^ u64::from(port));
    let client = Client::connect(server, port, "tester's client").map_err(failed)?;
    let started = Instant::now();
    for n in 1..=STRINGS_PER_PORT {
        let msg = tester_string(&mut rng, 100);
        let what = format!("string {n} of {STRINGS_PER_PORT}");
        tester_round_trip(server, &client, &msg, &what)
            .map_err(|f| failed(f.detail("string", format!("{n} of {STRINGS_PER_PORT} (random seed {seed})"))))?;
        // The pace is judged on a fair sample: a few replies, over a couple of seconds.
        let whole = started.elapsed() / n as u32 * (STRINGS_PER_PORT * TESTER_PORTS.len()) as u32;
        if n >= 3 && started.elapsed() >= PACE_SAMPLE && whole > limit {
            let each = started.elapsed() / n as u32;
            return Err(Failure::new(format!(
                "replies on port {port} take {:.2} s each: at that pace the tester's check 1 ({STRINGS_PER_PORT} \
                 strings on each of {} ports) takes about {}",
                each.as_secs_f64(),
                TESTER_PORTS.len(),
                human_duration(whole)
            ))
            .detail("seen", format!("{n} strings, each reply right, in {:.1} s", started.elapsed().as_secs_f64()))
            .blame(
                Role::ReadHandler,
                "a reply should come back within milliseconds: is something sleeping, or waiting for more \
                 input, before the reply is sent?",
            )
            .hint(format!(
                "the tester has no time limit: it would sit on check 1 for {}, with nothing to show",
                human_duration(whole)
            ))
            .log_of(server))
            .map_err(|failure| PortFailed { failure, too_slow: true });
        }
    }
    Ok(client)
}

/// The tester's check 2, "Multiple clients to same port": 10 clients connect to `port` and each
/// sends `string-<i>\n` as soon as it is connected; the first chunk each receives must be its
/// own reversal. The replies are awaited together, in whatever order they come, while replies
/// keep coming (the tester waits for ever; here, until [`SILENCE`] passes without one). Returns
/// the clients, still connected.
pub fn tester_check_2(server: &Server, port: u16) -> Result<Vec<Client>, Failure> {
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
    let started = Instant::now();
    let mut waiting: Vec<usize> = (0..clients.len()).collect();
    let mut last_reply = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for i in waiting {
            let (client, msg) = &clients[i];
            let mut stream = client.stream();
            stream.set_nonblocking(true).map_err(|e| Failure::new(format!("set_nonblocking failed: {e}")))?;
            let read = stream.read(&mut buf);
            stream.set_nonblocking(false).map_err(|e| Failure::new(format!("set_nonblocking failed: {e}")))?;
            let what = format!("its string {}", crate::escape(msg));
            match read {
                Ok(0) => return Err(no_reply(server, client, msg, &what, NoChunk::Closed)),
                Ok(n) => {
                    server.note(|seen| seen.exchange(client.label(), crate::escape(msg), started.elapsed(), true));
                    judge_first_chunk(server, client, msg, buf[..n].to_vec())?;
                    last_reply = Instant::now();
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => still.push(i),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                    return Err(no_reply(server, client, msg, &what, NoChunk::Reset));
                }
                Err(e) => return Err(no_reply(server, client, msg, &what, NoChunk::Failed(e.to_string()))),
            }
        }
        waiting = still;
        if let Some(&i) = waiting.first()
            && last_reply.elapsed() > SILENCE
        {
            let (client, msg) = &clients[i];
            let what = format!("its string {}", crate::escape(msg));
            return Err(no_reply(server, client, msg, &what, NoChunk::Silent)
                .detail("replies", format!("{} of 10 clients got theirs", 10 - waiting.len())));
        }
        thread::sleep(Duration::from_millis(2));
    }
    Ok(clients.into_iter().map(|(client, _)| client).collect())
}

/// The tester's check 3, "Error handling": a client connects, a second connects, and the first
/// disconnects at once without sending anything; then the second sends a string of 0-9 letters
/// and digits and `\n` and must get its reversal, then a new client does the same. Returns the
/// two clients, still connected. (The tester also fails the check if the server exits while it
/// runs; the caller watches that.)
pub fn tester_check_3(server: &Server, port: u16, seed: u64) -> Result<Vec<Client>, Failure> {
    let mut rng = Rng::new(seed);
    let leaving = Client::connect(server, port, "client that disconnects")?;
    let existing = Client::connect(server, port, "existing client")?;
    leaving.close();
    tester_round_trip(server, &existing, &tester_string(&mut rng, 10), "its string")?;
    let new = Client::connect(server, port, "new client")?;
    tester_round_trip(server, &new, &tester_string(&mut rng, 10), "its string")?;
    Ok(vec![existing, new])
}

/// The sockets on the tester's ports that the tester could not reach: on each port where no
/// socket listens everywhere over IPv4 (`0.0.0.0`, or `[::]` without `IPV6_V6ONLY`), the first
/// one found there. The tester connects from another container, over IPv4.
pub fn unreachable_for_the_tester(listening: &[Listening]) -> Vec<Listening> {
    TESTER_PORTS
        .iter()
        .filter_map(|&port| {
            let on_port: Vec<&Listening> = listening.iter().filter(|l| l.addr.port() == port).collect();
            let reached = on_port.iter().any(|l| l.reachable_from_network());
            (!reached).then(|| on_port.first().map(|l| (*l).clone())).flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_waits_are_said_in_hours_and_minutes() {
        assert_eq!(human_duration(Duration::from_secs(45)), "45 s");
        assert_eq!(human_duration(Duration::from_secs(12 * 60 + 5)), "12 min");
        assert_eq!(human_duration(Duration::from_secs(12_000)), "3 h 20 min");
    }
}
