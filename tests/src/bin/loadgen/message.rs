//! The messages loadgen sends: random lowercase letters and a final `\n`, each with the
//! reply it expects (the letters reversed, the `\n` kept last).

/// Fills `message` with random lowercase letters and a final `\n`, and `expected` with the
/// reply the server should send: the letters reversed, the `\n` still last.
pub fn fill_message(rng: &mut XorShift64, message: &mut [u8], expected: &mut [u8]) {
    let (body, newline) = message.split_at_mut(message.len() - 1);
    newline[0] = b'\n';
    // One 64-bit random number gives 8 letters: each byte b in 0..=255 becomes b * 26 / 256.
    for chunk in body.chunks_mut(8) {
        let bytes = rng.next_u64().to_le_bytes();
        for (dst, b) in chunk.iter_mut().zip(bytes) {
            *dst = b'a' + ((u16::from(b) * 26) >> 8) as u8;
        }
    }
    let (expected_body, expected_newline) = expected.split_at_mut(expected.len() - 1);
    for (dst, &src) in expected_body.iter_mut().zip(body.iter().rev()) {
        *dst = src;
    }
    expected_newline[0] = b'\n';
}

/// Marsaglia's xorshift64: a tiny, fast pseudo-random generator. Not for secrets; plenty for
/// making test messages differ.
pub struct XorShift64(u64);

impl XorShift64 {
    /// A generator for client `seed`. The state must never be 0, hence the `| 1`.
    pub fn new(seed: u64) -> Self {
        XorShift64(seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Shows a wrong reply next to the expected one, escaped (`\n`, `\xff`...). Long replies are
/// cut to a window around the first differing byte.
pub fn describe_difference(got: &[u8], expected: &[u8]) -> String {
    const WINDOW: usize = 40;
    let first = got.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(got.len().min(expected.len()));
    let (from, to) = if expected.len() <= 2 * WINDOW {
        (0, expected.len().max(got.len()))
    } else {
        (first.saturating_sub(WINDOW), first + WINDOW)
    };
    let show = |bytes: &[u8]| {
        let end = to.min(bytes.len());
        let start = from.min(end);
        format!(
            "{}\"{}\"{}",
            if start > 0 { "..." } else { "" },
            bytes[start..end].escape_ascii(),
            if end < bytes.len() { "..." } else { "" }
        )
    };
    format!(
        "  first difference at byte {first} of {}\n  got:      {}\n  expected: {}",
        expected.len(),
        show(got),
        show(expected)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_letters_and_expected_is_the_reversal() {
        let mut rng = XorShift64::new(3);
        for size in [super::super::MIN_SIZE, 9, 64, super::super::MAX_SIZE] {
            let mut message = vec![0; size];
            let mut expected = vec![0; size];
            fill_message(&mut rng, &mut message, &mut expected);
            assert!(message[..size - 1].iter().all(u8::is_ascii_lowercase));
            assert_eq!(message.last(), Some(&b'\n'));
            let mut want = message[..size - 1].to_vec();
            want.reverse();
            want.push(b'\n');
            assert_eq!(expected, want);
        }
    }
}
