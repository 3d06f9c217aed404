//! Rotary position embedding in Hugging Face's rotate-half layout, with every `rope_type`
//! transformers implements for Llama (`default`, `linear`, `dynamic`, `yarn`, `llama3`).
//!
//! Frequencies are computed on the host in f32 the way transformers computes them, so the
//! angles match bit for bit; cos/sin for the positions of one forward are uploaded once and
//! shared by every layer.

use std::f64::consts::PI;

use burn::tensor::{backend::Backend, DType, Tensor, TensorData};

use crate::config::{RopeConfig, RopeScaling};

/// Rotary embedding frequencies for one model.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    rope: RopeConfig,
    head_dim: usize,
    /// `inv_freq` for contexts within the trained length, `[head_dim / 2]`.
    inv_freq: Vec<f32>,
    /// Scale applied to cos and sin (YaRN's attention factor; 1 otherwise).
    attention_scaling: f32,
}

/// cos and sin of the rotation angles for the positions of one forward pass.
#[derive(Debug, Clone)]
pub struct RopeTables<B: Backend> {
    /// `[batch or 1, 1, seq, head_dim]`
    pub cos: Tensor<B, 4>,
    /// `[batch or 1, 1, seq, head_dim]`
    pub sin: Tensor<B, 4>,
}

impl RotaryEmbedding {
    /// Builds the frequencies for a head width.
    pub fn new(rope: &RopeConfig, head_dim: usize) -> Self {
        let (inv_freq, attention_scaling) = compute_inv_freq(rope, head_dim, None);
        Self { rope: rope.clone(), head_dim, inv_freq, attention_scaling }
    }

    /// The frequencies used for sequences within the trained context, `[head_dim / 2]`.
    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    /// Scale applied to cos and sin (YaRN's attention factor; 1 otherwise).
    pub fn attention_scaling(&self) -> f32 {
        self.attention_scaling
    }

    /// cos/sin tables for explicit positions.
    ///
    /// positions: `[rows][seq]`, one row per batch element or a single shared row.
    /// Returns tensors `[rows, 1, seq, head_dim]` in `dtype`.
    pub fn tables<B: Backend>(&self, positions: &[Vec<usize>], dtype: DType, device: &B::Device) -> RopeTables<B> {
        let rows = positions.len();
        let seq = positions.first().map_or(0, Vec::len);
        let (cos, sin) = self.host_tables(positions);
        let shape = [rows, 1, seq, self.head_dim];
        let opts = (device, dtype);
        RopeTables {
            cos: Tensor::from_data(TensorData::new(cos, shape), opts),
            sin: Tensor::from_data(TensorData::new(sin, shape), opts),
        }
    }

    /// [`Self::tables`]' values on the host: cos and sin, `[rows * seq * head_dim]` row-major each.
    pub fn host_tables(&self, positions: &[Vec<usize>]) -> (Vec<f32>, Vec<f32>) {
        // Dynamic NTK recomputes the base from the longest sequence seen in this call,
        // as transformers' `dynamic_rope_update` does.
        let dynamic;
        let inv_freq = match self.rope.scaling {
            RopeScaling::Dynamic { .. } => {
                let max_pos = positions.iter().flatten().copied().max().unwrap_or(0);
                dynamic = compute_inv_freq(&self.rope, self.head_dim, Some(max_pos + 1)).0;
                &dynamic
            }
            _ => &self.inv_freq,
        };
        let half = self.head_dim / 2;
        let n: usize = positions.iter().map(Vec::len).sum::<usize>() * self.head_dim;
        let (mut cos, mut sin) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for row in positions {
            for &p in row {
                // torch: freqs = (inv_freq @ position) in f32; emb = cat(freqs, freqs).
                let angles: Vec<f32> = inv_freq.iter().map(|f| f * p as f32).collect();
                for _ in 0..2 {
                    for a in &angles[..half] {
                        cos.push(((*a as f64).cos() as f32) * self.attention_scaling);
                        sin.push(((*a as f64).sin() as f32) * self.attention_scaling);
                    }
                }
            }
        }
        (cos, sin)
    }
}

/// Applies the rotation: `x * cos + rotate_half(x) * sin`.
///
/// x: `[batch, heads, seq, head_dim]`, tables `[batch or 1, 1, seq, head_dim]` -> same as x.
pub fn apply_rotary<B: Backend>(x: Tensor<B, 4>, tables: &RopeTables<B>) -> Tensor<B, 4> {
    let [_, _, _, head_dim] = x.dims();
    let half = head_dim / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    // rotate_half: [-x2, x1]
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * tables.cos.clone() + rotated * tables.sin.clone()
}

