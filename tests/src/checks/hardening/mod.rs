//! Hardening checks both stages share: bad clients, running out of file descriptors, no leaks.
//!
//! A server that learners leave running and poke with netcat, scripts and the course's tester
//! must keep working whatever its clients do. Each check here is written once and run against
//! every stage through the registry ([`crate::registry`]), from the modules here: [`fds`]
//! (out of descriptors, no leaks) and [`load`] (many clients, large streams, flat memory), with
//! [`streams`], the client that reads while it writes, and the reply's check.
//!
//! - [`fds::out_of_fds_the_server_does_not_spin_keeps_serving_and_accepts_again`]: `accept()` failing
//!   with `EMFILE` must not make the server loop at 100% CPU (the course's C does: the listening
//!   socket stays readable, so level-triggered epoll reports it again at once).
//! - [`fds::connect_round_trip_close_1000_times_leaks_no_fd`]: every way a client can leave gives its
//!   descriptor back.
//! - [`load::storm_of_random_clients_gets_every_byte_back_and_leaks_no_fd`]: many clients at once,
//!   random sizes, random disconnects and resets; a fixed seed, printed, replays a failure.
//! - [`load::one_mib_streamed_while_reading_comes_back_whole`]: a large stream comes back complete.
//! - [`load::memory_stays_flat_however_much_a_client_sends`]: memory per connection does not grow
//!   with what the client sends.
//!
//! ## How the replies are checked
//!
//! The course's server answers each `recv()` on its own: it reverses the (at most 100,000)
//! bytes that one call returned and sends them back. A message that reaches the server in one
//! piece (a small one, written at once, with nothing else on the way) comes back exactly
//! reversed. A large one comes back as its consecutive pieces, each reversed in place, cut
//! wherever TCP and the server's buffer cut it. [`streams::check_reversed_chunks`] checks exactly that:
//! the reply must split into pieces of at most 100,000 bytes, the piece at offset `i` of length
//! `k` being the sent bytes `i..i+k` reversed. Large messages contain no `\n`, so the reversal
//! of a piece is a plain reversal (the server keeps a piece's trailing `\n` last).
//!
//! ## Clients that cannot block the server
//!
//! Connection sockets block (the course's design), so a client that sends a lot without reading
//! eventually blocks the whole server (stage 7's Experiment #1). Every client here that sends
//! more than a few bytes goes through [`streams::pump`], which reads whatever has arrived before each
//! write and never stops reading while it still has bytes to send.

pub mod fds;
pub mod load;
pub mod streams;

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::{Failure, Server, procfs};

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
pub(crate) fn fds(server: &Server) -> Result<usize, Failure> {
    server.open_fds().map_err(|e| {
        Failure::new(format!("could not read /proc/{}/fd: {e}", server.pid()))
            .hint("has the server exited? the output below says why")
            .log_of(server)
    })
}

/// What each of the server's descriptors is (`3 -> socket:[1234]`), for failure messages.
pub(crate) fn describe_fds(server: &Server) -> String {
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
pub(crate) fn wait_fds_back(server: &Server, baseline: usize, after: &str) -> Result<(), Failure> {
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
pub(crate) fn status_bytes(server: &Server, field: &str) -> Result<u64, Failure> {
    let path = format!("/proc/{}/status", server.pid());
    procfs::status_bytes(server.pid(), field)
        .map_err(|e| Failure::new(format!("could not read {path}: {e}")).log_of(server))?
        .ok_or_else(|| Failure::new(format!("no `{field}:` line in {path}")).log_of(server))
}

/// The soft limit on open files of the server's process, from `/proc/<pid>/limits`.
pub(crate) fn fd_limit(server: &Server) -> Result<u64, Failure> {
    let path = format!("/proc/{}/limits", server.pid());
    procfs::open_files_limit(server.pid())
        .map_err(|e| Failure::new(format!("could not read {path}: {e}")).log_of(server))?
        .ok_or_else(|| Failure::new(format!("no `Max open files` line in {path}")).log_of(server))
}

/// Fails unless the server's process is still running (not exited, not a zombie).
pub(crate) fn still_running(server: &Server, after: &str) -> Result<(), Failure> {
    if procfs::stat(server.pid()).is_none_or(|s| s.is_zombie()) {
        return Err(Failure::new(format!("the server exited {after}"))
            .detail("expected", "the server keeps running whatever its clients do")
            .hint("the last lines below show what it did last; a panic prints its message on stderr")
            .log_of(server));
    }
    Ok(())
}

/// How many log lines contain `needle` (in the kept tail of the output).
pub(crate) fn count_log_lines(server: &Server, needle: &str) -> usize {
    server.log_tail(usize::MAX).lines().filter(|line| line.contains(needle)).count()
}
