//! Milestone #1 of the stage 7 page: the loop module, checked in-process.
//!
//! The page's Milestone #1 comes when `xps_loop.c` is written and before the core exists, so
//! these checks drive the loop directly through the stage's signatures of the page's prototypes
//! (`xps_loop_create`, `xps_loop_destroy`, `xps_loop_attach`, `xps_loop_detach`,
//! `xps_loop_run`) and the given `LoopWaker` that stops a run. The fds are eventfds, which a
//! check makes readable when it wants; each `ptr` is the address of a tag of the check's own,
//! and the callbacks record which `ptr` they got without ever dereferencing it.
//!
//! They never read the loop's fields (`events`, `n_null_events`, ours or the page's): a loop
//! that keeps its events in a list and searches it, as the page's C does, passes them as ours
//! does (a table indexed by fd). Each loop runs on a thread of its own: a loop that never calls
//! a callback or never returns fails within a few seconds with a message saying which.
//!
//! Run them with `cargo test -p stage07 milestone_1`.

use std::ffi::c_void;
use std::os::fd::AsFd;

use shared::sys;
use xps_tests::harness::calling;
use xps_tests::{Failure, Role};

use super::alloc::live_bytes;
use super::kit::{Outcome, Plan, SLOTS, Scenario, eventfd, fail, just_record, run_scenario};
use super::kit::{describe_open_fds, open_fds, within};
use crate::core::xps_loop::{loop_event_create, loop_event_destroy, xps_loop_attach, xps_loop_create};
use crate::core::xps_loop::{xps_loop_destroy, xps_loop_detach};

