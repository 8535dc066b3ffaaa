//! Hardening checks both stages share: bad clients, running out of file descriptors, no leaks.
//!
//! A server that learners leave running and poke with netcat, scripts and the course's tester
//! must keep working whatever its clients do. Each check here is written once and run against
//! every stage through the registry ([`crate::registry`]):
//!
//! - [`out_of_fds_the_server_does_not_spin_keeps_serving_and_accepts_again`]: `accept()` failing
//!   with `EMFILE` must not make the server loop at 100% CPU (the course's C does: the listening
//!   socket stays readable, so level-triggered epoll reports it again at once).
//! - [`connect_round_trip_close_1000_times_leaks_no_fd`]: every way a client can leave gives its
//!   descriptor back.
//! - [`storm_of_random_clients_gets_every_byte_back_and_leaks_no_fd`]: many clients at once,
//!   random sizes, random disconnects and resets; a fixed seed, printed, replays a failure.
//! - [`one_mib_streamed_while_reading_comes_back_whole`]: a large stream comes back complete.
//! - [`memory_stays_flat_however_much_a_client_sends`]: memory per connection does not grow
//!   with what the client sends.
//!
//! ## How the replies are checked
//!
//! The course's server answers each `recv()` on its own: it reverses the (at most 100,000)
//! bytes that one call returned and sends them back. A message that reaches the server in one
//! piece (a small one, written at once, with nothing else on the way) comes back exactly
//! reversed. A large one comes back as its consecutive pieces, each reversed in place, cut
//! wherever TCP and the server's buffer cut it. [`check_reversed_chunks`] checks exactly that:
//! the reply must split into pieces of at most 100,000 bytes, the piece at offset `i` of length
//! `k` being the sent bytes `i..i+k` reversed. Large messages contain no `\n`, so the reversal
//! of a piece is a plain reversal (the server keeps a piece's trailing `\n` last).
//!
//! ## Clients that cannot block the server
//!
//! Connection sockets block (the course's design), so a client that sends a lot without reading
//! eventually blocks the whole server (stage 7's Experiment #1). Every client here that sends
//! more than a few bytes goes through [`pump`], which reads whatever has arrived before each
//! write and never stops reading while it still has bytes to send.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Client, Failure, Rng, Server, Target, escape, expected_reply, procfs};

/// The most bytes one `recv()` of the course's server returns (`DEFAULT_BUFFER_SIZE`).
pub const MAX_RECV: usize = 100_000;

/// The descriptor limit the out-of-descriptors check runs the server with (`ulimit -n 64`).
pub const FD_LIMIT: u64 = 64;

/// How many clients the out-of-descriptors check opens on top of the first one.
pub const EXTRA_CLIENTS: usize = 100;

/// While the out-of-descriptors check watches the server's CPU time, one more client arrives
/// this often.
const TRICKLE_EVERY: Duration = Duration::from_millis(50);

/// How long a client waits without any byte going out or coming in before it calls the server
/// stuck.
pub const STALL: Duration = Duration::from_secs(10);

/// How long the server gets to close the descriptors of clients that left.
const FD_SETTLE: Duration = Duration::from_secs(5);

/// The storm's seed when `XPS_STORM_SEED` does not give one.
pub const DEFAULT_STORM_SEED: u64 = 0x5EED_0007;

// ---------------------------------------------------------------------------------------------
// Starting a server with few descriptors
// ---------------------------------------------------------------------------------------------

/// Starts `bin --host 127.0.0.1 0 0 ...` (`n_ports` OS-picked ports) as [`Server::start_on_free_ports`]
/// does, with its limit on open files lowered to `limit`, as `ulimit -n 64` in a shell would.
pub fn start_with_fd_limit(bin: &str, n_ports: usize, limit: u64) -> Server {
    let mut cmd = Command::new(bin);
    cmd.args(["--host", "127.0.0.1"]).args(std::iter::repeat_n("0", n_ports));
    let options = crate::process::Options { open_files_limit: Some(limit), ..Default::default() };
    Server::spawn_with(cmd, n_ports, &options).unwrap_or_else(|f| panic!("\n{f}"))
}

// ---------------------------------------------------------------------------------------------
// Reading the server's process from /proc
// ---------------------------------------------------------------------------------------------

/// How many descriptors the server has open, or a failure naming the server.
fn fds(server: &Server) -> Result<usize, Failure> {
    server.open_fds().map_err(|e| {
        Failure::new(format!("could not read /proc/{}/fd: {e}", server.pid()))
            .hint("has the server exited? the output below says why")
            .log_of(server)
    })
}

