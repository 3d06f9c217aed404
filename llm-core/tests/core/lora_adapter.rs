//! A peft LoRA adapter (r=4, alpha=8 on q_proj and v_proj of the tiny Llama) runs here with
//! peft's numbers: unmerged, merged, and switched off.

use burn::tensor::backend::Backend;
use llm_core::CausalLm;
use llm_core::adapter::{merge_adapters, set_adapters_enabled, PeftAdapter};
use llm_core::weights::{load_model, LoadOptions};
use llm_testkit::*;

fn base<B: Backend>(device: &B::Device) -> CausalLm<B> {
    load_model::<B>(fixture("a_tiny_llama/llama"), LoadOptions::default(), device).unwrap()
}

fn prompts() -> Vec<Vec<u32>> {
    read_json(&fixture("c_lora/golden.json"))["prompts"].as_array().unwrap().iter().map(json_ids).collect()
}

fn logits<B: Backend>(model: &CausalLm<B>, ids: &[u32]) -> Vec<f32> {
    to_vec(model.forward(ids_tensor::<B>(std::slice::from_ref(&ids.to_vec()), &model.device())))
}

llm_testkit::backend_test! {
    fn peft_adapter_reproduces_peft_logits_unmerged_and_merged<B>(device, kind) {
        let golden = fixture("c_lora/golden.safetensors");
        let adapter = PeftAdapter::load(fixture("c_lora/adapter")).unwrap();
        assert_eq!(adapter.config.scaling_for("model.layers.0.self_attn.q_proj"), (4, 8.0, 2.0));
        let mut model = base::<B>(device);
        let adapted = adapter.apply(&mut model).unwrap();
        assert_eq!(adapted.len(), 4);
        for (i, ids) in prompts().iter().enumerate() {
            let (_, want) = read_f32(&golden, &format!("prompt{i}.logits_with_adapter"));
            assert_close(&format!("prompt {i} with adapter"), &logits(&model, ids), &want, logits_tol(kind));
        }
        // Off: the base model's logits.
        set_adapters_enabled(&mut model, false);
        for (i, ids) in prompts().iter().enumerate() {
            let (_, want) = read_f32(&golden, &format!("prompt{i}.logits_base"));
            assert_close(&format!("prompt {i} adapter disabled"), &logits(&model, ids), &want, logits_tol(kind));
        }
        set_adapters_enabled(&mut model, true);
        // Merged: W + (alpha/r)·B·A, and peft's merged logits.
        assert_eq!(merge_adapters(&mut model).unwrap(), 4);
        assert!(model.linears().iter().all(|(_, l)| l.lora.is_none()));
        for name in ["q_proj", "v_proj"] {
            let (_, want) = read_f32(&golden, &format!("merged.layers.0.self_attn.{name}.weight"));
            let got = to_vec(model.linear_mut(&format!("model.layers.0.self_attn.{name}")).unwrap().dense_weight());
            // W + 2·B·A: 1e-6; CUDA's TF32 product of B·A (~1e-3 relative) is allowed 5e-4.
            let tol = if kind == llm_core::backend::BackendKind::Cuda { 5e-4 } else { 1e-6 };
            assert_close(&format!("merged {name}"), &got, &want, tol);
        }
        for (i, ids) in prompts().iter().enumerate() {
            let (_, want) = read_f32(&golden, &format!("prompt{i}.logits_merged"));
            assert_close(&format!("prompt {i} merged"), &logits(&model, ids), &want, logits_tol(kind));
        }
    }
}

#[test]
fn adapter_for_modules_the_model_lacks_lists_them() {
    // A copy of the adapter whose v_proj tensors are renamed to a module no Llama has.
    let dir = temp_dir("lora-bad-module");
    std::fs::copy(fixture("c_lora/adapter/adapter_config.json"), dir.join("adapter_config.json")).unwrap();
    let bytes = std::fs::read(fixture("c_lora/adapter/adapter_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let renamed: Vec<(String, safetensors::tensor::TensorView)> =
        st.iter().map(|(n, v)| (n.replace("v_proj", "w_proj"), v)).collect();
    safetensors::serialize_to_file(renamed, None, &dir.join("adapter_model.safetensors")).unwrap();
    let err = PeftAdapter::load(&dir).unwrap().apply(&mut base::<TestBackend>(&Default::default())).unwrap_err().to_string();
    assert!(err.contains("model.layers.0.self_attn.w_proj") && err.contains("q_proj"), "{err}");
}
