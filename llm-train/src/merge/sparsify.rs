//! Sparsification of task vectors (mergekit's `sparsify.py`): magnitude top-k (TIES), Bernoulli
//! drops (DARE), magnitude with outliers removed (Model Breadcrumbs), magnitude-ranked keep
//! probabilities (DELLA), each optionally rescaled to the L1 norm it had; and TIES' sign
//! consensus.
//!
//! Every function works on a flat row-major tensor; `cols` is the length of its last dimension
//! where the method ranks per row (DELLA).

use rand::Rng;

/// How a task vector is thinned before mixing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sparsification {
    /// Keep the `density` fraction of largest magnitudes (TIES).
    Magnitude,
    /// Keep each entry with probability `density` (DARE).
    Random,
    /// Drop the `gamma` fraction of largest magnitudes, then the smallest down to `density`.
    MagnitudeOutliers {
        /// Fraction of the largest magnitudes removed.
        gamma: f64,
    },
    /// Keep each entry with a probability from `density - epsilon` (smallest magnitude of its
    /// row) to `density + epsilon` (largest).
    DellaMagprune {
        /// Half-width of the keep probabilities.
        epsilon: f64,
    },
}

/// Thins `delta` in place to `density` by `method`, then (when `rescale`) scales what is left
/// so its L1 norm equals the original's. `cols`: length of the last dimension.
///
/// Errors (as a message; the caller names the tensor) when DELLA's `density ± epsilon` leaves
/// (0, 1).
pub fn sparsify(delta: &mut [f32], cols: usize, density: f64, method: Sparsification, rescale: bool, rng: &mut impl Rng) -> Result<(), String> {
    if density >= 1.0 {
        return Ok(());
    }
    let mask = match method {
        Sparsification::Magnitude => magnitude_mask(delta, density),
        Sparsification::Random => delta.iter().map(|_| rng.random::<f64>() < density).collect(),
        Sparsification::MagnitudeOutliers { gamma } => outlier_mask(delta, density, gamma),
        Sparsification::DellaMagprune { epsilon } => della_mask(delta, cols, density, epsilon, rng)?,
    };
    apply_mask(delta, &mask, rescale);
    Ok(())
}

/// `delta * mask`, rescaled to the L1 norm of `delta` when `rescale` (mergekit's
/// `rescaled_masked_tensor` with `RescaleNorm.l1`; norms under 1e-7 leave it unscaled).
pub fn apply_mask(delta: &mut [f32], mask: &[bool], rescale: bool) {
    let before = l1(delta);
    for (d, &keep) in delta.iter_mut().zip(mask) {
        if !keep {
            *d = 0.0;
        }
    }
    if !rescale {
        return;
    }
    let after = l1(delta);
    const EPS: f32 = 1e-7;
    if before < EPS || after < EPS {
        return;
    }
    let scale = before / after;
    delta.iter_mut().for_each(|d| *d *= scale);
}

/// The L1 norm in f32, summed in f64 so it is the correctly rounded sum (torch's pairwise f32
/// sum is within an ulp or two of it).
fn l1(x: &[f32]) -> f32 {
    x.iter().map(|&v| f64::from(v.abs())).sum::<f64>() as f32
}

/// Indices of `x` ordered by magnitude, ascending; ties in index order.
fn by_magnitude(x: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].abs().total_cmp(&x[b].abs()).then(a.cmp(&b)));
    idx
}

/// The `max(1, int(density · n))` largest magnitudes (mergekit 0.1.5 keeps at least one).
fn magnitude_mask(x: &[f32], density: f64) -> Vec<bool> {
    let mut mask = vec![false; x.len()];
    if density <= 0.0 || x.is_empty() {
        return mask;
    }
    let k = ((density * x.len() as f64) as usize).max(1);
    for &i in by_magnitude(x).iter().rev().take(k) {
        mask[i] = true;
    }
    mask
}

/// Model Breadcrumbs: drop the `int(gamma·n)` largest magnitudes and the smallest, keeping
/// `int(density·n)`; fewer outliers go when both cannot (mergekit 0.1.5's `magnitude_outliers`).
fn outlier_mask(x: &[f32], density: f64, gamma: f64) -> Vec<bool> {
    let n = x.len();
    let target = (density * n as f64) as usize;
    let n_top = (gamma * n as f64) as usize;
    let n_bot = n.saturating_sub(target + n_top);
    let mut mask = vec![false; n];
    for &i in by_magnitude(x).iter().skip(n_bot).take(target) {
        mask[i] = true;
    }
    mask
}

