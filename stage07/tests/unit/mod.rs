//! Stage 7's in-process checks, built into the binary's unit tests: Milestone #1 (the loop
//! module, driven directly), the module part of Milestone #2 (the listener and the connection
//! with a core, each function on its own; two cores in one process; no fd left after destroy),
//! and two extras (the fd reused in one batch, a woken loop run again).
//!
//! The checks are declared in the registry (`tests/src/list.rs`), which names each body here;
//! `in_process_tests!` turns each of stage 7's in-process entries into a `#[test]` that runs its
//! body through the harness (one at a time, on a thread of its own, with a time limit, the blame
//! resolved).

mod alloc;
mod extra_checks;
mod kit;
mod milestone_1;
mod milestone_2;
mod modules;

xps_tests::with_checks!(xps_tests::in_process_tests, 7);
