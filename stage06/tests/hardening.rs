//! Stage 6's hardening checks (`cargo test -p stage06 --test hardening`): running out of file
//! descriptors, no descriptor leaks, a storm of random clients, large streams, flat memory.
//!
//! Each check is defined once in the shared test kit (`tests/src/hardening.rs`) and run here
//! against the real `stage06` binary over real TCP, on three ports the OS picks. Hardening goes
//! beyond the course: every test name starts with `extra_`.

xps_tests::hardening_tests!(bin: env!("CARGO_BIN_EXE_stage06"), ports: 3);