/// What each of the server's descriptors is (`3 -> socket:[1234]`), for failure messages.
fn describe_fds(server: &Server) -> String {
    let fds = match procfs::fds(server.pid()) {
        Ok(fds) => fds,
        Err(e) => return format!("(/proc/{}/fd is not readable: {e})", server.pid()),
    };
    // Ten are enough to see what kind of fd leaks; a thousand leaked fds on one line are not.
    let shown: Vec<String> = fds.iter().take(10).map(|f| format!("{} -> {}", f.fd, f.target.display())).collect();
    let more = fds.len().saturating_sub(shown.len());
    if more > 0 { format!("{} and {more} more", shown.join(", ")) } else { shown.join(", ") }
}

/// Waits up to [`FD_SETTLE`] for the server's descriptor count to come back to `baseline`.
fn wait_fds_back(server: &Server, baseline: usize, after: &str) -> Result<(), Failure> {
    let deadline = Instant::now() + FD_SETTLE;
    loop {
        let now = fds(server)?;
        if now <= baseline {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Failure::new(format!("the server leaks file descriptors: {after}"))
                .detail("expected", format!("{baseline} open fds, as before the clients came"))
                .detail("observed", format!("{now} open fds {FD_SETTLE:?} after the last client left"))
                .detail("fds", describe_fds(server))
                .hint(
                    "every way a connection ends (EOF, a recv() or send() error, a failed create) must destroy \
                     it: xps_connection_destroy() takes it out of the connections list, which drops its socket; \
                     the extra `socket:[...]` entries are connections still open",
                )
                .log_of(server));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A `kB` field (`VmRSS`, `VmHWM`) of `/proc/<pid>/status`, in bytes.
fn status_bytes(server: &Server, field: &str) -> Result<u64, Failure> {
    let path = format!("/proc/{}/status", server.pid());
    procfs::status_bytes(server.pid(), field)
        .map_err(|e| Failure::new(format!("could not read {path}: {e}")).log_of(server))?
        .ok_or_else(|| Failure::new(format!("no `{field}:` line in {path}")).log_of(server))
}

/// The soft limit on open files of the server's process, from `/proc/<pid>/limits`.
fn fd_limit(server: &Server) -> Result<u64, Failure> {
    let path = format!("/proc/{}/limits", server.pid());
    procfs::open_files_limit(server.pid())
        .map_err(|e| Failure::new(format!("could not read {path}: {e}")).log_of(server))?
        .ok_or_else(|| Failure::new(format!("no `Max open files` line in {path}")).log_of(server))
}

/// Fails unless the server's process is still running (not exited, not a zombie).
fn still_running(server: &Server, after: &str) -> Result<(), Failure> {
    if procfs::stat(server.pid()).is_none_or(|s| s.is_zombie()) {
        return Err(Failure::new(format!("the server exited {after}"))
            .detail("expected", "the server keeps running whatever its clients do")
            .hint("the last lines below show what it did last; a panic prints its message on stderr")
            .log_of(server));
    }
    Ok(())
}

/// How many log lines contain `needle` (in the kept tail of the output).
fn count_log_lines(server: &Server, needle: &str) -> usize {
    server.log_tail(usize::MAX).lines().filter(|line| line.contains(needle)).count()
}

// ---------------------------------------------------------------------------------------------
// A client that reads while it writes
// ---------------------------------------------------------------------------------------------

/// What one [`pump`] did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pumped {
    /// Bytes written.
    pub sent: usize,
    /// Bytes read.
    pub received: usize,
    /// How many `write()` calls it took to send them.
    pub writes: usize,
    /// Whether it stopped early at `quit_at`.
    pub quit: bool,
}

/// The largest single `write()` [`pump`] makes.
const MAX_WRITE: usize = 64 * 1024;

/// Sends `out` `repeat` times over `stream` while reading, until all of it went out and
/// `expect` bytes came back (each batch of bytes read is given to `on_recv`), or until the bytes
/// sent plus received reach `quit_at`.
///
/// It never stops reading while it has bytes to send, so the server's blocking `send()` to this
/// client always completes. Errors: the server closed the connection or reset it, more bytes
/// came back than were sent, or nothing moved for [`STALL`].
pub fn pump(
    stream: &TcpStream,
    out: &[u8],
    repeat: usize,
    expect: usize,
    quit_at: Option<usize>,
    on_recv: &mut dyn FnMut(&[u8]),
) -> Result<Pumped, String> {
    stream.set_nonblocking(true).map_err(|e| format!("set_nonblocking failed: {e}"))?;
    let total = out.len() * repeat;
    let mut done = Pumped::default();
    let mut buf = vec![0u8; 256 * 1024];
    let mut last_progress = Instant::now();
    let mut stream = stream;
    loop {
        if quit_at.is_some_and(|q| done.sent + done.received >= q) {
            done.quit = true;
            return Ok(done);
        }
        if done.sent == total && done.received >= expect {
            return Ok(done);
        }
        let mut progressed = false;
        // Read everything that has arrived.
        loop {
            match stream.read(&mut buf) {
                Ok(0) => {
                    return Err(format!(
                        "the server closed the connection after {} of {total} bytes sent and {} of {expect} \
                         received",
                        done.sent, done.received
                    ));
                }
                Ok(n) => {
                    on_recv(&buf[..n]);
                    done.received += n;
                    progressed = true;
                    if done.received > expect {
                        return Err(format!(
                            "{} bytes came back, more than the {expect} sent (with {} of {total} sent so far)",
                            done.received, done.sent
                        ));
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(format!(
                        "reading failed after {} of {total} bytes sent and {} of {expect} received: {e}",
                        done.sent, done.received
                    ));
                }
            }
        }
        // Then write what the socket takes, without waiting.
        if done.sent < total {
            let offset = done.sent % out.len();
            let mut end = (offset + MAX_WRITE).min(out.len());
            if let Some(q) = quit_at {
                // Stop writing at the quit point, so a client can leave in the middle of a message.
                end = end.min(offset + q.saturating_sub(done.sent + done.received).max(1));
            }
            match stream.write(&out[offset..end]) {
                Ok(n) => {
                    done.sent += n;
                    done.writes += 1;
                    progressed |= n > 0;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => {
                    return Err(format!(
                        "writing failed after {} of {total} bytes sent and {} of {expect} received: {e}",
                        done.sent, done.received
                    ));
                }
            }
        }
        if progressed {
            last_progress = Instant::now();
            continue;
        }
        if last_progress.elapsed() > STALL {
            return Err(format!(
                "nothing moved for {STALL:?}: {} of {total} bytes sent, {} of {expect} received",
                done.sent, done.received
            ));
        }
        wait_ready(stream, done.sent < total);
    }
}

/// Waits up to 50 ms for `stream` to be readable (or writable, if `writing`).
fn wait_ready(stream: &TcpStream, writing: bool) {
    let mut pfd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLIN | if writing { libc::POLLOUT } else { 0 },
        revents: 0,
    };
    // SAFETY: `pfd` is a live local and the count passed is 1, its exact number of entries; the
    // fd belongs to `stream`, which stays open for the call.
    unsafe { libc::poll(&mut pfd, 1, 50) };
}

/// Checks that `reply` is `sent` cut into consecutive pieces of at most `max_piece` bytes,
/// each reversed in place: what the server sends back when it answers each `recv()` on its own.
/// `sent` must not contain `\n` (the server keeps a piece's trailing `\n` last). Returns the
/// piece lengths, or a description of where the reply stops matching.
pub fn check_reversed_chunks(sent: &[u8], reply: &[u8], max_piece: usize) -> Result<Vec<usize>, String> {
    let n = sent.len();
    if reply.len() != n {
        return Err(format!("{} bytes came back for {n} sent", reply.len()));
    }
    // `sent` reversed: the reversal of sent[i..=j] is rev[n-1-j..n-i], one memcmp per candidate.
    let rev: Vec<u8> = sent.iter().rev().copied().collect();
    // Where each byte value occurs in `sent`: the candidates for a piece's last byte.
    let mut positions: Vec<Vec<u32>> = vec![Vec::new(); 256];
    for (i, &b) in sent.iter().enumerate() {
        positions[usize::from(b)].push(i as u32);
    }
    // Depth-first search over the possible cuts, longest piece first. Each entry: where its piece
    // starts, and the ends still to try. With random bytes a wrong cut fails within a few bytes,
    // so the search almost never backs up.
    let candidates = |start: usize| -> Vec<usize> {
        let list = &positions[usize::from(reply[start])];
        let limit = (start + max_piece).min(n);
        let lo = list.partition_point(|&j| (j as usize) < start);
        let hi = list.partition_point(|&j| (j as usize) < limit);
        list[lo..hi].iter().map(|&j| j as usize).filter(|&j| reply[start..=j] == rev[n - 1 - j..n - start]).collect()
    };
    let mut stack: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut start = 0;
    let mut furthest = 0;
    let mut steps = 0u32;
    loop {
        if start == n {
            let starts: Vec<usize> = stack.iter().map(|(s, _)| *s).chain([n]).collect();
            return Ok(starts.windows(2).map(|w| w[1] - w[0]).collect());
        }
        furthest = furthest.max(start);
        stack.push((start, candidates(start)));
        steps += 1;
        loop {
            let Some((_, ends)) = stack.last_mut() else {
                return Err(explain_mismatch(sent, reply, &rev, furthest, max_piece));
            };
            if let Some(end) = ends.pop() {
                start = end + 1;
                break;
            }
            stack.pop();
            if steps > 100_000 {
                return Err(format!("gave up after {steps} tries to cut the reply into reversed pieces"));
            }
        }
    }
}

/// Why no piece starting at `start` matches: the closest candidate (the run of sent bytes whose
/// reversal agrees longest with the reply there) and where it stops agreeing.
fn explain_mismatch(sent: &[u8], reply: &[u8], rev: &[u8], start: usize, max_piece: usize) -> String {
    let n = sent.len();
    let common = |j: usize| reply[start..=j].iter().zip(&rev[n - 1 - j..n - start]).take_while(|(a, b)| a == b).count();
    let best = (start..(start + max_piece).min(n)).filter(|&j| sent[j] == reply[start]).map(|j| (common(j), j)).max();
    let around = |bytes: &[u8], at: usize| escape(&bytes[at.saturating_sub(8)..(at + 8).min(bytes.len())]);
    match best {
        Some((agree, end)) if agree > 1 => {
            let bad = start + agree;
            format!(
                "the piece starting at offset {start} looks like sent bytes {start}..{} reversed ({} bytes), but only \
                 its first {agree} bytes agree: at reply offset {bad} came {} where {} was expected \
                 (reply around it: {}; expected around it: {})",
                end + 1,
                end + 1 - start,
                escape(&reply[bad..=bad]),
                escape(&rev[n - 1 - end + agree..][..1]),
                around(reply, bad),
                around(&rev[n - 1 - end..n - start], agree),
            )
        }
        _ => format!(
            "from offset {start} on, the reply is not the reversal of any run of at most {max_piece} sent bytes \
             starting there (reply there: {}; sent there: {})",
            escape(&reply[start..(start + 40).min(n)]),
            escape(&sent[start..(start + 40).min(n)])
        ),
    }
}

/// `len` random bytes, any value but `\n`.
fn random_bytes_no_newline(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend(rng.next_u64().to_le_bytes().map(|b| if b == b'\n' { b'N' } else { b }));
    }
    out.truncate(len);
    out
}

// ---------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------

/// Out of file descriptors: the server runs with a limit of [`FD_LIMIT`] open files. A first
/// client is served; then [`EXTRA_CLIENTS`] more connect, more than the server can accept, so
/// `accept()` fails with `EMFILE`. For 2 s, while more clients keep arriving, the server must
/// use under 0.5 s of CPU (the course's C spins at 100%: the listening socket stays readable, so
/// epoll reports it again at once), log the failure at most about once a second (the server as
/// a whole, not each listener), and still serve the first client. Once the
/// extra clients leave, a new client is served and the server's descriptors are back where they
/// were.
pub fn out_of_fds_the_server_does_not_spin_keeps_serving_and_accepts_again(target: &Target) -> Result<(), Failure> {
    let server = start_with_fd_limit(&target.bin.to_string_lossy(), target.n_ports, FD_LIMIT);
    out_of_fds_on(&server)
}

/// [`out_of_fds_the_server_does_not_spin_keeps_serving_and_accepts_again`] on a server started
/// with few descriptors.
fn out_of_fds_on(server: &Server) -> Result<(), Failure> {
    const NEEDLE: &str = "Too many open files";
    let limit = fd_limit(server)?;
    if limit > 1024 {
        return Err(Failure::new(format!(
            "this check needs a server started with a low limit on open files, not {limit}"
        ))
        .hint("start it with hardening::start_with_fd_limit(bin, ports, hardening::FD_LIMIT)")
        .log_of(server));
    }
    let ports = server.ports().to_vec();
    let mut old = Client::connect(server, ports[0], "first client")?;
    old.round_trip(server, b"before the crowd\n")?;
    let fds_before = fds(server)?;

    // More clients than the server has descriptors for. connect() completes in the kernel (the
    // listen backlog) whether or not the server can accept; spread them over the ports so no
    // backlog overflows. A connect that still times out is not the server's fault: skip it.
    let crowd_start = Instant::now();
    let mut extras = Vec::new();
    let mut timed_out = 0;
    for i in 0..EXTRA_CLIENTS {
        let addr = SocketAddr::from(([127, 0, 0, 1], ports[i % ports.len()]));
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(stream) => extras.push(stream),
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => timed_out += 1,
            Err(e) => {
                return Err(Failure::new(format!("extra client {i} could not connect: {e}"))
                    .hint("is the server still running?")
                    .log_of(server));
            }
        }
    }
    if !server.wait_for_log(NEEDLE, Duration::from_secs(5)) {
        let now = fds(server)?;
        return Err(Failure::new("the server never logged running out of file descriptors")
            .detail("expected", format!("an ERROR line with `{NEEDLE}` once accept() fails with EMFILE"))
            .detail("observed", format!(
                "{} extra clients connected ({timed_out} timed out); the server has {now} fds open, limit {limit}",
                extras.len()
            ))
            .hint("log accept()'s error with io::Error's text: `accept() failed on HOST:PORT: Too many open files (os error 24)`")
            .log_of(server));
    }

    // The server cannot accept the rest. Watch its CPU time for 2 s while more clients keep
    // arriving, one every 50 ms, so it keeps running into the limit all along.
    let cpu_start = server.cpu_time().map_err(|e| Failure::new(format!("could not read the CPU time: {e}")))?;
    let watch = Instant::now();
    let mut trickle = Vec::new();
    for i in 0.. {
        let next = watch + TRICKLE_EVERY * i;
        if next >= watch + Duration::from_secs(2) {
            break;
        }
        thread::sleep(next.saturating_duration_since(Instant::now()));
        let addr = SocketAddr::from(([127, 0, 0, 1], ports[i as usize % ports.len()]));
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(stream) => trickle.push(stream),
            Err(_) => timed_out += 1,
        }
    }
    thread::sleep((watch + Duration::from_secs(2)).saturating_duration_since(Instant::now()));
    let cpu_used =
        server.cpu_time().map_err(|e| Failure::new(format!("could not read the CPU time: {e}")))? - cpu_start;
    let watched = watch.elapsed();
    extras.append(&mut trickle);
    if cpu_used >= Duration::from_millis(500) {
        return Err(Failure::new("out of file descriptors, the server spins instead of waiting")
            .detail("expected", format!("under 0.5 s of CPU in {watched:.1?} while accept() fails with EMFILE"))
            .detail("observed", format!("{cpu_used:?} of CPU"))
            .detail(
                "clients",
                format!("{} extra clients connected beyond what it can accept, fd limit {limit}", extras.len()),
            )
            .hint(
                "the listening socket stays readable while clients wait in the backlog, so level-triggered epoll \
                 reports it again at once and accept() fails again: after EMFILE/ENFILE, either stop watching the \
                 listeners until a connection is destroyed or about a second has passed, or turn the waiting client \
                 away (close a spare descriptor, accept into it, close the client, reopen the spare)",
            )
            .log_of(server));
    }
    let logged = count_log_lines(server, NEEDLE);
    let allowed = crowd_start.elapsed().as_secs() as usize + 2;
    println!(
        "out of fds: {} extra clients connected ({timed_out} timed out); {cpu_used:?} of CPU in {watched:.1?}; \
         `{NEEDLE}` logged {logged} times in {:.1?}",
        extras.len(),
        crowd_start.elapsed()
    );
    if logged > allowed {
        return Err(Failure::new("out of file descriptors, the server floods its log")
            .detail("expected", format!("`{NEEDLE}` at most about once a second: at most {allowed} lines"))
            .detail("observed", format!("{logged} lines in {:.1?}", crowd_start.elapsed()))
            .hint(
                "log the accept() failure once, then again only after a second or so, for the whole server: a \
                 limit kept by each listener lets a server with 4 ports log 4 lines a second",
            )
            .log_of(server));
    }

    // The clients it has are still served.
    old.round_trip(server, b"still served while out of fds\n")
        .map_err(|f| f.hint("running out of descriptors must not stop the loop from serving the connections it has"))?;

    // The crowd leaves: the server accepts again (the clients still queued, which it finds
    // closed, and then a new one).
    drop(extras);
    let mut new = Client::connect(server, ports[0], "new client after the crowd left")?;
    new.round_trip(server, b"served again\n").map_err(|f| {
        f.hint("once descriptors are free again (a connection destroyed, or after a second), watch the listeners again")
    })?;
    new.close();
    wait_fds_back(server, fds_before, "after the crowd that ran it out of descriptors left")?;
    still_running(server, "after running out of file descriptors")
}

