#!/usr/bin/env bash
# experiment1.sh: stage 7's Experiment #1, unattended and repeatable.
#
# Usage: scripts/experiment1.sh
#
# The page's experiment, step by step, with what each step means:
#   1. start stage07 (ports 8001-8004);
#   2. a client on port 8002 sends "hello" and gets "olleh": the server works;
#   3. `sender` (the page's sender.c) streams data to port 8001 and never reads the replies,
#      until its own send() blocks: the server is stuck in a blocking send() to it;
#   4. a second client on port 8002 sends "hello" and gets no reply, and the server does not
#      even log the new connection: one client that does not read stalls everyone;
#   5. the sender quits: the server's send() fails, it drops the sender, and the second
#      client's reply arrives;
#   6. Ctrl+C (SIGINT) stops the server.
#
# It uses the page's ports (the sender on 8001, the second client on 8002), so what it prints
# matches the page, and it holds the lock file the workspace's tests take when they use those
# ports, so it never runs at the same time as them. Every wait is bounded; the server and the
# sender are stopped when the script ends, however it ends.
#
# Exit status: 0 if it saw both the stall and the recovery, 1 if not (or if the build failed or
# a port was taken), 2 for bad arguments.

set -euo pipefail

PROGRAM=$(basename -- "$0")
SCRIPT_DIR=$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
# shellcheck source=scripts/lib.sh
source "$SCRIPT_DIR/lib.sh"
HOST=127.0.0.1
SENDER_PORT=8001
OTHER_PORT=8002
# What the sender streams: this line again and again, at most this many bytes. Far more than
# the kernel buffers hold, so the server stalls long before the end (it takes a few MB).
STREAM_LINE="Experiment #1: the sender sends this line again and again and never reads a reply."
STREAM_MAX=200M

case ${1:-} in
    -h | --help)
        sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    "") ;;
    *)
        echo "$PROGRAM: unexpected argument '$1' (it takes none)" >&2
        echo "Try '$PROGRAM --help' for more information." >&2
        exit 2
        ;;
esac

# -- output helpers -------------------------------------------------------------------------

step() { printf '\n== Step %s\n' "$1"; }
shows() { printf '$ %s\n' "$1"; }
means() { printf -- '-> %s\n' "$1"; }
fail() {
    printf '\n%s: FAILED: %s\n' "$PROGRAM" "$1" >&2
    if [[ -s ${SERVER_LOG:-} ]]; then
        echo "server log (last lines, the sender's data left out):" >&2
        server_log_lines | tail -n 15 | sed 's/^/  | /' >&2
    fi
    exit 1
}

# The server's log lines, without the sender's data (a [CLIENT MESSAGE] line per recv() and
# the lines of text inside each message).
server_log_lines() {
    grep -a -E '^\[(INFO|ERROR|WARNING|DEBUG)\]|^\[CLIENT MESSAGE\] hello$' "$SERVER_LOG" || true
}

count_in_log() {
    grep -a -c -F -- "$1" "$SERVER_LOG" || true
}

# Waits up to $1 seconds for the command "${@:2}" to succeed, checking every 0.1 s.
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# -- cleanup: whatever happens, stop what we started ----------------------------------------

