#!/usr/bin/env bash
# check-build.sh: runs the course's checks for a stage against any server, yours included, and
# says whether the course's own tester would pass it.
#
# Usage: scripts/check-build.sh STAGE [--official] [--junit FILE] -- CMD [ARGS...]   (STAGE: 6 or 7)
#
# A learner who writes the course in C (or Rust, in a crate of their own) checks their build
# offline. Two parts (docs/check-build.md explains both, with real output):
#   1. this workspace's checks (tests/src/checks.rs), each against a fresh server on the stage's
#      ports (stage 6: 8001-8003, stage 7: 8001-8004): the page's milestone steps, its "4 clients
#      and 3 ports" test, the course's three checks, the bugs learners' builds have (messages
#      without a newline, empty lines, raw bytes, bytes after a reply), for stage 7 Experiment #1;
#   2. the course's tester's three checks exactly as it runs them (ports 8001-8004 for both
#      stages, first-chunk comparison, checks 1 and 2 on one server process), and whether the
#      server listens on 0.0.0.0 as the tester needs (read from /proc/net/tcp).
# Every run ends with "the course's tester would pass/fail this build" and why, then
# "N passed, N failed". --official runs part 2 alone. All traffic stays on 127.0.0.1.
#
#   scripts/check-build.sh 6 -- ./target/debug/stage06       # this workspace's stage 6
#   scripts/check-build.sh 7 -- ~/expserver/src/xps          # your own C build
#   scripts/check-build.sh 7 --official -- ~/expserver/src/xps
#   scripts/check-build.sh 7 -- stdbuf -oL ~/expserver/src/xps
#       (C's printf keeps its output in a buffer when stdout is a pipe; stdbuf -oL makes it
#        print each line at once, so a failure shows your server's last log lines)
#
# It builds the checker and xps-lock (`cargo build -p xps_tests --bin xps-check --bin xps-lock`),
# and runs the checker under xps-lock, which holds the lock file the workspace's tests take when
# they use the default ports (so it never runs at the same time as them; any user can take it).
# CMD runs in a process group of its own and is stopped, with everything it started, after each
# check and when the run ends or is interrupted (Ctrl+C). It works from any directory; CMD is run
# from the directory you are in.
#
# Exit status: 0 if every check passed, 1 if any failed (or the build failed), 2 for bad
# arguments.

set -euo pipefail

PROGRAM=$(basename -- "$0")
SCRIPT_DIR=$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
# shellcheck source=scripts/lib.sh
source "$SCRIPT_DIR/lib.sh"

usage() {
    cat <<EOF
Usage: $PROGRAM STAGE [--official] [--junit FILE] -- CMD [ARGS...]

Runs the course's checks for STAGE (6 or 7) against the server CMD starts, then the course's
tester's three checks exactly as the tester runs them, and says whether the tester would pass
the build, and why. CMD must listen on the stage's ports (the tester starts it with no arguments):
  this workspace's checks: stage 6: 8001 8002 8003        stage 7: 8001 8002 8003 8004
  the tester's checks:     8001 8002 8003 8004, on 0.0.0.0 (every interface), for both stages
All traffic stays on 127.0.0.1.

Examples:
  $PROGRAM 6 -- ./target/debug/stage06
  $PROGRAM 7 --official -- ~/expserver/src/xps
  $PROGRAM 7 -- stdbuf -oL ~/expserver/src/xps
  $PROGRAM 7 -- cargo run -q --manifest-path ~/my-xps/Cargo.toml --

Options:
      --official     run only the tester's three checks (and its network-address requirement)
      --junit FILE   also write a JUnit XML report to FILE (one test case per check)
  -h, --help         print this help and exit

Exit status: 0 if every check passed, 1 if any failed, 2 for bad arguments.
EOF
}

bad_usage() {
    echo "$PROGRAM: $1" >&2
    echo "Try '$PROGRAM --help' for more information." >&2
    exit 2
}

case ${1:-} in
    -h | --help)
        usage
        exit 0
        ;;
    6 | 7) STAGE=$1 ;;
    "") bad_usage "which stage? for example: $PROGRAM 6 -- ./xps" ;;
    *) bad_usage "unknown stage '$1': the checks are for stages 6 and 7" ;;
esac
shift
OPTIONS=()
while (($# > 0)) && [[ $1 != -- ]]; do
    case $1 in
        --official) OPTIONS+=(--official) ;;
        --junit)
            (($# >= 2)) || bad_usage "--junit needs a file name"
            OPTIONS+=(--junit "$2")
            shift
            ;;
        --junit=*) OPTIONS+=("$1") ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) bad_usage "unknown option '$1' (the server command goes after '--')" ;;
    esac
    shift
done
if [[ ${1:-} != -- ]]; then
    bad_usage "put the server command after '--', for example: $PROGRAM $STAGE -- ./xps"
fi
shift
if (($# == 0)); then
    bad_usage "no server command after '--'"
fi

echo "$PROGRAM: building the checker (cargo build -p xps_tests --bin xps-check --bin xps-lock)"
if ! cargo build --quiet --manifest-path "$ROOT/Cargo.toml" -p xps_tests --bin xps-check --bin xps-lock; then
    echo "$PROGRAM: the build failed" >&2
    exit 1
fi
CHECKER=$(target_dir "$ROOT")/debug/xps-check
XPS_LOCK=$(target_dir "$ROOT")/debug/xps-lock

# exec: xps-lock takes this script's place, so Ctrl+C and kill reach it directly. It waits for
# the default ports' lock (saying who holds it), runs the checker holding it, passes Ctrl+C on
# to the checker (which stops the servers), and exits with the checker's status.
exec "$XPS_LOCK" --wait "$XPS_LOCK_WAIT_SECONDS" --name "$PROGRAM" -- "$CHECKER" --stage "$STAGE" "${OPTIONS[@]}" -- "$@"
