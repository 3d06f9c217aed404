//! Quantize a model, write the checkpoint, and report what it cost: per-layer reconstruction
//! error, model size, perplexity before and after on held-out text (for GPTQ and AWQ, also
//! round-to-nearest at the same bits and groups), and the KL divergence of the quantized model
//! from the source on that text (llama.cpp's `llama-perplexity --kl-divergence` summary).
//!
//! ```text
//! scripts/fetch-models.sh
//! cargo run --release --example quantize -- --method gptq --bits 4 --group-size 128 --out /tmp/smollm2-gptq
//! cargo run --release --example quantize -- --method awq --bits 4 --group-size 128 --partial-groups --out /tmp/smollm2-awq
//! cargo run --release --example quantize -- --method hqq --bits 4 --group-size 64 --out /tmp/smollm2-hqq
//! cargo run --release --example quantize -- --method nf4 --double-quant --out /tmp/smollm2-nf4
//! cargo run --release --example quantize -- --method gguf --type Q4_K_M --out /tmp/smollm2-q4_k_m.gguf
//! cargo run --release --example chat -- --model /tmp/smollm2-gptq --prompt "What is the capital of France?"
//! ```
//!
//! Text: `lee_background.cor` (fetched by the script). The first `--eval-chars` characters are
//! the held-out text (3000: the perplexity fixture's text); calibration starts at
//! `--calib-offset`, far past it.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use burn::tensor::backend::Backend;
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use llm_core::backend::BackendTask;
use llm_examples::run_on;
use llm_core::eval::{kl_divergence, perplexity, KlReport};
use llm_core::{CausalLm, ModelBundle};
use llm_examples::ModelArgs;
use llm_quant::int8::{Granularity, Int8Scheme};
use llm_quant::nf4::Fp4Kind;
use llm_quant::hqq::HqqParams;
use llm_quant::{quantize_awq, quantize_gptq, quantize_model, save_quantized, AwqConfig, Calibration, GptqConfig, GptqParams, Method};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MethodArg {
    /// int8 symmetric absmax (`--granularity`).
    Absmax,
    /// int8 asymmetric zero-point (`--granularity`).
    Zeropoint,
    /// LLM.int8(): vector-wise int8, outlier input columns in float (`--threshold`).
    Int8Outlier,
    /// NF4 blocks of `--blocksize` (`--double-quant`).
    Nf4,
    /// FP4 blocks of `--blocksize` (`--double-quant`).
    Fp4,
    /// Round-to-nearest at `--bits` / `--group-size`.
    Rtn,
    /// GPTQ at `--bits` / `--group-size` with calibration.
    Gptq,
    /// AWQ at `--bits` / `--group-size` with calibration (AutoAWQ's GEMM checkpoint; 4 bits).
    Awq,
    /// HQQ at `--bits` (1-8) / `--group-size` (must divide every layer's width, e.g. 64),
    /// calibration-free (transformers' HQQ checkpoint).
    Hqq,
    /// A GGUF file of `--type` (llama-quantize's file types), runnable by llama.cpp.
    Gguf,
    /// The PEFT adapter of `--adapter` as a llama.cpp LoRA adapter GGUF (`llama-cli --lora`).
    GgufLora,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GranularityArg {
    Tensor,
    Row,
    Group,
}

/// Quantize a model and report the quality it keeps.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    model: ModelArgs,
    /// Quantization method.
    #[arg(long, value_enum)]
    method: MethodArg,
    /// Bits for rtn / gptq (2, 3, 4, 8), awq (4 to write; 2-8 in memory), hqq (1-6, 8).
    #[arg(long, default_value_t = 4)]
    bits: u32,
    /// Columns per group (rtn, gptq, int8 `--granularity group`); -1 for one group per row.
    #[arg(long, default_value_t = 128, allow_hyphen_values = true)]
    group_size: i64,
    /// Scale sharing for absmax / zeropoint.
    #[arg(long, value_enum, default_value = "row")]
    granularity: GranularityArg,
    /// Asymmetric (zero-point) groups for rtn / gptq (default symmetric).
    #[arg(long)]
    asym: bool,
    /// Allow a group size that does not divide a layer's width (shorter last group), e.g.
    /// 128 on SmolLM2's 576-wide layers. Without it such a group size is an error.
    #[arg(long)]
    partial_groups: bool,
    /// GPTQ act-order (`desc_act`).
    #[arg(long)]
    act_order: bool,
    /// GPTQ static groups (with act-order).
    #[arg(long)]
    static_groups: bool,
    /// GPTQ damping as a fraction of the mean Hessian diagonal.
    #[arg(long, default_value_t = 0.01)]
    damp_percent: f64,
    /// NF4/FP4 block size.
    #[arg(long, default_value_t = 64)]
    blocksize: usize,
    /// NF4/FP4 double quantization of the absmax.
    #[arg(long)]
    double_quant: bool,
    /// LLM.int8() outlier threshold.
    #[arg(long, default_value_t = 6.0)]
    threshold: f32,
    /// Calibration text (default: the cached lee_background.cor). With `--method gguf`, naming
    /// it computes an importance matrix from it.
    #[arg(long, alias = "calibration")]
    calib: Option<PathBuf>,
    /// Characters of the calibration text skipped (keeps it clear of the held-out text).
    #[arg(long, default_value_t = 10_000)]
    calib_offset: usize,
    /// Calibration sequences.
    #[arg(long, default_value_t = 32)]
    calib_samples: usize,
    /// Tokens per calibration sequence.
    #[arg(long, default_value_t = 256)]
    calib_len: usize,
    /// Held-out text (default: the cached lee_background.cor).
    #[arg(long)]
    eval: Option<PathBuf>,
    /// Characters of the held-out text evaluated.
    #[arg(long, default_value_t = 3000)]
    eval_chars: usize,
    /// Perplexity window.
    #[arg(long, default_value_t = 256)]
    context: usize,
    /// Perplexity stride.
    #[arg(long, default_value_t = 128)]
    stride: usize,
    /// Write the quantized checkpoint here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Skip the round-to-nearest baseline that GPTQ is compared with.
    #[arg(long)]
    no_baseline: bool,
    /// Write the report as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// GGUF file type for `--method gguf`: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K,
    /// Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K.
    #[arg(long = "type", default_value = "Q4_K_M")]
    gguf_type: String,
    /// Per-tensor GGUF type, `REGEX=TYPE` on the GGUF name (`attn_v=Q8_0`); repeatable; the
    /// first match wins over the file type's rules.
    #[arg(long = "tensor-type")]
    tensor_types: Vec<String>,
    /// An importance matrix for `--method gguf` (llama-imatrix's GGUF or legacy .dat file).
    #[arg(long)]
    imatrix: Option<PathBuf>,
    /// Write the importance matrix computed from `--calib` here (llama.cpp's GGUF format).
    #[arg(long)]
    imatrix_out: Option<PathBuf>,
}

