//! Hardening checks both stages share: bad clients, running out of file descriptors, no leaks.
