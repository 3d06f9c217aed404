//! A data-parallel step's sums: every rank's loss, counts, metrics and gradients added up
//! through the [`Collective`], so each rank continues with the whole step's values.

use std::collections::BTreeMap;

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use llm_core::CausalLm;

use super::StepOutput;
use crate::error::Result;
use crate::parallel::Collective;
use crate::params::param_infos;

/// Sums `out` over all ranks. Gradients travel as one flat f32 vector in the order of the
/// model's trainable parameters (a parameter this rank has no gradient for sends zeros and is
/// counted absent, so a parameter no rank reached stays without gradient, as in one process).
pub(super) fn all_reduce<B: AutodiffBackend>(
    collective: &mut dyn Collective,
    model: &CausalLm<B>,
    mut out: StepOutput<B>,
) -> Result<StepOutput<B>> {
    let trainable: Vec<(String, usize)> = param_infos(model)
        .into_iter()
        .filter(|p| p.trainable)
        .map(|p| {
            let n = p.numel();
            (p.name, n)
        })
        .collect();
    let mut scalars = BTreeMap::from([
        ("loss".to_string(), out.loss),
        ("tokens".to_string(), out.tokens as f64),
        ("target_tokens".to_string(), out.target_tokens as f64),
    ]);
    scalars.extend(out.metrics.iter().map(|(k, v)| (format!("metric/{k}"), *v)));
    let mut flat = Vec::with_capacity(trainable.iter().map(|(_, n)| n).sum());
    let device = model.device();
    for (name, n) in &trainable {
        match out.grads.remove(name) {
            Some(g) => {
                flat.extend(llm_core::io::host_f32(g).1);
                scalars.insert(format!("present/{name}"), 1.0);
            }
            None => flat.resize(flat.len() + n, 0.0),
        }
    }
    collective.all_reduce_f32(&mut flat)?;
    let sums = collective.all_reduce_scalars(&scalars)?;
    out.loss = sums["loss"];
    out.tokens = sums["tokens"].round() as usize;
    out.target_tokens = sums["target_tokens"].round() as usize;
    out.metrics = sums.iter().filter_map(|(k, v)| Some((k.strip_prefix("metric/")?.to_string(), *v))).collect();
    let mut offset = 0;
    for (name, n) in trainable {
        let values = &flat[offset..offset + n];
        offset += n;
        if sums.get(&format!("present/{name}")).is_some_and(|&c| c > 0.0) {
            out.grads.insert(name, Tensor::from_data(TensorData::new(values.to_vec(), [n]), &device));
        }
    }
    Ok(out)
}
