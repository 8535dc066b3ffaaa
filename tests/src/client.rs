//! A TCP client for checks: every read has a timeout, replies are read whole.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use crate::{Failure, REPLY_TIMEOUT, Role, Server, escape, expected_reply};

/// A client of the server under test, named for failure messages ("client 2 on port 8002").
pub struct Client {
    stream: TcpStream,
    label: String,
    port: u16,
}

impl Client {
    /// Connects to `127.0.0.1:port`.
    pub fn connect(server: &Server, port: u16, label: impl Into<String>) -> Result<Client, Failure> {
        let label = format!("{} on port {port}", label.into());
        let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| {
            let refused = e.kind() == ErrorKind::ConnectionRefused;
            match (server.ended(), refused.then(|| unreachable_on(port)).flatten()) {
                (Some(ended), _) => {
                    Failure::new(format!("{label} could not connect: {e}; the server has exited: {}", ended.describe()))
                        .blame(Role::Start, "after creating the listeners it must run the loop, which does not return")
                        .log_of(server)
                }
                (None, Some((addr, reach))) => Failure::new(format!(
                    "{label} could not connect: {e}: {} listens on {addr} only, {}",
                    server.name(),
                    reach.who_is_refused()
                ))
                .blame(Role::ListenerCreate, reach.fix())
                .log_of(server),
                (None, None) => Failure::new(format!("{label} could not connect: {e}"))
                    .blame(
                        Role::ListenerCreate,
                        "nothing accepts connections on this port: the listener must bind() and listen() on it",
                    )
                    .hint("is this port the one the server's `Server listening on port N` line says?")
                    .log_of(server),
            }
        })?;
        stream.set_nodelay(true).ok();
        Ok(Client { stream, label, port })
    }

    /// The client's name, with its port.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The port it is connected to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The socket, for checks that need to do something unusual with it.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sends all of `bytes`.
    pub fn send(&mut self, server: &Server, bytes: &[u8]) -> Result<(), Failure> {
        self.stream.write_all(bytes).map_err(|e| {
            Failure::new(format!("{} could not send: {e}", self.label))
                .detail("sending", escape(bytes))
                .blame(Role::ReadHandler, "the server closed this connection; look for an ERROR line below")
                .log_of(server)
        })
    }

    /// Reads until `n` bytes arrived, the peer closed, or `timeout` passed; returns what came.
    pub fn read_up_to(&mut self, n: usize, timeout: Duration) -> (Vec<u8>, ReadEnd) {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::with_capacity(n);
        let mut buf = vec![0u8; n.clamp(1, 256 * 1024)];
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (got, ReadEnd::TimedOut);
            }
            self.stream.set_read_timeout(Some(left)).expect("a non-zero timeout is valid");
            let want = (n - got.len()).min(buf.len());
            match self.stream.read(&mut buf[..want]) {
                Ok(0) => return (got, ReadEnd::Closed),
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return (got, ReadEnd::TimedOut);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return (got, ReadEnd::Error(e.to_string())),
            }
        }
        (got, ReadEnd::Complete)
    }

    /// Reads a reply of `expected.len()` bytes and compares it with `expected`.
    pub fn expect(&mut self, server: &Server, sent: &[u8], expected: &[u8]) -> Result<(), Failure> {
        let waiting = Instant::now();
        let (received, end) = self.read_up_to(expected.len(), REPLY_TIMEOUT);
        let replied = matches!(end, ReadEnd::Complete);
        server.note(|seen| seen.exchange(&self.label, escape(sent), waiting.elapsed(), replied));
        if received == expected {
            return Ok(());
        }
        let (what, role, why) = match &end {
            ReadEnd::Complete => (
                "got a wrong reply",
                Role::ReadHandler,
                "the reply is built there: the message reversed byte for byte, a trailing \\n kept last, sent \
                 to this connection",
            ),
            ReadEnd::TimedOut if received.is_empty() => match crate::diagnose::no_reply(server, &self.stream) {
                Some((role, why)) => ("got no reply", role, why),
                None if was_read(server, sent) => (
                    "got no reply",
                    Role::ReadHandler,
                    "the server read the message (its [CLIENT MESSAGE] line is below) but sent nothing back",
                ),
                None => (
                    "got no reply",
                    Role::Dispatch,
                    "the message was never read (no [CLIENT MESSAGE] line): the loop must hand this connection's \
                     read event to its read handler",
                ),
            },
            ReadEnd::TimedOut => {
                ("got only part of the reply", Role::ReadHandler, "send() until every byte is written")
            }
            ReadEnd::Closed => (
                "saw the server close the connection",
                Role::ReadHandler,
                "the connection was closed instead of answered; look for an ERROR line below",
            ),
            ReadEnd::Error(_) => ("hit a socket error", Role::ReadHandler, "look for an ERROR line below"),
        };
        Err(Failure::new(format!("{} {what}", self.label))
            .detail("sent", escape(sent))
            .detail("expected", escape(expected))
            .detail("received", format!("{}{}", escape(&received), end.describe()))
            .blame(role, why)
            .log_of(server))
    }

    /// Sends `message` and checks that its reversal comes back.
    pub fn round_trip(&mut self, server: &Server, message: &[u8]) -> Result<(), Failure> {
        self.send(server, message)?;
        self.expect(server, message, &expected_reply(message))
    }

    /// Expects no bytes at all during `wait`.
    pub fn expect_silence(&mut self, server: &Server, sent: &[u8], wait: Duration, why: &str) -> Result<(), Failure> {
        let (received, end) = self.read_up_to(1, wait);
        if received.is_empty() && matches!(end, ReadEnd::TimedOut) {
            return Ok(());
        }
        Err(Failure::new(format!("{} got an answer it should not have yet", self.label))
            .detail("sent", escape(sent))
            .detail("expected", format!("nothing for {wait:?}"))
            .detail("received", format!("{}{}", escape(&received), end.describe()))
            .blame(Role::ReadHandler, why.to_string())
            .log_of(server))
    }

    /// Expects the server to close the connection (end-of-file) within `timeout`.
    pub fn expect_eof(&mut self, server: &Server, timeout: Duration) -> Result<(), Failure> {
        let (received, end) = self.read_up_to(1, timeout);
        match end {
            ReadEnd::Closed if received.is_empty() => Ok(()),
            // A reset also means the server closed the connection.
            ReadEnd::Error(ref e) if e.contains("reset") && received.is_empty() => Ok(()),
            _ => Err(Failure::new(format!("{} did not see the server close the connection", self.label))
                .detail("expected", "end-of-file")
                .detail("received", format!("{}{}", escape(&received), end.describe()))
                .blame(Role::ConnectionDestroy, "destroying a connection closes its socket")
                .log_of(server)),
        }
    }

    /// Closes the connection cleanly (FIN), as a client that quits does.
    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Closes the connection with a reset (RST) instead of a FIN: `SO_LINGER` with a zero
    /// timeout makes close() discard unsent data and abort.
    pub fn reset(self) {
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: the option value points to a live `linger` and its exact size is passed; the fd
        // belongs to `self.stream`, which is open until it is dropped below.
        let ret = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&self.stream),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&raw const linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(ret, 0, "setsockopt(SO_LINGER) failed: {}", std::io::Error::last_os_error());
        drop(self.stream);
    }
}