impl Cli {
    fn group_size(&self) -> Option<usize> {
        (self.group_size > 0).then_some(self.group_size as usize)
    }

    /// The direct (calibration-free) method `--method` names; GPTQ is not one (its settings are
    /// [`Self::gptq_config`], its baseline [`Self::rtn_baseline`]).
    fn method(&self) -> anyhow::Result<Method> {
        let granularity = match self.granularity {
            GranularityArg::Tensor => Granularity::PerTensor,
            GranularityArg::Row => Granularity::PerRow,
            GranularityArg::Group => match self.group_size() {
                Some(g) => Granularity::PerGroup(g),
                None => bail!("--granularity group needs a positive --group-size"),
            },
        };
        Ok(match self.method {
            MethodArg::Absmax => Method::Int8 { scheme: Int8Scheme::Absmax, granularity },
            MethodArg::Zeropoint => Method::Int8 { scheme: Int8Scheme::ZeroPoint, granularity },
            MethodArg::Int8Outlier => Method::LlmInt8 { threshold: self.threshold },
            MethodArg::Nf4 => Method::Fp4 { kind: Fp4Kind::Nf4, blocksize: self.blocksize, double_quant: self.double_quant },
            MethodArg::Fp4 => Method::Fp4 { kind: Fp4Kind::Fp4, blocksize: self.blocksize, double_quant: self.double_quant },
            MethodArg::Rtn => self.rtn_baseline(),
            MethodArg::Hqq => {
                let Some(group_size) = self.group_size() else { bail!("--method hqq needs a --group-size") };
                Method::Hqq(HqqParams::new(self.bits, group_size))
            }
            MethodArg::Gptq | MethodArg::Awq => bail!("--method gptq/awq are calibrated, not direct methods"),
            MethodArg::Gguf | MethodArg::GgufLora => bail!("--method gguf writes a file (run_gguf), not a method applied in memory"),
        })
    }

