//! What the reply to any bytes must be: raw bytes, empty lines, no newline, a NUL, nothing after
//! the reply, and a client that resets. The bugs learners' own builds really have.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::hardening::MAX_RECV;
use super::hardening::streams::check_reversed_chunks;
use super::ports;
use crate::{Client, Failure, REPLY_TIMEOUT, Rng, Role, Server};

/// Any bytes work: NUL, invalid UTF-8, `\r`, empty lines and messages without a newline come
/// back reversed byte for byte, a trailing `\n` staying last.
pub fn raw_bytes_and_empty_lines_are_reversed_byte_for_byte(server: &Server) -> Result<(), Failure> {
    let port = ports(server, 1)?[0];
    let mut client = Client::connect(server, port, "client")?;
    let messages: [&[u8]; 7] = [
        b"\n",
        b"a\n",
        b"no newline",
        b"nul\0inside\n",
        b"\xff\xfe invalid utf-8 \xc3\n",
        b"windows line\r\n",
        b"\n\n",
    ];
    for msg in messages {
        client.round_trip(server, msg)?;
    }
    Ok(())
}

/// A client that resets its connection (RST instead of FIN) is logged with the OS error text and
/// dropped; the server keeps serving a client already connected and a new one.
pub fn client_that_resets_is_dropped_and_others_stay_served(server: &Server) -> Result<(), Failure> {
    let port = ports(server, 1)?[0];
    let mut staying = Client::connect(server, port, "staying client")?;
    let mut resetting = Client::connect(server, port, "resetting client")?;
    resetting.round_trip(server, b"about to reset\n")?;
    resetting.reset();
    if !server.wait_for_log("Connection reset by peer", Duration::from_secs(5)) {
        return Err(Failure::new("the server did not log the reset")
            .detail("expected", "a line with the OS error text `Connection reset by peer`")
            .blame(
                Role::ReadHandler,
                "log recv()'s error with the OS error text (io::Error's), then destroy the connection",
            )
            .log_of(server));
    }
    staying.round_trip(server, b"still here\n")?;
    let mut new = Client::connect(server, port, "new client")?;
    new.round_trip(server, b"I am new\n")?;
    Ok(())
}

pub(crate) const AFTER_REPLY: Duration = Duration::from_millis(300);

/// What to do when a failure looks like memory corruption (a crash, stray bytes).
pub const SANITIZER_HINT: &str = "to find the line, rebuild your C with AddressSanitizer: add \
     `-g -fsanitize=address,undefined` to gcc's compile and link flags, run the check again, \
     and read the ERROR line and the first frame in your own file";

/// One client on the server's first port sends each of `messages`, one at a time, and must get
/// each one's reversal.
fn round_trips(server: &Server, label: &str, messages: &[&[u8]], hint: &str) -> Result<(), Failure> {
    let port = ports(server, 1)?[0];
    let mut client = Client::connect(server, port, label)?;
    for msg in messages {
        client.round_trip(server, msg).map_err(|f| if f.summary.contains("wrong reply") { f.hint(hint) } else { f })?;
    }
    Ok(())
}

/// A message without a trailing `\n` (what `printf 'abc' | nc` or a client's last line sends)
/// comes back reversed whole: `no newline` -> `enilwen on`.
pub fn message_without_a_newline_comes_back_reversed(server: &Server) -> Result<(), Failure> {
    round_trips(
        server,
        "client",
        &[b"no newline", b"x", b"ab"],
        "only a trailing \\n stays last; a message without one is reversed whole. Does your code \
         treat the last byte as a newline without checking that it is one?",
    )
}

/// Empty lines (a lone `\n`, as netcat sends for Enter on an empty line, and as the course's
/// tester sends about one string in a hundred) come back as they are.
pub fn empty_lines_come_back_as_they_are(server: &Server) -> Result<(), Failure> {
    round_trips(
        server,
        "client",
        &[b"\n", b"a\n", b"\n"],
        "an empty line is just \\n and comes back as \\n: does the reversal handle length 0 before the newline?",
    )
}

/// Bytes 0x80-0xff (not letters, not UTF-8) come back reversed byte for byte.
pub fn bytes_0x80_to_0xff_come_back_reversed(server: &Server) -> Result<(), Failure> {
    round_trips(
        server,
        "client",
        &[b"\xff\xfe\x80 raw bytes \xc3\n", b"caf\xc3\xa9\n"],
        "the reply is the bytes reversed one by one, whatever their value; is a `char` (signed in C) \
         compared or converted somewhere?",
    )
}

/// A NUL byte inside a message comes back in its reversed place, like any other byte. (The
/// course's tester sends letters and digits only, so this does not change its verdict.)
pub fn nul_bytes_come_back_reversed(server: &Server) -> Result<(), Failure> {
    round_trips(
        server,
        "client",
        &[b"nul\0inside\n", b"\0\n"],
        "reverse the read_n bytes recv() returned, not strlen(buff) bytes: strlen() and string \
         functions stop at the first NUL. (The course's tester never sends a NUL.)",
    )
}

