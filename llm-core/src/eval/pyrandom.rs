//! CPython 3.11's `random.Random`, bit for bit, for what lm-eval's few-shot sampler draws.
//!
//! lm-eval picks few-shot examples with `random.Random(fewshot_random_seed).sample(docs, n)`
//! (1234 by default); matching its prompts means drawing the same examples in the same order,
//! so this is the same generator (MT19937 seeded by `init_by_array`, `Modules/_randommodule.c`)
//! and the same algorithms over its stream (`Lib/random.py`): any other sampling algorithm over
//! the same numbers picks different examples.
//!
//! `bigbench` also uses `Mt19937` seeded by `init_genrand`, the way NumPy's legacy
//! `RandomState(seed)` seeds it, to replay BIG-bench's choice permutation.

use std::collections::HashSet;

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// The MT19937 Mersenne Twister as CPython and NumPy's legacy `RandomState` implement it.
#[derive(Debug, Clone)]
pub(crate) struct Mt19937 {
    state: [u32; N],
    index: usize,
}

impl Mt19937 {
    /// `init_genrand(seed)`: NumPy's legacy `RandomState(seed)` for a seed below 2^32.
    pub(crate) fn from_u32(seed: u32) -> Self {
        let mut state = [0u32; N];
        state[0] = seed;
        for i in 1..N {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32.wrapping_mul(prev ^ (prev >> 30)).wrapping_add(i as u32);
        }
        Self { state, index: N }
    }