/// 1,000 clients one after another, on every port in turn, leaving in every way a client can:
/// after its reply with a FIN or a reset, before its reply with a FIN or a reset, right after
/// connecting with a FIN or a reset. Afterwards the server has as many descriptors open as it
/// started with, and serves a new client.
pub fn connect_round_trip_close_1000_times_leaks_no_fd(server: &Server) -> Result<(), Failure> {
    const CYCLES: usize = 1000;
    let ports = server.ports().to_vec();
    let baseline = fds(server)?;
    let kinds = [
        "round trip, then close",
        "round trip, then reset",
        "send, then close before the reply",
        "send, then reset before the reply",
        "connect, then close at once",
        "connect, then reset at once",
    ];
    for i in 0..CYCLES {
        let kind = i % kinds.len();
        let label = format!("client {} of {CYCLES} ({})", i + 1, kinds[kind]);
        let mut client = Client::connect(server, ports[i % ports.len()], &label)?;
        let message = format!("cycle {i}\n").into_bytes();
        match kind {
            0 | 1 => client.round_trip(server, &message)?,
            2 | 3 => client.send(server, &message)?,
            _ => {}
        }
        if kind % 2 == 0 {
            client.close();
        } else {
            client.reset();
        }
    }
    wait_fds_back(server, baseline, &format!("{CYCLES} clients came and left ({})", kinds.join("; ")))?;
    still_running(server, "after 1,000 clients came and left")?;
    let mut new = Client::connect(server, ports[0], "new client after the 1,000")?;
    new.round_trip(server, b"anyone home?\n")
}

