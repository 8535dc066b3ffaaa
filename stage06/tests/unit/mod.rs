//! Stage 6's in-process checks, built into the binary's unit tests: Milestone #1, the listener
//! module, before the server can run (`cargo test -p stage06 milestone_1`), and the module part
//! of Milestone #2, each function of the connection module on its own.
//!
//! The checks are declared in the registry (`tests/src/list.rs`), which names each body here;
//! `in_process_tests!` turns each of stage 6's in-process entries into a `#[test]` that runs its
//! body through the harness (a thread of its own, a time limit, the blame resolved).

mod kit;
mod milestone_1;
mod milestone_2;

xps_tests::with_checks!(xps_tests::in_process_tests, 6);