/// `inv_freq` and the attention scaling for a RoPE variant, following transformers'
/// `ROPE_INIT_FUNCTIONS`. `seq_len` only matters for `dynamic`.
pub fn compute_inv_freq(rope: &RopeConfig, head_dim: usize, seq_len: Option<usize>) -> (Vec<f32>, f32) {
    let dim = head_dim;
    let base = rope.rope_theta;
    // torch: base ** (arange(0, dim, 2).float() / dim), in f32.
    let plain = |base: f64| -> Vec<f32> {
        (0..dim)
            .step_by(2)
            .map(|i| {
                let exponent = i as f32 / dim as f32;
                1.0 / (base as f32).powf(exponent)
            })
            .collect()
    };
    match &rope.scaling {
        RopeScaling::Default => (plain(base), 1.0),
        RopeScaling::Linear { factor } => (plain(base).into_iter().map(|f| f / *factor as f32).collect(), 1.0),
        RopeScaling::Dynamic { factor, original_max_position_embeddings } => {
            let max = *original_max_position_embeddings as f64;
            let seq = seq_len.map(|s| s as f64).filter(|s| *s > max).unwrap_or(max);
            let base = base * ((factor * seq / max) - (factor - 1.0)).powf(dim as f64 / (dim as f64 - 2.0));
            (plain(base), 1.0)
        }
        RopeScaling::Yarn {
            factor,
            original_max_position_embeddings,
            beta_fast,
            beta_slow,
            attention_factor,
            mscale,
            mscale_all_dim,
            truncate,
        } => yarn(base, dim, *factor, *original_max_position_embeddings, *beta_fast, *beta_slow, *truncate, {
            let get_mscale = |scale: f64, m: f64| if scale <= 1.0 { 1.0 } else { 0.1 * m * scale.ln() + 1.0 };
            match (attention_factor, mscale, mscale_all_dim) {
                (Some(a), _, _) => *a,
                (None, Some(m), Some(all)) if *m != 0.0 && *all != 0.0 => {
                    get_mscale(*factor, *m) / get_mscale(*factor, *all)
                }
                _ => get_mscale(*factor, 1.0),
            }
        }),
        RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => {
            let old = *original_max_position_embeddings as f32;
            let (factor, low, high) = (*factor as f32, *low_freq_factor as f32, *high_freq_factor as f32);
            let low_wavelen = old / low;
            let high_wavelen = old / high;
            let inv = plain(base)
                .into_iter()
                .map(|f| {
                    let wavelen = 2.0 * std::f32::consts::PI / f;
                    if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / factor
                    } else {
                        let smooth = (old / wavelen - low) / (high - low);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect();
            (inv, 1.0)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn yarn(
    base: f64,
    dim: usize,
    factor: f64,
    original_max: usize,
    beta_fast: f64,
    beta_slow: f64,
    truncate: bool,
    attention_factor: f64,
) -> (Vec<f32>, f32) {
    let correction_dim =
        |rotations: f64| (dim as f64 * (original_max as f64 / (rotations * 2.0 * PI)).ln()) / (2.0 * base.ln());
    let (mut low, mut high) = (correction_dim(beta_fast), correction_dim(beta_slow));
    if truncate {
        low = low.floor();
        high = high.ceil();
    }
    let low = low.max(0.0);
    let high = high.min(dim as f64 - 1.0);
    let high = if low == high { high + 0.001 } else { high };
    let half = dim / 2;
    let inv = (0..half)
        .map(|i| {
            let pos_freq = (base as f32).powf((2 * i) as f32 / dim as f32);
            let extrapolation = 1.0 / pos_freq;
            let interpolation = 1.0 / (factor as f32 * pos_freq);
            let ramp = ((i as f32 - low as f32) / (high as f32 - low as f32)).clamp(0.0, 1.0);
            let extrapolation_factor = 1.0 - ramp;
            interpolation * (1.0 - extrapolation_factor) + extrapolation * extrapolation_factor
        })
        .collect();
    (inv, attention_factor as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rope_matches_closed_form() {
        let rope = RopeConfig { rope_theta: 10_000.0, scaling: RopeScaling::Default };
        let (inv, scale) = compute_inv_freq(&rope, 8, None);
        let want: Vec<f32> = (0..4).map(|i| 10_000f64.powf(-(2.0 * i as f64) / 8.0) as f32).collect();
        for (a, b) in inv.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-6 * b, "{a} vs {b}");
        }
        assert_eq!(scale, 1.0);
    }

    #[test]
    fn dynamic_equals_default_within_trained_context_and_grows_base_beyond() {
        let rope = RopeConfig {
            rope_theta: 10_000.0,
            scaling: RopeScaling::Dynamic { factor: 2.0, original_max_position_embeddings: 64 },
        };
        let plain = compute_inv_freq(&RopeConfig { rope_theta: 10_000.0, scaling: RopeScaling::Default }, 16, None).0;
        assert_eq!(compute_inv_freq(&rope, 16, Some(10)).0, plain);
        let long = compute_inv_freq(&rope, 16, Some(128)).0;
        // base' = base * (2*128/64 - 1)^(16/14): lower frequencies everywhere but the first.
        let base = 10_000f64 * 3f64.powf(16.0 / 14.0);
        assert!(((long[1] as f64) - base.powf(-2.0 / 16.0)).abs() < 1e-6);
        assert_eq!(long[0], 1.0);
    }

    #[test]
    fn linear_divides_every_frequency() {
        let rope = RopeConfig { rope_theta: 10_000.0, scaling: RopeScaling::Linear { factor: 4.0 } };
        let inv = compute_inv_freq(&rope, 8, None).0;
        assert_eq!(inv[0], 0.25);
    }
}
