//! Picking the next token from processed scores.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Seeded categorical sampling over `softmax(scores)`.
#[derive(Debug, Clone)]
pub struct Sampler {
    rng: StdRng,
}

impl Sampler {
    /// Same seed, same draws.
    pub fn new(seed: u64) -> Self {
        Self { rng: StdRng::seed_from_u64(seed) }
    }

    /// A uniform draw in [0, 1) from the same stream.
    pub fn uniform(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    /// Draws one id; `-inf` entries have probability zero.
    pub fn sample(&mut self, scores: &[f32]) -> u32 {
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let weights: Vec<f64> = scores.iter().map(|s| ((s - max) as f64).exp()).collect();
        let total: f64 = weights.iter().sum();
        let mut target = self.rng.random::<f64>() * total;
        for (i, w) in weights.iter().enumerate() {
            if *w > 0.0 {
                if target < *w {
                    return i as u32;
                }
                target -= w;
            }
        }
        argmax(scores)
    }
}

/// Index of the largest score (the first on ties, as torch's argmax).
pub fn argmax(scores: &[f32]) -> u32 {
    let mut best = 0;
    for (i, s) in scores.iter().enumerate() {
        if *s > scores[best] {
            best = i;
        }
    }
    best as u32
}
