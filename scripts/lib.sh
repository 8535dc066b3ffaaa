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
# (start children with `9>&-` so they do not inherit it). Says so on stderr while it waits, naming
# what holds the lock; returns 1, after saying why, if it is still held after XPS_LOCK_WAIT_SECONDS.
#
# Any user can take it (lab machines are shared): the file is created readable and writable by
# everyone, and opened read-only, which is all flock() needs (another user's file in /tmp cannot
# be opened for writing).
hold_default_ports() {
    local program=$1
    if ! command -v flock >/dev/null; then
        echo "$program: flock (from util-linux) is needed to share ports 8001-8004 with the tests" >&2
        return 1
    fi
    if [[ ! -e $XPS_LOCK_FILE ]]; then
        (umask 000 && : >>"$XPS_LOCK_FILE") 2>/dev/null || true
        chmod a+rw "$XPS_LOCK_FILE" 2>/dev/null || true
    fi
    if ! exec 9<"$XPS_LOCK_FILE"; then
        echo "$program: cannot open the lock file $XPS_LOCK_FILE" >&2
        return 1
    fi
    flock --nonblock 9 && return 0
    echo "$program: waiting for ports 8001-8004: the lock $XPS_LOCK_FILE is held by $(lock_holder)..." >&2
    flock --timeout "$XPS_LOCK_WAIT_SECONDS" 9 && return 0
    echo "$program: the lock $XPS_LOCK_FILE is still held after $XPS_LOCK_WAIT_SECONDS s, by $(lock_holder)" >&2
    return 1
}

# lock_holder: what holds the default-ports lock, `pid N (command line)`, from /proc/locks or,
# when the process that took it has exited (a shell's `flock` command does), from the processes
# that have the file open.
lock_holder() {
    local inode pid fd found=""
    inode=$(stat -c %i -- "$XPS_LOCK_FILE" 2>/dev/null) || inode=""
    if [[ -n $inode && -r /proc/locks ]]; then
        pid=$(awk -v ino="$inode" '$2 == "FLOCK" { n = split($6, a, ":"); if (a[n] == ino) { print $5; exit } }' /proc/locks)
        if [[ -n $pid && -r /proc/$pid/cmdline ]]; then
            printf 'pid %s (%s)' "$pid" "$(tr '\0' ' ' <"/proc/$pid/cmdline" | sed 's/ $//')"
            return
        fi
    fi
    for fd in /proc/[0-9]*/fd/*; do
        [[ $(readlink -- "$fd" 2>/dev/null) == "$XPS_LOCK_FILE" ]] || continue
        pid=${fd#/proc/}
        pid=${pid%%/*}
        [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
        found+="${found:+, or }pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | sed 's/ $//'))"
    done
    printf '%s' "${found:-another test or script (not found in /proc)}"
}

# target_dir ROOT: where cargo puts its builds: ROOT/target unless CARGO_TARGET_DIR says otherwise.
target_dir() {
    local dir=${CARGO_TARGET_DIR:-$1/target}
    [[ $dir == /* ]] || dir=$1/$dir
    printf '%s\n' "$dir"
}
