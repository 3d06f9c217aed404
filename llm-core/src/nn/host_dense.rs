//! Dense f32 products of a few rows (decode steps) on the host, reading a Flex weight in place:
//! such a product is one read of the weight, which this does at the memory's pace with the
//! weight rows split over the pool, while Burn's matmul packs its operands for a GEMM first.
//! The host pass ([`crate::model::host_step`]) runs its dense layers here, and
//! [`super::linear::linear_forward`] its decode-sized products (the LM head among them).

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};

/// Input rows up to which dense products run here; more rows (prompts) keep Burn's matmul.
pub(crate) const MAX_ROWS: usize = 8;

/// The Flex tensor behind `w` when it is a plain f32 `[d_out, d_in]` buffer of Flex (a
/// handle on the same memory, not a copy); `None` for other backends (autodiff among them),
/// dtypes and layouts.
#[cfg(feature = "flex")]
pub(crate) fn flex_f32<B: Backend>(w: Tensor<B, 2>) -> Option<burn_flex::FlexTensor> {
    let prim = match w.into_primitive() {
        burn::tensor::TensorPrimitive::Float(p) => p,
        _ => return None,
    };
    let boxed: Box<dyn std::any::Any> = Box::new(prim);
    let t = *boxed.downcast::<burn_flex::FlexTensor>().ok()?;
    let plain = t.dtype() == DType::F32 && t.is_contiguous() && t.layout().start_offset() == 0 && t.layout().shape().num_dims() == 2;
    plain.then_some(t)
}

/// `x · Wᵀ` on the host when `x` has at most [`MAX_ROWS`] f32 rows and `w` is a plain f32
/// Flex tensor; `None` (nothing computed) otherwise. x: `[rows, d_in]`, w: `[d_out, d_in]`
/// -> `[rows, d_out]`.
pub(crate) fn product<B: Backend>(x: &Tensor<B, 2>, w: &Tensor<B, 2>) -> Option<Tensor<B, 2>> {
    #[cfg(feature = "flex")]
    {
        let [rows, d_in] = x.dims();
        if rows > MAX_ROWS || x.dtype() != DType::F32 {
            return None;
        }
        let flex = flex_f32(w.clone())?;
        let d_out = flex.layout().shape()[0];
        let xs = x.clone().into_data().into_vec::<f32>().ok()?;
        let y = matmul(flex.storage::<f32>(), d_in, &xs, rows);
        Some(Tensor::from_data(TensorData::new(y, [rows, d_out]), &x.device()))
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = (x, w);
        None
    }
}

/// `x · Wᵀ`, split by output rows across the pool. w: `[d_out, d_in]`, x: `[rows, d_in]` ->
/// `[rows, d_out]`.
pub(crate) fn matmul(w: &[f32], d_in: usize, x: &[f32], rows: usize) -> Vec<f32> {
    use rayon::prelude::*;
    /// Weight rows one task takes.
    const ROWS_PER_TASK: usize = 64;
    let d_out = w.len() / d_in;
    // `[d_out, rows]`, each task its own weight rows.
    let mut t = vec![0f32; d_out * rows];
    t.par_chunks_mut(ROWS_PER_TASK * rows)
        .zip(w.par_chunks(ROWS_PER_TASK * d_in))
        .for_each(|(out, w)| kernel::rows_dot(w, d_in, x, out));
    if rows == 1 {
        return t;
    }
    let mut y = vec![0f32; rows * d_out];
    for (o, col) in t.chunks_exact(rows).enumerate() {
        for (r, &v) in col.iter().enumerate() {
            y[r * d_out + o] = v;
        }
    }
    y
}

mod kernel {
    use crate::quant::kernels::{dot, multiversion};

    multiversion! {
        fn rows_dot(w: &[f32], d_in: usize, x: &[f32], out: &mut [f32]) {
            let rows = x.len() / d_in;
            for (wr, col) in w.chunks_exact(d_in).zip(out.chunks_exact_mut(rows)) {
                for (y, xr) in col.iter_mut().zip(x.chunks_exact(d_in)) {
                    *y = dot(wr, xr);
                }
            }
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;

    type B = burn_flex::Flex;

    #[test]
    fn host_products_equal_burns_matmul() {
        let device = Default::default();
        let (d_out, d_in) = (130, 72);
        let w: Vec<f32> = (0..d_out * d_in).map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0).collect();
        let wt = Tensor::<B, 2>::from_data(TensorData::new(w, [d_out, d_in]), &device);
        for rows in [1, 3, 8] {
            let x: Vec<f32> = (0..rows * d_in).map(|i| ((i * 13 % 29) as f32 - 14.0) / 8.0).collect();
            let xt = Tensor::<B, 2>::from_data(TensorData::new(x, [rows, d_in]), &device);
            let got = product(&xt, &wt).expect("plain f32 on Flex").into_data().into_vec::<f32>().unwrap();
            let want = xt.clone().matmul(wt.clone().transpose()).into_data().into_vec::<f32>().unwrap();
            for (g, w) in got.iter().zip(&want) {
                // Sums of 72 products of size <= 2.3: only the order of the sums differs.
                assert!((g - w).abs() < 1e-4 * (1.0 + w.abs()), "{rows} rows: {g} vs {w}");
            }
        }
        let nine = Tensor::<B, 2>::zeros([MAX_ROWS + 1, d_in], &device);
        assert!(product(&nine, &wt).is_none(), "prompts keep Burn's matmul");
    }
}
