#!/usr/bin/env bash
# check-build.sh: runs the course's checks for a stage against any server, yours included.
#
# Usage: scripts/check-build.sh STAGE -- CMD [ARGS...]      (STAGE: 6 or 7)
#
# A learner who writes the course in C checks their own build offline with the checks this
# workspace's tests run (tests/src/checks.rs): the page's Milestone #2 steps and its "4 clients
# and 3 ports" test, the course's three automated checks, and for stage 7 Experiment #1. CMD
# must listen on the stage's default ports (stage 6: 8001-8003, stage 7: 8001-8004). Each check
# starts CMD afresh and stops it afterwards; each is reported by name with what it expects, and
# a failure with what was sent, expected and received and the server's last lines.
#
#   scripts/check-build.sh 6 -- ./target/debug/stage06       # this workspace's stage 6
#   scripts/check-build.sh 7 -- ~/expserver/src/xps          # your own C build
#   scripts/check-build.sh 7 -- stdbuf -oL ~/expserver/src/xps
#       (C's printf keeps its output in a buffer when stdout is a pipe; stdbuf -oL makes it
#        print each line at once, so a failure shows your server's last log lines)
#
# It builds the checker (`cargo build -p xps_tests --bin xps-check`), then runs it while
# holding the lock file the workspace's tests take when they use the default ports, so it never
# runs at the same time as those tests. It works from any directory; CMD is run from the
# directory you are in.
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
Usage: $PROGRAM STAGE -- CMD [ARGS...]

Runs the course's checks for STAGE (6 or 7) against the server CMD starts: Milestone #2
steps 1-5, the "4 clients and 3 ports" test, the course's three automated checks, and for
stage 7 Experiment #1. CMD must listen on the stage's default ports:
  stage 6: 8001 8002 8003        stage 7: 8001 8002 8003 8004

Examples:
  $PROGRAM 6 -- ./target/debug/stage06
  $PROGRAM 7 -- stdbuf -oL ~/expserver/src/xps

Options:
  -h, --help   print this help and exit

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
if [[ ${1:-} != -- ]]; then
    bad_usage "put the server command after '--', for example: $PROGRAM $STAGE -- ./xps"
fi
shift
if (($# == 0)); then
    bad_usage "no server command after '--'"
fi

echo "$PROGRAM: building the checker (cargo build -p xps_tests --bin xps-check)"
if ! cargo build --quiet --manifest-path "$ROOT/Cargo.toml" -p xps_tests --bin xps-check; then
    echo "$PROGRAM: the build failed" >&2
    exit 1
fi
CHECKER=$(target_dir "$ROOT")/debug/xps-check

# Hold the default ports' lock on fd 9 while the checks run (the kernel drops it when we exit).
hold_default_ports "$PROGRAM" || exit 1

# 9>&-: the checker and the servers it starts do not inherit the lock's descriptor.
"$CHECKER" --stage "$STAGE" -- "$@" 9>&-
