//! The client's message contents and how echoes are checked.
//!
//! A message is a per-connection pseudo-random body (computed once per
//! connection) stamped, for every request, with 16-byte headers: at offset 0
//! the connection id and the sequence number (little-endian u64s), at the
//! start of every further 4 KiB page the connection id mixed with the page
//! index and the sequence number, and in the last 16 bytes a mix of both.
//! Restamping costs 16 bytes per page, so the client stays cheap, yet an
//! echo carrying a page of an older message (stale data), of another
//! connection, or of the wrong place differs from the expected bytes in a
//! header that `Verify::Sample` checks with good probability and
//! `Verify::Full` always.

/// Page size the headers are laid out on.
pub const PAGE: usize = 4096;
/// Smallest message: the first header must fit.
pub const MIN_SIZE: usize = 16;

/// How much of each echo the client compares with what it sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Nothing.
    Off,
    /// The first and last 16 bytes, two random 8-byte words and two random
    /// page headers.
    Sample,
    /// Every byte.
    Full,
}

choices!(Verify, "verify": Off = "off", Sample = "sample", Full = "full");

/// splitmix64: a cheap, well-mixed 64-bit hash.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The 16-byte header of `page` for (`conn`, `seq`). Page 0's is exactly
/// `conn` then `seq`, little-endian.
pub fn header(conn: u64, seq: u64, page: usize) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(&(conn ^ ((page as u64) << 40)).to_le_bytes());
    h[8..].copy_from_slice(&seq.to_le_bytes());
    h
}

/// The last 16 bytes of a message for (`conn`, `seq`).
pub fn tail(conn: u64, seq: u64) -> [u8; 16] {
    let mut t = [0u8; 16];
    t[..8].copy_from_slice(&mix(conn ^ seq.rotate_left(32)).to_le_bytes());
    t[8..].copy_from_slice(&(!seq).to_le_bytes());
    t
}

/// One connection's outgoing message buffer.
pub struct Message {
    conn: u64,
    buf: Vec<u8>,
}

impl Message {
    /// A message of `size` bytes (at least [`MIN_SIZE`]) for connection `conn`.
    pub fn new(conn: u64, size: usize) -> Message {
        assert!(size >= MIN_SIZE, "messages are at least {MIN_SIZE} bytes");
        let mut buf = vec![0u8; size];
        let seed = mix(conn.wrapping_mul(0xA24B_AED4_963E_E407));
        for (i, chunk) in buf.chunks_mut(8).enumerate() {
            let w = mix(seed ^ i as u64).to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
        Message { conn, buf }
    }

    /// Stamps the headers of request `seq`.
    pub fn stamp(&mut self, seq: u64) {
        let n = self.buf.len();
        self.buf[n - 16..].copy_from_slice(&tail(self.conn, seq));
        for (page, off) in (0..n).step_by(PAGE).enumerate() {
            let h = header(self.conn, seq, page);
            let end = (off + 16).min(n);
            self.buf[off..end].copy_from_slice(&h[..end - off]);
        }
    }

    /// The message as it goes out.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// A difference between what was sent and what came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The first offset at which the two differ (over the whole message,
    /// not just the sampled parts).
    pub offset: usize,
    /// The byte sent there.
    pub expected: u8,
    /// The byte that came back.
    pub got: u8,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "first differing offset {} (page {}, +{}): expected 0x{:02x}, got 0x{:02x}",
            self.offset,
            self.offset / PAGE,
            self.offset % PAGE,
            self.expected,
            self.got
        )
    }
}

/// The first offset at which `a` and `b` differ.
pub fn first_diff(a: &[u8], b: &[u8]) -> Option<usize> {
    if a.len() != b.len() {
        return Some(a.len().min(b.len()));
    }
    // Compare in 4 KiB blocks (fast, vectorized) and scan only a block that differs.
    let mut off = 0;
    for (x, y) in a.chunks(PAGE).zip(b.chunks(PAGE)) {
        if x != y {
            let i = x.iter().zip(y).position(|(p, q)| p != q).unwrap_or(0);
            return Some(off + i);
        }
        off += x.len();
    }
    None
}

