//! The training loop: AdamW over the trainable parameters, gradient accumulation, global-norm
//! clipping, warmup + schedule, evaluation, JSONL metrics and checkpoints that resume exactly.
//!
//! Everything random is a function of `(seed, step)`: the example order of each epoch is a
//! seeded shuffle and every adapter gets a fresh dropout seed per micro-batch (host RNG, not
//! the backend's global one, which other threads may draw from). A
//! checkpoint therefore only needs the trainable parameters, the optimizer moments and the step
//! count to continue as if never stopped.


mod checkpoint;
mod checkpointing;
mod config;
pub mod memory;
mod metrics;
mod reduce;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};
use llm_core::CausalLm;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::error::{Result, TrainError};
use crate::objective::{Objective, Sft, SftBatches};
use crate::optim::{clip_coefficient, AdamW};
use crate::parallel::{Collective, SingleProcess};
use crate::params::{global_norm, gradients, map_params, param_infos, Gradients};
use crate::sft::{SftBatch, TokenizedExample};
pub use config::TrainConfig;
pub use metrics::{StepMetrics, StepOutput, TrainEvent, TrainReport};
use metrics::log;
use reduce::all_reduce;
use checkpointing::{add, backward_through_layers, checkpoint_tape};

/// Trains the parameters of `model` that require gradients (see [`crate::params::set_trainable`]
/// and [`crate::lora::attach_lora`]); frozen parameters never reach the optimizer.
pub struct Trainer<B: AutodiffBackend> {
    /// The model being trained.
    pub model: CausalLm<B>,
    /// AdamW and its state.
    pub optimizer: AdamW<B::InnerBackend>,
    /// Settings.
    pub config: TrainConfig,
    /// Padding token id for batches.
    pub pad_id: u32,
    last_checkpoint: Option<PathBuf>,
    /// The data-parallel group this replica belongs to ([`SingleProcess`] by default).
    collective: Mutex<Box<dyn Collective>>,
}

impl<B: AutodiffBackend> Trainer<B> {
    /// A trainer at step 0; fails on invalid settings or when nothing is trainable.
    pub fn new(model: CausalLm<B>, config: TrainConfig, pad_id: u32) -> Result<Self> {
        config.validate()?;
        if !param_infos(&model).iter().any(|p| p.trainable) {
            return Err(TrainError::config("model", "no parameter requires gradients: attach LoRA or call set_trainable"));
        }
        let optimizer = AdamW::new(config.optimizer);
        Ok(Self { model, optimizer, config, pad_id, last_checkpoint: None, collective: Mutex::new(Box::new(SingleProcess)) })
    }

    /// Makes this trainer one replica of a data-parallel run: every optimizer step's examples
    /// are shared out among the ranks (micro-batch `i` to rank `i % world_size`), the losses,
    /// counts, metrics and gradients summed over them, and every rank applies the same update.
    /// With `world_size` replicas of `batch_size`, the steps are those of one process with
    /// `world_size · batch_size` examples per step. Only rank 0 writes metrics and checkpoints.
    pub fn with_collective(mut self, collective: impl Collective + 'static) -> Self {
        self.collective = Mutex::new(Box::new(collective));
        self
    }

    /// This replica's rank and the number of replicas.
    pub fn rank(&self) -> (usize, usize) {
        let c = self.collective();
        (c.rank(), c.world_size())
    }

    fn collective(&self) -> std::sync::MutexGuard<'_, Box<dyn Collective>> {
        // A panic while holding it leaves nothing half-done: the group's state is its streams.
        self.collective.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Optimizer steps taken so far.
    pub fn step(&self) -> u64 {
        self.optimizer.step
    }

    /// Examples per optimizer step.
    pub fn examples_per_step(&self) -> usize {
        self.config.batch_size * self.config.grad_accum * self.rank().1
    }

