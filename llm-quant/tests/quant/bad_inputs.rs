//! Bad settings and data are typed errors that name what is wrong, raised before any work.

use llm_core::Tokenizer;
use llm_core::weights::{load_model, LoadOptions};
use llm_quant::int8::{Granularity, Int8Scheme};
use llm_quant::{quantize_gptq, quantize_model, quantize_weight, Calibration, GptqConfig, GptqParams, Method, QuantError};
use llm_testkit::{repo_path, temp_dir};

type B = burn::backend::Flex;

fn tiny() -> llm_core::CausalLm<B> {
    load_model::<B>(repo_path("fixtures/a_tiny_llama/llama"), LoadOptions::default(), &Default::default()).unwrap()
}

fn calibration() -> Calibration {
    Calibration::new(vec![vec![1, 328, 384, 353, 219, 17, 44, 90]; 2]).unwrap()
}

fn gptq(params: GptqParams) -> QuantError {
    let config = GptqConfig { params, ..Default::default() };
    quantize_gptq(&mut tiny(), &calibration(), &config, |_| {}).unwrap_err()
}

#[test]
fn bits_outside_the_supported_set_are_rejected() {
    for bits in [1, 5, 16] {
        let err = gptq(GptqParams { bits, ..Default::default() });
        assert!(matches!(&err, QuantError::Config { field, .. } if field == "bits"), "{err}");
        assert!(err.to_string().contains("2, 3, 4, 8"), "{err}");
        let err = quantize_weight(&[0.0; 64], 4, 16, Method::Rtn { bits, group_size: None, sym: true, partial_groups: false })
            .unwrap_err();
        assert!(matches!(&err, QuantError::Config { field, .. } if field == "bits"), "{err}");
    }
}

#[test]
fn group_size_that_does_not_divide_the_width_names_the_layer() {
    // The tiny model's layers are 64 and 128 wide: 48 divides neither.
    let err = gptq(GptqParams { group_size: Some(48), ..Default::default() });
    let text = err.to_string();
    assert!(matches!(&err, QuantError::Config { field, .. } if field == "group_size"), "{text}");
    assert!(text.contains("model.layers.0.self_attn.q_proj") && text.contains("48") && text.contains("64"), "{text}");
    let int8 = Method::Int8 { scheme: Int8Scheme::Absmax, granularity: Granularity::PerGroup(48) };
    let err = quantize_model(&mut tiny(), int8, |_| false, |_| {}).unwrap_err();
    assert!(err.to_string().contains("model.layers.0.self_attn.q_proj"), "{err}");
}

#[test]
fn calibration_shorter_than_one_sequence_is_an_error() {
    let tokenizer = Tokenizer::from_dir(repo_path("fixtures/k_gptq_ckpt")).unwrap();
    let err = Calibration::from_text(&tokenizer, "Too short.", 4, 256, Some(1)).unwrap_err();
    assert!(matches!(err, QuantError::Calibration(_)), "{err}");
    assert!(err.to_string().contains("shorter than one sequence of 256"), "{err}");
    assert!(matches!(Calibration::new(vec![]), Err(QuantError::Calibration(_))));
    assert!(matches!(Calibration::new(vec![vec![1, 2, 3], vec![1, 2]]), Err(QuantError::Calibration(_))));
}

#[test]
fn non_finite_weights_are_reported() {
    let mut w = vec![0.5f32; 64];
    w[7] = f32::NAN;
    for method in [
        Method::Int8 { scheme: Int8Scheme::ZeroPoint, granularity: Granularity::PerRow },
        Method::Rtn { bits: 4, group_size: Some(16), sym: false, partial_groups: false },
    ] {
        let err = quantize_weight(&w, 4, 16, method).unwrap_err();
        assert!(matches!(err, QuantError::NonFinite { .. }), "{method:?}: {err}");
    }
}

#[test]
fn bad_gptq_settings_are_rejected_before_calibration() {
    for (params, field) in [
        (GptqParams { damp_percent: 0.0, ..Default::default() }, "damp_percent"),
        (GptqParams { damp_percent: 1.5, ..Default::default() }, "damp_percent"),
        (GptqParams { block_size: 0, ..Default::default() }, "block_size"),
        (GptqParams { group_size: Some(0), ..Default::default() }, "group_size"),
    ] {
        let err = gptq(params);
        assert!(matches!(&err, QuantError::Config { field: f, .. } if f == field), "{field}: {err}");
    }
}

#[test]
fn saving_over_a_directory_that_is_not_a_checkpoint_is_refused() {
    let dir = temp_dir("not-a-checkpoint");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "keep me").unwrap();
    let err = llm_quant::save_quantized(&tiny(), None, serde_json::json!({"quant_method": "gptq"}), &dir).unwrap_err();
    assert!(err.to_string().contains("not a checkpoint directory"), "{err}");
    assert!(dir.join("notes.txt").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
