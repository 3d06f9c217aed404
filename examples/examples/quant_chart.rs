//! Draw the quantization quality chart: perplexity against bits per weight, one colour per
//! method, from the JSON reports `quantize --report` writes (scripts/quant-report.sh leaves
//! them in one directory), as DIR/quality.svg.
//!
//! ```text
//! scripts/quant-report.sh target/quant-report
//! cargo run --release --example quant_chart -- target/quant-report
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context};

/// Perplexity against bits per linear weight of every report in `dir`.
fn draw_chart(dir: &std::path::Path) -> anyhow::Result<()> {
    use llm_examples::chart::{quality_chart, Point};
    let mut points = vec![];
    let mut baseline = None;
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
    paths.sort();
    for path in paths {
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?).with_context(|| format!("reading {}", path.display()))?;
        let (Some(method), Some(ppl)) = (r["method"].as_str(), r["ppl_quantized"].as_f64()) else { continue };
        let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        let bits = if method == "gguf" {
            r["linear_bits_per_weight"].as_f64()
        } else {
            // f32 bytes / quantized bytes of the decoder's linear weights.
            r["linear_bytes_quantized"].as_f64().zip(r["linear_bytes_dense_f32"].as_f64()).map(|(q, d)| 32.0 * q / d)
        };
        let Some(bits) = bits else { continue };
        baseline = baseline.or(r["ppl_dense"].as_f64()).or(r["ppl_source"].as_f64());
        let family = if method == "gguf" && r["imatrix"] == true { "gguf + imatrix".to_string() } else { method.to_string() };
        points.push(Point { family, label: stem, x: bits, y: ppl });
    }
    let Some(baseline) = baseline else { bail!("no quantize report (--report JSON) in {}", dir.display()) };
    let out = dir.join("quality.svg");
    quality_chart(&points, baseline, "SmolLM2-135M-Instruct: perplexity against bits per weight", &out)?;
    println!("wrote {} ({} reports)", out.display(), points.len());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).map(PathBuf::from).context("usage: quant_chart DIR (a directory of quantize --report JSON files)")?;
    draw_chart(&dir)
}
