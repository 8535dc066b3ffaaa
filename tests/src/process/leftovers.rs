//! What an earlier run of a tool left running when it was killed with SIGKILL (which no
//! program can catch, so it could not stop its servers): the processes whose marker names that
//! tool and an owner that is no longer alive.

use std::thread;
use std::time::{Duration, Instant};

use super::members::{markers_of, parse_marker, signal_pid};
use crate::procfs;

/// A process left running by a run whose owner is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// Its pid.
    pub pid: u32,
    /// Its command line, for messages.
    pub command: String,
    /// The pid of the tool that started the run it belongs to (no longer running).
    pub owner: u32,
    /// Its start time, so a pid reused since is never signalled.
    start_time: u64,
}

/// The live processes carrying a marker of `tool` (its executable's file name, as
/// [`super::tool_tag`] gives it: `xps-check`, `xps-lock`) whose owner is no longer running.
pub fn leftovers(tool: &str) -> Vec<Leftover> {
    let me = std::process::id();
    let mut found = Vec::new();
    for pid in procfs::pids().into_iter().filter(|&pid| pid != me) {
        let Some(stat) = procfs::stat(pid) else { continue };
        if stat.is_zombie() {
            continue;
        }
        let markers = markers_of(pid);
        let orphaned = markers.iter().filter_map(|word| parse_marker(word)).find(|marker| {
            // A zombie owner (killed, not yet reaped by its parent) is gone too.
            let owner = procfs::stat(marker.owner_pid);
            marker.tool == tool && owner.is_none_or(|s| s.start_time != marker.owner_start || s.is_zombie())
        });
        if let Some(marker) = orphaned {
            found.push(Leftover {
                pid,
                command: procfs::command(pid),
                owner: marker.owner_pid,
                start_time: stat.start_time,
            });
        }
    }
    found
}

/// The pid of the running `tool` whose run process `pid` belongs to, if it belongs to one whose
/// owner is still running (another run of the tool, in progress; a leftover's owner is gone).
pub fn live_owner(pid: u32, tool: &str) -> Option<u32> {
    markers_of(pid).iter().filter_map(|word| parse_marker(word)).find_map(|marker| {
        let owner = procfs::stat(marker.owner_pid)?;
        (marker.tool == tool && owner.start_time == marker.owner_start && !owner.is_zombie())
            .then_some(marker.owner_pid)
    })
}

/// Stops a leftover: SIGINT, up to `grace` for it to exit, then SIGKILL. Returns whether it
/// is gone (or a zombie, for its parent to reap). It is not our child, so it is not reaped here.
pub fn stop_leftover(leftover: &Leftover, grace: Duration) -> bool {
    let running = || procfs::stat(leftover.pid).is_some_and(|s| s.start_time == leftover.start_time && !s.is_zombie());
    signal_pid(leftover.pid, leftover.start_time, libc::SIGINT);
    let deadline = Instant::now() + grace;
    while running() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    if running() {
        signal_pid(leftover.pid, leftover.start_time, libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(2);
        while running() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }
    !running()
}
