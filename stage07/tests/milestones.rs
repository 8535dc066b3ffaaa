//! Stage 7's milestone checks against the server (`cargo test -p stage07`).
//!
//! The page's Milestone #2 is stage 6's again ("follow the same steps and make sure you get the
//! same result"), so these are the very checks stage 6 runs, from the shared test kit
//! (`tests/src/checks.rs`), against the real `stage07` binary on four OS-picked ports, with the
//! same name prefixes (`milestone_2_`, `course_check_N_`, `extra_`). Milestone #1, the loop
//! module, and the core's own part of Milestone #2 (two cores in one process, no fd left after
//! destroy) are checked in-process by `tests/unit/`; `cargo test -p stage07 milestone_1` runs one
//! milestone.

xps_tests::milestone_tests!(bin: env!("CARGO_BIN_EXE_stage07"), ports: 4, default_ports: [8001, 8002, 8003, 8004]);