    /// Round-to-nearest at the same bits and groups: `--method rtn`, and GPTQ's baseline.
    fn rtn_baseline(&self) -> Method {
        Method::Rtn { bits: self.bits, group_size: self.group_size(), sym: !self.asym, partial_groups: self.partial_groups }
    }

    /// The baseline a calibrated method is measured against: round-to-nearest at the same
    /// bits and groups (asymmetric for AWQ, whose grid has zero points).
    fn baseline(&self) -> Method {
        match self.rtn_baseline() {
            Method::Rtn { bits, group_size, partial_groups, .. } if self.method == MethodArg::Awq => {
                Method::Rtn { bits, group_size, sym: false, partial_groups }
            }
            m => m,
        }
    }

    fn awq_config(&self) -> AwqConfig {
        AwqConfig { bits: self.bits, group_size: self.group_size(), partial_groups: self.partial_groups, ..Default::default() }
    }

    fn gptq_config(&self) -> GptqConfig {
        GptqConfig {
            params: GptqParams {
                bits: self.bits,
                group_size: self.group_size(),
                partial_groups: self.partial_groups,
                sym: !self.asym,
                damp_percent: self.damp_percent,
                act_order: self.act_order,
                static_groups: self.static_groups,
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

fn read_text(path: &Option<PathBuf>) -> anyhow::Result<String> {
    let path = path.clone().unwrap_or_else(|| llm_core::weights::cache_dir().join("lee_background.cor"));
    let bytes = std::fs::read(&path).with_context(|| format!("reading {} (run scripts/fetch-models.sh)", path.display()))?;
    // lee_background.cor is ASCII read as Latin-1; any UTF-8 text works too.
    Ok(llm_core::io::decode_text(bytes))
}

fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}").expect("valid template"),
    );
    bar.set_prefix(what.to_string());
    bar
}

/// Bytes of the decoder's linear weights: f32 when dense (and, for `as_f32`, always: the
/// baseline), the format's bytes when quantized.
fn linear_bytes<B: Backend>(model: &CausalLm<B>, as_f32: bool) -> usize {
    model
        .linears()
        .iter()
        .filter(|(n, _)| n != "lm_head")
        .map(|(_, l)| match l.quantized_weight() {
            Some(q) if !as_f32 => q.storage_bytes(),
            _ => {
                let (o, i) = l.dims();
                4 * o * i
            }
        })
        .sum()
}

struct Quantize(Cli);

impl BackendTask for Quantize {
    type Output = anyhow::Result<()>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let cli = self.0;
        if cli.method == MethodArg::Gguf {
            return run_gguf::<B>(&cli, &device);
        }
        if cli.method == MethodArg::GgufLora {
            return run_gguf_lora::<B>(&cli, &device);
        }
        let calibrated = matches!(cli.method, MethodArg::Gptq | MethodArg::Awq);
        let method = if calibrated { cli.baseline() } else { cli.method()? };
        let ModelBundle { mut model, tokenizer, .. } = cli.model.load_bundle::<B>(&device)?;
        let text = read_text(&cli.eval)?;
        let eval_text: String = text.chars().take(cli.eval_chars).collect();
        let eval_ids = tokenizer.encode(&eval_text, true)?.ids;
        let ppl = |m: &CausalLm<B>| -> anyhow::Result<f64> { Ok(perplexity(m, &eval_ids, cli.context, cli.stride)?.perplexity) };
        let started = Instant::now();
        let ppl_before = ppl(&model)?;
        println!("dense perplexity: {ppl_before:.4} on {} held-out tokens ({:.1}s)", eval_ids.len(), started.elapsed().as_secs_f64());
        let dense_bytes = linear_bytes(&model, true);
        // Quantizing replaces the layers; the clone keeps the source's for the KL divergence.
        let reference = model.clone();

