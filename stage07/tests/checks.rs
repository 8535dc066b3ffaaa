//! Stage 7's checks against the server (`cargo test -p stage07`).
//!
//! The page's Milestone #2 is stage 6's again ("follow the same steps and make sure you get the
//! same result"), so most of these are the very checks stage 6 runs. Every check is declared
//! once in the registry (`tests/src/list.rs`); `stage_tests!` turns each of stage 7's entries
//! that runs against the binary into a `#[test]`, which starts the real `stage07` binary (found
//! at run time, next to this test) on four OS-picked ports and talks to it over real TCP. Test
//! names start with where they belong (`milestone_2_`, `course_check_N_`, `extra_`). Milestone #1,
//! the loop module, and the core's part of Milestone #2 are checked in-process by `tests/unit/`.

xps_tests::with_checks!(xps_tests::stage_tests, 7);
