//! Stage 7's milestone checks (`cargo test -p stage07`).
//!
//! The page's Milestone #2 is stage 6's again ("follow the same steps and make sure you get the
//! same result"), so these are the very checks stage 6 runs, from the shared test kit
//! (`tests/src/checks.rs`), against the real `stage07` binary on four OS-picked ports.

xps_tests::milestone_tests!(bin: env!("CARGO_BIN_EXE_stage07"), ports: 4, default_ports: [8001, 8002, 8003, 8004]);
