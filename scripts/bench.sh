#!/usr/bin/env bash
# bench.sh: measures what stage 7's loop buys over stage 6's scan of the global lists.
#
# Usage: scripts/bench.sh [--seconds S] [--runs N] [--server "CMD"] [--port P] [--quick]
#
# It builds stage06, stage07 and the load generator in release mode, then measures each build
# with 16 active clients sending 64-byte messages while 0, 1,000 and 10,000 idle connections
# stay open (see tests/src/bin/loadgen/main.rs). The builds take turns, measurement by measurement,
# so a slow moment of the machine does not fall on one build only. Every measurement starts a
# fresh server on 127.0.0.1:8001 (or --port P; its output goes to /dev/null): stage06's lists never shrink,
# so a server that had already served earlier runs would be slower than a new one. While it
# measures on the default ports it holds the lock the workspace's tests take for them, so a
# `cargo test` or scripts/check-build.sh waits instead of colliding with it.
#
# stdout gets the machine, a markdown table (median rate, p99 latency, peak RSS of the server,
# each rate as a ratio of the same build at 0 idle) and one PASS/FAIL line per target (stage 7
# keeps 0.90x of its rate at 10,000 idle, is no slower than stage 6, stays under 10 MB).
# Progress goes to stderr. docs/benchmarks.md explains the figures. The binaries are the
# release builds in target/release/ (in $CARGO_TARGET_DIR/release/ when that is set).
#
# Exit status: 0 once every run worked, whether or not the targets were met (they are
# measurements, printed for a person to read; a busy machine can move them). 1 if a run
# failed (a server did not start or died, or loadgen saw a wrong or missing reply) or if
# port 8001 is busy; 2 for bad arguments.

set -euo pipefail

PROGRAM=$(basename -- "$0")
# The script's real location (symlinks resolved), then the folder above it.
SCRIPT_DIR=$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
# shellcheck source=scripts/lib.sh
source "$SCRIPT_DIR/lib.sh"
# Where cargo puts the release builds: ROOT/target, or CARGO_TARGET_DIR if set (cargo runs from ROOT).
RELEASE_DIR=$(target_dir "$ROOT")/release

HOST=127.0.0.1
PORT=8001
CLIENTS=16
SIZE=64
IDLE_LEVELS=(0 1000 10000)
# What 10,000 idle + 16 active connections need, plus stdio and a few to spare.
FDS_NEEDED=10100
SECONDS_PER_RUN=5
RUNS=3
CUSTOM_CMD=""
# How long a server may take to accept connections on the port.
START_TIMEOUT_S=15
# The file the test kit locks while a test uses the default ports (xps_tests::DefaultPortsLock,
# in the system's temp folder), and scripts/check-build.sh too: holding it while measuring keeps
# a `cargo test` or a check run from starting servers on port 8001 in the middle of a run.
# The arguments as given, to run this script again under xps-lock (hold_default_ports).
ARGS=("$@")

