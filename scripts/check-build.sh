#!/usr/bin/env bash
# check-build.sh: runs the course's checks for a stage against any server, yours included, and
# says whether the course's own tester would pass it.
#
# Usage: scripts/check-build.sh STAGE [--official] [--junit FILE] -- CMD [ARGS...]   (STAGE: 6 or 7)
#        scripts/check-build.sh STAGE [--official] --builds FOLDER|LIST [--out DIR]
# Options go in any order before `--`; `--help` says them all.
#
# A learner who writes the course in C (or Rust, in a crate of their own) checks their build
# offline; a teacher checks a class's builds, one after another. Two parts (docs/check-build.md
# explains both, with real output):
#   1. this workspace's checks, each against a fresh server on the stage's ports (stage 6:
#      8001-8003, stage 7: 8001-8004): the page's milestone steps, its "4 clients and 3 ports"
#      test, the course's three checks, the bugs learners' builds have, for stage 7 Experiment #1;
#   2. the course's tester's three checks exactly as it runs them: started as it starts the
#      server, connecting when it connects (about 1 s after the start), ports 8001-8004 for both
#      stages, first-chunk comparison, and whether the server listens where the tester can reach it.
# Every run ends with "the course's tester would pass/fail this build" (or "could not judge this
# build": the machine's ports were taken, say), the bugs the tester does not see, then
# "N passed, N failed". --official runs part 2 alone. All traffic stays on 127.0.0.1.
#
#   scripts/check-build.sh 6 -- ./target/debug/stage06       # this workspace's stage 6
#   scripts/check-build.sh 7 -- ~/expserver/src/xps          # your own C build
#   scripts/check-build.sh 7 --official -- ~/expserver/src/xps
#   scripts/check-build.sh 7 -- stdbuf -oL ~/expserver/src/xps
#       (C's printf keeps its output in a buffer when stdout is a pipe; stdbuf -oL makes it
#        print each line at once, so a failure shows your server's last log lines)
#   scripts/check-build.sh 7 --official --builds class/      # a teacher's builds
#
# It builds the checker and xps-lock (`cargo build -p xps_tests --bin xps-check --bin xps-lock`),
# and runs the checker under xps-lock, which holds the lock file the workspace's tests take when
# they use the default ports (so it never runs at the same time as them; any user can take it).
# CMD runs in a process group of its own and is stopped, with everything it started, after each
# check and when the run ends or is interrupted (Ctrl+C). It works from any directory; CMD is run
# from the directory you are in.
#
# Exit status: 0 if every check passed, 1 if one failed (or the build failed), 2 if the build
# could not be judged or the arguments are wrong, 128+N when interrupted by signal N.

set -euo pipefail

PROGRAM=$(basename -- "$0")
SCRIPT_DIR=$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
# shellcheck source=scripts/lib.sh
source "$SCRIPT_DIR/lib.sh"

# The checker reads the arguments (one implementation of them); it names itself after this script.
export XPS_CHECK_AS=$PROGRAM

echo "$PROGRAM: building the checker (cargo build -p xps_tests --bin xps-check --bin xps-lock)"
if ! cargo build --quiet --manifest-path "$ROOT/Cargo.toml" -p xps_tests --bin xps-check --bin xps-lock; then
    echo "$PROGRAM: the build failed" >&2
    exit 1
fi
CHECKER=$(target_dir "$ROOT")/debug/xps-check
XPS_LOCK=$(target_dir "$ROOT")/debug/xps-lock

# --help, --list and a bad command line need no ports: no lock for them.
for arg in "$@"; do
    case $arg in
        --) break ;;
        -h | --help | --list) exec "$CHECKER" "$@" ;;
    esac
done

# exec: xps-lock takes this script's place, so Ctrl+C and kill reach it directly. It waits for
# the default ports' lock (saying who holds it), runs the checker holding it, passes Ctrl+C on
# to the checker (which stops the servers), and exits with the checker's status.
exec "$XPS_LOCK" --wait "$XPS_LOCK_WAIT_SECONDS" --name "$PROGRAM" -- "$CHECKER" "$@"