SERVER_PID="" SENDER_PID="" WORK=""
cleanup() {
    exec 7>&- 2>/dev/null || true
    for pid in $SENDER_PID $SERVER_PID; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [[ -n $WORK ]] && rm -rf -- "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! command -v nc >/dev/null; then
    echo "$PROGRAM: needs netcat (nc): apt-get install netcat-openbsd" >&2
    exit 1
fi

# -- build, lock ----------------------------------------------------------------------------

# Run again under xps-lock (hold_default_ports), the build is done already.
if [[ ${XPS_DEFAULT_PORTS_HELD:-} != "$PPID" ]]; then
    echo "$PROGRAM: building stage07 and sender (cargo build -p stage07 -p xps_tests --bins)"
    # From the root, as target_dir resolves a relative CARGO_TARGET_DIR there.
    if ! (cd -- "$ROOT" && cargo build --quiet -p stage07 -p xps_tests --bins); then
        echo "$PROGRAM: the build failed" >&2
        exit 1
    fi
fi
TARGET_DIR=$(target_dir "$ROOT")
STAGE07=$TARGET_DIR/debug/stage07
SENDER=$TARGET_DIR/debug/sender

# How to name a binary in the commands we show: ./relative from the current folder when it is
# inside it (./target/debug/stage07 from the workspace root), else its absolute path.
shown_path() {
    local here path
    here=$(pwd -P)
    path=$(readlink -m -- "$1")
    case $path in
        "$here"/*) printf './%s\n' "${path#"$here"/}" ;;
        *) printf '%s\n' "$path" ;;
    esac
}

# From here on the script runs under xps-lock, holding the default ports' lock.
hold_default_ports "$PROGRAM" "$TARGET_DIR/debug/xps-lock" "$(printf '\n%s: FAILED: %s' "$PROGRAM" "the default ports stay taken")"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/experiment1.XXXXXX")
SERVER_LOG=$WORK/server.log
SENDER_LOG=$WORK/sender.log

# -- 1. start the server --------------------------------------------------------------------

step "1/6: start the stage 7 server"
shows "$(shown_path "$STAGE07") --host $HOST        (stdout to a log file)"
"$STAGE07" --host "$HOST" >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
listening() { (($(count_in_log "Server listening on port") >= 4)) || ! kill -0 "$SERVER_PID" 2>/dev/null; }
wait_until 10 listening || fail "the server did not start listening within 10 s"
kill -0 "$SERVER_PID" 2>/dev/null || fail "the server exited at once (a port in use? is a server still running in another terminal?)"
server_log_lines
means "the server listens on 8001-8004 (pid $SERVER_PID)"

# -- 2. a client is served ------------------------------------------------------------------

step "2/6: a client on port $OTHER_PORT is served"
shows "printf 'hello\\n' | nc -N $HOST $OTHER_PORT"
reply=$(printf 'hello\n' | timeout 5 nc -N "$HOST" "$OTHER_PORT" || true)
printf '%s\n' "$reply"
[[ $reply == olleh ]] || fail "expected the reply 'olleh', got '$reply'"
means "the server replies at once: nothing is blocked yet"

# -- 3. the sender fills the buffers ----------------------------------------------------------

step "3/6: sender streams to port $SENDER_PORT and never reads the replies"
shows "yes '$STREAM_LINE' | head -c $STREAM_MAX | $(shown_path "$SENDER") --port $SENDER_PORT"
"$SENDER" --host "$HOST" --port "$SENDER_PORT" 2>"$SENDER_LOG" < <(yes "$STREAM_LINE" | head -c "$STREAM_MAX") &
SENDER_PID=$!
sender_blocked() { grep -q 'blocked in send()' "$SENDER_LOG" || ! kill -0 "$SENDER_PID" 2>/dev/null; }
wait_until 30 sender_blocked || fail "the sender did not block within 30 s: the server kept reading"
kill -0 "$SENDER_PID" 2>/dev/null || {
    cat "$SENDER_LOG"
    fail "the sender sent everything and exited: the server never blocked (non-blocking sockets, as in stage 8?)"
}
sed 's/^/  /' "$SENDER_LOG"
size_before=$(stat -c %s "$SERVER_LOG")
sleep 1
size_after=$(stat -c %s "$SERVER_LOG")
echo "  server log: $size_before bytes, and $size_after bytes one second later"
((size_after == size_before)) || fail "the server is still printing the sender's data: it is not stuck"
means "the replies nobody reads filled the sender's receive buffer and the server's send buffer;"
means "the server's blocking send() now waits for ever, and it stopped reading (and printing)"

# -- 4. nobody else is served ---------------------------------------------------------------

step "4/6: a second client on port $OTHER_PORT gets no reply"
shows "exec 7<>/dev/tcp/$HOST/$OTHER_PORT; printf 'hello\\n' >&7; read -t 3 reply <&7"
echo "  (bash's own TCP client: the same as typing hello into nc $HOST $OTHER_PORT)"
connections_before=$(count_in_log "new connection")
lines_at_stall=$(server_log_lines | wc -l)
exec 7<>"/dev/tcp/$HOST/$OTHER_PORT" || fail "could not connect to port $OTHER_PORT"
printf 'hello\n' >&7
if read -r -t 3 reply <&7; then
    fail "the second client got '$reply' while the sender was stuck: no stall"
fi
connections_after=$(count_in_log "new connection")
echo "  no reply within 3 s; 'new connection' lines in the server log: $connections_before before, $connections_after after"
((connections_after == connections_before)) || fail "the server accepted the second client: it is not stuck"
means "the kernel completed the connection (it queues it on the listening socket), but the"
means "server, stuck in send(), never gets back to epoll_wait() to accept it: one client that"
means "does not read stalls everyone"

# -- 5. the sender quits: everyone is served again ----------------------------------------------

step "5/6: stop the sender; the second client's reply arrives"
shows "kill $SENDER_PID      (what Ctrl+C in the sender's terminal does: the sender ends)"
# SIGTERM, not SIGINT: a shell script's background jobs ignore SIGINT.
kill -TERM "$SENDER_PID" 2>/dev/null || true
wait "$SENDER_PID" 2>/dev/null || true
SENDER_PID=""
if ! read -r -t 5 reply <&7; then
    fail "no reply within 5 s after the sender quit: the server did not recover"
fi
echo "  the second client received: $reply"
[[ $reply == olleh ]] || fail "expected 'olleh', got '$reply'"
exec 7>&-
echo "  server log since the stall:"
server_log_lines | tail -n +$((lines_at_stall + 1)) | sed 's/^/  | /'
means "the sender's socket closed with replies unread, so the kernel reset the connection"
means "and the server's blocked send() failed: the server destroyed that connection, went"
means "back to the loop, accepted the second client and answered it"

# -- 6. Ctrl+C -------------------------------------------------------------------------------

step "6/6: stop the server with Ctrl+C"
shows "kill -INT $SERVER_PID      (Ctrl+C in the server's terminal)"
kill -INT "$SERVER_PID"
server_exited() { ! kill -0 "$SERVER_PID" 2>/dev/null; }
wait_until 5 server_exited || fail "the server did not exit within 5 s of SIGINT"
status=0
wait "$SERVER_PID" || status=$?
SERVER_PID=""
server_log_lines | tail -n 1 | sed 's/^/  | /'
echo "  exit status: $status"
((status == 0)) || fail "the server exited with status $status after Ctrl+C (expected 0)"

printf '\n%s: OK: saw the stall (steps 3-4) and the recovery (step 5)\n' "$PROGRAM"
