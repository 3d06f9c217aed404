//! A model with its tokenizer and generation defaults, loaded from one path.

use std::path::Path;

use burn::tensor::backend::Backend;

use crate::error::Result;
use crate::generate::GenerationConfig;
use crate::model::CausalLm;
use crate::tokenizer::Tokenizer;
use crate::weights::{load_model, GgufFile, LoadOptions};

/// What a chat or completion needs: weights, tokenizer, `generation_config.json`.
pub struct ModelBundle<B: Backend> {
    /// The model.
    pub model: CausalLm<B>,
    /// Its tokenizer (with the chat template).
    pub tokenizer: Tokenizer,
    /// Decoding defaults: the directory's `generation_config.json` when present, otherwise
    /// transformers' defaults; EOS ids from the config (and the tokenizer's EOS) always.
    pub generation: GenerationConfig,
}

impl<B: Backend> ModelBundle<B> {
    /// Loads a Hugging Face directory or a GGUF file.
    pub fn load(path: impl AsRef<Path>, options: LoadOptions, device: &B::Device) -> Result<Self> {
        let path = path.as_ref();
        let model = load_model::<B>(path, options, device)?;
        let (tokenizer, mut generation) = if path.is_dir() {
            let gen_path = path.join("generation_config.json");
            let generation =
                if gen_path.exists() { GenerationConfig::from_file(&gen_path)? } else { GenerationConfig::default() };
            (Tokenizer::from_dir(path)?, generation)
        } else {
            (Tokenizer::from_gguf(&GgufFile::open(path)?)?, GenerationConfig::default())
        };
        for id in model.config.eos_token_ids.iter().copied().chain(tokenizer.eos_token_id()) {
            if !generation.eos_token_id.contains(&id) {
                generation.eos_token_id.push(id);
            }
        }
        if generation.pad_token_id.is_none() {
            generation.pad_token_id = model.config.pad_token_id.or(tokenizer.pad_token_id());
        }
        Ok(Self { model, tokenizer, generation })
    }
}