/// A socket listening on `port` that 127.0.0.1 cannot reach, when no socket on it can: what
/// it listens on, and who it refuses.
fn unreachable_on(port: u16) -> Option<(std::net::SocketAddr, crate::Reach)> {
    let listening = Server::listeners_on(port);
    if listening.iter().any(|l| l.reachable_from_127_0_0_1()) {
        return None;
    }
    listening.first().map(|l| (l.addr, l.reach()))
}

/// Whether the server's log shows it read `sent` (its `[CLIENT MESSAGE]` line, as printed for a
/// one-line message of printable text).
fn was_read(server: &Server, sent: &[u8]) -> bool {
    let line = sent.strip_suffix(b"\n").unwrap_or(sent);
    match std::str::from_utf8(line) {
        Ok(text) if !text.contains('\n') && text.chars().all(|c| !c.is_control()) => {
            server.log_contains(&format!("[CLIENT MESSAGE] {text}"))
        }
        _ => false,
    }
}

/// How a read ended.
#[derive(Debug)]
pub enum ReadEnd {
    /// All the bytes asked for arrived.
    Complete,
    /// The timeout passed first.
    TimedOut,
    /// The server closed the connection (end-of-file).
    Closed,
    /// The socket reported an error.
    Error(String),
}

impl ReadEnd {
    /// How the read ended, to append to the bytes received (empty when it completed).
    pub fn describe(&self) -> String {
        match self {
            ReadEnd::Complete => String::new(),
            ReadEnd::TimedOut => " (then nothing more before the timeout)".into(),
            ReadEnd::Closed => " (then the server closed the connection)".into(),
            ReadEnd::Error(e) => format!(" (then the socket failed: {e})"),
        }
    }
}
