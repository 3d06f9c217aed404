//! Importance matrices: computed through the model's forward pass, written and read in
//! llama.cpp's GGUF format (and its legacy `.dat`), and refused for a tensor of another width.

use burn::tensor::{Int, Tensor, TensorData};
use llm_core::weights::{load_model, LoadOptions};
use llm_quant::gguf::{write_model_gguf, FileType, GgufOptions, Imatrix};
use llm_quant::Calibration;
use llm_testkit::{repo_path, temp_dir};

type B = burn::backend::Flex;

fn tiny() -> llm_core::CausalLm<B> {
    load_model::<B>(repo_path("fixtures/a_tiny_llama/llama"), LoadOptions::default(), &Default::default()).unwrap()
}

fn calibration() -> Calibration {
    Calibration::new(vec![vec![1, 328, 384, 353, 219, 17, 44, 90], vec![1, 5, 77, 402, 13, 9, 260, 111]]).unwrap()
}

#[test]
fn the_first_layer_entries_are_the_summed_squares_of_its_normed_input() {
    let model = tiny();
    let m = Imatrix::compute(&model, &calibration(), "unit").unwrap();
    assert_eq!(m.entries.len(), 2 * 7, "seven linear weights per layer");
    assert_eq!((m.chunk_count, m.chunk_size), (2, 8));
    // Q, K and V read the same input, so they share one entry's values.
    let q = &m.entries["blk.0.attn_q.weight"];
    assert_eq!(q, &m.entries["blk.0.attn_v.weight"]);
    assert_eq!(q.counts, vec![16.0]);
    // Layer 0's attention input is the RMS-normed embedding: summed directly here.
    let mut want = vec![0f64; 64];
    for seq in &calibration().sequences {
        let ids: Vec<i64> = seq.iter().map(|&t| t as i64).collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, seq.len()]), &Default::default());
        let normed = model.layers[0].input_layernorm.forward(model.embed(ids).unwrap());
        let v = normed.into_data().convert::<f32>().into_vec::<f32>().unwrap();
        for (i, x) in v.iter().enumerate() {
            want[i % 64] += f64::from(x * x);
        }
    }
    for (got, want) in q.in_sum2.iter().zip(&want) {
        assert!((f64::from(*got) - want).abs() <= 1e-5 * want.abs().max(1e-3), "{got} vs {want}");
    }
}

#[test]
fn an_imatrix_file_round_trips_and_reads_llama_cpp_legacy_files() {
    let m = Imatrix::compute(&tiny(), &calibration(), "unit").unwrap();
    let path = temp_dir("imatrix").join("m.imatrix.gguf");
    m.save(&path).unwrap();
    assert_eq!(Imatrix::load(&path).unwrap(), m);
    // Legacy: n, then name, ncall, nval, values (mean·ncall).
    let mut dat = vec![];
    dat.extend(1i32.to_le_bytes());
    let name = b"blk.0.attn_q.weight";
    dat.extend((name.len() as i32).to_le_bytes());
    dat.extend(name);
    dat.extend(4i32.to_le_bytes());
    dat.extend(2i32.to_le_bytes());
    dat.extend([8.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()));
    let legacy = temp_dir("imatrix").join("m.dat");
    std::fs::write(&legacy, &dat).unwrap();
    let m = Imatrix::load(&legacy).unwrap();
    assert_eq!(m.weights_for("blk.0.attn_q.weight", 2, 1).unwrap(), Some(vec![2.0, 0.5]));
    // Truncated: an error naming the file, not a panic.
    std::fs::write(&legacy, &dat[..dat.len() - 3]).unwrap();
    let err = Imatrix::load(&legacy).unwrap_err().to_string();
    assert!(err.contains("m.dat") && err.contains("truncated"), "{err}");
}

#[test]
fn an_imatrix_of_another_model_is_refused_naming_the_tensor() {
    let mut m = Imatrix::compute(&tiny(), &calibration(), "unit").unwrap();
    let e = m.entries.get_mut("blk.1.ffn_down.weight").unwrap();
    e.in_sum2.truncate(64);
    let mut options = GgufOptions::new(FileType::Q4_0);
    options.imatrix = Some(m);
    let out = temp_dir("imatrix").join("x.gguf");
    let err = write_model_gguf(&super::gguf_export::tiny_dir(), &out, &options).unwrap_err().to_string();
    assert!(err.contains("blk.1.ffn_down.weight") && err.contains("another model") && !out.exists(), "{err}");
}
