//! Shared command-line plumbing for the examples: backend choice, model paths, dtypes.

pub mod chart;
pub mod curves;
pub mod parallel;

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use llm_core::generate::GenerationConfig;
use burn::tensor::{backend::Backend, DType, Int, Tensor, TensorData};
use llm_core::backend::{BackendKind, BackendTask, KnownBackend};
use llm_core::CausalLm;
use serde_json::{json, Value};

/// The default model: SmolLM2-135M-Instruct (GGUF Q4_1), fetched by `scripts/fetch-models.sh`.
pub fn default_model() -> anyhow::Result<PathBuf> {
    let path = llm_core::weights::cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.exists() {
        bail!("{} is missing; run `scripts/fetch-models.sh` (or pass --model DIR_OR_GGUF)", path.display());
    }
    Ok(path)
}

/// Whether this examples build includes `kind` (the examples' own `flex`/`wgpu`/`cuda`
/// features: a workspace test run may compile a GPU backend into the libraries alone).
pub fn is_compiled(kind: BackendKind) -> bool {
    match kind {
        BackendKind::Flex => cfg!(feature = "flex"),
        BackendKind::Wgpu => cfg!(feature = "wgpu"),
        BackendKind::Cuda => cfg!(feature = "cuda"),
    }
}

/// Parses `--backend`.
pub fn parse_backend(s: &str) -> anyhow::Result<BackendKind> {
    let kind: BackendKind = s.parse()?;
    if !is_compiled(kind) {
        bail!(
            "backend `{kind}` is not compiled into this binary; rebuild with `--features {kind}` \
             (e.g. `cargo run --release --features {kind} --example ...`)"
        );
    }
    Ok(kind)
}

/// Runs `task` on the chosen backend's device after printing (to stderr) which device it is:
/// `backend: wgpu adapter "llvmpipe (LLVM 15.0.6, 256 bits)" (Vulkan, Cpu, ...)`. Only the
/// backends of this crate's features are instantiated.
pub fn run_on<T: BackendTask>(kind: BackendKind, device: usize, task: T) -> anyhow::Result<T::Output> {
    let _ = (device, &task);
    match kind {
        #[cfg(feature = "flex")]
        BackendKind::Flex => run_known::<llm_core::backend::Flex, T>(device, task),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => run_known::<llm_core::backend::Wgpu, T>(device, task),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => run_known::<llm_core::backend::Cuda, T>(device, task),
        #[allow(unreachable_patterns)]
        other => bail!("backend `{other}` is not compiled into this binary; rebuild with `--features {other}`"),
    }
}

#[allow(dead_code)]
fn run_known<B: KnownBackend, T: BackendTask>(device: usize, task: T) -> anyhow::Result<T::Output> {
    let (device, description) = B::open(device)?;
    eprintln!("backend: {description}");
    Ok(task.run::<B>(device))
}

/// Parses `--dtype` (f32, f16, bf16).
pub fn parse_dtype(s: &str) -> anyhow::Result<DType> {
    Ok(match s {
        "f32" => DType::F32,
        "f16" => DType::F16,
        "bf16" => DType::BF16,
        other => bail!("unknown dtype `{other}`; choose f32, f16 or bf16"),
    })
}

/// Parses a comma-separated id list (`1,17,42`).
pub fn parse_ids(s: &str) -> anyhow::Result<Vec<u32>> {
    s.split(',')
        .map(|t| t.trim().parse::<u32>().with_context(|| format!("`{t}` is not a token id")))
        .collect()
}

/// Runs `ids` through `model` and returns, per position, `{"position", "id", "top": [[id, logit], ...]}`
/// with the `k` largest logits, largest first.
pub fn top_logits_json<B: Backend>(model: &CausalLm<B>, ids: &[u32], k: usize) -> Value {
    let vocab = model.config.vocab_size;
    let data = TensorData::new(ids.iter().map(|&i| i as i64).collect(), [1, ids.len()]);
    let logits = model.forward(Tensor::<B, 2, Int>::from_data(data, &model.device()));
    let logits: Vec<f32> = logits.into_data().iter::<f32>().collect();
    let rows = logits.chunks(vocab).enumerate().map(|(pos, row)| {
        let mut order: Vec<usize> = (0..vocab).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        let top: Vec<_> = order[..k.min(vocab)].iter().map(|&i| json!([i, row[i]])).collect();
        json!({ "position": pos, "id": ids[pos], "top": top })
    });
    Value::Array(rows.collect())
}

/// Writes a JSON array with one element per line: valid JSON that also diffs line by line.
pub fn write_json_rows(value: &Value, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let rows = value.as_array().map(Vec::as_slice).unwrap_or(std::slice::from_ref(value));
    writeln!(out, "[")?;
    for (i, row) in rows.iter().enumerate() {
        let sep = if i + 1 < rows.len() { "," } else { "" };
        writeln!(out, "  {row}{sep}")?;
    }
    writeln!(out, "]")
}

