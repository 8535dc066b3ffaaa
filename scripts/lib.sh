# shellcheck shell=bash
# Shared by the scripts that run servers on the course's default ports (source it, do not run it).
#
# The test kit's default-ports tests, check-build.sh, experiment1.sh and bench.sh all use ports
# 8001-8004; they take the same lock (the kit's xps_tests::DefaultPortsLock, through the xps-lock
# tool) so that they never run at the same time.

# How long to wait for whatever holds the ports before giving up.
XPS_LOCK_WAIT_SECONDS=300

# hold_default_ports PROGRAM XPS_LOCK FAIL_MESSAGE [ARGS...]: makes the rest of the calling
# script run holding the lock on ports 8001-8004. Unless the script already runs under it, the
# script is run again, with ARGS, under XPS_LOCK (the xps-lock tool, tests/src/bin/xps-lock.rs,
# in place of this shell): it takes the lock (saying on stderr who holds it while it waits),
# runs the script holding it, passes Ctrl+C and SIGTERM on to it, and exits with its status.
# If the lock is still held after XPS_LOCK_WAIT_SECONDS, xps-lock says so and by whom, prints
# FAIL_MESSAGE (unless empty) and exits 1. Returns (0) only in the script run under the lock.
#
# The lock is an flock() on a file in the system's temp folder that any user can take (lab
# machines are shared): xps_tests::DefaultPortsLock, the one implementation, which the tests
# take too.
hold_default_ports() {
    local program=$1 xps_lock=$2 fail_message=$3
    shift 3
    # xps-lock tells the command it runs its own pid: the script's parent.
    [[ ${XPS_DEFAULT_PORTS_HELD:-} == "$PPID" ]] && return 0
    exec "$xps_lock" --wait "$XPS_LOCK_WAIT_SECONDS" --name "$program" --fail-message "$fail_message" \
        -- "$BASH" "$(readlink -f -- "$0")" "$@"
}

# target_dir ROOT: where cargo puts its builds: ROOT/target unless CARGO_TARGET_DIR says otherwise.
target_dir() {
    local dir=${CARGO_TARGET_DIR:-$1/target}
    [[ $dir == /* ]] || dir=$1/$dir
    printf '%s\n' "$dir"
}
