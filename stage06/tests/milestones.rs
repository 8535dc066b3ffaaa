//! Stage 6's milestone checks against the server (`cargo test -p stage06`).
//!
//! Each check is defined once in the shared test kit (`tests/src/checks.rs`) and run here
//! against the real `stage06` binary over real TCP, on three ports the OS picks, as the
//! page's Milestone #2 does with netcat on 8001-8003. Test names start with where they belong:
//! `milestone_2_` (the page's netcat steps and its "4 clients and 3 ports" test),
//! `course_check_1_` to `course_check_3_` (the course's automated checks), `extra_` (beyond the
//! course). Milestone #1, the listener module on its own, is checked in-process by
//! `tests/unit/milestone_1.rs`; `cargo test -p stage06 milestone_1` runs it.

xps_tests::milestone_tests!(bin: env!("CARGO_BIN_EXE_stage06"), ports: 3, default_ports: [8001, 8002, 8003]);
