#!/usr/bin/env bash
# memcheck.sh: runs stage06 and stage07 under Valgrind's memcheck through a client session and
# Ctrl+C (SIGINT), and checks the course's memory discipline: no memory errors, no memory
# definitely lost.
#
# Usage: scripts/memcheck.sh
#
# For each stage it builds the debug binaries, starts `stageNN --host 127.0.0.1 0 0` under
# valgrind, waits for its "Server listening on port N" lines, and runs a client session: round
# trips on every port, a 300 KB message streamed while reading, a client that resets, one that
# leaves before its reply, one that resets right after connecting, the workspace's loadgen for
# a second, and one client still connected when Ctrl+C comes. Then it sends SIGINT, as Ctrl+C
# in the server's terminal does, and reads valgrind's summary.
#
# A stage passes with "ERROR SUMMARY: 0 errors" and "definitely lost: 0 bytes" (or "no leaks
# are possible"). "possibly lost" and "still reachable" are allowed: stage 6 leaves SIGINT to
# its default action, so it dies with its global lists still allocated (reachable), and in
# stage 7 the ctrlc crate's thread is still running at exit (its thread descriptor shows as
# possibly lost). Stage 7 must also exit 0 after Ctrl+C (its graceful shutdown destroyed the
# core); stage 6 must die by SIGINT.
#
# Valgrind's reports and the servers' output are kept in target/memcheck/ (in
# $CARGO_TARGET_DIR/memcheck/ when CARGO_TARGET_DIR is set, as cargo then builds there).
#
# Exit status: 0 if both stages pass, 1 if one fails (or a client check fails), 2 if valgrind
# is not installed or the build fails. Needs bash, perl (core modules only) and valgrind.

set -euo pipefail

PROGRAM=$(basename -- "$0")
SCRIPT_DIR=$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")
ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
# shellcheck source=scripts/lib.sh
source "$SCRIPT_DIR/lib.sh"
# Where cargo puts the binaries: ROOT/target, or CARGO_TARGET_DIR if set (cargo runs from ROOT).
TARGET_DIR=$(target_dir "$ROOT")
BIN_DIR="$TARGET_DIR/debug"
OUT="$TARGET_DIR/memcheck"
# Valgrind runs a program some 20-50 times slower: generous timeouts.
START_TIMEOUT=60
EXIT_TIMEOUT=60

if [ $# -gt 0 ]; then
    case "$1" in
        -h | --help)
            sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "$PROGRAM: takes no arguments (try --help)" >&2
            exit 2
            ;;
    esac
fi

if ! command -v valgrind >/dev/null 2>&1; then
    echo "$PROGRAM: valgrind is not installed (on Debian/Ubuntu: sudo apt-get install valgrind)" >&2
    exit 2
fi
if ! command -v perl >/dev/null 2>&1; then
    echo "$PROGRAM: perl is needed for the client session" >&2
    exit 2
fi

echo "== building the debug binaries (stage06, stage07, loadgen)"
if ! (cd "$ROOT" && cargo build -q -p stage06 -p stage07 -p xps_tests); then
    echo "$PROGRAM: cargo build failed" >&2
    exit 2
fi
mkdir -p "$OUT"

# The client session, in perl with core modules only: every read has a timeout.
CLIENT="$OUT/client.pl"
cat >"$CLIENT" <<'PERL'
use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_LINGER);

my $TIMEOUT = 30;    # seconds; valgrind is slow
my @ports = @ARGV or die "usage: client.pl PORT...\n";

sub connect_to {
    my ($port) = @_;
    return IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => $TIMEOUT)
      || die "could not connect to port $port: $!\n";
}

# The reply to one message received whole: reversed, a trailing "\n" kept last.
sub expected {
    my ($m) = @_;
    my $nl = ($m =~ s/\n\z//) ? "\n" : "";
    return scalar(reverse $m) . $nl;
}

sub send_all {
    my ($s, $m) = @_;
    my $off = 0;
    while ($off < length $m) {
        my $n = syswrite($s, $m, length($m) - $off, $off);
        die "send failed: $!\n" unless defined $n;
        $off += $n;
    }
}

sub read_n {
    my ($s, $n) = @_;
    my $got = '';
    my $sel = IO::Select->new($s);
    while (length($got) < $n) {
        $sel->can_read($TIMEOUT) or die "no reply within ${TIMEOUT}s (got " . length($got) . " of $n bytes)\n";
        my $r = sysread($s, my $buf, 65536);
        die "read failed: $!\n" unless defined $r;
        die "the server closed the connection after " . length($got) . " of $n bytes\n" if $r == 0;
        $got .= $buf;
    }
    return $got;
}

sub round_trip {
    my ($s, $m) = @_;
    send_all($s, $m);
    my $reply = read_n($s, length $m);
    $reply eq expected($m) or die "wrong reply to '$m': got '$reply'\n";
}

sub reset_close {
    my ($s) = @_;
    setsockopt($s, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0)) or die "setsockopt(SO_LINGER) failed: $!\n";
    close $s;
}

