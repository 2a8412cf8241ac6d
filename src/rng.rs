//! The crate's seeded random numbers, one place for all of them.
//!
//! Hand-rolled so that results never change with a dependency upgrade: every
//! random decision (training, bootstrapping, seeded control weights, test
//! data) is a pure function of its seed, which is what makes runs bit-identical.
//!
//! - [`SplitMix64`]: the seed expander; also draws the seeded random-init
//!   encoder weights ([`SplitMix64::uniform_vec`]).
//! - [`Rng`]: xoshiro256** (seeded through SplitMix64) for training and bootstrap.
//! - [`pseudo`]: a stateless hash of the index, for test tensors.

/// SplitMix64 (Steele et al. 2014): tiny and seedable.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `n` values uniform in `[-a, a)` (24 random bits each).
    pub fn uniform_vec(&mut self, n: usize, a: f32) -> Vec<f32> {
        (0..n)
            .map(|_| ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a)
            .collect()
    }
}

/// Deterministic test values in `[-1, 1)`: a multiplicative hash of the index
/// (no state, so any slice of a tensor can be regenerated alone).
pub fn pseudo(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed.wrapping_mul(40_503));
            (h >> 8) as f32 / 8_388_608.0 - 1.0
        })
        .collect()
}

/// xoshiro256** generator.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// Generator for `seed`, stream `stream`. Different streams of one seed
    /// are statistically independent, so e.g. fold 2's dropout masks do not
    /// depend on how many numbers fold 1 drew.
    pub fn new(seed: u64, stream: u64) -> Self {
        let a = SplitMix64(seed).next_u64();
        let b = SplitMix64(stream ^ 0xD1B5_4A32_D192_ED03).next_u64();
        let mut st = SplitMix64(a ^ b.rotate_left(29));
        let s = [st.next_u64(), st.next_u64(), st.next_u64(), st.next_u64()];
        Rng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, 1) with 24 random bits.
    pub fn uniform_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// Uniform integer in `0..n` without modulo bias (Lemire's method).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below(0)");
        let n = n as u64;
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            let low = m as u64;
            if low >= n || low >= n.wrapping_neg() % n {
                return (m >> 64) as usize;
            }
        }
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i + 1);
            xs.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_stream_repeat_and_streams_differ() {
        let a: Vec<u64> = {
            let mut r = Rng::new(42, 0);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::new(42, 0);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = Rng::new(42, 1);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let d: Vec<u64> = {
            let mut r = Rng::new(43, 0);
            (0..8).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn below_is_uniform_enough_and_in_range() {
        let mut r = Rng::new(7, 3);
        let mut counts = [0usize; 5];
        for _ in 0..50_000 {
            counts[r.below(5)] += 1;
        }
        // Expected 10,000 each; 5 sigma is about 450.
        for c in counts {
            assert!((c as i64 - 10_000).abs() < 450, "{counts:?}");
        }
        let u: f64 = (0..20_000).map(|_| r.uniform_f64()).sum::<f64>() / 20_000.0;
        assert!((u - 0.5).abs() < 0.01, "mean {u}");
    }

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // First outputs for seed 0 of the reference C implementation (Vigna).
        let mut r = SplitMix64(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let u = SplitMix64(5).uniform_vec(10_000, 0.5);
        assert!(u.iter().all(|v| (-0.5..0.5).contains(v)));
    }

    #[test]
    fn pseudo_is_stateless_and_in_range() {
        let a = pseudo(100, 3);
        assert_eq!(&pseudo(50, 3)[..], &a[..50]);
        assert_ne!(pseudo(100, 4), a);
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut r = Rng::new(1, 1);
        let mut v: Vec<usize> = (0..100).collect();
        r.shuffle(&mut v);
        assert_ne!(v, (0..100).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..100).collect::<Vec<_>>());
    }
}