usage() {
    cat <<EOF
Usage: $PROGRAM [OPTIONS]

Benchmarks stage06 and stage07 (release builds): $CLIENTS clients send $SIZE-byte messages
for S seconds while 0, 1000 and 10000 idle connections are open; N runs of each, the
builds taking turns, a fresh server on $HOST:$PORT for every run. Prints the machine, a
markdown table (median rate, p99, peak RSS, rate vs the same build at 0 idle) and a
PASS/FAIL line per target.

Options:
      --seconds S    how long each run sends, may be fractional (default: $SECONDS_PER_RUN)
      --runs N       runs per build and idle count; the table shows the median (default: $RUNS)
      --server CMD   also measure another build, named "custom": CMD is run with bash -c
                     from the current folder and must listen on port $PORT (or --port P),
                     for example --server ./xps  (a learner's C eXpServer)
      --port P       measure on port P instead of $PORT, when $PORT is taken (a --server
                     build must then listen on P)
      --quick        a smoke run: 1 run of 1 second each (as --runs 1 --seconds 1)
  -h, --help         print this help and exit

Exit status: 0 once every run worked, even if a target says FAIL (targets are
measurements for a person to read); 1 if a run failed or port $PORT is busy; 2 for bad
arguments.
EOF
}

# Prints an error, a hint, and exits 2.
bad_usage() {
    echo "$PROGRAM: $1" >&2
    echo "Try '$PROGRAM --help' for more information." >&2
    exit 2
}

# Prints an error and exits 1 (the EXIT trap stops the server, if one runs).
die() {
    echo "$PROGRAM: $*" >&2
    exit 1
}

# Progress, on stderr.
note() {
    echo "$PROGRAM: $*" >&2
}

while (($# > 0)); do
    arg=$1
    shift
    # Accept both `--runs 3` and `--runs=3`.
    value=""
    has_inline=false
    if [[ $arg == --*=* ]]; then
        value=${arg#*=}
        arg=${arg%%=*}
        has_inline=true
    fi
    case $arg in
        -h | --help)
            usage
            exit 0
            ;;
        --quick)
            $has_inline && bad_usage "--quick takes no value"
            RUNS=1 SECONDS_PER_RUN=1
            ;;
        --seconds | --runs | --server | --port)
            if ! $has_inline; then
                (($# > 0)) || bad_usage "$arg needs a value"
                value=$1
                shift
            fi
            case $arg in
                --seconds)
                    # A positive decimal number, at most an hour.
                    if [[ ! $value =~ ^[0-9]+(\.[0-9]+)?$ ]] || ! awk -v s="$value" 'BEGIN { exit !(s > 0 && s <= 3600) }'; then
                        bad_usage "invalid --seconds '$value': expected a number above 0 and up to 3600, like 5 or 0.5"
                    fi
                    SECONDS_PER_RUN=$value
                    ;;
                --runs)
                    if [[ ! $value =~ ^[1-9][0-9]?$ ]]; then
                        bad_usage "invalid --runs '$value': expected a whole number from 1 to 99"
                    fi
                    RUNS=$value
                    ;;
                --port)
                    if [[ ! $value =~ ^[1-9][0-9]{0,4}$ ]] || ((value > 65535)); then
                        bad_usage "invalid --port '$value': expected a whole number from 1 to 65535"
                    fi
                    PORT=$value
                    ;;
                --server)
                    [[ -n $value ]] || bad_usage "--server needs a command, for example --server ./xps"
                    CUSTOM_CMD=$value
                    ;;
            esac
            ;;
        *) bad_usage "unknown argument '$arg'" ;;
    esac
done

BUILDS=(stage06 stage07)
[[ -n $CUSTOM_CMD ]] && BUILDS+=(custom)

# --- Cleanup: whatever happens (an error, Ctrl+C), stop the server we started. --------------

SERVER_PID=""
# Made once the script holds the ports (it may run itself again under xps-lock before that).
WORK_DIR=""

# Stops the server started by start_server(), if any: SIGTERM to its process group (a --server
# command may have started children), SIGKILL if it is still there after 3 s, then reaps it.
stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    local pid=$SERVER_PID i
    SERVER_PID=""
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    stop_server
    [[ -z $WORK_DIR ]] || rm -rf -- "$WORK_DIR"
}
trap cleanup EXIT
trap 'echo >&2; note "interrupted"; exit 130' INT
trap 'note "terminated"; exit 143' TERM

# --- Helpers --------------------------------------------------------------------------------

# Whether something accepts TCP connections on $HOST:$PORT (bash's /dev/tcp: a connect(),
# refused at once when nothing listens).
port_accepts() {
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}

