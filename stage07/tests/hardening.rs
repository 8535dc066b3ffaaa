//! Stage 7's hardening checks (`cargo test -p stage07 --test hardening`): running out of file
//! descriptors, no descriptor leaks, a storm of random clients, large streams, flat memory.
//!
//! The same checks as stage 6's, from the shared test kit (`tests/src/hardening.rs`), run
//! against the real `stage07` binary on four OS-picked ports. Hardening goes beyond the course:
//! every test name starts with `extra_`.

xps_tests::hardening_tests!(bin: env!("CARGO_BIN_EXE_stage07"), ports: 4);