    /// `init_by_array(key)`: how CPython seeds from the 32-bit words of an integer.
    ///
    /// # Panics
    /// When `key` is empty (CPython always passes at least one word).
    pub(crate) fn from_key(key: &[u32]) -> Self {
        assert!(!key.is_empty(), "init_by_array needs at least one key word");
        let mut gen = Self::from_u32(19_650_218);
        let mt = &mut gen.state;
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = mt[i - 1];
            mt[i] = (mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = mt[i - 1];
            mt[i] = (mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        // Most significant bit set: the state is never all zeros.
        mt[0] = 0x8000_0000;
        gen
    }

    /// The next 32-bit output (`genrand_uint32`).
    pub(crate) fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// Regenerates all N words; indices wrap, so words already regenerated in this pass feed
    /// the last ones, as in the reference's three loops.
    fn twist(&mut self) {
        let mt = &mut self.state;
        for kk in 0..N {
            let y = (mt[kk] & UPPER_MASK) | (mt[(kk + 1) % N] & LOWER_MASK);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            mt[kk] = mt[(kk + M) % N] ^ (y >> 1) ^ mag;
        }
        self.index = 0;
    }
}

/// `random.Random` of CPython 3.11: the same numbers, samples and shuffles for the same seed.
#[derive(Debug, Clone)]
pub struct PyRandom {
    mt: Mt19937,
}

impl PyRandom {
    /// `random.Random(seed)` for a non-negative integer seed.
    pub fn new(seed: u64) -> Self {
        // random_seed(): the integer's 32-bit words, least significant first; 0 is one word.
        let key: &[u32] = if seed >> 32 == 0 { &[seed as u32] } else { &[seed as u32, (seed >> 32) as u32] };
        Self { mt: Mt19937::from_key(key) }
    }

    /// `random()`: a float in [0, 1) with 53 random bits.
    pub fn random(&mut self) -> f64 {
        let a = self.mt.next_u32() >> 5;
        let b = self.mt.next_u32() >> 6;
        (a as f64 * 67_108_864.0 + b as f64) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `getrandbits(k)`: an integer of `k` random bits.
    ///
    /// # Panics
    /// When `k > 64` (CPython returns a longer integer; nothing here needs one).
    pub fn getrandbits(&mut self, k: u32) -> u64 {
        assert!(k <= 64, "getrandbits({k}): at most 64 bits");
        match k {
            0 => 0,
            // A single word keeps its most significant bits.
            1..=32 => u64::from(self.mt.next_u32() >> (32 - k)),
            // Words fill the integer from the least significant end; the last is cut from the top.
            _ => {
                let low = u64::from(self.mt.next_u32());
                let high = u64::from(self.mt.next_u32() >> (64 - k));
                low | high << 32
            }
        }
    }

    /// `_randbelow(n)`: an integer in [0, n), by drawing `n.bit_length()` bits until one fits.
    ///
    /// # Panics
    /// When `n == 0` (CPython would loop forever; its callers never pass 0).
    pub fn randbelow(&mut self, n: usize) -> usize {
        assert!(n > 0, "randbelow(0) has no value to return");
        // The bit length of n, not n - 1, so n = 1 still draws one bit, as CPython does.
        let k = usize::BITS - n.leading_zeros();
        loop {
            let r = self.getrandbits(k) as usize;
            if r < n {
                return r;
            }
        }
    }

    /// The indices `sample(range(n), k)` returns: `k` distinct values of `0..n`, in the order
    /// drawn. `sample(population, k)` returns `population[i]` for each.
    ///
    /// # Panics
    /// When `k > n` (CPython raises `ValueError`).
    pub fn sample_indices(&mut self, n: usize, k: usize) -> Vec<usize> {
        assert!(k <= n, "sample of {k} from a population of {n}");
        // CPython compares the memory of an n-list with that of a k-set: setsize is a set's
        // table size, `21 + 4 ** ceil(log(3k, 4))` for k > 5. math.log(x, 4) is
        // log(x) / log(4) in doubles, and so is this.
        let mut setsize = 21u128;
        if k > 5 {
            let exponent = ((3 * k) as f64).ln() / 4f64.ln();
            setsize += 4u128.pow(exponent.ceil() as u32);
        }
        if n as u128 <= setsize {
            // The pool method: swap the last unpicked index into the one just taken.
            let mut pool: Vec<usize> = (0..n).collect();
            (0..k)
                .map(|i| {
                    let j = self.randbelow(n - i);
                    let picked = pool[j];
                    pool[j] = pool[n - i - 1];
                    picked
                })
                .collect()
        } else {
            // The set method: redraw an index already taken.
            let mut selected = HashSet::with_capacity(k);
            (0..k)
                .map(|_| loop {
                    let j = self.randbelow(n);
                    if selected.insert(j) {
                        break j;
                    }
                })
                .collect()
        }
    }

    /// `sample(population, k)`: `k` distinct elements, in the order drawn.
    ///
    /// # Panics
    /// When `k > population.len()`.
    pub fn sample<T: Clone>(&mut self, population: &[T], k: usize) -> Vec<T> {
        self.sample_indices(population.len(), k).into_iter().map(|i| population[i].clone()).collect()
    }

    /// `shuffle(xs)`: Fisher-Yates from the end, in place.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.randbelow(i + 1);
            xs.swap(i, j);
        }
    }

    /// `choice(xs)`: one element; `None` for an empty slice, where CPython raises `IndexError`
    /// before drawing anything.
    pub fn choice<'a, T>(&mut self, xs: &'a [T]) -> Option<&'a T> {
        if xs.is_empty() {
            return None;
        }
        Some(&xs[self.randbelow(xs.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_matches_cpython() {
        // python3.11 -c "import random; r = random.Random(S); print([r.random() for _ in range(4)])"
        let cases: [(u64, [f64; 4]); 4] = [
            (0, [0.8444218515250481, 0.7579544029403025, 0.420571580830845, 0.25891675029296335]),
            (1, [0.13436424411240122, 0.8474337369372327, 0.763774618976614, 0.2550690257394217]),
            (1234, [0.9664535356921388, 0.4407325991753527, 0.007491470058587191, 0.9109759624491242]),
            // 2**40 + 7: a seed of two key words.
            (1_099_511_627_783, [0.6137037779936511, 0.8149162973309487, 0.9450115087592873, 0.5703906991004561]),
        ];
        for (seed, want) in cases {
            let mut rng = PyRandom::new(seed);
            let got: Vec<f64> = (0..4).map(|_| rng.random()).collect();
            // Exact: both sides compute the same double from the same two words.
            assert_eq!(got, want, "seed {seed}");
        }
    }

    #[test]
    fn getrandbits_matches_cpython() {
        // python3.11 -c "import random; r = random.Random(S); print([r.getrandbits(k) for k in (1, 7, 32, 33, 64, 0, 64)])"
        let ks = [1, 7, 32, 33, 64, 0, 64];
        let cases: [(u64, [u64; 7]); 3] = [
            (0, [1, 49, 3255389356, 3823568514, 4776171008201404212, 0, 9431353882395063546]),
            (1234, [1, 99, 1892932127, 501869158, 16804540376168033093, 0, 17326454776888161602]),
            (1_099_511_627_783, [1, 95, 3500038837, 8323356347, 10521851240000246337, 0, 8779250061879139715]),
        ];
        for (seed, want) in cases {
            let mut rng = PyRandom::new(seed);
            let got: Vec<u64> = ks.iter().map(|&k| rng.getrandbits(k)).collect();
            assert_eq!(got, want, "seed {seed}");
        }
    }

    #[test]
    fn randbelow_matches_cpython() {
        // python3.11 -c "import random; r = random.Random(1234); print([r._randbelow(n) for n in (1, 2, 3, 10, 1000, 2**33+5, 2**63+11)])"
        let mut rng = PyRandom::new(1234);
        let ns = [1, 2, 3, 10, 1000, (1usize << 33) + 5, (1usize << 63) + 11];
        let got: Vec<usize> = ns.iter().map(|&n| rng.randbelow(n)).collect();
        assert_eq!(got, [0, 0, 0, 1, 932, 2976787804, 4368369358058645032]);
    }

    #[test]
    fn sample_matches_cpython_on_both_branches() {
        // python3.11 -c "import random; print(random.Random(1234).sample(range(N), K))"
        // n <= setsize takes the pool branch (21 for k <= 5, 85 for 6 <= k <= 21, 277 for
        // 22 <= k <= 85...), larger n the set branch: (21, 5) and (22, 5) differ in their last draw.
        let cases: [(usize, usize, &[usize]); 14] = [
            (5, 0, &[]),
            (5, 1, &[3]),
            (5, 3, &[3, 0, 4]),
            (5, 5, &[3, 0, 4, 2, 1]),
            (21, 5, &[14, 3, 0, 2, 1]),
            (21, 6, &[14, 3, 0, 2, 1, 17]),
            (21, 21, &[14, 3, 0, 2, 1, 17, 16, 12, 5, 19, 18, 10, 9, 13, 7, 4, 11, 6, 8, 15, 20]),
            (22, 5, &[14, 3, 0, 2, 18]),
            (100, 3, &[99, 56, 14]),
            (100, 10, &[99, 56, 14, 0, 11, 74, 4, 85, 88, 10]),
            (
                100,
                22,
                &[99, 56, 14, 0, 11, 74, 4, 85, 88, 10, 12, 45, 30, 2, 3, 86, 44, 82, 79, 61, 78, 59],
            ),
            (
                100,
                100,
                &[
                    99, 56, 14, 0, 11, 74, 4, 85, 88, 10, 12, 45, 30, 2, 3, 86, 44, 82, 79, 61, 78, 59, 19, 95, 23,
                    97, 1, 64, 62, 31, 8, 81, 69, 76, 65, 5, 34, 52, 35, 93, 41, 77, 87, 54, 22, 17, 15, 68, 89, 29,
                    33, 42, 73, 32, 60, 96, 21, 9, 57, 24, 90, 92, 91, 70, 39, 37, 13, 48, 47, 50, 66, 40, 38, 16, 63,
                    43, 46, 94, 36, 49, 67, 28, 72, 58, 25, 53, 20, 84, 7, 83, 75, 6, 98, 27, 51, 55, 26, 18, 80, 71,
                ],
            ),
            (2000, 5, &[1979, 1593, 902, 239, 15]),
            (
                2000,
                30,
                &[
                    1979, 1593, 902, 239, 15, 185, 1865, 1930, 1923, 1652, 1192, 71, 1375, 1419, 171, 201, 1569, 726,
                    484, 35, 63, 1615, 32, 708, 1327, 1276, 991, 1261, 949, 304,
                ],
            ),
        ];
        for (n, k, want) in cases {
            assert_eq!(PyRandom::new(1234).sample_indices(n, k), want, "sample(range({n}), {k})");
        }
    }

    #[test]
    fn sample_of_everything_is_a_permutation_matching_cpython() {
        // python3.11 -c "import random; s = random.Random(1234).sample(range(2000), 2000); print(s[:10], s[-10:])"
        let got = PyRandom::new(1234).sample_indices(2000, 2000);
        assert_eq!(got[..10], [1979, 1593, 902, 239, 15, 185, 1865, 1930, 1923, 1652]);
        assert_eq!(got[1990..], [775, 1893, 52, 1917, 390, 259, 1143, 1962, 1705, 222]);
        let mut sorted = got;
        sorted.sort_unstable();
        assert!(sorted.iter().copied().eq(0..2000));
    }

    #[test]
    fn sample_of_a_slice_takes_the_sampled_indices() {
        let letters: Vec<char> = "abcdefghijklmnopqrstuvwxy".chars().collect();
        let want: Vec<char> = PyRandom::new(7).sample_indices(25, 4).into_iter().map(|i| letters[i]).collect();
        assert_eq!(PyRandom::new(7).sample(&letters, 4), want);
    }

    #[test]
    fn shuffle_matches_cpython() {
        // python3.11 -c "import random; x = list(range(10)); random.Random(S).shuffle(x); print(x)"
        let cases: [(u64, [u32; 10]); 3] = [
            (0, [7, 8, 1, 5, 3, 4, 2, 0, 9, 6]),
            (1234, [2, 8, 3, 5, 6, 4, 9, 0, 1, 7]),
            (1_099_511_627_783, [0, 5, 2, 3, 6, 1, 8, 4, 7, 9]),
        ];
        for (seed, want) in cases {
            let mut xs: Vec<u32> = (0..10).collect();
            PyRandom::new(seed).shuffle(&mut xs);
            assert_eq!(xs, want, "seed {seed}");
        }
    }

    #[test]
    fn choice_matches_cpython_and_draws_nothing_from_empty() {
        // python3.11 -c "import random; r = random.Random(1234); print([r.choice('abcdefg') for _ in range(8)])"
        let letters: Vec<char> = "abcdefg".chars().collect();
        let mut rng = PyRandom::new(1234);
        let empty: [char; 0] = [];
        let mut got = String::new();
        for _ in 0..8 {
            assert_eq!(rng.choice(&empty), None);
            got.push(*rng.choice(&letters).unwrap());
        }
        assert_eq!(got, "gdaaagea");
    }

    #[test]
    fn init_genrand_matches_numpy_legacy_seeding() {
        // python3 -c "import numpy as np; print(np.random.RandomState(5489).randint(0, 2**32, size=3, dtype=np.uint64).tolist())"
        // (5489 is mt19937ar.c's default seed; these are also std::mt19937's first outputs.)
        let mut mt = Mt19937::from_u32(5489);
        assert_eq!([mt.next_u32(), mt.next_u32(), mt.next_u32()], [3_499_211_612, 581_869_302, 3_890_346_734]);
    }
}
