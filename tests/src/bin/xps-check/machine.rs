//! The machine's state, before a build is judged: a build is never failed for it.
//!
//! What an earlier run left running when it was killed with SIGKILL (which it cannot catch) is
//! stopped first. A port that some other program listens on makes the build impossible to
//! judge: its holder is named (pid and command line, and whether it belongs to another
//! check-build run), and the run ends with "could not judge" (exit status 2).

use std::time::Duration;

use xps_tests::process;

use crate::print::Out;

/// The tool whose runs' leftovers are looked for: this program.
fn tool() -> &'static str {
    process::tool_tag()
}

/// Stops what earlier runs of this program left running (their owner was killed), saying so.
/// Why the build cannot be judged if one of them does not stop.
pub fn stop_leftovers(out: &mut Out) -> Result<(), String> {
    for leftover in process::leftovers(tool()) {
        if process::stop_leftover(&leftover, Duration::from_secs(2)) {
            out.line(format!(
                "note: stopped pid {} ({}), left running by an earlier check-build run (pid {}) that was killed",
                leftover.pid, leftover.command, leftover.owner
            ));
        } else {
            return Err(format!(
                "pid {} ({}), left running by an earlier check-build run (pid {}) that was killed, could not be \
                 stopped: stop it (kill -9 {}) and run again",
                leftover.pid, leftover.command, leftover.owner, leftover.pid
            ));
        }
    }
    Ok(())
}

/// Why the build cannot be judged, if one of `ports` is already taken before its server starts.
pub fn ports_taken(ports: &[u16], server: &str) -> Option<String> {
    ports.iter().find_map(|&port| {
        let holder = xps_tests::Server::listeners_on(port).into_iter().next()?;
        let who = match (holder.pid, &holder.owner) {
            (Some(pid), Some(owner)) => match process::live_owner(pid, tool()) {
                Some(run) => format!("{owner}, a server of another check-build run in progress (pid {run})"),
                None if process::leftovers(tool()).iter().any(|l| l.pid == pid) => {
                    format!("{owner}, a server an earlier check-build run left behind when it was killed")
                }
                None => owner.clone(),
            },
            _ => "a process of another user (its pid is not visible)".to_string(),
        };
        Some(format!(
            "port {port} was already taken before {server} started: {who} listens on {}; stop it and run again \
             (a build is not judged on a machine whose ports are busy)",
            holder.addr
        ))
    })
}