/// Calls as the check reads them: `a got a's ptr, b got b's ptr`.
fn describe_calls(outcome: &Outcome, names: &[&str; SLOTS]) -> String {
    if outcome.calls.is_empty() {
        return "no callback was called".into();
    }
    outcome
        .calls
        .iter()
        .map(|(slot, ptr)| format!("{}'s read_cb got {ptr}", names[*slot]))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn create_and_destroy_a_loop() -> Result<(), Failure> {
    let fds_before = open_fds();
    let description_before = describe_open_fds();
    let (before, after) = within(
        || {
            let before = live_bytes();
            let Some(loop_) = xps_loop_create() else {
                fail(
                    Failure::new("xps_loop_create() returned None")
                        .detail("expected", "Some(loop)")
                        .blame(Role::LoopCreate, "it returned None; its ERROR log line says which call failed"),
                )
            };
            xps_loop_destroy(loop_);
            (before, live_bytes())
        },
        || "in xps_loop_create() or xps_loop_destroy()".into(),
        || Failure::new("xps_loop_create() or xps_loop_destroy() did not return within 5 s"),
    );
    let fds_after = open_fds();
    if fds_after != fds_before {
        fail(
            Failure::new(format!("xps_loop_destroy() left {} fd(s) open", fds_after as i64 - fds_before as i64))
                .detail("expected", format!("{fds_before} fds open, as before xps_loop_create(): {description_before}"))
                .detail("received", format!("{fds_after}: {}", describe_open_fds()))
                .blame(Role::LoopDestroy, "the epoll fd (and the waker's eventfd) must be closed (dropped)"),
        );
    }
    if after != before {
        fail(
            Failure::new(format!("xps_loop_destroy() left {} byte(s) allocated", after - before))
                .detail("expected", "every byte xps_loop_create() allocated is freed by xps_loop_destroy()")
                .blame(Role::LoopDestroy, "free the loop and everything it holds"),
        );
    }
    Ok(())
}

/// `loop_event_create()` keeps the fd, ptr and read_cb it is given (the page's `loop_event_t`
/// fields), and `loop_event_destroy()` frees what it allocated.
pub fn loop_event_create_keeps_fd_ptr_and_read_cb_and_destroy_frees_it() -> Result<(), Failure> {
    let tag = 0u8;
    let ptr: *mut c_void = std::ptr::from_ref(&tag).cast_mut().cast();
    let read_cb = super::kit::CALLBACKS[1];
    let before = live_bytes();
    let event = {
        let _calling = calling("loop_event_create");
        loop_event_create(7, ptr, read_cb)
    };
    let kept = (event.fd, event.ptr as usize, event.read_cb as usize);
    {
        let _calling = calling("loop_event_destroy");
        loop_event_destroy(event);
    }
    let left = live_bytes() - before;
    if kept != (7, ptr as usize, read_cb as usize) {
        return Err(Failure::new("the loop event does not hold the fd, ptr and read_cb it was created with")
            .detail("setup", "loop_event_create(7, ptr, read_cb)")
            .detail("expected", format!("fd 7, ptr {:#x}, read_cb {:#x}", ptr as usize, read_cb as usize))
            .detail("received", format!("fd {}, ptr {:#x}, read_cb {:#x}", kept.0, kept.1, kept.2))
            .blame(Role::EventCreate, "set the event's fd, ptr and read_cb fields from its parameters (the page's /* set fd, ptr, read_cb fields of event */)"));
    }
    if left != 0 {
        return Err(Failure::new(format!("loop_event_destroy() left {left} byte(s) of the event allocated"))
            .detail("expected", "destroy frees what create allocated (the page's free(event))")
            .blame(Role::EventDestroy, "drop the Box<LoopEvent> it is given; keep no copy of it"));
    }
    Ok(())
}

const TWO: [&str; SLOTS] = ["a", "b", "", ""];

/// a and b both readable from the start; each callback drains its own fd, and once both have
/// been called the loop stops.
fn two_readable(s: &Scenario) {
    s.open(0);
    s.open(1);
    s.attach(0);
    s.attach(1);
    s.signal(0);
    s.signal(1);
}

fn drain_and_stop_when_both_called(s: &Scenario) {
    s.drain(0);
    s.drain(1);
    if s.calls(0) > 0 && s.calls(1) > 0 {
        s.stop();
    }
}

pub fn two_fds_with_different_ptrs_each_callback_gets_its_own_ptr() -> Result<(), Failure> {
    let outcome = run_scenario(Plan {
        names: TWO,
        must_be_called: &[0, 1],
        setup: two_readable,
        actions: [drain_and_stop_when_both_called, drain_and_stop_when_both_called, just_record, just_record],
    });
    let wrong: Vec<&(usize, String)> =
        outcome.calls.iter().filter(|(slot, ptr)| *ptr != format!("{}'s ptr", TWO[*slot])).collect();
    if !wrong.is_empty() {
        fail(
            Failure::new("a read callback got another instance's ptr")
                .detail("setup", "fd a attached with ptr A and read_cb a, fd b with ptr B and read_cb b; both readable")
                .detail(
                    "expected",
                    "a's read_cb gets A, b's read_cb gets B: each loop event keeps its own fd, ptr and read_cb",
                )
                .detail("received", describe_calls(&outcome, &TWO))
                .blame(Role::Dispatch, "it must call each event's read_cb with that event's ptr: loop_event_create() stores fd, ptr and read_cb; xps_loop_attach() makes epoll carry back what \
                     finds *this* loop event; handle_epoll_events() calls that event's read_cb with that event's ptr",
                ),
        );
    }
    if outcome.run_result != "Ok(())" {
        fail(
            Failure::new(format!("xps_loop_run() returned {} after the waker woke it", outcome.run_result))
                .detail("expected", "Ok(()): the loop was asked to stop")
                .blame(Role::LoopRun, "return Ok(()) when the waker's event arrives"),
        );
    }
    Ok(())
}

/// a and b attached, only a readable.
fn a_readable(s: &Scenario) {
    s.open(0);
    s.open(1);
    s.attach(0);
    s.attach(1);
    s.signal(0);
}

/// a's callback detaches a (which stays readable) and makes b readable.
fn detach_self_and_signal_b(s: &Scenario) {
    if s.calls(0) == 1 {
        s.detach(0);
        s.signal(1);
    }
}

/// b's callback stops the loop once a has had the chance to be reported again.
fn drain_and_stop(s: &Scenario) {
    s.drain(1);
    if s.calls(1) >= 2 {
        s.stop();
    } else {
        // Once more: epoll reports a again in the next batch if it is still attached.
        s.signal(1);
    }
}

pub fn detach_stops_delivery() -> Result<(), Failure> {
    let outcome = run_scenario(Plan {
        names: TWO,
        must_be_called: &[0, 1],
        setup: a_readable,
        actions: [detach_self_and_signal_b, drain_and_stop, just_record, just_record],
    });
    if outcome.counts[0] != 1 {
        fail(
            Failure::new(format!(
                "a's read_cb was called {} times; it was detached after the first",
                outcome.counts[0]
            ))
            .detail("setup", "a's read_cb calls xps_loop_detach(a), leaving a readable; b is then made readable twice")
            .detail("expected", "a's read_cb is called once: after xps_loop_detach() no event for a is delivered")
            .detail("received", describe_calls(&outcome, &TWO))
            .blame(
                Role::LoopDetach,
                "epoll_ctl(EPOLL_CTL_DEL), destroy the fd's loop event and take it out of \
                     the loop's events, so handle_epoll_events() no longer finds it",
            ),
        );
    }
    Ok(())
}

const BATCH: [&str; SLOTS] = ["first", "detached", "", ""];

/// Both attached, then made readable in this order: epoll's ready list is first in, first out,
/// so the first `epoll_wait()` reports `first` before `detached`, in one batch.
fn first_then_detached_readable(s: &Scenario) {
    s.open(0);
    s.open(1);
    s.attach(0);
    s.attach(1);
    s.signal(0);
    s.signal(1);
}

/// first's callback detaches `detached` (its event is already in this batch), then stops.
fn detach_the_other_and_stop(s: &Scenario) {
    s.drain(0);
    if s.calls(1) == 0 {
        s.detach(1);
    }
    s.stop();
}

pub fn an_event_whose_owner_was_detached_earlier_in_the_same_batch_is_not_delivered() -> Result<(), Failure> {
    let outcome = run_scenario(Plan {
        names: BATCH,
        must_be_called: &[0],
        setup: first_then_detached_readable,
        actions: [detach_the_other_and_stop, just_record, just_record, just_record],
    });
    if outcome.calls.first().is_some_and(|(slot, _)| *slot == 1) {
        fail(
            Failure::new("epoll reported the fds in another order than they became readable; the check cannot run")
                .detail("received", describe_calls(&outcome, &BATCH))
                .hint("this check relies on epoll's ready list being first in, first out (Linux's behaviour)"),
        );
    }
    if outcome.counts[1] != 0 && outcome.freed_by_detach <= 0 {
        return Err(Failure::new("an event was delivered although its owner was detached earlier in the same batch")
            .detail("observed", "xps_loop_detach() returned Ok and destroyed no loop event")
            .detail("received", describe_calls(&outcome, &BATCH))
            .blame(
                Role::LoopDetach,
                "destroy the fd's loop event (loop_event_destroy) and set its entry to None, so the loop no longer \
                 finds it, as the page says",
            ));
    }
    if outcome.counts[1] != 0 {
        fail(
            Failure::new("an event was delivered although its owner was detached earlier in the same batch")
                .detail(
                    "setup",
                    "`first` and `detached` became readable in that order, so one epoll_wait() reported both; \
                     first's read_cb called xps_loop_detach(detached)",
                )
                .detail("expected", "detached's read_cb is not called: its loop event no longer exists")
                .detail("received", describe_calls(&outcome, &BATCH))
                .blame(
                    Role::Dispatch,
                    "before calling read_cb, check that the event's loop event is still \
                     attached (the page: search loop->events for it and skip it when not found, \"could have \
                     been destroyed due to prev event\"); xps_loop_detach() must remove it from the events",
                ),
        );
    }
    Ok(())
}

pub fn destroy_frees_every_loop_event_and_closes_its_fds() -> Result<(), Failure> {
    let fds_before = open_fds();
    let description_before = describe_open_fds();
    let (before, after) = within(
        || {
            // The test's own fds and ptrs exist before the count starts and after it ends.
            let fds = [eventfd(), eventfd(), eventfd()];
            let tags = [0u8; 3];
            let before = live_bytes();
            let loop_ =
                xps_loop_create().expect("xps_loop_create() returns Some (see milestone_1_create_and_destroy_a_loop)");
            for (fd, tag) in fds.iter().zip(&tags) {
                let ptr = std::ptr::from_ref(tag).cast_mut().cast();
                // SAFETY: the kit's callbacks never dereference ptr; they only record its address.
                unsafe { xps_loop_attach(&loop_, fd.as_fd(), sys::EPOLLIN as u32, ptr, super::kit::CALLBACKS[0]) }
                    .expect("xps_loop_attach() of an eventfd returns Ok");
            }
            // One detached before destroy, two still attached when it runs.
            xps_loop_detach(&loop_, fds[0].as_fd()).expect("xps_loop_detach() of an attached fd returns Ok");
            xps_loop_destroy(loop_);
            let after = live_bytes();
            drop(fds);
            (before, after)
        },
        || "in xps_loop_create/attach/detach/destroy".into(),
        || Failure::new("xps_loop_create/attach/detach/destroy did not return within 5 s"),
    );
    let fds_after = open_fds();
    if after != before {
        fail(
            Failure::new(format!("xps_loop_destroy() left {} byte(s) allocated", after - before))
                .detail("setup", "xps_loop_create(); attach 3 eventfds; detach 1; xps_loop_destroy()")
                .detail("expected", "every byte allocated since xps_loop_create() is freed again")
                .blame(
                    Role::LoopDestroy,
                    "destroy every loop event still attached (loop_event_destroy), as the \
                     page says, then free the loop; xps_loop_detach(): loop_event_destroy() the detached one",
                ),
        );
    }
    if fds_after != fds_before {
        fail(
            Failure::new(format!("xps_loop_destroy() left {} fd(s) open", fds_after as i64 - fds_before as i64))
                .detail("expected", format!("{fds_before} fds open, as before xps_loop_create(): {description_before}"))
                .detail("received", format!("{fds_after}: {}", describe_open_fds()))
                .blame(Role::LoopDestroy, "close the epoll fd (drop it); the attached fds are their owners' to close"),
        );
    }
    Ok(())
}
