//! Running out of file descriptors, and every way a client leaves giving its descriptor back.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use super::{EXTRA_CLIENTS, FD_LIMIT, TRICKLE_EVERY, count_log_lines, fd_limit, fds, start_with_fd_limit};
use super::{still_running, wait_fds_back};
use crate::{Client, Failure, Server, Target};

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