# Sends $len bytes while reading (a client that does not read would block the server); checks
# that as many bytes, and the same ones, come back (each recv() piece is reversed on its own).
sub stream {
    my ($s, $len) = @_;
    my $data = join '', map { chr(ord('a') + $_ % 26) } 0 .. $len - 1;
    $s->blocking(0);
    my ($off, $got) = (0, '');
    my $sel = IO::Select->new($s);
    while (length($got) < $len) {
        my ($r, $w) = IO::Select->select($sel, $off < $len ? $sel : undef, undef, $TIMEOUT);
        die "stream stalled: sent $off, received " . length($got) . " of $len bytes\n" unless $r || $w;
        if ($w && @$w && $off < $len) {
            my $n = syswrite($s, $data, 65536 < $len - $off ? 65536 : $len - $off, $off);
            $off += $n if defined $n;
        }
        if ($r && @$r) {
            my $n = sysread($s, my $buf, 262144);
            die "the server closed the connection during the stream\n" if defined $n && $n == 0;
            $got .= $buf if defined $n;
        }
    }
    $s->blocking(1);
    join('', sort split //, $got) eq join('', sort split //, $data) or die "the streamed reply has other bytes than were sent\n";
}

for my $port (@ports) {
    my $c = connect_to($port);
    round_trip($c, "message $_ to port $port\n") for 1 .. 3;
    round_trip($c, "\n");
    round_trip($c, "no newline");
    close $c;

    my $r = connect_to($port);
    round_trip($r, "about to reset\n");
    reset_close($r);

    my $e = connect_to($port);
    send_all($e, "leaving before the reply\n");
    close $e;

    reset_close(connect_to($port));
    close(connect_to($port));
    print "client: port $port: round trips, a reset, a client leaving early: ok\n";
}
my $big = connect_to($ports[0]);
stream($big, 300_000);
close $big;
print "client: port $ports[0]: 300000 bytes streamed while reading came back: ok\n";
PERL

SERVER_PID=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    exec 3>&- 2>/dev/null || true
}
trap cleanup EXIT

