//! Stage 6's checks against the server (`cargo test -p stage06`).
//!
//! Every check is declared once in the registry (`tests/src/list.rs`); `stage_tests!` turns
//! each of stage 6's entries that runs against the binary into a `#[test]`, which starts the
//! real `stage06` binary (found at run time, next to this test) and talks to it over real TCP
//! on ports the OS picks. Test names start with where they belong: `milestone_2_` (the page's
//! netcat steps and its "4 clients and 3 ports" test), `course_check_1_` to `course_check_3_`
//! (the course's automated checks), `extra_` (beyond the course). Milestone #1, the listener
//! module on its own, is checked in-process by `tests/unit/`; `cargo test -p stage06 milestone_1`
//! runs it.

xps_tests::with_checks!(xps_tests::stage_tests, 6);
