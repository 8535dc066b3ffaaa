//! A client that reads while it writes ([`pump`]), and the check of a large reply: consecutive
//! pieces of what was sent, each reversed ([`check_reversed_chunks`]).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Instant;

use super::STALL;
use crate::{Rng, escape};

// ---------------------------------------------------------------------------------------------
// A client that reads while it writes
// ---------------------------------------------------------------------------------------------

/// What one [`pump`] did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pumped {
    /// Bytes written.
    pub sent: usize,
    /// Bytes read.
    pub received: usize,
    /// How many `write()` calls it took to send them.
    pub writes: usize,
    /// Whether it stopped early at `quit_at`.
    pub quit: bool,
}

/// The largest single `write()` [`pump`] makes.
const MAX_WRITE: usize = 64 * 1024;

/// Sends `out` `repeat` times over `stream` while reading, until all of it went out and
/// `expect` bytes came back (each batch of bytes read is given to `on_recv`), or until the bytes
/// sent plus received reach `quit_at`.
///
/// It never stops reading while it has bytes to send, so the server's blocking `send()` to this
/// client always completes. Errors: the server closed the connection or reset it, more bytes
/// came back than were sent, or nothing moved for [`STALL`].
pub fn pump(
    stream: &TcpStream,
    out: &[u8],
    repeat: usize,
    expect: usize,
    quit_at: Option<usize>,
    on_recv: &mut dyn FnMut(&[u8]),
) -> Result<Pumped, String> {
    stream.set_nonblocking(true).map_err(|e| format!("set_nonblocking failed: {e}"))?;
    let total = out.len() * repeat;
    let mut done = Pumped::default();
    let mut buf = vec![0u8; 256 * 1024];
    let mut last_progress = Instant::now();
    let mut stream = stream;
    loop {
        if quit_at.is_some_and(|q| done.sent + done.received >= q) {
            done.quit = true;
            return Ok(done);
        }
        if done.sent == total && done.received >= expect {
            return Ok(done);
        }
        let mut progressed = false;
        // Read everything that has arrived.
        loop {
            match stream.read(&mut buf) {
                Ok(0) => {
                    return Err(format!(
                        "the server closed the connection after {} of {total} bytes sent and {} of {expect} \
                         received",
                        done.sent, done.received
                    ));
                }
                Ok(n) => {
                    on_recv(&buf[..n]);
                    done.received += n;
                    progressed = true;
                    if done.received > expect {
                        return Err(format!(
                            "{} bytes came back, more than the {expect} sent (with {} of {total} sent so far)",
                            done.received, done.sent
                        ));
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(format!(
                        "reading failed after {} of {total} bytes sent and {} of {expect} received: {e}",
                        done.sent, done.received
                    ));
                }
            }
        }
        // Then write what the socket takes, without waiting.
        if done.sent < total {
            let offset = done.sent % out.len();
            let mut end = (offset + MAX_WRITE).min(out.len());
            if let Some(q) = quit_at {
                // Stop writing at the quit point, so a client can leave in the middle of a message.
                end = end.min(offset + q.saturating_sub(done.sent + done.received).max(1));
            }
            match stream.write(&out[offset..end]) {
                Ok(n) => {
                    done.sent += n;
                    done.writes += 1;
                    progressed |= n > 0;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => {
                    return Err(format!(
                        "writing failed after {} of {total} bytes sent and {} of {expect} received: {e}",
                        done.sent, done.received
                    ));
                }
            }
        }
        if progressed {
            last_progress = Instant::now();
            continue;
        }
        if last_progress.elapsed() > STALL {
            return Err(format!(
                "nothing moved for {STALL:?}: {} of {total} bytes sent, {} of {expect} received",
                done.sent, done.received
            ));
        }
        wait_ready(stream, done.sent < total);
    }
}

/// Waits up to 50 ms for `stream` to be readable (or writable, if `writing`).
fn wait_ready(stream: &TcpStream, writing: bool) {
    let mut pfd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLIN | if writing { libc::POLLOUT } else { 0 },
        revents: 0,
    };
    // SAFETY: `pfd` is a live local and the count passed is 1, its exact number of entries; the
    // fd belongs to `stream`, which stays open for the call.
    unsafe { libc::poll(&mut pfd, 1, 50) };
}

/// Checks that `reply` is `sent` cut into consecutive pieces of at most `max_piece` bytes,
/// each reversed in place: what the server sends back when it answers each `recv()` on its own.
/// `sent` must not contain `\n` (the server keeps a piece's trailing `\n` last). Returns the
/// piece lengths, or a description of where the reply stops matching.
pub fn check_reversed_chunks(sent: &[u8], reply: &[u8], max_piece: usize) -> Result<Vec<usize>, String> {
    let n = sent.len();
    if reply.len() != n {
        return Err(format!("{} bytes came back for {n} sent", reply.len()));
    }
    // `sent` reversed: the reversal of sent[i..=j] is rev[n-1-j..n-i], one memcmp per candidate.
    let rev: Vec<u8> = sent.iter().rev().copied().collect();
    // Where each byte value occurs in `sent`: the candidates for a piece's last byte.
    let mut positions: Vec<Vec<u32>> = vec![Vec::new(); 256];
    for (i, &b) in sent.iter().enumerate() {
        positions[usize::from(b)].push(i as u32);
    }
    // Depth-first search over the possible cuts, longest piece first. Each entry: where its piece
    // starts, and the ends still to try. With random bytes a wrong cut fails within a few bytes,
    // so the search almost never backs up.
    let candidates = |start: usize| -> Vec<usize> {
        let list = &positions[usize::from(reply[start])];
        let limit = (start + max_piece).min(n);
        let lo = list.partition_point(|&j| (j as usize) < start);
        let hi = list.partition_point(|&j| (j as usize) < limit);
        list[lo..hi].iter().map(|&j| j as usize).filter(|&j| reply[start..=j] == rev[n - 1 - j..n - start]).collect()
    };
    let mut stack: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut start = 0;
    let mut furthest = 0;
    let mut steps = 0u32;
    loop {
        if start == n {
            let starts: Vec<usize> = stack.iter().map(|(s, _)| *s).chain([n]).collect();
            return Ok(starts.windows(2).map(|w| w[1] - w[0]).collect());
        }
        furthest = furthest.max(start);
        stack.push((start, candidates(start)));
        steps += 1;
        loop {
            let Some((_, ends)) = stack.last_mut() else {
                return Err(explain_mismatch(sent, reply, &rev, furthest, max_piece));
            };
            if let Some(end) = ends.pop() {
                start = end + 1;
                break;
            }
            stack.pop();
            if steps > 100_000 {
                return Err(format!("gave up after {steps} tries to cut the reply into reversed pieces"));
            }
        }
    }
}

/// Why no piece starting at `start` matches: the closest candidate (the run of sent bytes whose
/// reversal agrees longest with the reply there) and where it stops agreeing.
fn explain_mismatch(sent: &[u8], reply: &[u8], rev: &[u8], start: usize, max_piece: usize) -> String {
    let n = sent.len();
    let common = |j: usize| reply[start..=j].iter().zip(&rev[n - 1 - j..n - start]).take_while(|(a, b)| a == b).count();
    let best = (start..(start + max_piece).min(n)).filter(|&j| sent[j] == reply[start]).map(|j| (common(j), j)).max();
    let around = |bytes: &[u8], at: usize| escape(&bytes[at.saturating_sub(8)..(at + 8).min(bytes.len())]);
    match best {
        Some((agree, end)) if agree > 1 => {
            let bad = start + agree;
            format!(
                "the piece starting at offset {start} looks like sent bytes {start}..{} reversed ({} bytes), but only \
                 its first {agree} bytes agree: at reply offset {bad} came {} where {} was expected \
                 (reply around it: {}; expected around it: {})",
                end + 1,
                end + 1 - start,
                escape(&reply[bad..=bad]),
                escape(&rev[n - 1 - end + agree..][..1]),
                around(reply, bad),
                around(&rev[n - 1 - end..n - start], agree),
            )
        }
        _ => format!(
            "from offset {start} on, the reply is not the reversal of any run of at most {max_piece} sent bytes \
             starting there (reply there: {}; sent there: {})",
            escape(&reply[start..(start + 40).min(n)]),
            escape(&sent[start..(start + 40).min(n)])
        ),
    }
}

/// `len` random bytes, any value but `\n`.
pub(crate) fn random_bytes_no_newline(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend(rng.next_u64().to_le_bytes().map(|b| if b == b'\n' { b'N' } else { b }));
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::super::MAX_RECV;
    use super::*;

    /// What the server does to one piece: reverses it.
    fn reversed_pieces(sent: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut start = 0;
        for &end in cuts.iter().chain([&sent.len()]) {
            out.extend(sent[start..end].iter().rev());
            start = end;
        }
        out
    }

    #[test]
    fn reversed_pieces_are_found_whatever_their_sizes() {
        let sent = random_bytes_no_newline(&mut Rng::new(7), 300_000);
        for cuts in [vec![], vec![1], vec![1, 2, 3], vec![99_999, 199_999], vec![5, 70_000, 70_001, 170_000, 299_999]] {
            let reply = reversed_pieces(&sent, &cuts);
            let pieces = check_reversed_chunks(&sent, &reply, 300_000).unwrap();
            let found: Vec<usize> = pieces
                .iter()
                .scan(0, |at, len| {
                    *at += len;
                    Some(*at)
                })
                .collect();
            let want: Vec<usize> = cuts.iter().copied().chain([sent.len()]).collect();
            assert_eq!(found, want);
        }
    }

    #[test]
    fn wrong_or_missing_bytes_and_too_long_pieces_are_caught() {
        let sent = random_bytes_no_newline(&mut Rng::new(8), 50_000);
        let mut reply = reversed_pieces(&sent, &[10_000, 30_000]);
        assert!(check_reversed_chunks(&sent, &reply, MAX_RECV).is_ok());
        assert!(check_reversed_chunks(&sent, &reply, 15_000).is_err(), "a 20,000-byte piece is over 15,000");
        assert!(check_reversed_chunks(&sent, &reply[1..], MAX_RECV).is_err());
        reply[20_000] ^= 1;
        let err = check_reversed_chunks(&sent, &reply, MAX_RECV).unwrap_err();
        assert!(err.contains("starting at offset 10000") && err.contains("at reply offset 20000"), "{err}");
        // Pieces in the wrong order: the first one sent back last. (Two neighbours swapped cannot
        // be caught: rev(b) + rev(a) is rev(a + b), a valid reply for a and b read at once.)
        let (a, b, c) = (&sent[..10_000], &sent[10_000..20_000], &sent[20_000..30_000]);
        let late: Vec<u8> = [b, c, a].iter().flat_map(|piece| piece.iter().rev()).copied().collect();
        assert!(check_reversed_chunks(&sent[..30_000], &late, MAX_RECV).is_err());
    }
}
