#!/usr/bin/env bash
# exercise.sh: "do it yourself" mode. Turn a stage into a skeleton whose functions are todo!(),
# and let the milestone checks say what to write next.
#
# Usage: scripts/exercise.sh {start|check|hint|compare|reset|solution|status} STAGE [FUNCTION] [LEVEL]
#        scripts/exercise.sh --help            scripts/exercise.sh COMMAND --help
#
#   scripts/exercise.sh start 6                        # stage06/src becomes the skeleton
#   scripts/exercise.sh check 6                        # the next step, milestone by milestone
#   scripts/exercise.sh hint 6 xps_listener_create 2   # hints, levels 1 to 3
#   scripts/exercise.sh solution 6                     # back to the reference (reading mode)
#
# The work is done by a Rust program in the tests crate (tests/src/bin/xps-exercise), built
# here with cargo, so nothing but Rust is needed. The guide is docs/exercises.md.
#
# Exit status: 0 on success (check: every milestone passes), 1 if a check or command failed,
# 2 for bad input (unknown stage or function, a tree that start would overwrite).

set -euo pipefail

SCRIPT_DIR=$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
# shellcheck source=scripts/lib.sh
source "$SCRIPT_DIR/lib.sh"

if ! cargo build --quiet --manifest-path "$ROOT/Cargo.toml" -p xps_tests --bin xps-exercise; then
    echo "$(basename -- "$0"): building the exercise tool failed (cargo build -p xps_tests --bin xps-exercise)" >&2
    exit 1
fi
XPS_EXERCISE_ROOT=$ROOT exec "$(target_dir "$ROOT")/debug/xps-exercise" "$@"