/// `--model`, `--backend`, `--device`, `--dtype`: shared by every example.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A Hugging Face model directory or a .gguf file (default: the cached SmolLM2-135M-Instruct GGUF).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// flex, wgpu or cuda (the last two need `--features wgpu|cuda`).
    #[arg(long, default_value = "flex", value_parser = parse_backend)]
    pub backend: BackendKind,
    /// Device index for GPU backends.
    #[arg(long, default_value_t = 0)]
    pub device: usize,
    /// Weight dtype in memory: f32, f16, bf16.
    #[arg(long, default_value = "f32", value_parser = parse_dtype)]
    pub dtype: DType,
    /// A PEFT LoRA adapter directory (`adapter_config.json` + `adapter_model.safetensors`) or a
    /// llama.cpp LoRA adapter `.gguf`, applied without merging.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// How quantized layers multiply: auto (the fused kernel for few rows, dequantize for
    /// long prompts), fused (always the kernel), dequantize (always), materialize (dense at load).
    #[arg(long, default_value = "auto", value_parser = parse_quant_execution)]
    pub quant_execution: llm_core::quant::QuantExecution,
}

/// Parses `--quant-execution`.
pub fn parse_quant_execution(s: &str) -> anyhow::Result<llm_core::quant::QuantExecution> {
    use llm_core::quant::QuantExecution::*;
    Ok(match s {
        "auto" => Auto,
        "fused" => Fused,
        "dequantize" => Dequantize,
        "materialize" => Materialize,
        other => bail!("unknown --quant-execution `{other}`; choose auto, fused, dequantize or materialize"),
    })
}

impl ModelArgs {
    /// Loads the model, its tokenizer and generation defaults on `device`.
    pub fn load_bundle<B: Backend>(&self, device: &B::Device) -> anyhow::Result<llm_core::ModelBundle<B>> {
        self.load_bundle_with(self.load_options(), device)
    }

    /// The load options the flags ask for (`--dtype`, `--quant-execution`).
    pub fn load_options(&self) -> llm_core::weights::LoadOptions {
        llm_core::weights::LoadOptions { dtype: self.dtype, quant_execution: self.quant_execution, ..Default::default() }
    }

    /// [`Self::load_bundle`] with other load options (`ggml_blocks: false` for GGUF weights
    /// dequantized exactly at load), the adapter still applied.
    pub fn load_bundle_with<B: Backend>(&self, options: llm_core::weights::LoadOptions, device: &B::Device) -> anyhow::Result<llm_core::ModelBundle<B>> {
        let path = self.model_path()?;
        let mut bundle =
            llm_core::ModelBundle::load(&path, options, device).with_context(|| format!("loading {}", path.display()))?;
        if let Some(dir) = &self.adapter {
            if dir.is_file() {
                // A llama.cpp LoRA adapter GGUF.
                llm_core::adapter::apply_lora_gguf(&mut bundle.model, dir).with_context(|| format!("applying adapter {}", dir.display()))?;
            } else {
                let adapter = llm_core::adapter::PeftAdapter::load(dir).with_context(|| format!("loading adapter {}", dir.display()))?;
                adapter.apply(&mut bundle.model).with_context(|| format!("applying adapter {}", dir.display()))?;
            }
        }
        Ok(bundle)
    }

    /// `--model`, or the default SmolLM2 GGUF.
    pub fn model_path(&self) -> anyhow::Result<PathBuf> {
        match &self.model {
            Some(m) => Ok(m.clone()),
            None => default_model(),
        }
    }
}

/// Decoding flags. Unset flags keep the model's `generation_config.json`;
/// `--temperature 0` means greedy.
#[derive(Args, Debug, Clone, Default)]
pub struct SamplingArgs {
    /// Sampling temperature; 0 = greedy.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Keep the k most likely tokens (0 = off).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Nucleus sampling mass.
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Drop tokens below min_p times the top probability.
    #[arg(long)]
    pub min_p: Option<f32>,
    /// Locally typical sampling mass.
    #[arg(long)]
    pub typical_p: Option<f32>,
    /// transformers' repetition penalty (1 = off).
    #[arg(long)]
    pub repetition_penalty: Option<f32>,
    /// OpenAI-style frequency penalty.
    #[arg(long)]
    pub frequency_penalty: Option<f32>,
    /// OpenAI-style presence penalty.
    #[arg(long)]
    pub presence_penalty: Option<f32>,
    /// Forbid repeating n-grams of this size.
    #[arg(long)]
    pub no_repeat_ngram_size: Option<usize>,
    /// Beam search with this many beams (greedy scoring; 1 = off).
    #[arg(long)]
    pub num_beams: Option<usize>,
    /// Beam score = sum of log-probs / new_len^length_penalty.
    #[arg(long)]
    pub length_penalty: Option<f32>,
    /// Stop when this text appears (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    /// Sampling seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// New tokens at most.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
}

