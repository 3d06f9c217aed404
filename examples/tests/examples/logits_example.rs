//! The `logits` example's output against transformers' logits for the tiny Llama's first prompt.

use std::path::Path;

use llm_core::weights::{load_model, LoadOptions};
use llm_examples::top_logits_json;

llm_testkit::backend_test! {
    /// What `cargo run --example logits -- --backend KIND` prints, on every compiled-in backend.
    fn last_position_top5_matches_transformers_within_1e4<B>(device, kind) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/a_tiny_llama/llama");
        let model = load_model::<B>(&dir, LoadOptions::default(), device).unwrap();
        let out = top_logits_json(&model, &[1, 328, 384, 353, 219], 5);
        let last = &out.as_array().unwrap()[4]["top"];

        // transformers' prompt0 logits, last position, top 5 (fixtures/a_tiny_llama/llama/golden.safetensors).
        let bytes = std::fs::read(dir.join("golden.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let view = st.tensor("prompt0.logits").unwrap();
        let want: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let want = &want[4 * 512..];
        let mut order: Vec<usize> = (0..512).collect();
        order.sort_by(|&a, &b| want[b].total_cmp(&want[a]));
        for (k, &id) in order[..5].iter().enumerate() {
            assert_eq!(last[k][0].as_u64().unwrap() as usize, id, "rank {k}");
            let got = last[k][1].as_f64().unwrap() as f32;
            // 1e-4 on every backend, as the tiny-Llama parity tests.
            assert!((got - want[id]).abs() <= 1e-4, "rank {k}: {got} vs {}", want[id]);
        }
    }
}