# Whether the server started by start_server() is still running. (kill -0 alone would also
# succeed for a server that has exited but not been reaped yet, a zombie.)
server_running() {
    [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null &&
        ! grep -q '^State:[[:space:]]*Z' "/proc/$SERVER_PID/status" 2>/dev/null
}

# The pid of the process listening on $PORT, if `ss` can tell; empty otherwise.
listening_pid() {
    command -v ss >/dev/null || return 0
    ss -Hltnp "sport = :$PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2 || true
}

# Starts a fresh server for build $1 in its own session (so Ctrl+C in this terminal reaches
# this script, which stops it, and so stop_server() can signal a --server command's children),
# and waits until it accepts connections. Sets SERVER_PID.
start_server() {
    local build=$1 i
    case $build in
        # From the folder the script was started in, so `--server ./xps` means what it says.
        custom) (cd -- "$CALLER_DIR" && exec setsid bash -c "$CUSTOM_CMD") </dev/null >/dev/null 2>&1 & ;;
        *) setsid "$RELEASE_DIR/$build" --host "$HOST" "$PORT" </dev/null >/dev/null 2>&1 & ;;
    esac
    SERVER_PID=$!
    for ((i = 0; i < START_TIMEOUT_S * 20; i++)); do
        if ! server_running; then
            local status=0
            wait "$SERVER_PID" || status=$?
            SERVER_PID=""
            die "$build exited (status $status) before accepting connections on port $PORT." \
                "Its output went to /dev/null: run it by hand to see why."
        fi
        if port_accepts; then
            return 0
        fi
        sleep 0.05
    done
    die "$build did not accept connections on $HOST:$PORT within $START_TIMEOUT_S s." \
        "Does it listen on port $PORT, on 127.0.0.1 or 0.0.0.0?"
}

# The peak resident memory (VmHWM) of the running server, in kB. For a --server command that
# is the process listening on the port (bash -c may have started it as a child).
server_peak_rss_kb() {
    local pid
    pid=$(listening_pid)
    [[ -n $pid ]] || pid=$SERVER_PID
    awk '/^VmHWM:/ { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$pid/status" 2>/dev/null || echo 0
}

# The value of key $2 in a `RESULT k=v ...` line $1.
result_field() {
    local field
    for field in $1; do
        if [[ $field == "$2="* ]]; then
            echo "${field#*=}"
            return 0
        fi
    done
    echo ""
}

# The median of the numbers given as arguments (the lower middle one for an even count).
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# The largest of the numbers given as arguments.
maximum() {
    printf '%s\n' "$@" | sort -g | tail -n 1
}

# $1 / $2 with two decimals, or "n/a" when $2 is 0.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'
}

# Declares the result lists: RATES[build/idle] holds the rates of the runs, space-separated.
declare -A RATES=() P99S=() RSS_KB=()

# One measurement: a fresh server for build $1, loadgen with $2 idle connections, run $3.
measure() {
    local build=$1 idle=$2 run=$3 out=$WORK_DIR/loadgen.out status=0 result rate p99 wrong missing rss
    start_server "$build"
    "$RELEASE_DIR/loadgen" --host "$HOST" --port "$PORT" --clients "$CLIENTS" --size "$SIZE" \
        --seconds "$SECONDS_PER_RUN" --idle "$idle" >"$out" 2>&1 || status=$?
    result=$(grep '^RESULT ' "$out" | tail -n 1 || true)
    wrong=$(result_field "$result" wrong)
    missing=$(result_field "$result" missing)
    if ((status != 0)) || [[ -z $result || $wrong != 0 || $missing != 0 ]]; then
        if ! server_running; then
            note "$build is no longer running: it exited or crashed during the run"
        fi
        {
            echo "$PROGRAM: FAILED: $build, $idle idle, run $run: loadgen exited with status $status" \
                "(wrong=${wrong:-?} missing=${missing:-?}). Its output:"
            sed 's/^/  | /' "$out"
        } >&2
        exit 1
    fi
    rss=$(server_peak_rss_kb)
    stop_server
    rate=$(result_field "$result" rate)
    p99=$(result_field "$result" p99_us)
    RATES[$build/$idle]+="$rate "
    P99S[$build/$idle]+="$p99 "
    RSS_KB[$build/$idle]+="$rss "
    note "$(printf '%-8s idle %5s  run %d/%d: %9.1f msg/s  p99 %5s us  peak RSS %6.1f MB' \
        "$build" "$idle" "$run" "$RUNS" "$rate" "$p99" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')")"
}