# Runs one stage under valgrind; prints its verdict; returns 0 if it passes.
check_stage() {
    local stage=$1 expect_exit=$2
    local vg_log="$OUT/$stage.valgrind.log" server_log="$OUT/$stage.out.log"
    rm -f "$vg_log" "$server_log"
    echo
    echo "== $stage under valgrind memcheck"
    if [ ! -x "$BIN_DIR/$stage" ]; then
        echo "FAIL $stage: no binary at $BIN_DIR/$stage after the build"
        return 1
    fi

    # The valgrind process *is* the server's process (valgrind runs the program in its own
    # pid), so SIGINT to it reaches the server. A background job of a script starts with SIGINT
    # ignored, and stage 6 keeps SIGINT's default action, so it would ignore our Ctrl+C: perl
    # restores the default action, then execs valgrind in the same process.
    perl -e '$SIG{INT} = "DEFAULT"; exec @ARGV or die "exec $ARGV[0]: $!\n"' \
        valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
        --error-exitcode=99 --num-callers=30 --log-file="$vg_log" \
        "$BIN_DIR/$stage" --host 127.0.0.1 0 0 >"$server_log" 2>&1 &
    SERVER_PID=$!

    local waited=0 ports
    while :; do
        ports=$(sed -n 's/^\[INFO\] .*Server listening on port \([0-9]*\).*/\1/p' "$server_log" | tr '\n' ' ')
        [ "$(wc -w <<<"$ports")" -ge 2 ] && break
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            local status=0
            wait "$SERVER_PID" || status=$?
            SERVER_PID=""
            echo "FAIL $stage: it exited (status $status) before listening; its output and valgrind's:"
            sed 's/^/  | /' "$server_log" | tail -20
            sed 's/^/  | /' "$vg_log" 2>/dev/null | tail -10
            return 1
        fi
        if [ "$waited" -ge $((START_TIMEOUT * 10)) ]; then
            echo "FAIL $stage: it did not start listening within ${START_TIMEOUT}s; its output:"
            sed 's/^/  | /' "$server_log" | tail -20
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    echo "listening on ports: $ports(pid $SERVER_PID)"

    # shellcheck disable=SC2086 # the ports are separate arguments
    if ! perl "$CLIENT" $ports; then
        echo "FAIL $stage: the client session failed (above); the server's last lines:"
        tail -20 "$server_log" | sed 's/^/  | /'
        return 1
    fi
    local first_port=${ports%% *}
    if ! "$BIN_DIR/loadgen" --port "$first_port" --clients 4 --size 64 --seconds 1 >"$OUT/$stage.loadgen.log" 2>&1; then
        echo "FAIL $stage: loadgen found wrong or missing replies:"
        sed 's/^/  | /' "$OUT/$stage.loadgen.log" | tail -10
        return 1
    fi
    echo "loadgen: $(grep '^RESULT' "$OUT/$stage.loadgen.log" || echo 'no RESULT line')"

    # One client still connected when Ctrl+C comes.
    local reply=""
    if ! exec 3<>"/dev/tcp/127.0.0.1/$first_port"; then
        echo "FAIL $stage: could not connect the client kept for Ctrl+C"
        return 1
    fi
    printf 'still here\n' >&3
    read -r -t 30 -u 3 reply || true
    if [ "$reply" != "ereh llits" ]; then
        echo "FAIL $stage: the client kept for Ctrl+C got '$reply' instead of 'ereh llits'"
        return 1
    fi

    echo "sending SIGINT (Ctrl+C) to $stage"
    kill -INT "$SERVER_PID"
    waited=0
    # Until it exits: gone, or a zombie waiting for `wait` (state Z in /proc/PID/stat).
    while [ -r "/proc/$SERVER_PID/stat" ] && [ "$(sed 's/.*) //' "/proc/$SERVER_PID/stat" | cut -d' ' -f1)" != Z ]; do
        if [ "$waited" -ge $((EXIT_TIMEOUT * 10)) ]; then
            echo "FAIL $stage: still running ${EXIT_TIMEOUT}s after SIGINT; killed"
            kill -KILL "$SERVER_PID" || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    local status=0
    wait "$SERVER_PID" || status=$?
    SERVER_PID=""
    exec 3>&-

    local errors definite verdict=0
    errors=$(grep -o 'ERROR SUMMARY: [0-9,]* errors' "$vg_log" | tail -1 || true)
    definite=$(grep -o 'definitely lost: [0-9,]* bytes' "$vg_log" | tail -1 || true)
    if [ -z "$definite" ] && grep -q 'no leaks are possible' "$vg_log"; then
        definite="definitely lost: 0 bytes (all heap blocks were freed: no leaks are possible)"
    fi
    echo "valgrind: ${errors:-no ERROR SUMMARY line}; ${definite:-no leak summary}"
    grep -E 'possibly lost:|still reachable:' "$vg_log" | sed 's/^==[0-9]*== */          /' || true
    if [ "${errors:-x}" != "ERROR SUMMARY: 0 errors" ]; then
        echo "  memory errors (or definite leaks): see $vg_log"
        verdict=1
    fi
    case "$definite" in
        "definitely lost: 0 bytes"*) ;;
        *)
            echo "  memory definitely lost: see the 'definitely lost' records in $vg_log"
            verdict=1
            ;;
    esac
    if [ "$status" -eq 99 ]; then
        echo "  exit status 99: valgrind's --error-exitcode, it found errors (above)"
        verdict=1
    elif [ "$status" -ne "$expect_exit" ]; then
        echo "  exit status $status after SIGINT, expected $expect_exit" \
            "($([ "$expect_exit" -eq 0 ] && echo 'a graceful shutdown exits 0' || echo 'killed by SIGINT: 128 + 2'))"
        verdict=1
    else
        echo "exit status $status after SIGINT, as expected"
    fi
    if [ "$verdict" -eq 0 ]; then
        echo "PASS $stage: 0 errors, 0 bytes definitely lost"
    else
        echo "FAIL $stage (valgrind report: $vg_log; server output: $server_log)"
    fi
    return "$verdict"
}

failed=0
# Stage 6 keeps SIGINT's default action: killed by it, status 128 + 2.
check_stage stage06 130 || failed=1
# Stage 7 shuts down gracefully on Ctrl+C: status 0.
check_stage stage07 0 || failed=1

echo
if [ "$failed" -eq 0 ]; then
    echo "memcheck: both stages pass"
else
    echo "memcheck: FAILED (reports in $OUT)"
fi
exit "$failed"