/// DELLA's MagPrune: per row, rank magnitudes 1..cols, keep with probability
/// `density - epsilon + 2·epsilon·(rank - 1)/(cols - 1)`.
fn della_mask(x: &[f32], cols: usize, density: f64, epsilon: f64, rng: &mut impl Rng) -> Result<Vec<bool>, String> {
    if density <= 0.0 {
        return Ok(vec![false; x.len()]);
    }
    if density + epsilon >= 1.0 || density - epsilon <= 0.0 {
        return Err(format!("epsilon {epsilon} must keep density ± epsilon inside (0, 1) (density {density})"));
    }
    let cols = cols.max(1);
    let mut mask = vec![false; x.len()];
    for (r, row) in x.chunks(cols).enumerate() {
        let span = (row.len().max(2) - 1) as f64;
        for (rank, &i) in by_magnitude(row).iter().enumerate() {
            let p = (density - epsilon) + (rank as f64 / span).clamp(0.0, 1.0) * 2.0 * epsilon;
            mask[r * cols + i] = rng.random::<f64>() < p;
        }
    }
    Ok(mask)
}

/// TIES' sign election by summed mass: `mask[k][i]` is whether model k's (weighted) delta at i
/// has the sign of `Σ_k deltas[k][i]` (ties to +; a zero has no sign and is never kept).
pub fn sign_consensus(deltas: &[Vec<f32>]) -> Vec<Vec<bool>> {
    let n = deltas.first().map_or(0, Vec::len);
    let majority: Vec<f32> = (0..n)
        .map(|i| if deltas.iter().fold(0.0f32, |s, d| s + d[i]) >= 0.0 { 1.0 } else { -1.0 })
        .collect();
    deltas.iter().map(|d| d.iter().zip(&majority).map(|(&v, &m)| sign(v) == m).collect()).collect()
}

fn sign(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn magnitude_keeps_the_largest_and_outliers_drop_both_ends() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let mut x = vec![0.1, -0.5, 0.3, -0.2, 0.4];
        sparsify(&mut x, 5, 0.4, Sparsification::Magnitude, false, &mut rng).unwrap();
        assert_eq!(x, vec![0.0, -0.5, 0.0, 0.0, 0.4]);
        // 10 entries, density 0.5, gamma 0.2: the 2 largest and the 3 smallest go.
        let mut y: Vec<f32> = (1..=10).map(|v| v as f32).collect();
        sparsify(&mut y, 10, 0.5, Sparsification::MagnitudeOutliers { gamma: 0.2 }, false, &mut rng).unwrap();
        assert_eq!(y, vec![0.0, 0.0, 0.0, 4.0, 5.0, 6.0, 7.0, 8.0, 0.0, 0.0]);
        // A density that rounds to no entry keeps one.
        let mut z = vec![1.0f32, 3.0, 2.0];
        sparsify(&mut z, 3, 0.2, Sparsification::Magnitude, false, &mut rng).unwrap();
        assert_eq!(z, vec![0.0, 3.0, 0.0]);
    }

    #[test]
    fn rescaling_restores_the_l1_norm_and_della_ranks_per_row() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let x: Vec<f32> = (0..4000).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
        let mut d = x.clone();
        sparsify(&mut d, 40, 0.5, Sparsification::DellaMagprune { epsilon: 0.3 }, true, &mut rng).unwrap();
        let (l1x, l1d) = (l1(&x), l1(&d));
        assert!((l1x - l1d).abs() / l1x < 1e-5, "{l1x} vs {l1d}");
        // Keep probability grows with magnitude: kept entries are larger on average.
        let kept: Vec<f32> = x.iter().zip(&d).filter(|(_, &v)| v != 0.0).map(|(a, _)| a.abs()).collect();
        let mean_kept = kept.iter().sum::<f32>() / kept.len() as f32;
        let mean_all = x.iter().map(|v| v.abs()).sum::<f32>() / x.len() as f32;
        assert!(mean_kept > 1.1 * mean_all, "{mean_kept} vs {mean_all}");
        assert!(sparsify(&mut d, 40, 0.9, Sparsification::DellaMagprune { epsilon: 0.15 }, true, &mut rng).is_err());
    }

    #[test]
    fn consensus_elects_the_sign_of_the_sum() {
        let m = sign_consensus(&[vec![1.0, -1.0, 0.0], vec![-3.0, 0.5, 2.0]]);
        assert_eq!(m, vec![vec![false, true, false], vec![true, false, true]]);
    }
}