/// The storm's seed: `XPS_STORM_SEED` (decimal or 0x-hex) if set, else [`DEFAULT_STORM_SEED`].
fn storm_seed() -> u64 {
    let parse = |s: &str| match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    };
    std::env::var("XPS_STORM_SEED").ok().and_then(|s| parse(s.trim())).unwrap_or(DEFAULT_STORM_SEED)
}

/// What the storm's clients did, for the report.
#[derive(Default)]
struct StormCounts {
    checked_messages: AtomicUsize,
    exact_messages: AtomicUsize,
    checked_bytes: AtomicUsize,
    stayed: AtomicUsize,
    quit: AtomicUsize,
}

/// A storm of random clients: [`STORM_THREADS`] at once for [`STORM_TIME`], each opening one
/// connection after another. Messages are random, up to 300 KB, sent while reading. Some
/// clients stay to the end and check every reply: a message written in one piece of at most
/// 1 KB comes back exactly reversed, a larger one comes back whole as its pieces reversed (see
/// the module docs). The others leave at a random point, in the middle of a message or of its
/// reply, with a FIN or a reset. Two idle clients stay connected throughout. Afterwards the
/// server still runs, serves a new client, and has its starting descriptors.
///
/// The seed is printed; `XPS_STORM_SEED=<seed> cargo test ... storm` replays the same clients
/// (the interleaving differs from run to run, the clients' choices do not).
pub fn storm_of_random_clients_gets_every_byte_back_and_leaks_no_fd(server: &Server) -> Result<(), Failure> {
    let seed = storm_seed();
    println!("storm: seed {seed:#x} (set XPS_STORM_SEED={seed:#x} to replay)");
    let ports = server.ports().to_vec();
    let baseline = fds(server)?;
    let idle: Vec<Client> = (0..2)
        .map(|i| Client::connect(server, ports[i % ports.len()], format!("idle client {i}")))
        .collect::<Result<_, _>>()?;

    let counts = StormCounts::default();
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<(String, String)>> = Mutex::new(None);
    let deadline = Instant::now() + STORM_TIME;
    thread::scope(|scope| {
        for t in 0..STORM_THREADS {
            let (counts, stop, first_error, ports) = (&counts, &stop, &first_error, &ports);
            scope.spawn(move || {
                let mut rng = Rng::new(seed ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let mut session = 0;
                // The first session of each thread always stays, so the storm checks something
                // even on a slow machine.
                while !stop.load(Ordering::Relaxed) && (session == 0 || Instant::now() < deadline) {
                    let label = format!("storm client {t}.{session}");
                    let port = ports[rng.below(ports.len() as u64) as usize];
                    let stays = session == 0 || rng.below(10) < 6;
                    if let Err(why) = storm_session(server, port, &label, stays, &mut rng, counts) {
                        stop.store(true, Ordering::Relaxed);
                        first_error.lock().unwrap().get_or_insert((label, why));
                        return;
                    }
                    session += 1;
                }
            });
        }
    });

    let report = format!(
        "{} threads for {STORM_TIME:?}: {} sessions stayed, {} left early; {} replies checked ({} exact, {} bytes)",
        STORM_THREADS,
        counts.stayed.load(Ordering::Relaxed),
        counts.quit.load(Ordering::Relaxed),
        counts.checked_messages.load(Ordering::Relaxed),
        counts.exact_messages.load(Ordering::Relaxed),
        counts.checked_bytes.load(Ordering::Relaxed),
    );
    println!("storm: {report}");
    if let Some((label, why)) = first_error.into_inner().unwrap() {
        return Err(Failure::new(format!("{label} saw the server misbehave during the storm"))
            .detail("observed", why)
            .detail("storm", report)
            .detail(
                "replay",
                format!("XPS_STORM_SEED={seed:#x} cargo test -p {} --test hardening storm", server.name()),
            )
            .hint(
                "each recv() is answered on its own: its bytes reversed, all of them sent back (send() until \
                 every byte is written), on the connection they came from; a client that leaves or resets must \
                 only end its own connection",
            )
            .log_of(server));
    }
    still_running(server, "during the storm")?;
    for (i, client) in idle.into_iter().enumerate() {
        let mut client = client;
        client.round_trip(server, format!("idle client {i} wakes up\n").as_bytes())?;
        client.close();
    }
    let mut new = Client::connect(server, ports[0], "new client after the storm")?;
    new.round_trip(server, b"after the storm\n")?;
    new.close();
    wait_fds_back(server, baseline, &format!("after the storm (seed {seed:#x}: {report})"))
}

/// How many client threads the storm runs at once.
pub const STORM_THREADS: usize = 24;
/// How long the storm's threads start new sessions.
pub const STORM_TIME: Duration = Duration::from_secs(3);
/// A message this long or shorter, written in one `write()`, must come back exactly reversed.
const SMALL_MESSAGE: usize = 1024;

/// One connection of the storm: 1 to 4 random messages; a client that `stays` checks every
/// reply and then closes or resets, one that does not leaves at a random point.
fn storm_session(
    server: &Server,
    port: u16,
    label: &str,
    stays: bool,
    rng: &mut Rng,
    counts: &StormCounts,
) -> Result<(), String> {
    let client = Client::connect(server, port, label).map_err(|f| f.summary.clone())?;
    let messages: Vec<Vec<u8>> = (0..1 + rng.below(4))
        .map(|_| match rng.below(10) {
            // Small: any bytes, '\n' included, often a line.
            0..=3 => {
                let len = 1 + rng.below(SMALL_MESSAGE as u64) as usize;
                let mut msg: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
                if rng.below(2) == 0 {
                    *msg.last_mut().unwrap() = b'\n';
                }
                msg
            }
            4..=7 => {
                let len = SMALL_MESSAGE + 1 + rng.below(64 * 1024) as usize;
                random_bytes_no_newline(rng, len)
            }
            _ => {
                let len = 64 * 1024 + rng.below(236 * 1024) as usize;
                random_bytes_no_newline(rng, len)
            }
        })
        .collect();
    // Where a leaving client leaves: a point in the bytes it sends and receives, 0 = at once.
    let traffic: usize = messages.iter().map(|m| 2 * m.len()).sum();
    let mut quit_at = (!stays).then(|| rng.below(traffic as u64 + 1) as usize);
    let reset_at_end = rng.below(2) == 0;

    for (m, message) in messages.iter().enumerate() {
        let what = format!("message {} ({} bytes)", m + 1, message.len());
        if quit_at == Some(0) {
            break;
        }
        let mut reply = Vec::with_capacity(message.len());
        let done =
            pump(client.stream(), message, 1, message.len(), quit_at, &mut |chunk| reply.extend_from_slice(chunk))
                .map_err(|e| format!("{what}: {e}"))?;
        if done.quit {
            break;
        }
        quit_at = quit_at.map(|q| q - done.sent - done.received);
        if !stays {
            continue;
        }
        if message.len() <= SMALL_MESSAGE && done.writes == 1 {
            let expected = expected_reply(message);
            if reply != expected {
                return Err(format!(
                    "{what}, written at once, did not come back exactly reversed:\n    sent     {}\n    expected {}\n    \
                     received {}",
                    escape(message),
                    escape(&expected),
                    escape(&reply)
                ));
            }
            counts.exact_messages.fetch_add(1, Ordering::Relaxed);
        } else if message.contains(&b'\n') {
            // A small message with '\n' that TCP happened to split: only the length is sure.
            if reply.len() != message.len() {
                return Err(format!("{what}: {} bytes came back", reply.len()));
            }
        } else {
            check_reversed_chunks(message, &reply, MAX_RECV)
                .map_err(|e| format!("{what} did not come back as its pieces reversed: {e}"))?;
        }
        counts.checked_messages.fetch_add(1, Ordering::Relaxed);
        counts.checked_bytes.fetch_add(message.len(), Ordering::Relaxed);
    }
    if stays {
        counts.stayed.fetch_add(1, Ordering::Relaxed);
    } else {
        counts.quit.fetch_add(1, Ordering::Relaxed);
    }
    if reset_at_end {
        client.reset();
    } else {
        client.close();
    }
    Ok(())
}

/// 1 MiB, streamed by a client that reads while it writes, comes back whole: the same length,
/// and the sent bytes cut into pieces of at most 100,000 bytes, each reversed in place (the
/// server answers each `recv()` on its own).
pub fn one_mib_streamed_while_reading_comes_back_whole(server: &Server) -> Result<(), Failure> {
    const LEN: usize = 1 << 20;
    let sent = random_bytes_no_newline(&mut Rng::new(0x1_0000), LEN);
    let client = Client::connect(server, server.ports()[0], "streaming client")?;
    let mut reply = Vec::with_capacity(LEN);
    let done =
        pump(client.stream(), &sent, 1, LEN, None, &mut |chunk| reply.extend_from_slice(chunk)).map_err(|e| {
            Failure::new(format!("{} could not stream 1 MiB: {e}", client.label()))
                .hint("send() until every byte of the reply is written; a reply must not be cut short")
                .log_of(server)
        })?;
    let pieces = check_reversed_chunks(&sent, &reply, MAX_RECV).map_err(|e| {
        Failure::new(format!("{}: 1 MiB did not come back as its pieces, each reversed", client.label()))
            .detail("observed", e)
            .detail("sent", format!("{} bytes in {} writes", done.sent, done.writes))
            .detail("received", format!("{} bytes", reply.len()))
            .hint("each recv() (at most 100000 bytes) must be reversed on its own and sent back whole, in order")
            .log_of(server)
    })?;
    println!(
        "1 MiB came back in {} pieces (largest {} bytes) for {} writes",
        pieces.len(),
        pieces.iter().max().unwrap_or(&0),
        done.writes
    );
    client.close();
    Ok(())
}

/// A client streams [`FLOOD_BYTES`] (reading while it writes): the server's resident memory
/// (`VmRSS`) and its peak (`VmHWM`) grow by less than 4 MiB. Memory per connection stays the
/// same however much a client sends: the server reuses one receive buffer and keeps nothing.
pub fn memory_stays_flat_however_much_a_client_sends(server: &Server) -> Result<(), Failure> {
    const GROWTH_LIMIT: u64 = 4 << 20;
    let pattern = random_bytes_no_newline(&mut Rng::new(0xF100D), 1 << 20);
    let client = Client::connect(server, server.ports()[0], "flooding client")?;
    let stream = |repeat: usize| {
        pump(client.stream(), &pattern, repeat, pattern.len() * repeat, None, &mut |_| {}).map_err(|e| {
            Failure::new(format!("{} could not stream {} MiB: {e}", client.label(), repeat))
                .hint("send() until every byte of the reply is written")
                .log_of(server)
        })
    };
    // Warm up: the buffers the server reuses are touched once before measuring.
    stream(4)?;
    let (rss_before, hwm_before) = (status_bytes(server, "VmRSS")?, status_bytes(server, "VmHWM")?);
    let started = Instant::now();
    stream(FLOOD_BYTES >> 20)?;
    let elapsed = started.elapsed();
    let (rss_after, hwm_after) = (status_bytes(server, "VmRSS")?, status_bytes(server, "VmHWM")?);
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / f64::from(1 << 20));
    println!(
        "{} MiB in {elapsed:.1?}: VmRSS {} -> {}, VmHWM {} -> {}",
        FLOOD_BYTES >> 20,
        mib(rss_before),
        mib(rss_after),
        mib(hwm_before),
        mib(hwm_after)
    );
    let rss_growth = rss_after.saturating_sub(rss_before);
    let hwm_growth = hwm_after.saturating_sub(hwm_before);
    if rss_growth >= GROWTH_LIMIT || hwm_growth >= GROWTH_LIMIT {
        return Err(Failure::new("the server's memory grows with what one client sends")
            .detail("expected", format!("VmRSS and VmHWM to grow by less than {}", mib(GROWTH_LIMIT)))
            .detail(
                "observed",
                format!(
                    "after {} MiB: VmRSS {} -> {}, VmHWM (peak) {} -> {}",
                    FLOOD_BYTES >> 20,
                    mib(rss_before),
                    mib(rss_after),
                    mib(hwm_before),
                    mib(hwm_after)
                ),
            )
            .hint("read into one fixed buffer (DEFAULT_BUFFER_SIZE) and send it back before reading again; keep nothing per message")
            .log_of(server));
    }
    client.close();
    Ok(())
}

