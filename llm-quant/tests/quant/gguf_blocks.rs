//! ggml's quantizers, held byte for byte to llama.cpp's own: `fixtures/m_gguf_write` holds 32
//! rows of 512 (weight-like, uniform, outliers, all positive, all negative, tiny, zero,
//! constant, exact half steps, wide) and the blocks llama.cpp 0.3.36's `llama_model_quantize`
//! (pure file types) and gguf-py 0.19's `quants.quantize` wrote for them
//! (scripts/gguf_write_cases.py).

use llm_core::weights::gguf::quants::{dequantize, GgmlType};
use llm_quant::gguf::quantize_rows;
use llm_testkit::{fixture, read_f32, read_tensor};

fn blocks(name: &str) -> Vec<u8> {
    read_tensor(&fixture("m_gguf_write/blocks.safetensors"), name).1.into_iter().map(|v| v as u8).collect()
}

const TYPES: [GgmlType; 12] = [
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

#[test]
fn every_type_quantizes_byte_for_byte_as_llama_cpp() {
    let (shape, rows) = read_f32(&fixture("m_gguf_write/blocks.safetensors"), "rows");
    let mut mismatched = vec![];
    for ty in TYPES {
        let ours = quantize_rows("rows", ty, &rows, shape[1]).unwrap();
        let theirs = blocks(&format!("{}.llama_cpp", ty.name()));
        assert_eq!(ours.len(), theirs.len(), "{}", ty.name());
        let (_, block_bytes) = ty.block_layout().unwrap();
        let differing = ours.chunks(block_bytes).zip(theirs.chunks(block_bytes)).filter(|(a, b)| a != b).count();
        if differing > 0 {
            mismatched.push(format!("{}: {differing} of {} blocks differ", ty.name(), ours.len() / block_bytes));
        }
        // gguf-py's quantizers, where it has them, agree too.
        if matches!(ty, GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::BF16) {
            assert_eq!(ours, blocks(&format!("{}.gguf_py", ty.name())), "{} vs gguf-py", ty.name());
        }
        // And they read back as our dequantizer (gguf-py's, bit for bit) says.
        if ty.block_layout().unwrap().0 > 1 {
            let back = dequantize(ty, &ours);
            assert_eq!(back.len(), rows.len());
        }
    }
    assert!(mismatched.is_empty(), "{mismatched:?}");
}

#[test]
fn rows_that_do_not_split_into_blocks_are_refused_by_name() {
    let err = quantize_rows("blk.0.attn_q.weight", GgmlType::Q4_K, &[0.0; 576 * 2], 576).unwrap_err().to_string();
    assert!(err.contains("blk.0.attn_q.weight") && err.contains("256") && err.contains("576"), "{err}");
    let err = quantize_rows("x", GgmlType::Q8_0, &[0.0; 40], 0).unwrap_err().to_string();
    assert!(err.contains("`x`"), "{err}");
}

#[test]
fn importance_weighted_types_quantize_byte_for_byte_as_llama_cpp_with_an_imatrix() {
    use llm_quant::gguf::quantize_rows_weighted;
    let file = fixture("m_gguf_write/blocks.safetensors");
    let (shape, rows) = read_f32(&file, "rows");
    let (_, importance) = read_f32(&file, "importance");
    let mut mismatched = vec![];
    for ty in TYPES.into_iter().filter(|t| llm_quant::gguf::weighted::uses_importance(*t)) {
        let ours = quantize_rows_weighted("rows", ty, &rows, shape[1], Some(&importance)).unwrap();
        let theirs = blocks(&format!("{}.llama_cpp_imatrix", ty.name()));
        let (_, block_bytes) = ty.block_layout().unwrap();
        let differing = ours.chunks(block_bytes).zip(theirs.chunks(block_bytes)).filter(|(a, b)| a != b).count();
        if ours.len() != theirs.len() || differing > 0 {
            mismatched.push(format!("{}: {differing} of {} blocks differ", ty.name(), theirs.len() / block_bytes));
        }
        // The matrix changes the blocks (it is not ignored).
        assert_ne!(ours, blocks(&format!("{}.llama_cpp", ty.name())), "{}", ty.name());
    }
    assert!(mismatched.is_empty(), "{mismatched:?}");
}
