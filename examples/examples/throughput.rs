//! Prefill and decode throughput of a Llama architecture on any compiled-in backend, against
//! the memory-bandwidth roofline of decode (bytes read per token / measured bandwidth).
//!
//! Weights are random ([`RandomSource`]) with the config's exact shapes, so a 1B model needs no
//! download: the speed is the checkpoint's, the text would not be.
//!
//! ```text
//! cargo run --release --features cuda --example throughput -- --backend cuda \
//!     --config benches/configs/smollm2-135m.json --config benches/configs/llama-3.2-1b.json \
//!     --dtype f32 --dtype bf16 --dtype f16
//! ```

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::{backend::Backend, DType};
use clap::Parser;
use llm_core::backend::{BackendKind, BackendTask};
use llm_core::config::ModelConfig;
use llm_examples::{parse_backend, parse_dtype, run_on};
// The measurement itself, shared with the CUDA check's test binary.
use llm_testkit::throughput;
use serde_json::json;

#[derive(Parser, Debug, Clone)]
#[command(about = "Prefill/decode tokens per second and the decode roofline")]
struct Cli {
    /// flex, wgpu or cuda (the last two need `--features wgpu|cuda`).
    #[arg(long, default_value = "flex", value_parser = parse_backend)]
    backend: BackendKind,
    /// Device index for GPU backends.
    #[arg(long, default_value_t = 0)]
    device: usize,
    /// Hugging Face config.json of the architecture (repeatable).
    #[arg(long = "config", required = true)]
    configs: Vec<PathBuf>,
    /// Weight dtype (repeatable): f32, f16, bf16.
    #[arg(long = "dtype", default_value = "f32", value_parser = parse_dtype)]
    dtypes: Vec<DType>,
    /// Prompt tokens of the prefill.
    #[arg(long, default_value_t = 512)]
    prefill: usize,
    /// Tokens decoded after the prefill (timed).
    #[arg(long, default_value_t = 128)]
    decode: usize,
    /// Append one JSON line per run to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

struct Task(Cli);

impl BackendTask for Task {
    type Output = anyhow::Result<()>;

    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<()> {
        let cli = self.0;
        let bandwidth = throughput::copy_bandwidth_gbs::<B>(&device);
        println!("backend {} ({}); device copy bandwidth {bandwidth:.0} GB/s (read + write)", cli.backend, B::name(&device));
        for path in &cli.configs {
            let config = ModelConfig::from_file(path).with_context(|| format!("reading {}", path.display()))?;
            for &dtype in &cli.dtypes {
                let row = throughput::measure::<B>(&config, dtype, cli.prefill, cli.decode, bandwidth, &device)?;
                let row = json!({ "config": path.file_stem().and_then(|s| s.to_str()), "backend": cli.backend.name(), "row": row });
                println!("{row}");
                if let Some(out) = &cli.json {
                    use std::io::Write;
                    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(out)?;
                    writeln!(f, "{row}")?;
                }
            }
        }
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    run_on(cli.backend, cli.device, Task(cli.clone()))?
}
