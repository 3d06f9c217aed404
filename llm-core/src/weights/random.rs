//! Random weights for a config: a [`TensorSource`] for speed measurements of architectures
//! whose checkpoints are too large to ship (a 1B Llama on a GPU, say). The numbers are not a
//! model's, but the shapes, dtypes and so the bytes moved per token are exactly a checkpoint's.

use burn::tensor::TensorData;

use super::{expected_tensors, TensorSource, TensorSpec};
use crate::config::ModelConfig;
use crate::error::{LlmError, Result};

/// Every tensor `config` needs, filled on demand with seeded uniform noise: linear weights in
/// `±1/sqrt(d_in)` (activations keep their scale through the layers), norm weights 1.
#[derive(Debug, Clone)]
pub struct RandomSource {
    specs: Vec<TensorSpec>,
    seed: u64,
}

impl RandomSource {
    /// The tensors of `config`, seeded by `seed` (the same seed gives the same weights).
    pub fn new(config: &ModelConfig, seed: u64) -> Self {
        Self { specs: expected_tensors(config), seed }
    }

    fn spec(&self, name: &str) -> Option<&TensorSpec> {
        self.specs.iter().find(|s| s.name == name)
    }
}

impl TensorSource for RandomSource {
    fn source_name(&self) -> &str {
        "random weights"
    }

    fn tensor_names(&self) -> Vec<String> {
        self.specs.iter().map(|s| s.name.clone()).collect()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.spec(name).map(|s| s.shape.clone())
    }

    fn read(&self, name: &str) -> Result<TensorData> {
        let spec = self.spec(name).ok_or_else(|| LlmError::WeightMismatch {
            source_name: self.source_name().into(),
            missing: vec![name.into()],
            unexpected: vec![],
            mis_shaped: vec![],
        })?;
        Ok(TensorData::new(random_values(name, &spec.shape, self.seed), spec.shape.clone()))
    }
}

/// The values of tensor `name`: 1 for a vector (norm weights), else uniform in `±1/√d_in`
/// seeded by `seed` and the name. [`crate::weights::InitWeights::Random`] draws the same.
pub(crate) fn random_values(name: &str, shape: &[usize], seed: u64) -> Vec<f32> {
    let n: usize = shape.iter().product();
    if shape.len() == 1 {
        vec![1.0f32; n]
    } else {
        let scale = 1.0 / (*shape.last().unwrap_or(&1) as f32).sqrt();
        noise(seed ^ name_hash(name), n, scale)
    }
}

/// A hash of a tensor name for seeding (FNV-1a's shape with this family's historical multiplier:
/// kept so that seeded weights, and the throughput figures measured on them, stay the same).
fn name_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x1000_0000_01b3))
}

/// `n` values uniform in `[-scale, scale)` from SplitMix64 (fast enough for 1B weights).
pub(crate) fn noise(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let unit = (z >> 40) as f32 / (1u64 << 24) as f32;
            (2.0 * unit - 1.0) * scale
        })
        .collect()
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_seeded_bounded_and_centred() {
        let a = noise(7, 100_000, 0.5);
        assert_eq!(a, noise(7, 100_000, 0.5));
        assert_ne!(a[..8], noise(8, 8, 0.5)[..]);
        assert!(a.iter().all(|x| (-0.5..0.5).contains(x)));
        let mean = a.iter().map(|&x| f64::from(x)).sum::<f64>() / a.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
    }
}