# --- Preparation ----------------------------------------------------------------------------

CALLER_DIR=$PWD
cd -- "$ROOT"
started_at=$(date +%s)

command -v setsid >/dev/null || die "setsid (from util-linux) is needed to run the servers in their own session"

# Every connection is a file descriptor, in loadgen and in the server alike (the server inherits
# this shell's limit). Raise the soft limit to the hard limit.
soft=$(ulimit -Sn)
hard=$(ulimit -Hn)
if [[ $hard == unlimited ]]; then
    # Linux still caps the soft limit at /proc/sys/fs/nr_open; ask only for what is needed.
    if [[ $soft != unlimited ]] && ((soft < FDS_NEEDED)); then
        ulimit -Sn "$FDS_NEEDED"
    fi
elif [[ $soft != "$hard" ]]; then
    ulimit -Sn "$hard"
fi
if [[ $soft != "$(ulimit -Sn)" ]]; then
    note "open files limit (ulimit -n) raised from $soft to $(ulimit -Sn)"
fi
if [[ $hard != unlimited ]] && ((hard < FDS_NEEDED)); then
    note "WARNING: the hard limit on open files is $hard, below the ~$FDS_NEEDED that 10,000 idle" \
        "connections need: the 10,000 row will fail. Raise it (as root: ulimit -Hn 20000) and rerun."
fi

# Run again under xps-lock (hold_default_ports below), the build is done already.
if [[ ${XPS_DEFAULT_PORTS_HELD:-} != "$PPID" ]]; then
    note "building in release mode: cargo build --release -p stage06 -p stage07 -p xps_tests"
    cargo build --release -p stage06 -p stage07 -p xps_tests >&2
fi

# On the default ports, wait for tests that use them, then keep them away until the end of the
# runs: the script runs itself again under xps-lock, which holds the lock until it exits.
if ((PORT >= 8001 && PORT <= 8004)); then
    # Run again from the folder it was started in, as this run was (for --server ./xps).
    cd -- "$CALLER_DIR"
    hold_default_ports "$PROGRAM" "$RELEASE_DIR/xps-lock" \
        "$PROGRAM: port $PORT stays taken (or measure on another port: --port 9001)" "${ARGS[@]}"
    cd -- "$ROOT"
fi
WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/xps-bench.XXXXXX")
if port_accepts; then
    holder=$(listening_pid)
    die "port $PORT is busy${holder:+ (pid $holder: $(ps -o comm= -p "$holder" 2>/dev/null || echo '?'))}:" \
        "every build is measured on port $PORT. Stop that server and try again, or measure on another port" \
        "(--port 9001; a --server build must then listen on it)."
fi

# --- The machine ----------------------------------------------------------------------------

cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
echo "# eXpServer benchmark"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- machine: $(nproc) cores, ${cpu_model:-unknown CPU}, Linux $(uname -r)"
echo "- load: $CLIENTS active clients, $SIZE-byte messages, $SECONDS_PER_RUN s per run, $RUNS run(s) per row," \
    "a fresh server on $HOST:$PORT for every run"
[[ -n $CUSTOM_CMD ]] && echo "- custom: \`$CUSTOM_CMD\`"
echo

# --- The runs -------------------------------------------------------------------------------