/// How much the memory check streams.
pub const FLOOD_BYTES: usize = 64 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    /// What the server does to one piece: reverses it.
    fn reversed_pieces(sent: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut start = 0;
        for &end in cuts.iter().chain([&sent.len()]) {
            out.extend(sent[start..end].iter().rev());
            start = end;
        }
        out
    }

    #[test]
    fn reversed_pieces_are_found_whatever_their_sizes() {
        let sent = random_bytes_no_newline(&mut Rng::new(7), 300_000);
        for cuts in [vec![], vec![1], vec![1, 2, 3], vec![99_999, 199_999], vec![5, 70_000, 70_001, 170_000, 299_999]] {
            let reply = reversed_pieces(&sent, &cuts);
            let pieces = check_reversed_chunks(&sent, &reply, 300_000).unwrap();
            let found: Vec<usize> = pieces
                .iter()
                .scan(0, |at, len| {
                    *at += len;
                    Some(*at)
                })
                .collect();
            let want: Vec<usize> = cuts.iter().copied().chain([sent.len()]).collect();
            assert_eq!(found, want);
        }
    }

    #[test]
    fn wrong_or_missing_bytes_and_too_long_pieces_are_caught() {
        let sent = random_bytes_no_newline(&mut Rng::new(8), 50_000);
        let mut reply = reversed_pieces(&sent, &[10_000, 30_000]);
        assert!(check_reversed_chunks(&sent, &reply, MAX_RECV).is_ok());
        assert!(check_reversed_chunks(&sent, &reply, 15_000).is_err(), "a 20,000-byte piece is over 15,000");
        assert!(check_reversed_chunks(&sent, &reply[1..], MAX_RECV).is_err());
        reply[20_000] ^= 1;
        let err = check_reversed_chunks(&sent, &reply, MAX_RECV).unwrap_err();
        assert!(err.contains("starting at offset 10000") && err.contains("at reply offset 20000"), "{err}");
        // Pieces in the wrong order: the first one sent back last. (Two neighbours swapped cannot
        // be caught: rev(b) + rev(a) is rev(a + b), a valid reply for a and b read at once.)
        let (a, b, c) = (&sent[..10_000], &sent[10_000..20_000], &sent[20_000..30_000]);
        let late: Vec<u8> = [b, c, a].iter().flat_map(|piece| piece.iter().rev()).copied().collect();
        assert!(check_reversed_chunks(&sent[..30_000], &late, MAX_RECV).is_err());
    }
}
