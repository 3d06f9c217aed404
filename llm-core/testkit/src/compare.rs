//! Comparing results with reference values, and moving them in and out of tensors.

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};

/// Largest absolute difference between `got` and `want` (computed in f64); panics, naming
/// `what`, the index and both values, when it is above `tol` or NaN.
pub fn assert_close<W: Copy + Into<f64>>(what: &str, got: &[f32], want: &[W], tol: impl Into<f64>) -> f64 {
    let tol = tol.into();
    assert_eq!(got.len(), want.len(), "{what}: length");
    let (i, diff) = got
        .iter()
        .zip(want)
        .map(|(&a, &b)| (a as f64 - b.into()).abs())
        .enumerate()
        .fold((0, 0.0f64), |acc, (i, d)| if d > acc.1 || d.is_nan() { (i, d) } else { acc });
    assert!(diff <= tol, "{what}: max |diff| {diff} at {i} (got {}, want {}) exceeds {tol}", got[i], want[i].into());
    diff
}

/// Asserts `|got - want| / |want| <= rel`, printing the relative difference either way.
pub fn assert_rel(what: &str, got: f64, want: f64, rel: f64) {
    eprintln!("{what}: got {got}, want {want}, relative diff {:.2e}", ((got - want) / want).abs());
    assert!(((got - want) / want).abs() <= rel, "{what}: got {got}, want {want} (relative tolerance {rel})");
}

/// Rows of token ids (all the same length) as a tensor.
///
/// rows: `batch` rows of `seq` ids -> [batch, seq]
pub fn ids_tensor<B: Backend>(rows: &[Vec<u32>], device: &B::Device) -> Tensor<B, 2, Int> {
    let (b, s) = (rows.len(), rows[0].len());
    let flat: Vec<i64> = rows.iter().flatten().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(flat, [b, s]), device)
}

/// A float tensor's values, row-major.
pub fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}
