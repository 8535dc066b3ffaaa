# shellcheck shell=bash
# Shared by the scripts that run servers on the course's default ports (source it, do not run it).
#
# The test kit's default-ports tests, check-build.sh, experiment1.sh and bench.sh all use ports
# 8001-8004; they take the same lock (the kit's xps_tests::DefaultPortsLock) so that they never
# run at the same time.

# The lock file: the system's temp folder, as Rust's std::env::temp_dir() picks it.
XPS_LOCK_FILE="${TMPDIR:-/tmp}/xps-tests-default-ports.lock"
# How long to wait for whatever holds the ports before giving up.
XPS_LOCK_WAIT_SECONDS=300

# hold_default_ports PROGRAM: takes the lock on descriptor 9 and keeps it until the script exits
# (start children with `9>&-` so they do not inherit it). Says so on stderr while it waits;
# returns 1, after saying why, if the lock is still held after XPS_LOCK_WAIT_SECONDS.
hold_default_ports() {
    local program=$1
    if ! command -v flock >/dev/null; then
        echo "$program: flock (from util-linux) is needed to share ports 8001-8004 with the tests" >&2
        return 1
    fi
    exec 9>>"$XPS_LOCK_FILE"
    flock --nonblock 9 && return 0
    echo "$program: waiting for tests that use ports 8001-8004 to finish (lock $XPS_LOCK_FILE)..." >&2
    flock --timeout "$XPS_LOCK_WAIT_SECONDS" 9 && return 0
    echo "$program: the lock $XPS_LOCK_FILE is still held after $XPS_LOCK_WAIT_SECONDS s; is a 'cargo test' stuck?" >&2
    return 1
}

# target_dir ROOT: where cargo puts its builds: ROOT/target unless CARGO_TARGET_DIR says otherwise.
target_dir() {
    local dir=${CARGO_TARGET_DIR:-$1/target}
    [[ $dir == /* ]] || dir=$1/$dir
    printf '%s\n' "$dir"
}