        let started = Instant::now();
        let n_linears = model.linears().iter().filter(|(n, _)| n != "lm_head").count();
        let bar = progress(n_linears, &format!("{:?}", cli.method).to_lowercase());
        let mut rows: Vec<serde_json::Value> = vec![];
        let calibration = if calibrated {
            let calib_text: String = read_text(&cli.calib)?.chars().skip(cli.calib_offset).collect();
            let calibration = Calibration::from_text(&tokenizer, &calib_text, cli.calib_samples, cli.calib_len, model.config.bos_token_id)?;
            println!("calibration: {} sequences x {} tokens", calibration.sequences.len(), cli.calib_len);
            Some(calibration)
        } else {
            None
        };
        if cli.method == MethodArg::Awq {
            let calibration = calibration.as_ref().expect("calibrated");
            quantize_awq(&mut model, calibration, &cli.awq_config(), |l| {
                for s in &l.searches {
                    rows.push(json!({ "layer": s.name, "ratio": s.ratio, "output_mse": s.loss, "rtn_output_mse": s.rtn_loss }));
                }
                let gain: f64 = l.searches.iter().map(|s| s.loss / s.rtn_loss.max(f64::MIN_POSITIVE)).sum::<f64>() / l.searches.len().max(1) as f64;
                bar.set_message(format!("layer {} output error {:.2}x rtn's", l.layer, gain));
                bar.inc(l.linears as u64);
            })?;
        } else if cli.method == MethodArg::Gptq {
            let calibration = calibration.as_ref().expect("calibrated");
            quantize_gptq(&mut model, calibration, &cli.gptq_config(), |l| {
                if l.damp_retries > 0 {
                    bar.println(format!(
                        "{}: Hessian not positive definite; damping raised to {:.3} after {} retries",
                        l.name, l.damp_percent, l.damp_retries
                    ));
                }
                bar.set_message(format!("{} err {:.2e} (rtn {:.2e})", l.name, l.relative_output_error, l.rtn_relative_output_error));
                bar.inc(1);
                rows.push(json!({
                    "layer": l.name, "relative_output_error": l.relative_output_error,
                    "rtn_relative_output_error": l.rtn_relative_output_error,
                    "damp_percent": l.damp_percent, "damp_retries": l.damp_retries,
                }));
            })?;
        } else {
            quantize_model(&mut model, method, |n| n == "lm_head", |l| {
                bar.set_message(format!("{} err {:.2e}", l.name, l.relative_weight_error));
                bar.inc(1);
                rows.push(json!({ "layer": l.name, "relative_weight_error": l.relative_weight_error, "bytes": l.bytes }));
            })?;
        }
        bar.finish_and_clear();
        let quantize_seconds = started.elapsed().as_secs_f64();
        let quant_bytes = linear_bytes(&model, false);
        let ppl_after = ppl(&model)?;
        let kl = kl_divergence(&model, &reference, &eval_ids, cli.context)?;
        drop(reference);

        let measure = match cli.method {
            MethodArg::Gptq => "relative output error on calibration inputs, GPTQ vs RTN",
            MethodArg::Awq => "output mean squared error of each scaled block on calibration inputs, AWQ (chosen ratio) vs RTN",
            _ => "relative weight error ‖W−Q‖²/‖W‖²",
        };
        println!("\nper-layer reconstruction error ({measure}):");
        for row in &rows {
            let name = row["layer"].as_str().unwrap_or("");
            if let Some(rtn) = row.get("rtn_output_mse") {
                let (mse, ratio) = (row["output_mse"].as_f64().unwrap_or(0.0), row["ratio"].as_f64().unwrap_or(0.0));
                println!("  {name:<40} {mse:>10.3e}  rtn {:>10.3e}  ratio {ratio:.2}", rtn.as_f64().unwrap_or(0.0));
                continue;
            }
            match row.get("rtn_relative_output_error") {
                Some(rtn) => println!("  {name:<40} {:>10.3e}  rtn {:>10.3e}", row["relative_output_error"].as_f64().unwrap_or(0.0), rtn.as_f64().unwrap_or(0.0)),
                None => println!("  {name:<40} {:>10.3e}", row["relative_weight_error"].as_f64().unwrap_or(0.0)),
            }
        }
        println!("\nquantized in {quantize_seconds:.1}s");
        println!("decoder linear weights: {:.1} MB (f32) -> {:.1} MB ({:.2}x smaller)", dense_bytes as f64 / 1e6, quant_bytes as f64 / 1e6, dense_bytes as f64 / quant_bytes as f64);
        println!("perplexity: {ppl_before:.4} -> {ppl_after:.4} (delta {:+.4})", ppl_after - ppl_before);
        print_kl(&kl, "the dense model", cli.context);

