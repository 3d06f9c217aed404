//! llama-quantize's file types (`Q4_K_M`, `Q8_0`, ...) and the per-tensor type each gives: its
//! default type, the promotions of `llama_tensor_get_type_impl` (attention V and FFN down get
//! more bits in chosen layers, the output head Q6_K), manual overrides by regex, and the
//! fallbacks for rows that are not a multiple of the block (`tensor_type_fallback`), for the
//! Llama family (dense and Mixtral-style, no Falcon or 70B special cases).

use llm_core::weights::gguf::quants::GgmlType;

use crate::error::{QuantError, Result};

/// A GGUF file type, as `llama-quantize` names it (`general.file_type` holds its `llama_ftype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types, missing_docs)]
pub enum FileType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q2_K,
    Q3_K_S,
    Q3_K_M,
    Q3_K_L,
    Q4_K_S,
    Q4_K_M,
    Q5_K_S,
    Q5_K_M,
    Q6_K,
}

/// `(name, type, llama_ftype id, default tensor type)`.
const FILE_TYPES: [(&str, FileType, u32, GgmlType); 17] = [
    ("F32", FileType::F32, 0, GgmlType::F32),
    ("F16", FileType::F16, 1, GgmlType::F16),
    ("BF16", FileType::BF16, 32, GgmlType::BF16),
    ("Q8_0", FileType::Q8_0, 7, GgmlType::Q8_0),
    ("Q4_0", FileType::Q4_0, 2, GgmlType::Q4_0),
    ("Q4_1", FileType::Q4_1, 3, GgmlType::Q4_1),
    ("Q5_0", FileType::Q5_0, 8, GgmlType::Q5_0),
    ("Q5_1", FileType::Q5_1, 9, GgmlType::Q5_1),
    ("Q2_K", FileType::Q2_K, 10, GgmlType::Q2_K),
    ("Q3_K_S", FileType::Q3_K_S, 11, GgmlType::Q3_K),
    ("Q3_K_M", FileType::Q3_K_M, 12, GgmlType::Q3_K),
    ("Q3_K_L", FileType::Q3_K_L, 13, GgmlType::Q3_K),
    ("Q4_K_S", FileType::Q4_K_S, 14, GgmlType::Q4_K),
    ("Q4_K_M", FileType::Q4_K_M, 15, GgmlType::Q4_K),
    ("Q5_K_S", FileType::Q5_K_S, 16, GgmlType::Q5_K),
    ("Q5_K_M", FileType::Q5_K_M, 17, GgmlType::Q5_K),
    ("Q6_K", FileType::Q6_K, 18, GgmlType::Q6_K),
];

impl FileType {
    fn row(self) -> &'static (&'static str, FileType, u32, GgmlType) {
        FILE_TYPES.iter().find(|r| r.1 == self).expect("every file type has a row")
    }

    /// Parses llama-quantize's name (`Q4_K_M`; `Q4_K` means `Q4_K_M`, `Q3_K` means `Q3_K_M`,
    /// as llama-quantize's aliases).
    pub fn parse(name: &str) -> Result<Self> {
        let upper = name.to_ascii_uppercase();
        let canonical = match upper.as_str() {
            "Q4_K" => "Q4_K_M",
            "Q3_K" => "Q3_K_M",
            "Q5_K" => "Q5_K_M",
            other => other,
        };
        FILE_TYPES.iter().find(|r| r.0 == canonical).map(|r| r.1).ok_or_else(|| {
            let known: Vec<&str> = FILE_TYPES.iter().map(|r| r.0).collect();
            QuantError::config("type", format!("`{name}` is not a GGUF file type; supported: {}", known.join(", ")))
        })
    }

    /// llama-quantize's name.
    pub fn name(self) -> &'static str {
        self.row().0
    }

    /// The `llama_ftype` id written as `general.file_type`.
    pub fn llama_ftype(self) -> u32 {
        self.row().2
    }

    /// The type of a tensor that no rule promotes.
    pub fn default_type(self) -> GgmlType {
        self.row().3
    }

    /// A float type (`F32`, `F16`, `BF16`): no promotions, no `general.quantization_version`.
    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F16 | Self::BF16)
    }
}

/// A per-tensor override: tensors whose GGUF name matches `pattern` (searched, not anchored,
/// as llama-quantize's `--tensor-type`) get `ggml_type`; the first matching override wins.
#[derive(Debug, Clone)]
pub struct TypeOverride {
    /// Regex searched in the GGUF tensor name.
    pub pattern: regex::Regex,
    /// The type to store matching tensors in.
    pub ggml_type: GgmlType,
}

impl TypeOverride {
    /// Parses `PATTERN=TYPE` (`attn_v=q8_0`, `blk\.[0-3]\.ffn_down=Q6_K`).
    pub fn parse(spec: &str) -> Result<Self> {
        let (pattern, ty) = spec
            .rsplit_once('=')
            .ok_or_else(|| QuantError::config("tensor-type", format!("`{spec}` is not PATTERN=TYPE")))?;
        let pattern = regex::Regex::new(pattern)
            .map_err(|e| QuantError::config("tensor-type", format!("`{pattern}` is not a regex: {e}")))?;
        Ok(Self { pattern, ggml_type: ggml_type_named(ty)? })
    }
}

