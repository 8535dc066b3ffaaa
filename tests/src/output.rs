//! What a server under test prints: read on threads of their own as it arrives (a server whose
//! stdout pipe is full blocks), the last 256 KiB kept for failure messages and log checks, and
//! the ports of its `Server listening on port N` lines picked out as they pass.

use std::io::Read;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::crash;

/// How much of a server's output is kept for failure messages and log checks.
const KEEP_OUTPUT: usize = 256 * 1024;

/// What the output readers share with the test.
#[derive(Default)]
struct Output {
    /// The last `KEEP_OUTPUT` bytes of stdout and stderr, interleaved a whole line at a time.
    tail: Vec<u8>,
    /// Ports from `Server listening on port N` lines, in order.
    ports: Vec<u16>,
    /// The line read so far, to find a port line split across reads.
    partial_line: Vec<u8>,
    /// How many of the output streams have closed.
    closed: usize,
    /// How many streams are read.
    streams: usize,
    /// How many bytes arrived in all, to tell when the output has settled.
    total: usize,
    /// How many of them were dropped from the front of `tail`.
    dropped: usize,
}

impl Output {
    fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len();
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > KEEP_OUTPUT {
            let cut = self.tail.len() - KEEP_OUTPUT / 2;
            self.tail.drain(..cut);
            self.dropped += cut;
        }
        for &b in chunk {
            if b == b'\n' {
                let line = strip_ansi(&self.partial_line);
                if let Some(port) = parse_listening_port(&line) {
                    self.ports.push(port);
                }
                self.partial_line.clear();
            } else if self.partial_line.len() < 4096 {
                self.partial_line.push(b);
            }
        }
    }
}

/// A server's output, as its reader threads collect it.
#[derive(Clone, Default)]
pub(crate) struct Log(Arc<(Mutex<Output>, Condvar)>);

impl Log {
    /// Starts a thread per stream that reads it to its end into the log.
    pub fn read_from(streams: Vec<Box<dyn Read + Send>>) -> Log {
        let log = Log::default();
        log.lock().streams = streams.len();
        for stream in streams {
            let log = log.clone();
            thread::spawn(move || log.read_to_end(stream));
        }
        log
    }

    fn lock(&self) -> MutexGuard<'_, Output> {
        self.0.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads `stream` to its end into the log a whole line at a time, so that stdout's lines
    /// never land inside a line of stderr's (a panic's backtrace, which the blame is read from,
    /// stays whole). A line longer than the read buffer, or the last one when the stream
    /// closes, goes in as it is.
    fn read_to_end(&self, mut stream: Box<dyn Read + Send>) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut pending: Vec<u8> = Vec::new();
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            pending.extend_from_slice(&buf[..n]);
            let whole = match pending.iter().rposition(|&b| b == b'\n') {
                Some(last) => last + 1,
                None if pending.len() >= buf.len() => pending.len(),
                None => continue,
            };
            self.lock().push(&pending[..whole]);
            pending.drain(..whole);
            self.0.1.notify_all();
        }
        let mut out = self.lock();
        out.push(&pending);
        out.partial_line.clear();
        out.closed += 1;
        drop(out);
        self.0.1.notify_all();
    }

    /// Waits until `n` port lines have arrived, every stream has closed, or `deadline`; the
    /// ports seen by then.
    pub fn wait_ports(&self, n: usize, deadline: Instant) -> Vec<u16> {
        let mut out = self.lock();
        while out.ports.len() < n && out.closed < out.streams && Instant::now() < deadline {
            out = self.0.1.wait_timeout(out, Duration::from_millis(50)).unwrap_or_else(|e| e.into_inner()).0;
        }
        out.ports.clone()
    }

    /// Waits up to `timeout` for every stream to close (the process and all that shared its
    /// output have exited), so that what it printed last is in the log.
    pub fn wait_closed(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let all_closed = || {
            let out = self.lock();
            out.closed >= out.streams
        };
        while !all_closed() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to half a second for the output to stop growing.
    fn settle(&self) {
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut seen = self.lock().total;
        while Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
            let now = self.lock().total;
            if now == seen {
                break;
            }
            seen = now;
        }
    }

    /// A mark in the output: how many bytes have arrived so far.
    pub fn mark(&self) -> usize {
        self.lock().total
    }

    /// The kept output after `mark` (all that is kept, if the part after it no longer all is),
    /// colours removed; waits up to half a second for the output to settle first.
    pub fn since(&self, mark: usize) -> String {
        self.settle();
        let out = self.lock();
        let from = mark.saturating_sub(out.dropped).min(out.tail.len());
        strip_ansi(&out.tail[from..])
    }

    /// The kept output, colours removed.
    fn text(&self) -> String {
        strip_ansi(&self.lock().tail)
    }

    /// See [`crate::Server::log_tail`].
    pub fn tail(&self, lines: usize) -> String {
        self.settle();
        let text = String::from_utf8_lossy(&self.lock().tail).into_owned();
        let all: Vec<&str> = text.lines().collect();
        let mut tail = String::new();
        for line in &all[all.len().saturating_sub(lines)..] {
            let line = strip_ansi(line.as_bytes());
            if line.chars().count() > 160 {
                let short: String = line.chars().take(157).collect();
                tail.push_str(&format!("{short}..."));
            } else {
                tail.push_str(&line);
            }
            tail.push('\n');
        }
        tail
    }

    /// See [`crate::Server::panic_report`].
    pub fn panic_report(&self) -> Option<String> {
        crash::find_panic(&self.text())
    }

    /// See [`crate::Server::log_contains`].
    pub fn contains(&self, needle: &str) -> bool {
        self.text().contains(needle)
    }

    /// See [`crate::Server::crash_lines`].
    pub fn crash_lines(&self) -> Vec<String> {
        self.settle();
        crash::crash_lines_of(&self.text())
    }
}

