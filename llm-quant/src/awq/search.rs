//! The two searches of AWQ (AutoAWQ's `_search_best_scale` and `_search_best_clip`), minus
//! the forward passes: the statistics the scale grid is built from, the grid itself, and the
//! per-(row, group) clipping search on sampled calibration inputs.

use burn::tensor::{backend::Backend, Tensor, TensorData};

use super::grid::Grid;
use crate::gptq::host_f32;

/// Ratios of AutoAWQ's scale grid: `0, 1/20, .., 19/20`.
pub(crate) const N_GRID: usize = 20;

/// Per input column, the mean over rows of `|w| / (max|w| of its group + 1e-6)`, over the
/// stacked weights of every layer that shares the input. ws: each `[rows, d_in]`.
pub(crate) fn weight_mean(ws: &[&[f32]], d_in: usize, grid: &Grid) -> Vec<f32> {
    let mut sum = vec![0f64; d_in];
    let mut rows = 0usize;
    for w in ws {
        for row in w.chunks_exact(d_in) {
            for b in grid.bounds.windows(2) {
                let max = row[b[0]..b[1]].iter().fold(0f32, |m, v| m.max(v.abs())) + 1e-6;
                for c in b[0]..b[1] {
                    sum[c] += f64::from(row[c].abs() / max);
                }
            }
            rows += 1;
        }
    }
    sum.into_iter().map(|s| (s / rows.max(1) as f64) as f32).collect()
}

/// Scales for grid point `ratio` (AutoAWQ's duo scaling): `x̄^r / (w̄^(1−r) + 1e-4)`, at
/// least 1e-4, normalised by `sqrt(max · min)`; a non-finite scale becomes 1.
pub(crate) fn candidate_scales(x_mean: &[f32], w_mean: &[f32], ratio: f32) -> Vec<f32> {
    let mut s: Vec<f32> = x_mean
        .iter()
        .zip(w_mean)
        .map(|(&x, &w)| (x.powf(ratio) / (w.powf(1.0 - ratio) + 1e-4)).max(1e-4))
        .collect();
    let (lo, hi) = s.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let norm = (hi * lo).sqrt();
    for v in &mut s {
        *v /= norm;
        if !v.is_finite() {
            *v = 1.0;
        }
    }
    s
}

/// `Q(W · diag(s)) · diag(1/s)`: what the layer computes once `s` is folded in and quantized.
/// w: `[rows, d_in]`.
pub(crate) fn scaled_fake_quant(w: &[f32], scales: &[f32], grid: &Grid) -> Vec<f32> {
    let d_in = scales.len();
    let mut out: Vec<f32> = w.chunks_exact(d_in).flat_map(|row| row.iter().zip(scales).map(|(v, s)| v * s)).collect();
    grid.fake_quantize(&mut out);
    for row in out.chunks_exact_mut(d_in) {
        for (v, s) in row.iter_mut().zip(scales) {
            *v /= s;
        }
    }
    out
}

/// Clip steps AutoAWQ tries: `max|w| · (1 − i/20)` for `i < 0.5 · 20`.
const CLIP_STEPS: usize = 10;

/// Output rows searched at once: bounds the `[n_groups, tokens, rows]` products (AutoAWQ
/// batches 64 or 256 output channels for the same reason).
const CLIP_ROWS: usize = 256;

/// AutoAWQ's `_compute_best_clip`: for every (row, group), the clipping bound among
/// `max|w| · (1 − i/20)`, `i = 0..10`, whose quantized group gives the smallest mean squared
/// error of the group's partial dot products over the sampled inputs; returns the weight
/// clamped to those bounds, `[d_out, d_in]`. x: `[n, d_in]` inputs (already sampled),
/// w: `[d_out, d_in]`.
pub(crate) fn clip_weight<B: Backend>(w: &[f32], d_out: usize, x: &[f32], grid: &Grid, device: &B::Device) -> Vec<f32> {
    let d_in = grid.bounds[grid.n_groups()];
    let n = x.len() / d_in;
    let width = grid.bounds.windows(2).map(|b| b[1] - b[0]).max().unwrap_or(0);
    // [n_groups, n, width]: each group's inputs, the short last group padded with zeros (a
    // zero input adds nothing to a partial dot product).
    let xg = Tensor::<B, 3>::from_data(TensorData::new(group_major(x, n, grid, width), [grid.n_groups(), n, width]), device);
    let mut out = Vec::with_capacity(d_out * d_in);
    for rows in w.chunks(CLIP_ROWS * d_in.max(1)) {
        out.extend(clip_rows(rows, &xg, grid, width, device));
    }
    debug_assert_eq!(out.len(), d_out * d_in);
    out
}