        let mut report = json!({
            "method": format!("{:?}", cli.method).to_lowercase(), "bits": cli.bits, "group_size": cli.group_size,
            "ppl_dense": ppl_before, "ppl_quantized": ppl_after, "ppl_delta": ppl_after - ppl_before,
            "linear_bytes_dense_f32": dense_bytes, "linear_bytes_quantized": quant_bytes,
            "eval_tokens": eval_ids.len(), "quantize_seconds": quantize_seconds, "layers": rows, "kl": kl,
        });
        if let Some(out) = &cli.out {
            let config = match cli.method {
                MethodArg::Gptq => cli.gptq_config().to_json(),
                MethodArg::Awq => cli.awq_config().to_json(),
                _ => method.config_json(),
            };
            let saved = save_quantized(&model, Some(&tokenizer), config, out)?;
            println!("wrote {} ({:.1} MB model.safetensors, {} quantized layers)", saved.dir.display(), saved.model_bytes as f64 / 1e6, saved.quantized_layers);
            report["checkpoint_bytes"] = saved.model_bytes.into();
        }
        if calibrated && !cli.no_baseline {
            drop(model);
            let ModelBundle { mut model, .. } = cli.model.load_bundle::<B>(&device)?;
            quantize_model(&mut model, cli.baseline(), |n| n == "lm_head", |_| {})?;
            let ppl_rtn = ppl(&model)?;
            println!(
                "round-to-nearest at the same bits/groups: perplexity {ppl_rtn:.4} (delta {:+.4}); {:?} delta {:+.4}",
                ppl_rtn - ppl_before,
                cli.method,
                ppl_after - ppl_before
            );
            report["ppl_rtn"] = ppl_rtn.into();
        }
        if let Some(path) = &cli.report {
            llm_core::io::atomic::write_bytes_atomic(path, serde_json::to_string_pretty(&report)?.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

/// `--method gguf`: write the GGUF, then perplexity of the source and of the file as llm-core
/// runs it (from its blocks). With an importance matrix, the same file type without one is
/// written beside it and measured too.
fn run_gguf<B: Backend>(cli: &Cli, device: &B::Device) -> anyhow::Result<()> {
    use llm_quant::gguf::{write_model_gguf, FileType, GgufOptions, Imatrix, TypeOverride};
    let Some(out) = &cli.out else { bail!("--method gguf needs --out FILE.gguf") };
    let mut options = GgufOptions::new(FileType::parse(&cli.gguf_type)?);
    options.overrides = cli.tensor_types.iter().map(|s| TypeOverride::parse(s)).collect::<Result<_, _>>()?;
    let input = cli.model.model_path()?;
    let ModelBundle { model, tokenizer, .. } = cli.model.load_bundle::<B>(device)?;
    options.imatrix = match (&cli.imatrix, &cli.calib) {
        (Some(path), _) => Some(Imatrix::load(path)?),
        (None, Some(path)) => {
            let text: String = read_text(&cli.calib)?.chars().skip(cli.calib_offset).collect();
            let calibration = Calibration::from_text(&tokenizer, &text, cli.calib_samples, cli.calib_len, model.config.bos_token_id)?;
            let started = Instant::now();
            let imatrix = Imatrix::compute(&model, &calibration, &path.display().to_string())?;
            println!("importance matrix: {} weights from {} chunks of {} tokens ({:.1}s)", imatrix.entries.len(), imatrix.chunk_count, imatrix.chunk_size, started.elapsed().as_secs_f64());
            if let Some(path) = &cli.imatrix_out {
                imatrix.save(path)?;
                println!("wrote {}", path.display());
            }
            Some(imatrix)
        }
        (None, None) => None,
    };
    let text = read_text(&cli.eval)?;
    let eval_text: String = text.chars().take(cli.eval_chars).collect();
    let eval_ids = tokenizer.encode(&eval_text, true)?.ids;
    let ppl = |m: &CausalLm<B>| -> anyhow::Result<f64> { Ok(perplexity(m, &eval_ids, cli.context, cli.stride)?.perplexity) };
    let ppl_before = ppl(&model)?;
    println!("source perplexity: {ppl_before:.4} on {} held-out tokens ({})", eval_ids.len(), input.display());
    // The source stays loaded: the reference of the KL divergence.
    let write_and_measure = |options: &GgufOptions, out: &PathBuf| -> anyhow::Result<(llm_quant::gguf::GgufReport, f64, KlReport)> {
        let report = write_model_gguf(&input, out, options)?;
        let types: Vec<String> = report.type_counts().iter().map(|(t, n)| format!("{n} {t}")).collect();
        println!(
            "wrote {} ({}{}): {:.1} MB, {:.2} bits per weight, {} tensors ({}) in {:.1}s",
            out.display(),
            options.file_type.name(),
            if options.imatrix.is_some() { ", imatrix" } else { "" },
            report.file_bytes as f64 / 1e6,
            report.bits_per_weight(),
            report.tensors.len(),
            types.join(", "),
            report.seconds
        );
        let args = ModelArgs { model: Some(out.clone()), adapter: None, ..cli.model.clone() };
        let quantized = args.load_bundle::<B>(device)?.model;
        Ok((report, ppl(&quantized)?, kl_divergence(&quantized, &model, &eval_ids, cli.context)?))
    };
    let source_kl = source_kl_from_f32::<B>(cli, &input, &eval_ids, device)?;
    let (report, ppl_after, kl) = write_and_measure(&options, out)?;
    println!("perplexity: {ppl_before:.4} -> {ppl_after:.4} (delta {:+.4})", ppl_after - ppl_before);
    print_kl(&kl, "the source", cli.context);
    let mut json_report = json!({
        "method": "gguf", "type": options.file_type.name(), "imatrix": options.imatrix.is_some(), "ppl_source": ppl_before,
        "ppl_quantized": ppl_after, "ppl_delta": ppl_after - ppl_before, "file_bytes": report.file_bytes,
        "bits_per_weight": report.bits_per_weight(), "linear_bits_per_weight": linear_bits(&report),
        "eval_tokens": eval_ids.len(), "quantize_seconds": report.seconds, "kl": kl,
        "tensors": report.tensors.iter().map(|t| json!({"name": t.name, "type": t.ggml_type.name(), "bytes": t.bytes})).collect::<Vec<_>>(),
    });
    if let Some(k) = &source_kl {
        json_report["kl_source_vs_f32"] = serde_json::to_value(k)?;
    }
    if options.imatrix.is_some() {
        let plain = GgufOptions { imatrix: None, ..options.clone() };
        let path = out.with_extension("no-imatrix.gguf");
        let (_, ppl_plain, kl_plain) = write_and_measure(&plain, &path)?;
        std::fs::remove_file(&path).ok();
        println!("without the importance matrix: perplexity {ppl_plain:.4} (delta {:+.4}); with it {:+.4}", ppl_plain - ppl_before, ppl_after - ppl_before);
        println!("mean KL divergence from the source without the importance matrix {:.6}, with it {:.6}", kl_plain.mean_kl, kl.mean_kl);
        json_report["ppl_without_imatrix"] = ppl_plain.into();
        json_report["kl_without_imatrix"] = serde_json::to_value(&kl_plain)?;
    }
    if let Some(path) = &cli.report {
        llm_core::io::atomic::write_bytes_atomic(path, serde_json::to_string_pretty(&json_report)?.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A GGUF source as decoding runs it (its blocks by the fused kernels: activations quantized
/// for the integer dot products, `QuantExecution::Fused` for every chunk) against the same
/// file dequantized exactly to f32 (`ggml_blocks: false`): what running the stored blocks
/// costs, as llama.cpp's `--kl-divergence` measures a quantized file against its base. (Under
/// `auto` a 256-token chunk is dequantized, the f32 numbers: KL 0.) Printed and returned;
/// `None` for a source that is not a GGUF file.
fn source_kl_from_f32<B: Backend>(cli: &Cli, input: &std::path::Path, eval_ids: &[u32], device: &B::Device) -> anyhow::Result<Option<KlReport>> {
    if input.extension().is_none_or(|e| e != "gguf") {
        return Ok(None);
    }
    let fused = llm_core::weights::LoadOptions { quant_execution: llm_core::quant::QuantExecution::Fused, ..cli.model.load_options() };
    let exact = llm_core::weights::LoadOptions { ggml_blocks: false, dtype: burn::tensor::DType::F32, ..cli.model.load_options() };
    let as_run = cli.model.load_bundle_with::<B>(fused, device)?.model;
    let f32_model = cli.model.load_bundle_with::<B>(exact, device)?.model;
    let kl = kl_divergence(&as_run, &f32_model, eval_ids, cli.context)?;
    print_kl(&kl, &format!("{} dequantized to f32 (the source run from its blocks, fused kernels)", input.display()), cli.context);
    Ok(Some(kl))
}

/// llama.cpp's KL divergence summary, headed by what it measures.
fn print_kl(kl: &KlReport, reference: &str, context: usize) {
    println!("\nKL divergence from {reference} (chunks of {context} held-out tokens, the second half of each scored):\n{kl}");
}

/// Bits per weight of the decoder's linear layers alone (`blk.N.*.weight` matrices), the
/// measure the other methods' reports give.
fn linear_bits(report: &llm_quant::gguf::GgufReport) -> f64 {
    let linear: Vec<_> = report.tensors.iter().filter(|t| t.name.starts_with("blk.") && !t.name.contains("norm")).collect();
    let (bytes, elements) = linear.iter().fold((0usize, 0usize), |(b, e), t| (b + t.bytes, e + t.elements));
    8.0 * bytes as f64 / elements.max(1) as f64
}

/// `--method gguf-lora`: write the adapter as a LoRA GGUF, then perplexity of the base with the
/// PEFT adapter and with the GGUF one (the same update, so the same perplexity).
fn run_gguf_lora<B: Backend>(cli: &Cli, device: &B::Device) -> anyhow::Result<()> {
    let (Some(out), Some(dir)) = (&cli.out, &cli.model.adapter) else { bail!("--method gguf-lora needs --adapter DIR and --out FILE.gguf") };
    let peft = llm_core::adapter::PeftAdapter::load(dir)?;
    let ModelBundle { model, tokenizer, .. } = cli.model.load_bundle::<B>(device)?;
    let modules = llm_core::adapter::write_lora_gguf(&peft, &model.config, out)?;
    println!("wrote {} ({} adapted modules, {:.1} KB)", out.display(), modules.len(), std::fs::metadata(out)?.len() as f64 / 1e3);
    let text = read_text(&cli.eval)?;
    let eval_text: String = text.chars().take(cli.eval_chars).collect();
    let eval_ids = tokenizer.encode(&eval_text, true)?.ids;
    let ppl = |m: &CausalLm<B>| -> anyhow::Result<f64> { Ok(perplexity(m, &eval_ids, cli.context, cli.stride)?.perplexity) };
    let with_peft = ppl(&model)?;
    drop(model);
    let args = ModelArgs { adapter: Some(out.clone()), ..cli.model.clone() };
    let with_gguf = ppl(&args.load_bundle::<B>(device)?.model)?;
    println!("perplexity with the PEFT adapter {with_peft:.4}, with the GGUF adapter {with_gguf:.4}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (backend, device) = (cli.model.backend, cli.model.device);
    run_on(backend, device, Quantize(cli))?
}