    /// Optimizer steps the run makes over `n_examples`.
    pub fn total_steps(&self, n_examples: usize) -> u64 {
        let per_epoch = n_examples.div_ceil(self.examples_per_step()) as u64;
        self.config.max_steps.unwrap_or(per_epoch * self.config.epochs as u64)
    }

    /// The example indices of optimizer step `step` (0-based), split into micro-batches: a
    /// deterministic function of the seed, the step and the dataset size.
    pub fn step_indices(&self, n_examples: usize, step: u64) -> Vec<Vec<usize>> {
        let per_step = self.examples_per_step();
        let per_epoch = n_examples.div_ceil(per_step) as u64;
        let (epoch, within) = (step / per_epoch, (step % per_epoch) as usize);
        let mut order: Vec<usize> = (0..n_examples).collect();
        order.shuffle(&mut StdRng::seed_from_u64(self.config.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let chosen = &order[within * per_step..((within + 1) * per_step).min(n_examples)];
        chosen.chunks(self.config.batch_size).map(<[usize]>::to_vec).collect()
    }

    /// The SFT micro-batches of optimizer step `step` (see [`Self::step_indices`]).
    pub fn batches_for_step(&self, data: &[TokenizedExample], step: u64) -> Vec<SftBatch> {
        let sft = self.sft();
        self.step_indices(data.len(), step)
            .iter()
            .map(|ids| sft.batch(&ids.iter().map(|&i| &data[i]).collect::<Vec<_>>()))
            .collect()
    }

    /// The SFT objective with this trainer's padding id and packing.
    pub fn sft(&self) -> Sft {
        Sft { pad_id: self.pad_id, packing: self.config.packing }
    }

    /// SFT loss and accumulated gradients of prebuilt `batches` (one micro-batch each), without
    /// updating anything: the mean over every trained token of all the batches together.
    pub fn loss_and_grads(&self, batches: &[SftBatch]) -> Result<(f64, Gradients<B::InnerBackend>)> {
        let micro: Vec<Vec<&SftBatch>> = batches.iter().map(|b| vec![b]).collect();
        let out = self.loss_and_grads_with(&SftBatches, &micro)?;
        Ok((out.loss, out.grads))
    }

    /// One SFT optimizer step over prebuilt `batches` (see [`Self::train_step_with`]).
    pub fn train_step(&mut self, batches: &[SftBatch], total_steps: u64) -> Result<StepMetrics> {
        let micro: Vec<Vec<&SftBatch>> = batches.iter().map(|b| vec![b]).collect();
        self.train_step_with(&SftBatches, &micro, total_steps)
    }

    /// The step loss, its gradients (summed over micro-batches, by parameter name) and the
    /// objective's metrics, without updating anything. In a data-parallel run `micro` is the
    /// whole step's micro-batches: this rank runs its share and the sums cover all ranks.
    pub fn loss_and_grads_with<O: Objective>(&self, objective: &O, micro: &[Vec<&O::Example>]) -> Result<StepOutput<B>> {
        let normalizer = objective.normalizer(micro)?;
        let out = StepOutput { loss: 0.0, grads: BTreeMap::new(), tokens: 0, target_tokens: 0, metrics: BTreeMap::new() };
        let (rank, world) = self.rank();
        // On the CPU, on a thread of the pool, its other threads polling for the ops' work (see
        // `llm_core::model::on_pool`): each Flex op is a parallel region of its own.
        let device = self.model.device();
        let mut out = llm_core::model::on_pool::run_for::<B, _>(&device, || self.micro_steps(objective, micro, normalizer, (rank, world), out))?;
        if world > 1 {
            out = all_reduce(self.collective().as_mut(), &self.model, out)?;
        }
        Ok(out)
    }

    /// The forward and backward passes of this rank's share of `micro`, added to `out`.
    fn micro_steps<O: Objective>(
        &self,
        objective: &O,
        micro: &[Vec<&O::Example>],
        normalizer: f64,
        (rank, world): (usize, usize),
        mut out: StepOutput<B>,
    ) -> Result<StepOutput<B>> {
        let mut model = self.model.clone();
        for (i, batch) in micro.iter().enumerate().filter(|(i, _)| i % world == rank) {
            seed_dropout(&mut model, self.config.seed, self.optimizer.step, i);
            if self.config.gradient_checkpointing {
                model.checkpoint = Some(checkpoint_tape(&model));
            }
            let m = objective.loss(&model, batch, normalizer)?;
            out.loss += m.loss.clone().into_scalar().elem::<f64>();
            out.tokens += m.tokens;
            out.target_tokens += m.target_tokens;
            for (k, v) in m.metrics {
                *out.metrics.entry(k).or_default() += v;
            }
            let grads = m.loss.backward();
            add(&mut out.grads, gradients(&model, &grads));
            if let Some(tape) = &model.checkpoint {
                backward_through_layers(&model, tape, &grads, &mut out.grads);
            }
        }
        Ok(out)
    }

    /// One optimizer step over `micro` (micro-batches accumulated); `total_steps` sizes the
    /// schedule. A non-finite loss or gradient norm stops with [`TrainError::NonFinite`] and
    /// leaves the parameters untouched.
    pub fn train_step_with<O: Objective>(&mut self, objective: &O, micro: &[Vec<&O::Example>], total_steps: u64) -> Result<StepMetrics> {
        let started = Instant::now();
        let out = self.loss_and_grads_with(objective, micro)?;
        let step = self.optimizer.step + 1;
        let non_finite = |what: &str, value: f64| TrainError::NonFinite {
            step,
            what: what.into(),
            value,
            last_checkpoint: self.last_checkpoint.clone(),
        };
        if !out.loss.is_finite() {
            return Err(non_finite("loss", out.loss));
        }
        let grad_norm = global_norm(&out.grads);
        if !grad_norm.is_finite() {
            return Err(non_finite("gradient norm", grad_norm));
        }
        let coef = self.config.max_grad_norm.map_or(1.0, |m| clip_coefficient(grad_norm, m));
        let lr = self.config.optimizer.lr * self.config.schedule.factor(step - 1, self.config.warmup_steps, total_steps);
        self.optimizer.begin_step();
        let optimizer = &mut self.optimizer;
        let grads = &out.grads;
        self.model = map_params(self.model.clone(), |name, p, _| {
            let g = grads.get(name)?.clone();
            let g = if coef < 1.0 { g * coef } else { g };
            let new = optimizer.update(name, p.inner(), g, lr);
            Some((Tensor::from_inner(new), true))
        });
        Ok(StepMetrics {
            step,
            epoch: 0.0,
            loss: out.loss,
            grad_norm,
            lr,
            tokens: out.tokens,
            target_tokens: out.target_tokens,
            seconds: started.elapsed().as_secs_f64(),
            metrics: out.metrics,
        })
    }

    /// SFT token-mean loss over `data` (no gradients, no dropout), in batches of `batch_size`.
    pub fn evaluate(&self, data: &[TokenizedExample]) -> Result<f64> {
        let sft = Sft { pad_id: self.pad_id, packing: None };
        Ok(self.evaluate_with(&sft, data)?.0)
    }

    /// The objective's loss and metrics over `data` as one step would weigh them (no gradients,
    /// no dropout), run in batches of `batch_size` on the inner backend.
    pub fn evaluate_with<O: Objective>(&self, objective: &O, data: &[O::Example]) -> Result<(f64, BTreeMap<String, f64>)> {
        let model = self.model.valid();
        let micro: Vec<Vec<&O::Example>> = data.chunks(self.config.batch_size).map(|c| c.iter().collect()).collect();
        let normalizer = objective.normalizer(&micro)?;
        let (mut loss, mut metrics) = (0.0, BTreeMap::new());
        for batch in &micro {
            let m = objective.loss(&model, batch, normalizer)?;
            loss += m.loss.into_scalar().elem::<f64>();
            for (k, v) in m.metrics {
                *metrics.entry(k).or_default() += v;
            }
        }
        Ok((loss, metrics))
    }

    /// SFT training (see [`Self::fit_with`]).
    pub fn fit(
        &mut self,
        train: &[TokenizedExample],
        eval: Option<&[TokenizedExample]>,
        on_event: impl FnMut(&TrainEvent),
    ) -> Result<TrainReport> {
        let sft = self.sft();
        self.fit_with(&sft, train, eval, on_event)
    }

    /// Trains `objective` until `total_steps` (epochs or `max_steps`), continuing from the
    /// current step (so a resumed trainer picks up where its checkpoint stopped). Calls
    /// `on_event` after every step, evaluation and checkpoint, and appends the same records to
    /// `output_dir/metrics.jsonl`.
    pub fn fit_with<O: Objective>(
        &mut self,
        objective: &O,
        train: &[O::Example],
        eval: Option<&[O::Example]>,
        mut on_event: impl FnMut(&TrainEvent),
    ) -> Result<TrainReport> {
        if train.is_empty() {
            return Err(TrainError::config("train set", "is empty"));
        }
        let total = self.total_steps(train.len());
        let per_epoch = train.len().div_ceil(self.examples_per_step()) as f64;
        let mut metrics = self.metrics_file()?;
        let mut report = TrainReport::default();
        memory::reset_peak();
        let started = Instant::now();
        let mut tokens = 0usize;
        while self.step() < total {
            let micro: Vec<Vec<&O::Example>> = self
                .step_indices(train.len(), self.step())
                .iter()
                .map(|ids| ids.iter().map(|&i| &train[i]).collect())
                .collect();
            let mut m = self.train_step_with(objective, &micro, total)?;
            m.epoch = m.step as f64 / per_epoch;
            tokens += m.tokens;
            let event = TrainEvent::Step(m.clone());
            log(&mut metrics, &event)?;
            on_event(&event);
            report.steps.push(m);
            let step = self.step();
            let every = |n: Option<u64>| n.is_some_and(|n| n > 0 && step.is_multiple_of(n));
            if let Some(eval) = eval.filter(|_| every(self.config.eval_every) || step == total) {
                let (eval_loss, eval_metrics) = self.evaluate_with(objective, eval)?;
                let event = TrainEvent::Eval { step, eval_loss, metrics: eval_metrics };
                log(&mut metrics, &event)?;
                on_event(&event);
                report.evals.push((step, eval_loss));
            }
            if every(self.config.save_every) && self.rank().0 == 0 {
                let dir = self.config.output_dir.clone().expect("validated").join(format!("checkpoint-{step}"));
                self.save_checkpoint(&dir)?;
                let event = TrainEvent::Checkpoint { step, dir: dir.clone() };
                log(&mut metrics, &event)?;
                on_event(&event);
                report.checkpoints.push(dir);
            }
        }
        report.tokens_per_second = tokens as f64 / started.elapsed().as_secs_f64().max(1e-9);
        report.peak_rss_bytes = memory::peak_rss_bytes();
        Ok(report)
    }
}

/// Gives every adapter its dropout seed for micro-batch `micro` of optimizer step `step`.
fn seed_dropout<B: AutodiffBackend>(model: &mut CausalLm<B>, seed: u64, step: u64, micro: usize) {
    let names: Vec<String> = model.linears().into_iter().filter(|(_, l)| l.lora.is_some()).map(|(n, _)| n).collect();
    for (k, name) in names.iter().enumerate() {
        if let Some(lora) = model.linear_mut(name).and_then(|l| l.lora.as_mut()) {
            // SplitMix64-style mixing of (seed, step, micro-batch, layer).
            let mut z = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((micro as u64) << 32) ^ (k as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            lora.dropout_seed = z ^ (z >> 31);
        }
    }
}