/// [`clip_weight`] for a block of rows. w: `[rows, d_in]`, xg: `[n_groups, n, width]`.
fn clip_rows<B: Backend>(w: &[f32], xg: &Tensor<B, 3>, grid: &Grid, width: usize, device: &B::Device) -> Vec<f32> {
    let (d_in, n_groups) = (grid.bounds[grid.n_groups()], grid.n_groups());
    let d_out = w.len() / d_in;
    // [n_groups, width, d_out]
    let as_groups = |w: &[f32]| -> Tensor<B, 3> {
        let data = group_major(w, d_out, grid, width);
        Tensor::<B, 3>::from_data(TensorData::new(data, [n_groups, d_out, width]), device).swap_dims(1, 2)
    };
    // [n_groups, n, d_out]
    let reference = xg.clone().matmul(as_groups(w));
    let max_abs: Vec<f32> = w
        .chunks_exact(d_in)
        .flat_map(|row| grid.bounds.windows(2).map(move |b| row[b[0]..b[1]].iter().fold(0f32, |m, v| m.max(v.abs()))))
        .collect();
    let mut best_err = vec![f32::INFINITY; d_out * n_groups];
    let mut best_bound = max_abs.clone();
    for step in 0..CLIP_STEPS {
        // Python's `1 - i/20` in double, then f32 as torch takes the scalar.
        let shrink = (1.0 - step as f64 / 20.0) as f32;
        let mut clipped = clamp_groups(w, &max_abs, shrink, grid);
        grid.fake_quantize(&mut clipped);
        let out = xg.clone().matmul(as_groups(&clipped));
        // [n_groups, 1, d_out] mean over the sampled tokens.
        let err = (out - reference.clone()).powi_scalar(2).mean_dim(1);
        let err = host_f32(err);
        for o in 0..d_out {
            for g in 0..n_groups {
                let (e, k) = (err[g * d_out + o], o * n_groups + g);
                if e < best_err[k] {
                    best_err[k] = e;
                    best_bound[k] = max_abs[k] * shrink;
                }
            }
        }
    }
    clamp_groups(w, &best_bound, 1.0, grid)
}

/// w clamped per (row, group) to `±bound · shrink`. bound: `[d_out, n_groups]`.
fn clamp_groups(w: &[f32], bound: &[f32], shrink: f32, grid: &Grid) -> Vec<f32> {
    let (d_in, n_groups) = (grid.bounds[grid.n_groups()], grid.n_groups());
    let mut out = w.to_vec();
    for (o, row) in out.chunks_exact_mut(d_in).enumerate() {
        for (g, b) in grid.bounds.windows(2).enumerate() {
            let m = bound[o * n_groups + g] * shrink;
            for v in &mut row[b[0]..b[1]] {
                *v = v.clamp(-m, m);
            }
        }
    }
    out
}

/// `[rows, d_in]` -> `[n_groups, rows, width]`, each group's columns zero-padded to `width`.
fn group_major(a: &[f32], rows: usize, grid: &Grid, width: usize) -> Vec<f32> {
    let d_in = grid.bounds[grid.n_groups()];
    let mut out = vec![0f32; grid.n_groups() * rows * width];
    for (g, b) in grid.bounds.windows(2).enumerate() {
        for r in 0..rows {
            let dst = &mut out[(g * rows + r) * width..][..b[1] - b[0]];
            dst.copy_from_slice(&a[r * d_in + b[0]..r * d_in + b[1]]);
        }
    }
    out
}

/// Every `step`-th row of `x` (`[n, width]`), `step = max(1, n / n_sample)`: AutoAWQ's token
/// sampling for the clip search.
#[cfg(test)]
pub(crate) fn sample_rows(x: &[f32], width: usize, n_sample: usize) -> Vec<f32> {
    x.chunks_exact(width).step_by(sample_step(x.len() / width, n_sample)).flatten().copied().collect()
}

