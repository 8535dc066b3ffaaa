//! Latencies kept in fixed memory: a histogram allocated once, before the run.

use std::time::Duration;

/// Latencies in microseconds, counted in buckets of fixed memory (a simplified HDR histogram).
///
/// Values below 256 us have a bucket each. Above that, each power of two is split into 128
/// buckets, so a reported value is within 1% of the real one. About 30 KB per histogram,
/// allocated once, however many messages are recorded; histograms of several clients add up
/// bucket by bucket.
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Histogram {
    /// Buckets per power of two: 2^7 = 128.
    const SUB_BITS: u32 = 7;
    const SUB: usize = 1 << Self::SUB_BITS;
    /// Values are capped at 2^36 - 1 us, about 19 hours.
    const MAX_BITS: u32 = 36;
    const BUCKETS: usize = (Self::MAX_BITS - Self::SUB_BITS + 1) as usize * Self::SUB;

    pub fn new() -> Self {
        Histogram { counts: vec![0; Self::BUCKETS], total: 0 }
    }

    /// The bucket of value `v`. Below 2 * SUB it is `v`; above, with `shift` the number of
    /// low bits dropped so that `v >> shift` is in SUB..2 * SUB, it is `shift * SUB + (v >>
    /// shift)`: consecutive, without gaps.
    fn index(v: u64) -> usize {
        let v = v.min((1 << Self::MAX_BITS) - 1);
        if v < 2 * Self::SUB as u64 {
            return v as usize;
        }
        let shift = (u64::BITS - 1 - v.leading_zeros()) - Self::SUB_BITS;
        shift as usize * Self::SUB + (v >> shift) as usize
    }

    /// The value reported for bucket `i`: the middle of the range of values it counts.
    fn value(i: usize) -> u64 {
        if i < 2 * Self::SUB {
            return i as u64;
        }
        let shift = i / Self::SUB - 1;
        let low = ((i % Self::SUB + Self::SUB) as u64) << shift;
        low + (1 << shift) / 2
    }

    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.counts[Self::index(us)] += 1;
        self.total += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
    }

    /// The `p`th percentile (0 < p <= 100) by nearest rank; 0 if nothing was recorded.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((p * self.total as f64 / 100.0).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::value(i);
            }
        }
        Self::value(Self::BUCKETS - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_consecutive_and_close() {
        let mut last = 0;
        for v in 0..1_000_000u64 {
            let i = Histogram::index(v);
            assert!(i == last || i == last + 1, "gap at {v}");
            last = i;
            let reported = Histogram::value(i);
            assert!(reported.abs_diff(v) * 100 <= v.max(1), "{v} reported as {reported}");
        }
        assert!(Histogram::index(u64::MAX) < Histogram::BUCKETS);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut h = Histogram::new();
        for us in 1..=100 {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.percentile(50.0), 50);
        assert_eq!(h.percentile(99.0), 99);
        assert_eq!(Histogram::new().percentile(50.0), 0);
    }
}
