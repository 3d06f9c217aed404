//! `quantization_config` in `config.json`: which quantized layouts a checkpoint's linear layers
//! use. Each layer's own tensors then say which format it is in, so a checkpoint can mix them.

use serde_json::Value;

use crate::error::{LlmError, Result};

/// The quantization a checkpoint declares.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckpointQuantization {
    /// GPTQModel / AutoGPTQ: `qweight`, `qzeros`, `scales`, `g_idx` per layer.
    Gptq {
        /// Bits per weight (each layer's own width is read from its `qweight`).
        bits: u32,
        /// Columns per group; `None` for one group per row (`group_size: -1`).
        group_size: Option<usize>,
        /// Act-order (`desc_act`).
        desc_act: bool,
        /// Symmetric quantization.
        sym: bool,
        /// `checkpoint_format: gptq` (v1) stores each zero point minus one; `gptq_v2` does not.
        zero_point_offset: bool,
    },
    /// bitsandbytes as transformers serialises it: 4-bit NF4/FP4 (`weight.absmax`,
    /// `weight.quant_map`, `weight.quant_state.*`) or 8-bit LLM.int8() (`weight` + `SCB`).
    Bitsandbytes {
        /// Outlier threshold for 8-bit layers (`llm_int8_threshold`, default 6.0).
        llm_int8_threshold: f32,
    },
    /// This family's int8 layout (`weight` int8, `weight_scale`, optional `weight_zero_point`).
    LlmRs,
    /// AutoAWQ's GEMM layout: `qweight` int32 `[d_in, d_out·bits/32]` and `qzeros` packed
    /// along the outputs in AWQ's interleaved order, `scales` `[n_groups, d_out]`.
    Awq {
        /// Bits per weight (4: the only width the GEMM layout packs).
        bits: u32,
        /// Columns per group; `None` for one group per row (`group_size: -1`).
        group_size: Option<usize>,
        /// Asymmetric groups with a zero point (`zero_point`, AutoAWQ's default true).
        zero_point: bool,
    },
    /// HQQ as transformers 4.x saves it: each layer's `W_q`, `scale`, `zero` and metadata
    /// tensors say its bits, groups and packing.
    Hqq,
}

impl CheckpointQuantization {
    /// Parses `quantization_config`; unknown methods are an error naming the supported ones.
    pub fn from_json(q: &Value) -> Result<Self> {
        let method = q.get("quant_method").and_then(Value::as_str).unwrap_or("unknown");
        match method {
            "gptq" => {
                let format = q.get("checkpoint_format").or_else(|| q.get("format")).and_then(Value::as_str);
                let bits = q.get("bits").and_then(Value::as_u64).unwrap_or(4) as u32;
                let group_size = q.get("group_size").and_then(Value::as_i64).unwrap_or(128);
                Ok(Self::Gptq {
                    bits,
                    group_size: (group_size > 0).then_some(group_size as usize),
                    desc_act: q.get("desc_act").and_then(Value::as_bool).unwrap_or(false),
                    sym: q.get("sym").and_then(Value::as_bool).unwrap_or(true),
                    zero_point_offset: match format {
                        None | Some("gptq") => true,
                        Some("gptq_v2") => false,
                        Some(other) => {
                            return Err(LlmError::config(
                                "quantization_config.checkpoint_format",
                                format!("`{other}` is not supported; supported: gptq, gptq_v2"),
                            ))
                        }
                    },
                })
            }
            "bitsandbytes" => Ok(Self::Bitsandbytes {
                llm_int8_threshold: q.get("llm_int8_threshold").and_then(Value::as_f64).unwrap_or(6.0) as f32,
            }),
            "llm-rs" => Ok(Self::LlmRs),
            "awq" => Self::awq_from_json(q),
            "hqq" => Ok(Self::Hqq),
            other => Err(LlmError::config(
                "quantization_config.quant_method",
                format!("`{other}` is not supported; supported: gptq, awq, hqq, bitsandbytes, llm-rs"),
            )),
        }
    }

    /// AutoAWQ's `quantization_config`: only the GEMM packing (`version: gemm`, the default)
    /// with zero points is read; GEMV, the kernel-specific layouts and `zero_point: false`
    /// (which the GEMM kernels do not run) are refused.
    fn awq_from_json(q: &Value) -> Result<Self> {
        let version = q.get("version").and_then(Value::as_str).unwrap_or("gemm");
        if !version.eq_ignore_ascii_case("gemm") {
            return Err(LlmError::config(
                "quantization_config.version",
                format!("AWQ `{version}` packing is not supported; supported: gemm"),
            ));
        }
        let bits = q.get("bits").or_else(|| q.get("w_bit")).and_then(Value::as_u64).unwrap_or(4) as u32;
        if bits != 4 {
            return Err(LlmError::config("quantization_config.bits", format!("AWQ GEMM packs 4-bit codes, got {bits}")));
        }
        let group_size = q.get("group_size").or_else(|| q.get("q_group_size")).and_then(Value::as_i64).unwrap_or(128);
        let zero_point = q.get("zero_point").and_then(Value::as_bool).unwrap_or(true);
        if !zero_point {
            return Err(LlmError::config("quantization_config.zero_point", "AWQ GEMM without zero points is not supported"));
        }
        Ok(Self::Awq { bits, group_size: (group_size > 0).then_some(group_size as usize), zero_point })
    }
}