/// Nothing comes after a reply: the server sends exactly the reversed message, no `\0` after it
/// (`strlen + 1`), no second copy, no leftovers of an earlier message.
pub fn nothing_comes_after_a_reply(server: &Server) -> Result<(), Failure> {
    let port = ports(server, 1)?[0];
    let mut client = Client::connect(server, port, "client")?;
    for msg in [&b"hello\n"[..], b"a longer message, 42\n", b"x\n"] {
        client.round_trip(server, msg)?;
        let extra = read_briefly(client.stream(), AFTER_REPLY);
        if !extra.is_empty() {
            let reply = crate::expected_reply(msg);
            return Err(Failure::new(format!("{} got {} after the reply", client.label(), describe_extra(&extra)))
                .detail("sent", crate::escape(msg))
                .detail("expected", format!("{} and nothing more", crate::escape(&reply)))
                .detail("received", format!("{} then {}", crate::escape(&reply), crate::escape(&extra)))
                .hint(extra_bytes_hint(&extra))
                .log_of(server));
        }
    }
    Ok(())
}

/// The course's `DEFAULT_BUFFER_SIZE`: the most bytes its read handler's one `recv()` reads.
pub const DEFAULT_BUFFER_SIZE: usize = 100_000;

/// What to look at when a message that fills the buffer breaks the server.
const FULL_BUFFER_HINT: &str = "a message of exactly DEFAULT_BUFFER_SIZE bytes fills the receive buffer: \
     recv() returns read_n == DEFAULT_BUFFER_SIZE, and `buff[read_n] = '\\0'` then writes one byte past the \
     buffer's end. Give the buffer room for the '\\0' (`u_char buff[DEFAULT_BUFFER_SIZE + 1]`) or recv() at most \
     DEFAULT_BUFFER_SIZE - 1 bytes";

/// One message of exactly [`DEFAULT_BUFFER_SIZE`] bytes (letters and digits, then `\n`),
/// written at once on a fresh connection, arrives whole over loopback before the server reads,
/// so the server's `recv()` fills its buffer; it must come back reversed. The course's read
/// handler then writes `buff[read_n] = '\0'` one byte past a buffer of `DEFAULT_BUFFER_SIZE`:
/// without a sanitizer nothing shows (the byte lands on the stack), built with
/// `-fsanitize=address` the server stops at that line, here, in a check of its own.
///
/// The kernel may still hand the message over in two `recv()`s: the reply is then the two pieces
/// each reversed, which is right too, and the check tries again on a new connection (three
/// times). A server whose buffer is smaller never fills it with this message, and passes.
pub fn message_that_fills_the_receive_buffer_comes_back_reversed(server: &Server) -> Result<(), Failure> {
    let port = ports(server, 1)?[0];
    let seed = Rng::seed_from_time();
    let mut rng = Rng::new(seed);
    for attempt in 1..=3 {
        let mut msg = rng.alphanumeric(DEFAULT_BUFFER_SIZE - 1);
        msg.push(b'\n');
        let mut client = Client::connect(server, port, "client")?;
        client.send(server, &msg)?;
        let waiting = Instant::now();
        let (reply, end) = client.read_up_to(msg.len(), REPLY_TIMEOUT);
        let replied = reply.len() == msg.len();
        server.note(|seen| {
            seen.exchange(client.label(), format!("{DEFAULT_BUFFER_SIZE} bytes"), waiting.elapsed(), replied)
        });
        let body = msg.len() - 1;
        let pieces = match reply.last() {
            Some(b'\n') if replied => check_reversed_chunks(&msg[..body], &reply[..body], MAX_RECV),
            _ if !replied => Err(format!("{} of its {} bytes came back{}", reply.len(), msg.len(), end.describe())),
            _ => Err("the reply does not end with the message's \\n".into()),
        };
        match pieces {
            Ok(pieces) if pieces == [body] => return Ok(()),
            Ok(_) => continue,
            Err(why) => {
                return Err(Failure::new(format!(
                    "{} sent one message of DEFAULT_BUFFER_SIZE ({DEFAULT_BUFFER_SIZE}) bytes and did not get it back \
                     reversed",
                    client.label()
                ))
                .detail(
                    "sent",
                    format!("{DEFAULT_BUFFER_SIZE} letters and digits, the last byte \\n (random seed {seed})"),
                )
                .detail("received", why)
                .detail("attempt", format!("{attempt} of 3"))
                .blame(Role::ReadHandler, FULL_BUFFER_HINT)
                .log_of(server));
            }
        }
    }
    Ok(())
}

/// `1 extra byte "\x00"`, `12 extra bytes "..."`.
pub fn describe_extra(extra: &[u8]) -> String {
    let s = if extra.len() == 1 { "" } else { "s" };
    format!("{} extra byte{s} {}", extra.len(), crate::escape(extra))
}

/// What extra bytes after a reply suggest.
pub fn extra_bytes_hint(extra: &[u8]) -> String {
    if extra == b"\0" {
        "are you sending strlen+1? send exactly the message's length (read_n bytes), without the \
         string's terminating \\0"
            .into()
    } else if extra.contains(&0) {
        format!(
            "stray bytes, with NULs, after the reply: is the length you send() larger than the message? {SANITIZER_HINT}"
        )
    } else {
        "is the length you send() larger than the message, or is an old buffer's content sent again?".into()
    }
}

/// Reads whatever arrives on `stream` within `wait` (nothing if the peer is silent or closed).
pub(crate) fn read_briefly(stream: &TcpStream, wait: Duration) -> Vec<u8> {
    use std::io::Read;
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut stream = stream;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return got;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}
