//! Stage 6's milestone checks (`cargo test -p stage06`).
//!
//! Each check is defined once in the shared test kit (`tests/src/checks.rs`) and run here
//! against the real `stage06` binary over real TCP, on three ports the OS picks, as the
//! page's Milestone #2 does with netcat on 8001-8003.

xps_tests::milestone_tests!(bin: env!("CARGO_BIN_EXE_stage06"), ports: 3, default_ports: [8001, 8002, 8003]);