/// A GGML type by name (`Q4_K`, `q8_0`, `F16`) among those this crate quantizes to.
pub fn ggml_type_named(name: &str) -> Result<GgmlType> {
    const TYPES: [GgmlType; 13] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ];
    TYPES.into_iter().find(|t| t.name().eq_ignore_ascii_case(name)).ok_or_else(|| {
        let known: Vec<String> = TYPES.iter().map(|t| t.name()).collect();
        QuantError::config("tensor-type", format!("`{name}` is not a GGML type; supported: {}", known.join(", ")))
    })
}

/// What the type rules need to know about the model.
#[derive(Debug, Clone, Copy)]
pub struct MixContext {
    /// Decoder layers.
    pub n_layers: usize,
    /// Query heads per KV head (`n_heads / n_kv_heads`).
    pub n_gqa: usize,
    /// Experts per MoE layer (0 or 1 for dense models).
    pub n_experts: usize,
    /// The token embedding doubles as the output head.
    pub tied_embeddings: bool,
    /// An importance matrix is used (llama-quantize then guards the first FFN-down layers of
    /// Q4_0 / Q5_0 files with Q4_1 / Q5_1).
    pub has_imatrix: bool,
}

/// What one tensor is, for the type rules (llama-quantize's `tensor_category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    Output,
    TokenEmbd,
    AttnV,
    AttnK,
    AttnOutput,
    FfnDown,
    Other,
}

fn category(name: &str) -> Category {
    match name {
        "output.weight" => Category::Output,
        "token_embd.weight" => Category::TokenEmbd,
        n if n.contains("attn_v.weight") => Category::AttnV,
        n if n.contains("attn_k.weight") => Category::AttnK,
        n if n.contains("attn_output.weight") => Category::AttnOutput,
        n if n.contains("ffn_down") => Category::FfnDown,
        _ => Category::Other,
    }
}

/// Whether llama-quantize quantizes a tensor at all (`tensor_allows_quantization`): 2-D and
/// stacked 3-D weights, not norms and not the MoE router.
pub fn is_quantizable(name: &str, n_dims: usize) -> bool {
    n_dims >= 2 && name.ends_with("weight") && !name.contains("_norm.weight") && !name.contains("ffn_gate_inp.weight")
}

/// llama.cpp's `use_more_bits`: the first and last eighth of the layers and every third between.
fn use_more_bits(i: usize, n: usize) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i as i64 - (n / 8) as i64).rem_euclid(3) == 2
}

/// The layer of `blk.N.…`.
fn layer(name: &str) -> Option<usize> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

/// The type `llama-quantize --type ftype` gives tensor `name` with rows of `cols` values,
/// `None` when it stays unquantized (norms, the router, 1-D tensors: F32).
pub fn tensor_type(ftype: FileType, name: &str, n_dims: usize, cols: usize, ctx: &MixContext, overrides: &[TypeOverride]) -> Option<GgmlType> {
    if !is_quantizable(name, n_dims) {
        return None;
    }
    let default = ftype.default_type();
    if ftype.is_float() {
        return Some(default);
    }
    let manual = overrides.iter().find(|o| o.pattern.is_match(name)).map(|o| o.ggml_type);
    let ty = manual.unwrap_or_else(|| promoted(ftype, default, name, cols, ctx));
    Some(fallback(ty, cols))
}

fn promoted(ftype: FileType, default: GgmlType, name: &str, cols: usize, ctx: &MixContext) -> GgmlType {
    use FileType as F;
    use GgmlType as T;
    let cat = category(name);
    // Tensors are visited by layer, so a layer's index is its count among attn_v / ffn_down.
    let (i, n) = (layer(name).unwrap_or(0), ctx.n_layers);
    match cat {
        Category::Output | Category::TokenEmbd if cat == Category::Output || ctx.tied_embeddings => {
            if !cols.is_multiple_of(block(default)) {
                T::Q8_0
            } else if default != T::Q8_0 {
                T::Q6_K
            } else {
                default
            }
        }
        Category::AttnV => {
            let t = match ftype {
                F::Q2_K if ctx.n_gqa >= 4 => T::Q4_K,
                F::Q2_K => T::Q3_K,
                F::Q3_K_M if i < 2 => T::Q5_K,
                F::Q3_K_M => T::Q4_K,
                F::Q3_K_L => T::Q5_K,
                F::Q4_K_M | F::Q5_K_M if use_more_bits(i, n) => T::Q6_K,
                F::Q4_K_S if i < 4 => T::Q5_K,
                _ => default,
            };
            if ctx.n_experts == 8 {
                T::Q8_0
            } else {
                t
            }
        }
        Category::AttnK if ctx.n_experts == 8 => T::Q8_0,
        Category::FfnDown => match ftype {
            F::Q2_K => T::Q3_K,
            F::Q3_K_M if i < n / 16 => T::Q5_K,
            F::Q3_K_M => T::Q4_K,
            F::Q3_K_L => T::Q5_K,
            F::Q4_K_M | F::Q5_K_M if use_more_bits(i, n) => T::Q6_K,
            F::Q4_K_S if i < n / 8 => T::Q5_K,
            F::Q4_0 if ctx.has_imatrix && i < n / 8 => T::Q4_1,
            F::Q5_0 if ctx.has_imatrix && i < n / 8 => T::Q5_1,
            _ => default,
        },
        Category::AttnOutput if ctx.n_experts == 8 => match ftype {
            F::Q2_K | F::Q3_K_S | F::Q3_K_M | F::Q4_K_S | F::Q4_K_M => T::Q5_K,
            _ => default,
        },
        Category::AttnOutput => match ftype {
            F::Q2_K => T::Q3_K,
            F::Q3_K_M => T::Q4_K,
            F::Q3_K_L => T::Q5_K,
            _ => default,
        },
        _ => default,
    }
}

