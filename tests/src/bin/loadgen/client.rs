//! The clients: connecting with a timeout, the idle connections, and the active clients, one
//! thread each, that send messages, read whole replies and check them.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::histogram::Histogram;
use super::message::{XorShift64, describe_difference, fill_message};
use super::{CLIENT_STACK_SIZE, IDLE_MESSAGE, IDLE_REPLY, IO_TIMEOUT};

/// Connects to the first of `addrs` that answers, waiting at most [`IO_TIMEOUT`] for each, and
/// sets the read and write timeouts. (A plain connect() to a server whose accept queue is full
/// can wait minutes.)
pub fn connect(addrs: &[SocketAddr]) -> io::Result<TcpStream> {
    let mut last_error = None;
    for addr in addrs {
        match TcpStream::connect_timeout(addr, IO_TIMEOUT) {
            Ok(stream) => {
                stream.set_read_timeout(Some(IO_TIMEOUT))?;
                stream.set_write_timeout(Some(IO_TIMEOUT))?;
                return Ok(stream);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no address to connect to")))
}

/// A connect error's text, with a hint when it is the open-file limit.
pub fn describe_connect_error(e: &io::Error) -> String {
    if e.raw_os_error() == Some(libc::EMFILE) {
        format!(
            "cannot connect: {e}; this process ran out of file descriptors \
             (raise `ulimit -n`, or ask for fewer --idle/--clients)"
        )
    } else {
        format!("cannot connect: {e}")
    }
}

/// Opens one idle connection and makes one round trip on it.
pub fn open_idle(addrs: &[SocketAddr]) -> Result<TcpStream, String> {
    let mut stream = connect(addrs).map_err(|e| describe_connect_error(&e))?;
    stream.write_all(IDLE_MESSAGE).map_err(|e| format!("send() failed: {e}"))?;
    let mut reply = [0u8; IDLE_MESSAGE.len()];
    match read_reply(&mut stream, &mut reply) {
        Ok(Reply::Complete) if reply == IDLE_REPLY => Ok(stream),
        Ok(Reply::Complete) => {
            Err(format!("wrong reply to its first message:\n{}", describe_difference(&reply, IDLE_REPLY)))
        }
        Ok(Reply::Missing(reason)) => Err(format!(
            "reply missing: {reason} (has the server run out of file descriptors? \
             start it from a shell with a higher `ulimit -n`)"
        )),
        Err(e) => Err(format!("recv() failed: {e}")),
    }
}

/// How reading one reply ended, short of an error.
pub enum Reply {
    /// The buffer is full.
    Complete,
    /// The reply did not arrive in time, or the server closed the connection first.
    Missing(String),
}

/// Whether `e` is a read or write timeout. Linux reports those as `EAGAIN` (`WouldBlock`).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// Reads until `reply` is full. TCP is a byte stream: the reply may come in several pieces.
pub fn read_reply(stream: &mut TcpStream, reply: &mut [u8]) -> io::Result<Reply> {
    let mut got = 0;
    while got < reply.len() {
        match stream.read(&mut reply[got..]) {
            Ok(0) => {
                return Ok(Reply::Missing(format!(
                    "the server closed the connection after {got} of {} reply bytes",
                    reply.len()
                )));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                return Ok(Reply::Missing(format!(
                    "no data for {} s ({got} of {} reply bytes arrived)",
                    IO_TIMEOUT.as_secs(),
                    reply.len()
                )));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Reply::Complete)
}

/// What one active client saw.
pub struct ClientReport {
    /// Round trips with a right reply.
    pub messages: u64,
    pub wrong: u64,
    pub missing: u64,
    /// Latencies of the right replies.
    pub latencies: Histogram,
    pub first_wrong: Option<WrongReply>,
    /// Why the reply counted in `missing` is missing (a client stops at its first one).
    pub missing_reason: Option<String>,
    /// The connection error that stopped this client, if one did.
    pub error: Option<String>,
}

/// A reply that was not the message reversed.
pub struct WrongReply {
    pub at: Instant,
    pub got: Vec<u8>,
    pub expected: Vec<u8>,
}

/// Starts one thread per stream, lets them all go at once, and collects their reports.
/// Returns them with the time from the start to the last thread's end.
pub fn run_clients(
    streams: Vec<TcpStream>,
    size: usize,
    duration: Duration,
) -> Result<(Vec<ClientReport>, Duration), String> {
    thread::scope(|scope| {
        let mut handles = Vec::with_capacity(streams.len());
        let mut start_signals = Vec::with_capacity(streams.len());
        for (j, stream) in streams.into_iter().enumerate() {
            // Each thread waits for its deadline on a channel, so none starts before all exist.
            // If a spawn fails, returning drops the senders: the waiting threads see that and
            // end, and the scope joins them.
            let (start_tx, start_rx) = mpsc::channel::<Instant>();
            let handle = thread::Builder::new()
                .name(format!("client-{j}"))
                .stack_size(CLIENT_STACK_SIZE)
                .spawn_scoped(scope, move || run_client(j, stream, size, &start_rx))
                .map_err(|e| format!("client #{j}: cannot start a thread: {e}"))?;
            handles.push(handle);
            start_signals.push(start_tx);
        }
        let start = Instant::now();
        let deadline = start + duration;
        for start_tx in &start_signals {
            // A send fails only if that thread has already ended, which it cannot have.
            let _ = start_tx.send(deadline);
        }
        let reports = handles
            .into_iter()
            .enumerate()
            .map(|(j, handle)| {
                handle.join().unwrap_or_else(|_| {
                    let mut report = ClientReport::new();
                    report.error = Some(format!("client #{j}: its thread panicked"));
                    report
                })
            })
            .collect();
        Ok((reports, start.elapsed()))
    })
}

impl ClientReport {
    pub fn new() -> Self {
        ClientReport {
            messages: 0,
            wrong: 0,
            missing: 0,
            latencies: Histogram::new(),
            first_wrong: None,
            missing_reason: None,
            error: None,
        }
    }
}

/// One active client: round trips until the deadline it receives on `start`.
pub fn run_client(j: usize, mut stream: TcpStream, size: usize, start: &mpsc::Receiver<Instant>) -> ClientReport {
    // Everything the loop needs is allocated here, once.
    let mut report = ClientReport::new();
    let mut rng = XorShift64::new(j as u64);
    let mut message = vec![0u8; size];
    let mut expected = vec![0u8; size];
    let mut reply = vec![0u8; size];
    let Ok(deadline) = start.recv() else {
        return report; // the run was called off
    };
    while Instant::now() < deadline {
        fill_message(&mut rng, &mut message, &mut expected);
        let sent_at = Instant::now();
        if let Err(e) = stream.write_all(&message) {
            if is_timeout(&e) {
                report.missing += 1;
                report.missing_reason =
                    Some(format!("send() blocked for {} s: the server is not reading", IO_TIMEOUT.as_secs()));
            } else {
                report.error = Some(format!("send() failed: {e}"));
            }
            break;
        }
        match read_reply(&mut stream, &mut reply) {
            Ok(Reply::Complete) if reply == expected => {
                report.latencies.record(sent_at.elapsed());
                report.messages += 1;
            }
            Ok(Reply::Complete) => {
                // Still in step (exactly `size` bytes were read), so the client goes on.
                report.wrong += 1;
                if report.first_wrong.is_none() {
                    report.first_wrong =
                        Some(WrongReply { at: Instant::now(), got: reply.clone(), expected: expected.clone() });
                }
            }
            Ok(Reply::Missing(reason)) => {
                // Out of step: a late reply would be taken for the next one. Stop here.
                report.missing += 1;
                report.missing_reason = Some(reason);
                break;
            }
            Err(e) => {
                report.error = Some(format!("recv() failed: {e}"));
                break;
            }
        }
    }
    report
}
