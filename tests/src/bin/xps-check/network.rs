//! What the tester finds when it first connects, about 1 s after it started the server, over
//! its container network: which ports listen by then, whether the server's process is still
//! there, and whether its sockets take connections from another container over IPv4.
//!
//! Judged from the server's sockets (`/proc/net/tcp*`, and sock_diag for `IPV6_V6ONLY`):
//! nothing is sent off this machine.

use std::time::Duration;

use xps_tests::checks::tester::{TESTER_PORTS, unreachable_for_the_tester};
use xps_tests::{Failure, Reach, Role};

use crate::outcome::{Outcome, Problem};
use crate::run::Run;
use crate::tester::{FIRST_LOOK, Finds, Started};

/// The network-address part: notes on what the tester's first look finds, then whether it can
/// reach the sockets.
pub fn judge_network(run: &mut Run, started: &Started) -> Outcome {
    let name = run.report.name.clone();
    if !started.missing.is_empty() {
        run.out.line(format!(
            "      note: {name} does not listen on port {}: the tester's check 1 needs it",
            join(&started.missing)
        ));
    }
    let late: Vec<(u16, Duration)> = TESTER_PORTS
        .iter()
        .filter_map(|&p| match started.finds(p) {
            Finds::Late(at) => Some((p, at)),
            _ => None,
        })
        .collect();
    if let Some(&(_, at)) = late.iter().max_by_key(|(_, at)| *at) {
        let ports: Vec<u16> = late.iter().map(|(p, _)| *p).collect();
        run.out.line(format!(
            "      note: {name} was not listening on port {} at the tester's first look, {} s after it started (it \
             listened after {:.1} s): the tester's connections there are refused",
            join(&ports),
            FIRST_LOOK.as_secs(),
            at.as_secs_f64()
        ));
    }
    if started.gone.is_some() {
        let failure = gone_failure(run, started);
        run.out.line(format!("      note: {}", failure.summary));
        run.report.tester_fails.push(failure.summary.clone());
    }
    let unreachable = unreachable_for_the_tester(&started.server().listening());
    let Some(first) = unreachable.first() else { return Outcome::Pass };
    let reach = first.reach();
    let addrs: Vec<String> = unreachable.iter().map(|l| l.addr.to_string()).collect();
    let sentence = format!("{name} listens on {} only: {}", addrs.join(", "), reach.who_is_refused());
    run.out.line(if reach == Reach::Ipv6Only {
        "      note: this run's checks connect to 127.0.0.1 (IPv4) and are refused too".to_string()
    } else {
        "      note: the checks below connect over loopback and may pass; the tester's connections would be refused"
            .to_string()
    });
    run.report.tester_fails.push(sentence.clone());
    let failure = Failure::new(sentence)
        .detail(
            "why",
            "the tester runs your server in a container and connects over the container's network, over IPv4, \
             not loopback: all three of its checks would fail",
        )
        .blame(Role::ListenerCreate, reach.fix());
    Outcome::Fail(Box::new(Problem::seen(failure)))
}

/// The command exited before the tester's first look: the tester's container has stopped.
pub fn gone_failure(run: &Run, started: &Started) -> Failure {
    let how = started.gone.as_deref().unwrap_or("exited");
    Failure::new(format!(
        "{}'s command {how} before the tester's first look, {} s after the start: the tester runs the server as \
         its container's main process, and the container stops when it exits, taking anything it left running \
         with it",
        run.report.name,
        FIRST_LOOK.as_secs()
    ))
    .blame(
        Role::Start,
        "the server's first process must keep running and serve: do not fork into the background (daemonize), \
         and do not let main() return",
    )
}

/// The tester connects to `port` before the server listens on it.
pub fn late_failure(run: &Run, port: u16, at: Duration) -> Failure {
    Failure::new(format!(
        "{} was not listening on port {port} when the tester connected, about {} s after starting it (it listened \
         after {:.1} s)",
        run.report.name,
        FIRST_LOOK.as_secs(),
        at.as_secs_f64()
    ))
    .detail("received", "connection refused, as the tester's client would be")
    .blame(
        Role::Start,
        "the tester connects at its first look, about 1 s after it starts the server: create the listeners at \
         once, before anything slow (a sleep, a wait for input, a long setup)",
    )
}

/// The server does not listen on `ports` at all (the page's stage 6 forgets 8004).
pub fn missing_failure(run: &Run, ports: &[u16]) -> Failure {
    let failure = Failure::new(format!(
        "{} does not listen on port {} (it should listen on {})",
        run.report.name,
        join(ports),
        join(&TESTER_PORTS)
    ));
    if run.stage() == 6 && ports == [8004] {
        failure.hint(
            "the page's stage 6 creates listeners on 8001-8003, but the course's tester checks 8001-8004 for \
             stage 6 too: create a 4th listener on 8004 (this workspace's stage06: `cargo run -p stage06 -- 8001 \
             8002 8003 8004`)",
        )
    } else {
        failure.hint(
            "does the server create a listener on every port? the tester starts it with one argument, its config file",
        )
    }
}

fn join(ports: &[u16]) -> String {
    ports.iter().map(u16::to_string).collect::<Vec<_>>().join(" ")
}