fn block(ty: GgmlType) -> usize {
    ty.block_layout().map_or(1, |(b, _)| b)
}

/// `tensor_type_fallback`: a K-quant whose rows are not a multiple of 256 falls back to a
/// legacy type of similar size; rows that are not a multiple of 32 either are stored F16.
pub fn fallback(ty: GgmlType, cols: usize) -> GgmlType {
    if cols.is_multiple_of(block(ty)) {
        return ty;
    }
    let legacy = match ty {
        GgmlType::Q2_K | GgmlType::Q3_K => GgmlType::Q4_0,
        GgmlType::Q4_K => GgmlType::Q5_0,
        GgmlType::Q5_K => GgmlType::Q5_1,
        GgmlType::Q6_K => GgmlType::Q8_0,
        other => other,
    };
    if cols.is_multiple_of(block(legacy)) {
        legacy
    } else {
        GgmlType::F16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(n_layers: usize) -> MixContext {
        MixContext { n_layers, n_gqa: 3, n_experts: 0, tied_embeddings: true, has_imatrix: false }
    }

    #[test]
    fn q4_k_m_promotes_as_llama_quantize_does() {
        let c = ctx(30);
        let ty = |name: &str, cols| tensor_type(FileType::Q4_K_M, name, 2, cols, &c, &[]);
        // SmolLM2: 576-wide rows fall back to Q5_0, the tied embedding to Q8_0.
        assert_eq!(ty("token_embd.weight", 576), Some(GgmlType::Q8_0));
        assert_eq!(ty("blk.5.attn_q.weight", 576), Some(GgmlType::Q5_0));
        assert_eq!(ty("blk.0.attn_v.weight", 576), Some(GgmlType::Q8_0));
        assert_eq!(ty("blk.0.ffn_down.weight", 1536), Some(GgmlType::Q6_K));
        // use_more_bits(i, 30): i < 3, i >= 26, or (i - 3) % 3 == 2.
        let promoted: Vec<usize> = (0..30).filter(|&i| ty(&format!("blk.{i}.ffn_down.weight"), 1536) == Some(GgmlType::Q6_K)).collect();
        assert_eq!(promoted, vec![0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]);
        assert_eq!(ty("blk.4.ffn_down.weight", 1536), Some(GgmlType::Q4_K));
        assert_eq!(ty("blk.4.attn_norm.weight", 576), None);
        assert_eq!(tensor_type(FileType::Q4_K_M, "output_norm.weight", 1, 576, &c, &[]), None);
        // An override wins over the rules but not over the row width.
        let o = [TypeOverride::parse(r"ffn_down=q8_0").unwrap(), TypeOverride::parse("attn_q=Q4_K").unwrap()];
        assert_eq!(tensor_type(FileType::Q4_K_M, "blk.4.ffn_down.weight", 2, 1536, &c, &o), Some(GgmlType::Q8_0));
        assert_eq!(tensor_type(FileType::Q4_K_M, "blk.4.attn_q.weight", 2, 576, &c, &o), Some(GgmlType::Q5_0));
        assert_eq!(fallback(GgmlType::Q6_K, 40), GgmlType::F16);
    }

    #[test]
    fn file_type_names_parse_and_bad_ones_are_named() {
        assert_eq!(FileType::parse("q4_k_m").unwrap(), FileType::Q4_K_M);
        assert_eq!(FileType::parse("Q4_K").unwrap().llama_ftype(), 15);
        let err = FileType::parse("Q9_X").unwrap_err().to_string();
        assert!(err.contains("Q9_X") && err.contains("Q4_K_M"), "{err}");
        assert!(TypeOverride::parse("attn_v").is_err());
        assert!(TypeOverride::parse("attn_v=Q7").unwrap_err().to_string().contains("Q7"));
    }
}
