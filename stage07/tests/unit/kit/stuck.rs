//! What a stuck loop thread was doing, for the failure [`super::within`] reports when a
//! scenario runs out of time: which phase, which callbacks were never called, and whether the
//! thread waits in `epoll_wait()`, spins in its own code, or never hears the waker.

use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use xps_tests::report::Blame;
use xps_tests::{Failure, Role};

use super::{Phase, Progress, SLOTS, TIMEOUT};

/// Whether the loop thread sleeps in `epoll_wait()` at some moment of the next 300 ms.
fn sleeps_in_epoll(progress: &Progress) -> bool {
    let tid = progress.tid.load(Ordering::SeqCst);
    tid > 0
        && (0..15).any(|_| {
            let wchan = xps_tests::procfs::own_thread_wchan(tid);
            thread::sleep(Duration::from_millis(20));
            wchan.as_deref().is_some_and(|w| w.contains("epoll") || w == "ep_poll")
        })
}

/// Whether the loop thread calls `epoll_wait()`: it sleeps there (nothing ready), or, while
/// events it does not handle stay ready, it keeps entering the kernel, so at least a fifth of the
/// CPU time it uses over 300 ms is system time. A loop that never calls it spins in user code.
fn calls_epoll_wait(progress: &Progress) -> bool {
    let tid = progress.tid.load(Ordering::SeqCst);
    let Some(before) = (tid > 0).then(|| xps_tests::procfs::stat(tid as u32)).flatten() else { return true };
    let mut slept_in_epoll = false;
    for _ in 0..15 {
        let wchan = xps_tests::procfs::own_thread_wchan(tid);
        slept_in_epoll |= wchan.as_deref().is_some_and(|w| w.contains("epoll") || w == "ep_poll");
        thread::sleep(Duration::from_millis(20));
    }
    let Some(after) = xps_tests::procfs::stat(tid as u32) else { return true };
    let (user, system) = (after.utime - before.utime, after.stime - before.stime);
    slept_in_epoll || user + system == 0 || system * 5 >= user + system
}

/// The failure when the loop thread has not finished within [`TIMEOUT`].
pub(super) fn stuck(progress: &Progress, names: [&'static str; SLOTS], must_be_called: &[usize]) -> Failure {
    let phase = progress.phase();
    let counts: Vec<String> = names
        .iter()
        .enumerate()
        .filter(|(_, name)| !name.is_empty())
        .map(|(slot, name)| format!("{name}: {}", progress.calls[slot].load(Ordering::SeqCst)))
        .collect();
    let never: Vec<&str> = must_be_called
        .iter()
        .filter(|&&slot| progress.calls[slot].load(Ordering::SeqCst) == 0)
        .map(|&slot| names[slot])
        .collect();
    let failure = if phase != Phase::Running {
        let role = match phase {
            Phase::Creating => Role::LoopCreate,
            Phase::Attaching => Role::LoopAttach,
            _ => Role::LoopDestroy,
        };
        Failure::new(format!("the loop thread is stuck {} (no return within {TIMEOUT:?})", phase.doing())).blame_with(
            Blame::hang(
                role,
                "it was called and never returned: look for a loop that never ends or a wait without a timeout",
            ),
        )
    } else if !progress.woken.load(Ordering::SeqCst) && !calls_epoll_wait(progress) {
        Failure::new(format!(
            "a callback was never called: xps_loop_run() ran for {TIMEOUT:?} and never called the read_cb of {}",
            never.join(", ")
        ))
        .detail("observed", "the loop thread never calls epoll_wait(): it spins in its own code")
        .blame_with(Blame::hang(
            Role::LoopRun,
            "it must wait in epoll_wait() for events, then handle the batch it returned",
        ))
    } else if !progress.woken.load(Ordering::SeqCst) && progress.kept_by_attach.load(Ordering::SeqCst) <= 0 {
        Failure::new(format!(
            "a callback was never called: xps_loop_run() ran for {TIMEOUT:?} and never called the read_cb of {}",
            never.join(", ")
        ))
        .detail("observed", "an xps_loop_attach() that returned Ok kept no loop event: the one loop_event_create() allocated was freed again")
        .blame(Role::LoopAttach, "keep the new loop event in the loop's events, where the loop finds it when epoll reports the fd")
    } else if !progress.woken.load(Ordering::SeqCst) {
        Failure::new(format!(
            "a callback was never called: xps_loop_run() ran for {TIMEOUT:?} and never called the read_cb of {}",
            never.join(", ")
        ))
        .detail("expected", "when epoll reports an fd readable, xps_loop_run() calls its loop event's read_cb(ptr)")
        .blame(
            Role::Dispatch,
            "for each event epoll_wait() returns, find its loop event and call read_cb(ptr); xps_loop_attach() must \
             make epoll carry back what finds that loop event",
        )
    } else {
        let failure = Failure::new(format!(
            "xps_loop_run() never returned: a callback called LoopWaker::wake() and {TIMEOUT:?} later it still runs"
        ))
        .detail("expected", "xps_loop_run() returns Ok(()) once the waker's eventfd is reported readable");
        if sleeps_in_epoll(progress) {
            // The wake-up was read (the eventfd is quiet again), and the loop went on waiting.
            failure
                .detail("observed", "the loop thread went back to waiting in epoll_wait() after the wake-up")
                .blame_with(Blame::hang(
                    Role::LoopRun,
                    "when the batch's handling says the waker's event came, it must return Ok(())",
                ))
        } else {
            // The waker's eventfd stays readable: epoll reports it again and again, and nothing stops.
            failure
                .detail("observed", "epoll keeps reporting the waker's eventfd: nothing handles it")
                .blame(Role::Dispatch, "on the waker's event (Token::WAKE), read the eventfd back and stop the loop")
        }
    };
    failure.detail("calls", format!("read_cb calls so far: {}", counts.join(", ")))
}