total=$((RUNS * ${#IDLE_LEVELS[@]} * ${#BUILDS[@]}))
note "$total runs of $SECONDS_PER_RUN s: builds ${BUILDS[*]}, idle ${IDLE_LEVELS[*]}"
for ((run = 1; run <= RUNS; run++)); do
    for idle in "${IDLE_LEVELS[@]}"; do
        for build in "${BUILDS[@]}"; do
            measure "$build" "$idle" "$run"
        done
    done
done

# --- The table ------------------------------------------------------------------------------

declare -A MEDIAN_RATE=() MAX_RSS_MB=()
runs_label=$([[ $RUNS == 1 ]] && echo "1 run" || echo "median of $RUNS")
echo "| build | idle | rate (msg/s, $runs_label) | vs 0 idle | p99 (µs) | peak RSS (MB) | runs (msg/s) |"
echo "|---|---:|---:|---:|---:|---:|---|"
for build in "${BUILDS[@]}"; do
    for idle in "${IDLE_LEVELS[@]}"; do
        key=$build/$idle
        # shellcheck disable=SC2086 # the lists are space-separated numbers, split on purpose
        {
            rate=$(median ${RATES[$key]})
            p99=$(median ${P99S[$key]})
            rss_kb=$(maximum ${RSS_KB[$key]})
            runs=$(printf '%.0f, ' ${RATES[$key]})
        }
        MEDIAN_RATE[$key]=$rate
        MAX_RSS_MB[$key]=$(awk -v k="$rss_kb" 'BEGIN { printf "%.1f", k / 1024 }')
        printf '| %s | %s | %.0f | %sx | %s | %s | %s |\n' "$build" "$idle" "$rate" \
            "$(ratio "$rate" "${MEDIAN_RATE[$build/0]}")" "$p99" "${MAX_RSS_MB[$key]}" "${runs%, }"
    done
done
echo

# --- The targets ----------------------------------------------------------------------------

# Prints one verdict line: PASS if awk condition $1 holds, FAIL otherwise; $2 is the text, and
# $3, if given, is added after it on a FAIL.
verdict() {
    if awk "BEGIN { exit !($1) }"; then
        echo "- PASS: $2"
    else
        echo "- FAIL: $2${3:-}"
    fi
}

# For a rate target that failed: if the runs of the two rows overlap (the slower row's best run
# is at least the faster row's worst), the gap is within this run's noise; says so.
overlap_note() {
    local a=$1 b=$2
    # shellcheck disable=SC2086 # space-separated numbers, split on purpose
    if (($(maximum ${RATES[$a]} | cut -d. -f1) >= $(printf '%s\n' ${RATES[$b]} | sort -g | head -n 1 | cut -d. -f1))) &&
        awk -v a="${MEDIAN_RATE[$a]}" -v b="${MEDIAN_RATE[$b]}" 'BEGIN { exit !(a < b) }'; then
        echo "; the runs of the two rows overlap, so this gap is within the noise of this run: rerun, or use more --runs"
    fi
}

s7_0=${MEDIAN_RATE[stage07/0]} s7_10k=${MEDIAN_RATE[stage07/10000]}
s6_0=${MEDIAN_RATE[stage06/0]} s6_10k=${MEDIAN_RATE[stage06/10000]}
r7=$(ratio "$s7_10k" "$s7_0")
r76=$(ratio "$s7_0" "$s6_0")
echo "Targets:"
echo
verdict "$r7 >= 0.90" \
    "stage07 at 10000 idle runs at ${r7}x its rate at 0 idle (target: at least 0.90x)" \
    "$(overlap_note stage07/10000 stage07/0)"
verdict "$r76 >= 1.00" \
    "stage07 at 0 idle runs at ${r76}x stage06 at 0 idle, $(printf '%.0f vs %.0f' "$s7_0" "$s6_0") msg/s (target: no slower, 1.00x)" \
    "$(overlap_note stage07/0 stage06/0)"
verdict "${MAX_RSS_MB[stage07/10000]} < 10" \
    "stage07 peak RSS with 10000 idle connections is ${MAX_RSS_MB[stage07/10000]} MB (target: under 10 MB)"
echo "- info: stage06 at 10000 idle runs at $(ratio "$s6_10k" "$s6_0")x its rate at 0 idle" \
    "(its O(n) scan; the course's C stage 6: about 0.4x)"
if [[ -n $CUSTOM_CMD ]]; then
    echo "- info: custom at 10000 idle runs at $(ratio "${MEDIAN_RATE[custom/10000]}" "${MEDIAN_RATE[custom/0]}")x" \
        "its rate at 0 idle"
fi

note "done in $(($(date +%s) - started_at)) s"
