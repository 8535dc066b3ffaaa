#!/usr/bin/env bash
# diff-stages.sh: shows what changed in the source code from one stage to the next.
#
# Usage: scripts/diff-stages.sh [--color=WHEN] [FROM] [TO]     (default: stage06 stage07)
#
# Compares FROM/src with TO/src at the root of this workspace. It first prints a summary, one
# line per file that was added, removed or changed, with its +/- line counts; then the full
# `diff -ruN` of the two folders (new and removed files shown in full), coloured when stdout
# is a terminal. A pipe turns the colour off, as with diff and git: to page through it in
# colour, `scripts/diff-stages.sh --color=always | less -R`. It works from any directory and
# without git: the workspace root is the folder above the one holding this script.
#
# Exit status: 0 once the diff is printed (whether or not the stages differ), 1 if diff itself
# fails, 2 for bad arguments (an unknown stage name lists the stages that exist).

set -euo pipefail

PROGRAM=$(basename -- "$0")
# The script's real location (symlinks resolved), then the folder above it.
SCRIPT_DIR=$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd -P)

usage() {
    cat <<EOF
Usage: $PROGRAM [--color=WHEN] [FROM] [TO]

Shows what changed in the source code from stage FROM to stage TO (default: stage06 stage07):
a summary of added, removed and changed files with +/- line counts, then the full
diff -ruN of FROM/src and TO/src.

Stages are the stageNN folders in $ROOT.

Options:
      --color=WHEN  colour the diff: auto (when stdout is a terminal; the default),
                    always, or never. To page through it in colour:
                    $PROGRAM --color=always | less -R
  -h, --help        print this help and exit
EOF
}

# Prints an error, a hint, and exits 2.
bad_usage() {
    echo "$PROGRAM: $1" >&2
    echo "Try '$PROGRAM --help' for more information." >&2
    exit 2
}

# The stage folders that exist at the root, space-separated (e.g. "stage06 stage07").
list_stages() {
    local dir stages=()
    for dir in "$ROOT"/stage[0-9][0-9]; do
        [[ -d $dir ]] && stages+=("$(basename -- "$dir")")
    done
    echo "${stages[*]:-none}"
}

# Exits 2 unless $1 names a stage folder with a src folder inside.
check_stage() {
    local stage=$1
    if [[ ! $stage =~ ^stage[0-9][0-9]$ || ! -d $ROOT/$stage ]]; then
        bad_usage "unknown stage '$stage'; the stages in $ROOT are: $(list_stages)"
    fi
    if [[ ! -d $ROOT/$stage/src ]]; then
        bad_usage "stage '$stage' has no src folder ($ROOT/$stage/src)"
    fi
}

# Counts the lines of a file, including a last line without a newline.
count_lines() {
    grep -c '' -- "$1" || true
}

# Prints "<added> <removed>" line counts for the change from file $1 to file $2, or
# "binary" if diff treats them as binary files.
count_changes() {
    local out
    out=$(diff -u -- "$1" "$2" || true)
    if [[ $out == Binary\ files* ]]; then
        echo binary
        return
    fi
    # Skip the two header lines (--- and +++); then every + or - line is one changed line.
    tail -n +3 <<<"$out" | awk '/^\+/ { a++ } /^-/ { r++ } END { print a + 0, r + 0 }'
}

positional=()
color=auto
for arg in "$@"; do
    case $arg in
        -h | --help)
            usage
            exit 0
            ;;
        --color=*)
            color=${arg#--color=}
            [[ $color == auto || $color == always || $color == never ]] ||
                bad_usage "invalid --color '$color': expected auto, always or never"
            ;;
        --color) color=always ;;
        -?*) bad_usage "unknown option '$arg'" ;;
        *) positional+=("$arg") ;;
    esac
done
if ((${#positional[@]} > 2)); then
    bad_usage "too many arguments: expected at most FROM and TO"
fi
FROM=${positional[0]:-stage06}
TO=${positional[1]:-stage07}
check_stage "$FROM"
check_stage "$TO"

# Everything below runs from the root, so paths in the output read "stage06/src/main.rs".
cd -- "$ROOT"

# Every file under either src folder, by its path relative to src.
declare -A in_from=() in_to=()
while IFS= read -r -d '' file; do in_from[$file]=1; done < <(cd "$FROM/src" && find . -type f -printf '%P\0')
while IFS= read -r -d '' file; do in_to[$file]=1; done < <(cd "$TO/src" && find . -type f -printf '%P\0')
mapfile -d '' all_files < <(printf '%s\0' "${!in_from[@]}" "${!in_to[@]}" | sort -zu)

echo "Changes from $FROM/src to $TO/src:"
n_added=0 n_removed=0 n_changed=0 total_added=0 total_removed=0
for file in "${all_files[@]}"; do
    [[ -n $file ]] || continue
    old="$FROM/src/$file" new="$TO/src/$file"
    if [[ -z ${in_to[$file]:-} ]]; then
        status=removed added=0 removed=$(count_lines "$old")
        n_removed=$((n_removed + 1))
    elif [[ -z ${in_from[$file]:-} ]]; then
        status=added added=$(count_lines "$new") removed=0
        n_added=$((n_added + 1))
    elif cmp -s -- "$old" "$new"; then
        continue
    else
        status=changed
        n_changed=$((n_changed + 1))
        counts=$(count_changes "$old" "$new")
        if [[ $counts == binary ]]; then
            printf '  %-8s %-40s (binary)\n' "$status" "$file"
            continue
        fi
        read -r added removed <<<"$counts"
    fi
    total_added=$((total_added + added)) total_removed=$((total_removed + removed))
    printf '  %-8s %-40s +%-5s -%s\n' "$status" "$file" "$added" "$removed"
done
n_files=$((n_added + n_removed + n_changed))
if ((n_files == 0)); then
    echo "  (no differences)"
else
    echo "$n_files files: $n_added added, $n_removed removed, $n_changed changed;" \
        "+$total_added -$total_removed lines"
fi
echo

diff_options=(-ruN)
if [[ $color == always || ($color == auto && -t 1) ]]; then diff_options+=(--color=always); fi
# diff exits 1 when the folders differ: that is the expected outcome here, not an error.
diff_status=0
diff "${diff_options[@]}" "$FROM/src" "$TO/src" || diff_status=$?
if ((diff_status == 141)); then
    # Killed by SIGPIPE: whoever reads our output (say, `| head`) stopped reading. Not an error.
    exit 0
elif ((diff_status > 1)); then
    echo "$PROGRAM: diff failed (exit status $diff_status)" >&2
    exit 1
fi
exit 0