/// A cheap xorshift generator for sample offsets.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(mix(seed) | 1)
    }
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform-ish in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Checks `got` against `expected` as `mode` says.
pub fn verify(expected: &[u8], got: &[u8], mode: Verify, rng: &mut Rng) -> Result<(), Mismatch> {
    let n = expected.len();
    let bad = match mode {
        Verify::Off => false,
        Verify::Full => expected != got,
        Verify::Sample => {
            if got.len() != n {
                true
            } else {
                let same = |a: usize, len: usize| {
                    let e = (a + len).min(n);
                    expected[a..e] == got[a..e]
                };
                let pages = n.div_ceil(PAGE);
                let mut ok = same(0, 16) && same(n - 16, 16);
                for _ in 0..2 {
                    ok = ok && same(rng.below(n - 7), 8);
                    ok = ok && same(rng.below(pages) * PAGE, 16);
                }
                !ok
            }
        }
    };
    if !bad {
        return Ok(());
    }
    let offset = first_diff(expected, got).unwrap_or(0);
    Err(Mismatch {
        offset,
        expected: expected.get(offset).copied().unwrap_or(0),
        got: got.get(offset).copied().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sixteen_bytes_are_conn_and_seq() {
        for size in [16, 17, 31, 4096, 4097, 512 << 10] {
            let mut m = Message::new(7, size);
            m.stamp(42);
            let b = m.bytes();
            assert_eq!(b.len(), size);
            assert_eq!(u64::from_le_bytes(b[..8].try_into().unwrap()), 7);
            assert_eq!(u64::from_le_bytes(b[8..16].try_into().unwrap()), 42);
        }
    }

    #[test]
    fn every_page_header_and_tail_change_with_seq() {
        let size = 64 << 10;
        let mut m = Message::new(3, size);
        m.stamp(1);
        let a = m.bytes().to_vec();
        m.stamp(2);
        let b = m.bytes().to_vec();
        for p in 0..size / PAGE {
            assert_ne!(
                a[p * PAGE..p * PAGE + 16],
                b[p * PAGE..p * PAGE + 16],
                "page {p}"
            );
        }
        assert_ne!(a[size - 16..], b[size - 16..]);
        // Bodies are the same (cheap restamping), headers are not.
        assert_eq!(a[100..200], b[100..200]);
    }

    #[test]
    fn connections_differ_everywhere() {
        let mut a = Message::new(1, 8192);
        let mut b = Message::new(2, 8192);
        a.stamp(5);
        b.stamp(5);
        let same = a
            .bytes()
            .iter()
            .zip(b.bytes())
            .filter(|(x, y)| x == y)
            .count();
        assert!(same < 8192 / 64, "{same} equal bytes between connections");
    }

    #[test]
    fn verify_accepts_equal_and_reports_first_difference() {
        let mut m = Message::new(9, 20000);
        m.stamp(77);
        let sent = m.bytes().to_vec();
        let mut rng = Rng::new(1);
        for mode in [Verify::Off, Verify::Sample, Verify::Full] {
            verify(&sent, &sent, mode, &mut rng).unwrap();
        }
        // A stale page (previous sequence number) is caught by the full check
        // at that page's header, and reported at its first differing byte.
        let mut stale = Message::new(9, 20000);
        stale.stamp(76);
        let mut got = sent.clone();
        got[2 * PAGE..3 * PAGE].copy_from_slice(&stale.bytes()[2 * PAGE..3 * PAGE]);
        let e = verify(&sent, &got, Verify::Full, &mut rng).unwrap_err();
        assert_eq!(e.offset, 2 * PAGE + 8);
        assert_eq!(e.expected, sent[2 * PAGE + 8]);
        assert_eq!(e.got, got[2 * PAGE + 8]);
        // The sample check always looks at the first and last 16 bytes.
        let mut got = sent.clone();
        got[20000 - 1] ^= 1;
        let e = verify(&sent, &got, Verify::Sample, &mut rng).unwrap_err();
        assert_eq!(e.offset, 19999);
        let mut got = sent.clone();
        got[3] ^= 0x80;
        assert_eq!(
            verify(&sent, &got, Verify::Sample, &mut rng)
                .unwrap_err()
                .offset,
            3
        );
        // ... and catches a stale page within a few messages.
        let mut got = sent.clone();
        got[PAGE..2 * PAGE].copy_from_slice(&stale.bytes()[PAGE..2 * PAGE]);
        let caught = (0..20).any(|_| verify(&sent, &got, Verify::Sample, &mut rng).is_err());
        assert!(caught);
        // A difference the sample does not look at passes Sample, not Full.
        let mut got = sent.clone();
        got[PAGE + 1000] ^= 1;
        let mut rng = Rng::new(2);
        assert!(verify(&sent, &got, Verify::Full, &mut rng).is_err());
        assert_eq!(verify(&sent, &got, Verify::Off, &mut rng), Ok(()));
    }

    #[test]
    fn first_diff_finds_the_first() {
        let a = vec![0u8; 10000];
        let mut b = a.clone();
        assert_eq!(first_diff(&a, &b), None);
        b[9999] = 1;
        b[5000] = 1;
        assert_eq!(first_diff(&a, &b), Some(5000));
        assert_eq!(first_diff(&a, &b[..10]), Some(10));
    }
}
