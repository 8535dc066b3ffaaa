//! Many clients at once, large streams, and memory that stays flat.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::streams::{check_reversed_chunks, pump, random_bytes_no_newline};
use super::{DEFAULT_STORM_SEED, MAX_RECV, fds, status_bytes, still_running, wait_fds_back};
use crate::{Client, Failure, Rng, Server, escape, expected_reply};

/// The storm's seed: `XPS_STORM_SEED` (decimal or 0x-hex) if set, else [`DEFAULT_STORM_SEED`].
fn storm_seed() -> u64 {
    let parse = |s: &str| match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    };
    std::env::var("XPS_STORM_SEED").ok().and_then(|s| parse(s.trim())).unwrap_or(DEFAULT_STORM_SEED)
}

/// What the storm's clients did, for the report.
#[derive(Default)]
struct StormCounts {
    checked_messages: AtomicUsize,
    exact_messages: AtomicUsize,
    checked_bytes: AtomicUsize,
    stayed: AtomicUsize,
    quit: AtomicUsize,
}

/// A storm of random clients: [`STORM_THREADS`] at once for [`STORM_TIME`], each opening one
/// connection after another. Messages are random, up to 300 KB, sent while reading. Some
/// clients stay to the end and check every reply: a message written in one piece of at most
/// 1 KB comes back exactly reversed, a larger one comes back whole as its pieces reversed (see
/// the module docs). The others leave at a random point, in the middle of a message or of its
/// reply, with a FIN or a reset. Two idle clients stay connected throughout. Afterwards the
/// server still runs, serves a new client, and has its starting descriptors.
///
/// The seed is printed; `XPS_STORM_SEED=<seed> cargo test ... storm` replays the same clients
/// (the interleaving differs from run to run, the clients' choices do not).
pub fn storm_of_random_clients_gets_every_byte_back_and_leaks_no_fd(server: &Server) -> Result<(), Failure> {
    let seed = storm_seed();
    println!("storm: seed {seed:#x} (set XPS_STORM_SEED={seed:#x} to replay)");
    let ports = server.ports().to_vec();
    let baseline = fds(server)?;
    let idle: Vec<Client> = (0..2)
        .map(|i| Client::connect(server, ports[i % ports.len()], format!("idle client {i}")))
        .collect::<Result<_, _>>()?;

    let counts = StormCounts::default();
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<(String, String)>> = Mutex::new(None);
    let deadline = Instant::now() + STORM_TIME;
    thread::scope(|scope| {
        for t in 0..STORM_THREADS {
            let (counts, stop, first_error, ports) = (&counts, &stop, &first_error, &ports);
            scope.spawn(move || {
                let mut rng = Rng::new(seed ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let mut session = 0;
                // The first session of each thread always stays, so the storm checks something
                // even on a slow machine.
                while !stop.load(Ordering::Relaxed) && (session == 0 || Instant::now() < deadline) {
                    let label = format!("storm client {t}.{session}");
                    let port = ports[rng.below(ports.len() as u64) as usize];
                    let stays = session == 0 || rng.below(10) < 6;
                    if let Err(why) = storm_session(server, port, &label, stays, &mut rng, counts) {
                        stop.store(true, Ordering::Relaxed);
                        first_error.lock().unwrap().get_or_insert((label, why));
                        return;
                    }
                    session += 1;
                }
            });
        }
    });

    let report = format!(
        "{} threads for {STORM_TIME:?}: {} sessions stayed, {} left early; {} replies checked ({} exact, {} bytes)",
        STORM_THREADS,
        counts.stayed.load(Ordering::Relaxed),
        counts.quit.load(Ordering::Relaxed),
        counts.checked_messages.load(Ordering::Relaxed),
        counts.exact_messages.load(Ordering::Relaxed),
        counts.checked_bytes.load(Ordering::Relaxed),
    );
    println!("storm: {report}");
    if let Some((label, why)) = first_error.into_inner().unwrap() {
        return Err(Failure::new(format!("{label} saw the server misbehave during the storm"))
            .detail("observed", why)
            .detail("storm", report)
            .detail(
                "replay",
                format!("XPS_STORM_SEED={seed:#x} cargo test -p {} --test hardening storm", server.name()),
            )
            .hint(
                "each recv() is answered on its own: its bytes reversed, all of them sent back (send() until \
                 every byte is written), on the connection they came from; a client that leaves or resets must \
                 only end its own connection",
            )
            .log_of(server));
    }
    still_running(server, "during the storm")?;
    for (i, client) in idle.into_iter().enumerate() {
        let mut client = client;
        client.round_trip(server, format!("idle client {i} wakes up\n").as_bytes())?;
        client.close();
    }
    let mut new = Client::connect(server, ports[0], "new client after the storm")?;
    new.round_trip(server, b"after the storm\n")?;
    new.close();
    wait_fds_back(server, baseline, &format!("after the storm (seed {seed:#x}: {report})"))
}

/// How many client threads the storm runs at once.
pub const STORM_THREADS: usize = 24;
/// How long the storm's threads start new sessions.
pub const STORM_TIME: Duration = Duration::from_secs(3);
/// A message this long or shorter, written in one `write()`, must come back exactly reversed.
const SMALL_MESSAGE: usize = 1024;

/// One connection of the storm: 1 to 4 random messages; a client that `stays` checks every
/// reply and then closes or resets, one that does not leaves at a random point.
fn storm_session(
    server: &Server,
    port: u16,
    label: &str,
    stays: bool,
    rng: &mut Rng,
    counts: &StormCounts,
) -> Result<(), String> {
    let client = Client::connect(server, port, label).map_err(|f| f.summary.clone())?;
    let messages: Vec<Vec<u8>> = (0..1 + rng.below(4))
        .map(|_| match rng.below(10) {
            // Small: any bytes, '\n' included, often a line.
            0..=3 => {
                let len = 1 + rng.below(SMALL_MESSAGE as u64) as usize;
                let mut msg: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
                if rng.below(2) == 0 {
                    *msg.last_mut().unwrap() = b'\n';
                }
                msg
            }
            4..=7 => {
                let len = SMALL_MESSAGE + 1 + rng.below(64 * 1024) as usize;
                random_bytes_no_newline(rng, len)
            }
            _ => {
                let len = 64 * 1024 + rng.below(236 * 1024) as usize;
                random_bytes_no_newline(rng, len)
            }
        })
        .collect();
    // Where a leaving client leaves: a point in the bytes it sends and receives, 0 = at once.
    let traffic: usize = messages.iter().map(|m| 2 * m.len()).sum();
    let mut quit_at = (!stays).then(|| rng.below(traffic as u64 + 1) as usize);
    let reset_at_end = rng.below(2) == 0;

    for (m, message) in messages.iter().enumerate() {
        let what = format!("message {} ({} bytes)", m + 1, message.len());
        if quit_at == Some(0) {
            break;
        }
        let mut reply = Vec::with_capacity(message.len());
        let done =
            pump(client.stream(), message, 1, message.len(), quit_at, &mut |chunk| reply.extend_from_slice(chunk))
                .map_err(|e| format!("{what}: {e}"))?;
        if done.quit {
            break;
        }
        quit_at = quit_at.map(|q| q - done.sent - done.received);
        if !stays {
            continue;
        }
        if message.len() <= SMALL_MESSAGE && done.writes == 1 {
            let expected = expected_reply(message);
            if reply != expected {
                return Err(format!(
                    "{what}, written at once, did not come back exactly reversed:\n    sent     {}\n    expected {}\n    \
                     received {}",
                    escape(message),
                    escape(&expected),
                    escape(&reply)
                ));
            }
            counts.exact_messages.fetch_add(1, Ordering::Relaxed);
        } else if message.contains(&b'\n') {
            // A small message with '\n' that TCP happened to split: only the length is sure.
            if reply.len() != message.len() {
                return Err(format!("{what}: {} bytes came back", reply.len()));
            }
        } else {
            check_reversed_chunks(message, &reply, MAX_RECV)
                .map_err(|e| format!("{what} did not come back as its pieces reversed: {e}"))?;
        }
        counts.checked_messages.fetch_add(1, Ordering::Relaxed);
        counts.checked_bytes.fetch_add(message.len(), Ordering::Relaxed);
    }
    if stays {
        counts.stayed.fetch_add(1, Ordering::Relaxed);
    } else {
        counts.quit.fetch_add(1, Ordering::Relaxed);
    }
    if reset_at_end {
        client.reset();
    } else {
        client.close();
    }
    Ok(())
}

/// 1 MiB, streamed by a client that reads while it writes, comes back whole: the same length,
/// and the sent bytes cut into pieces of at most 100,000 bytes, each reversed in place (the
/// server answers each `recv()` on its own).
pub fn one_mib_streamed_while_reading_comes_back_whole(server: &Server) -> Result<(), Failure> {
    const LEN: usize = 1 << 20;
    let sent = random_bytes_no_newline(&mut Rng::new(0x1_0000), LEN);
    let client = Client::connect(server, server.ports()[0], "streaming client")?;
    let mut reply = Vec::with_capacity(LEN);
    let done =
        pump(client.stream(), &sent, 1, LEN, None, &mut |chunk| reply.extend_from_slice(chunk)).map_err(|e| {
            Failure::new(format!("{} could not stream 1 MiB: {e}", client.label()))
                .hint("send() until every byte of the reply is written; a reply must not be cut short")
                .log_of(server)
        })?;
    let pieces = check_reversed_chunks(&sent, &reply, MAX_RECV).map_err(|e| {
        Failure::new(format!("{}: 1 MiB did not come back as its pieces, each reversed", client.label()))
            .detail("observed", e)
            .detail("sent", format!("{} bytes in {} writes", done.sent, done.writes))
            .detail("received", format!("{} bytes", reply.len()))
            .hint("each recv() (at most 100000 bytes) must be reversed on its own and sent back whole, in order")
            .log_of(server)
    })?;
    println!(
        "1 MiB came back in {} pieces (largest {} bytes) for {} writes",
        pieces.len(),
        pieces.iter().max().unwrap_or(&0),
        done.writes
    );
    client.close();
    Ok(())
}

/// A client streams [`FLOOD_BYTES`] (reading while it writes): the server's resident memory
/// (`VmRSS`) and its peak (`VmHWM`) grow by less than 4 MiB. Memory per connection stays the
/// same however much a client sends: the server reuses one receive buffer and keeps nothing.
pub fn memory_stays_flat_however_much_a_client_sends(server: &Server) -> Result<(), Failure> {
    const GROWTH_LIMIT: u64 = 4 << 20;
    let pattern = random_bytes_no_newline(&mut Rng::new(0xF100D), 1 << 20);
    let client = Client::connect(server, server.ports()[0], "flooding client")?;
    let stream = |repeat: usize| {
        pump(client.stream(), &pattern, repeat, pattern.len() * repeat, None, &mut |_| {}).map_err(|e| {
            Failure::new(format!("{} could not stream {} MiB: {e}", client.label(), repeat))
                .hint("send() until every byte of the reply is written")
                .log_of(server)
        })
    };
    // Warm up: the buffers the server reuses are touched once before measuring.
    stream(4)?;
    let (rss_before, hwm_before) = (status_bytes(server, "VmRSS")?, status_bytes(server, "VmHWM")?);
    let started = Instant::now();
    stream(FLOOD_BYTES >> 20)?;
    let elapsed = started.elapsed();
    let (rss_after, hwm_after) = (status_bytes(server, "VmRSS")?, status_bytes(server, "VmHWM")?);
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / f64::from(1 << 20));
    println!(
        "{} MiB in {elapsed:.1?}: VmRSS {} -> {}, VmHWM {} -> {}",
        FLOOD_BYTES >> 20,
        mib(rss_before),
        mib(rss_after),
        mib(hwm_before),
        mib(hwm_after)
    );
    let rss_growth = rss_after.saturating_sub(rss_before);
    let hwm_growth = hwm_after.saturating_sub(hwm_before);
    if rss_growth >= GROWTH_LIMIT || hwm_growth >= GROWTH_LIMIT {
        return Err(Failure::new("the server's memory grows with what one client sends")
            .detail("expected", format!("VmRSS and VmHWM to grow by less than {}", mib(GROWTH_LIMIT)))
            .detail(
                "observed",
                format!(
                    "after {} MiB: VmRSS {} -> {}, VmHWM (peak) {} -> {}",
                    FLOOD_BYTES >> 20,
                    mib(rss_before),
                    mib(rss_after),
                    mib(hwm_before),
                    mib(hwm_after)
                ),
            )
            .hint("read into one fixed buffer (DEFAULT_BUFFER_SIZE) and send it back before reading again; keep nothing per message")
            .log_of(server));
    }
    client.close();
    Ok(())
}

/// How much the memory check streams.
pub const FLOOD_BYTES: usize = 64 << 20;