impl SamplingArgs {
    /// Applies the flags on top of the model's defaults.
    pub fn apply(&self, mut config: GenerationConfig) -> GenerationConfig {
        match self.temperature {
            Some(t) if t <= 0.0 => config.do_sample = false,
            Some(t) => {
                config.do_sample = true;
                config.temperature = t;
            }
            None => {}
        }
        let set = |field: &mut f32, v: Option<f32>| {
            if let Some(v) = v {
                *field = v;
            }
        };
        set(&mut config.top_p, self.top_p);
        set(&mut config.typical_p, self.typical_p);
        set(&mut config.repetition_penalty, self.repetition_penalty);
        set(&mut config.frequency_penalty, self.frequency_penalty);
        set(&mut config.presence_penalty, self.presence_penalty);
        config.top_k = self.top_k.unwrap_or(config.top_k);
        config.min_p = self.min_p.or(config.min_p);
        config.no_repeat_ngram_size = self.no_repeat_ngram_size.unwrap_or(config.no_repeat_ngram_size);
        config.num_beams = self.num_beams.unwrap_or(config.num_beams);
        set(&mut config.length_penalty, self.length_penalty);
        if config.num_beams > 1 {
            config.do_sample = false;
        }
        config.stop_strings.extend(self.stop.iter().cloned());
        config.seed = self.seed.unwrap_or(config.seed);
        config.max_new_tokens = self.max_new_tokens;
        config
    }
}

/// `--json-schema`, `--json-object`, `--regex`, `--grammar`: what the output must match.
#[derive(Args, Debug, Clone, Default)]
pub struct ConstraintArgs {
    /// A JSON Schema file the output must validate against.
    #[arg(long, value_name = "FILE")]
    pub json_schema: Option<PathBuf>,
    /// The output is one JSON object.
    #[arg(long)]
    pub json_object: bool,
    /// A regular expression the whole output matches.
    #[arg(long, value_name = "REGEX")]
    pub regex: Option<String>,
    /// A grammar file: GBNF (llama.cpp, `.gbnf`) or Lark (anything else).
    #[arg(long, value_name = "FILE")]
    pub grammar: Option<PathBuf>,
}

impl ConstraintArgs {
    /// The constraint the flags ask for (at most one).
    pub fn constraint(&self) -> anyhow::Result<Option<llm_core::generate::Constraint>> {
        use llm_core::generate::Constraint;
        let read = |p: &PathBuf| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
        let mut out = vec![];
        if let Some(p) = &self.json_schema {
            let schema = serde_json::from_str(&read(p)?).with_context(|| format!("{} is not JSON", p.display()))?;
            out.push(Constraint::JsonSchema(schema));
        }
        if self.json_object {
            out.push(Constraint::JsonObject);
        }
        if let Some(r) = &self.regex {
            out.push(Constraint::Regex(r.clone()));
        }
        if let Some(p) = &self.grammar {
            let text = read(p)?;
            out.push(if p.extension().is_some_and(|e| e == "gbnf") { Constraint::Gbnf(text) } else { Constraint::Lark(text) });
        }
        anyhow::ensure!(out.len() <= 1, "give one of --json-schema, --json-object, --regex, --grammar");
        Ok(out.pop())
    }
}

/// `--draft-model`, `--prompt-lookup`, `--draft-tokens`: speculative decoding.
#[derive(Args, Debug, Clone, Default)]
pub struct SpeculationArgs {
    /// A draft model (directory or .gguf) with the target's vocabulary.
    #[arg(long, value_name = "PATH")]
    pub draft_model: Option<PathBuf>,
    /// Prompt lookup decoding, matching n-grams up to this size in the prompt and output.
    #[arg(long, value_name = "N")]
    pub prompt_lookup: Option<usize>,
    /// Draft tokens per target forward at the start (adapted as it goes).
    #[arg(long, default_value_t = 5)]
    pub draft_tokens: usize,
}

impl SpeculationArgs {
    /// Whether speculation was asked for.
    pub fn enabled(&self) -> bool {
        self.draft_model.is_some() || self.prompt_lookup.is_some()
    }

    /// Draft lengths for [`llm_core::generate::Generator::generate_speculative`].
    pub fn config(&self) -> llm_core::generate::SpeculativeConfig {
        let max = self.draft_tokens.max(16);
        llm_core::generate::SpeculativeConfig { draft_tokens: self.draft_tokens, max_draft_tokens: max, adaptive: true }
    }
}

/// `$LLM_CACHE` (the model cache) and a leading `~/` in a YAML configuration, so shipped
/// configurations can name fetched models.
pub fn expand_paths(yaml: &str) -> String {
    let cache = llm_core::weights::cache_dir();
    let home = std::env::var("HOME").unwrap_or_default();
    yaml.replace("$LLM_CACHE", &cache.display().to_string()).replace(" ~/", &format!(" {home}/"))
}