/// Row stride that takes about `n_sample` of `n` rows.
pub(crate) fn sample_step(n: usize, n_sample: usize) -> usize {
    (n / n_sample.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_testkit::{assert_close, read_f32, read_tensor, repo_path};

    /// AutoAWQ 0.2.9's own search on one linear (`fixtures/awq_ref`, scripts/awq-reference.sh):
    /// W [64, 256] in groups of 128, 128 tokens of activations with four outlier channels.
    #[test]
    fn the_search_of_one_linear_matches_autoawq() {
        type B = burn::backend::Flex;
        let file = repo_path("fixtures/awq_ref/awq_ref.safetensors");
        let (_, w) = read_f32(&file, "pack.w");
        let (_, x) = read_f32(&file, "search.x");
        let (d_out, d_in, n) = (64, 256, 128);
        let grid = Grid::new(4, d_in, 128);
        let x_mean: Vec<f32> = (0..d_in).map(|c| (0..n).map(|t| x[t * d_in + c].abs()).sum::<f32>() / n as f32).collect();
        // f32 sums of 128 values up to ~60: the order of summation moves the last bits.
        assert_close("x_mean", &x_mean, &read_f32(&file, "search.x_mean").1, 1e-4);
        let w_mean = weight_mean(&[&w], d_in, &grid);
        assert_close("w_mean", &w_mean, &read_f32(&file, "search.w_mean").1, 1e-6);
        // Output MSE per grid point, computed as the linear computes it.
        let out = |w: &[f32]| -> Vec<f64> {
            (0..n)
                .flat_map(|t| (0..d_out).map(move |o| (t, o)))
                .map(|(t, o)| (0..d_in).map(|c| f64::from(x[t * d_in + c]) * f64::from(w[o * d_in + c])).sum())
                .collect()
        };
        let reference = out(&w);
        let losses: Vec<f64> = (0..N_GRID)
            .map(|k| {
                let q = scaled_fake_quant(&w, &candidate_scales(&x_mean, &w_mean, k as f32 / N_GRID as f32), &grid);
                out(&q).iter().zip(&reference).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / reference.len() as f64
            })
            .collect();
        let (_, want) = read_tensor(&file, "search.losses");
        for (k, (a, b)) in losses.iter().zip(&want).enumerate() {
            // The quantized weights are the same; the products differ in summation order only.
            assert!((a - b).abs() <= 1e-4 * b, "ratio {k}/20: {a} vs AutoAWQ {b}");
        }
        let best = (0..N_GRID).min_by(|&a, &b| losses[a].total_cmp(&losses[b])).unwrap();
        assert_eq!(best, 10, "AutoAWQ picks ratio 0.5");
        let scales = candidate_scales(&x_mean, &w_mean, 0.5);
        assert_close("best scales", &scales, &read_f32(&file, "search.best_scales").1, 1e-4);

        // The clip search on the scaled weight and inputs: the same bound per (row, group).
        // It takes AutoAWQ's scales: a last-bit change in the scaled weight can move a code
        // across a rounding edge, and with it a group's best clip step.
        let (_, scales) = read_f32(&file, "search.best_scales");
        let ws: Vec<f32> = w.chunks_exact(d_in).flat_map(|r| r.iter().zip(&scales).map(|(v, s)| v * s)).collect();
        let xs: Vec<f32> = x.chunks_exact(d_in).flat_map(|r| r.iter().zip(&scales).map(|(v, s)| v / s)).collect();
        for (name, n_sample) in [("search.clip_max_val", 512), ("search.clip_max_val_ntok64", 64)] {
            let sampled = sample_rows(&xs, d_in, n_sample);
            let clipped = clip_weight::<B>(&ws, d_out, &sampled, &grid, &Default::default());
            let (_, bound) = read_f32(&file, name);
            let ours: Vec<f32> = clipped
                .chunks_exact(d_in)
                .flat_map(|row| grid.bounds.windows(2).map(move |b| row[b[0]..b[1]].iter().fold(0f32, |m, v| m.max(v.abs()))))
                .collect();
            // Clamping to the bound leaves max|w| equal to it (the bound never exceeds max|w|).
            assert_close(name, &ours, &bound, 1e-6);
        }
    }

    #[test]
    fn clipping_in_blocks_of_rows_equals_clipping_all_rows_at_once() {
        type B = burn::backend::Flex;
        let (d_out, d_in, n) = (CLIP_ROWS + 44, 64, 40);
        let w: Vec<f32> = (0..d_out * d_in).map(|i| ((i * 7919 % 1009) as f32 / 504.0 - 1.0) * if i % 61 == 0 { 4.0 } else { 1.0 }).collect();
        let x: Vec<f32> = (0..n * d_in).map(|i| (i * 104729 % 997) as f32 / 498.0 - 1.0).collect();
        let grid = Grid::new(4, d_in, 32);
        let device = Default::default();
        let xg = Tensor::<B, 3>::from_data(TensorData::new(group_major(&x, n, &grid, 32), [2, n, 32]), &device);
        assert_eq!(clip_weight::<B>(&w, d_out, &x, &grid, &device), clip_rows::<B>(&w, &xg, &grid, 32, &device));
    }

    #[test]
    fn candidate_scales_are_normalised_around_one() {
        let x = [0.5f32, 2.0, 1.0, 8.0];
        let w = [0.2f32, 0.9, 0.5, 0.4];
        for ratio in [0.0f32, 0.35, 0.95] {
            let s = candidate_scales(&x, &w, ratio);
            let (lo, hi) = s.iter().fold((f32::INFINITY, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            assert!((lo * hi - 1.0).abs() < 1e-5, "ratio {ratio}: {s:?}");
        }
        // ratio 0 ranks columns by 1/w̄ only.
        let s = candidate_scales(&x, &w, 0.0);
        assert!(s[0] > s[3] && s[3] > s[2] && s[2] > s[1], "{s:?}");
    }

    #[test]
    fn weight_mean_normalises_each_group_by_its_max() {
        // One row, two groups of two: |w| / max per group.
        let w = [1.0f32, -2.0, 0.5, 0.25];
        let grid = Grid::new(4, 4, 2);
        let m = weight_mean(&[&w], 4, &grid);
        let want = [0.5, 1.0, 1.0, 0.5];
        for (a, b) in m.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{m:?}");
        }
    }
}
