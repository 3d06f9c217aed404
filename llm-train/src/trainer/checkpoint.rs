//! Checkpoints that resume exactly: the trainable parameters, the optimizer moments and the
//! step, written with llm-core's atomic directory writer.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use llm_core::io::{write_dir_atomic, write_json};
use serde_json::{json, Value};

use super::Trainer;
use crate::error::{Result, TrainError};
use crate::optim::Moments;
use crate::params::{param_infos, read_params};
use crate::peft::{read_f32_safetensors, write_f32_safetensors};

impl<B: AutodiffBackend> Trainer<B> {
    /// Writes the trainable parameters, the optimizer moments and the step to `dir`
    /// (atomically: built under a temporary name, then renamed).
    pub fn save_checkpoint(&mut self, dir: &Path) -> Result<()> {
        let trainable: Vec<String> = param_infos(&self.model).into_iter().filter(|p| p.trainable).map(|p| p.name).collect();
        let wanted: std::collections::HashSet<&str> = trainable.iter().map(String::as_str).collect();
        // Only the trainable tensors come to the host (a LoRA run never copies the base).
        let params: Vec<(String, Vec<usize>, Vec<f32>)> =
            read_params(&self.model, |n| wanted.contains(n)).into_iter().map(|(n, (shape, v))| (n, shape, v)).collect();
        let mut moments = vec![];
        for (name, m) in &self.optimizer.state {
            for (kind, t) in [("exp_avg", &m.exp_avg), ("exp_avg_sq", &m.exp_avg_sq)] {
                let v = llm_core::io::host_f32(t.clone()).1;
                moments.push((format!("{kind}.{name}"), vec![v.len()], v));
            }
        }
        let state = json!({
            "step": self.optimizer.step,
            "seed": self.config.seed,
            "lr": self.config.optimizer.lr,
            "trainable": trainable,
            "format": "llm-train checkpoint v1",
        });
        write_dir_atomic(dir, |tmp| -> Result<()> {
            write_f32_safetensors(&tmp.join("trainable.safetensors"), &params)?;
            write_f32_safetensors(&tmp.join("optimizer.safetensors"), &moments)?;
            Ok(write_json(&tmp.join("trainer_state.json"), &state)?)
        })?;
        tracing::info!(step = self.optimizer.step, dir = %dir.display(), "checkpoint written");
        self.last_checkpoint = Some(dir.to_path_buf());
        Ok(())
    }

    /// Restores a checkpoint written by [`Self::save_checkpoint`] onto a model prepared the
    /// same way (same adapters, same trainable set); mismatches are errors naming the tensor.
    pub fn resume(&mut self, dir: &Path) -> Result<()> {
        let bad = |message: String| TrainError::Checkpoint { path: dir.to_path_buf(), message };
        let state_path = dir.join("trainer_state.json");
        let text = std::fs::read_to_string(&state_path).map_err(|e| TrainError::io(&state_path, e))?;
        let state: Value = serde_json::from_str(&text).map_err(|e| bad(format!("trainer_state.json: {e}")))?;
        let step = state["step"].as_u64().ok_or_else(|| bad("trainer_state.json: no `step`".into()))?;
        let params = read_f32_safetensors(&dir.join("trainable.safetensors"))?;
        let infos = param_infos(&self.model);
        let trainable: Vec<_> = infos.iter().filter(|p| p.trainable).collect();
        for p in &trainable {
            match params.get(&p.name) {
                Some((shape, _)) if *shape == p.shape => {}
                Some((shape, _)) => return Err(bad(format!("{}: shape {shape:?}, the model has {:?}", p.name, p.shape))),
                None => return Err(bad(format!("{} is trainable in the model but not in the checkpoint", p.name))),
            }
        }
        if let Some(extra) = params.keys().find(|n| !trainable.iter().any(|p| &&p.name == n)) {
            return Err(bad(format!("{extra} is in the checkpoint but not trainable in the model")));
        }
        let device = self.model.device();
        self.model = crate::params::write_params(self.model.clone(), &params);
        let moments = read_f32_safetensors(&dir.join("optimizer.safetensors"))?;
        let tensor = |name: &str| -> Result<Tensor<B::InnerBackend, 1>> {
            let (_, v) = moments.get(name).ok_or_else(|| bad(format!("optimizer.safetensors lacks {name}")))?;
            Ok(Tensor::from_data(burn::tensor::TensorData::new(v.clone(), [v.len()]), &device))
        };
        let mut state_map = BTreeMap::new();
        if step > 0 {
            for p in &trainable {
                let m = Moments { exp_avg: tensor(&format!("exp_avg.{}", p.name))?, exp_avg_sq: tensor(&format!("exp_avg_sq.{}", p.name))? };
                state_map.insert(p.name.clone(), m);
            }
        }
        self.optimizer.state = state_map;
        self.optimizer.step = step;
        self.last_checkpoint = Some(dir.to_path_buf());
        tracing::info!(step, dir = %dir.display(), "resumed");
        Ok(())
    }
}