/// Removes ANSI colour codes (`ESC [ ... m`), so coloured logs parse like plain ones.
fn strip_ansi(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The port of a `... Server listening on port N` log line.
fn parse_listening_port(line: &str) -> Option<u16> {
    // Only log lines count: a client's message echoed by the server must not look like a port.
    let (_, rest) = line.strip_prefix("[INFO]")?.split_once("Server listening on port ")?;
    rest.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lines_are_found_plain_coloured_and_split() {
        let mut out = Output::default();
        out.push(b"[INFO] main() : Server listening on port 8001\n\x1b[44m[INFO]\x1b[0m \x1b[32mxps_core_start()\x1b[0m : Server listen");
        out.push(b"ing on port 8002\n[CLIENT MESSAGE] Server listening on port x\n");
        assert_eq!(out.ports, vec![8001, 8002]);
    }

    #[test]
    fn a_line_of_one_stream_is_never_cut_by_a_line_of_the_other() {
        let (stderr, mut stderr_w) = std::io::pipe().expect("pipe");
        let (stdout, mut stdout_w) = std::io::pipe().expect("pipe");
        let log = Log::read_from(vec![Box::new(stderr), Box::new(stdout)]);
        let pause = || thread::sleep(Duration::from_millis(100));
        use std::io::Write;
        stderr_w.write_all(b"  10: stage06::network::xps_conn").unwrap();
        pause();
        stdout_w.write_all(b"[CLIENT MESSAGE] hello\n").unwrap();
        pause();
        stderr_w.write_all(b"ection::xps_connection_destroy\n  11: stage06::xps_loop_run\nlast, unfinished").unwrap();
        drop((stderr_w, stdout_w));
        log.wait_closed(Duration::from_secs(5));
        let text = log.text();
        assert!(text.contains("  10: stage06::network::xps_connection::xps_connection_destroy\n"), "{text:?}");
        assert!(text.contains("[CLIENT MESSAGE] hello\n"), "{text:?}");
        assert!(text.ends_with("last, unfinished"), "the stream's last bytes are kept: {text:?}");
    }

    #[test]
    fn what_came_after_a_mark_is_found_after_the_front_was_dropped() {
        let log = Log::default();
        log.lock().push(b"before\n");
        let mark = log.mark();
        log.lock().push(&vec![b'x'; KEEP_OUTPUT]);
        log.lock().push(b"\nafter\n");
        let since = log.since(mark);
        assert!(since.ends_with("\nafter\n") && !since.contains("before"), "{}", &since[since.len() - 20..]);
        let mark = log.mark();
        log.lock().push(b"last\n");
        assert_eq!(log.since(mark), "last\n");
    }
}
