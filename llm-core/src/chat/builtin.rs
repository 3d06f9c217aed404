//! Templates for checkpoints that ship none, written as their model cards specify.

use super::ChatTemplate;
use crate::error::Result;

/// A built-in chat format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinTemplate {
    /// `<|im_start|>role\ncontent<|im_end|>\n` (Qwen, SmolLM, many fine-tunes).
    ChatMl,
    /// Llama 3: `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`.
    Llama3,
    /// Mistral instruct: `<s>[INST] user [/INST] assistant</s>`.
    MistralInstruct,
    /// Alpaca: `### Instruction:` / `### Response:`.
    Alpaca,
    /// Zephyr: `<|user|>\ncontent</s>\n`.
    Zephyr,
}

impl BuiltinTemplate {
    /// Every built-in template.
    pub const ALL: [BuiltinTemplate; 5] = [Self::ChatMl, Self::Llama3, Self::MistralInstruct, Self::Alpaca, Self::Zephyr];

    /// The name used on command lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::ChatMl => "chatml",
            Self::Llama3 => "llama3",
            Self::MistralInstruct => "mistral",
            Self::Alpaca => "alpaca",
            Self::Zephyr => "zephyr",
        }
    }

    /// Looks a template up by [`Self::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The Jinja source.
    pub fn source(self) -> &'static str {
        match self {
            Self::ChatMl => concat!(
                "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}",
                "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
            ),
            Self::Llama3 => concat!(
                "{{ bos_token }}{% for message in messages %}",
                "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}",
                "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
            ),
            Self::MistralInstruct => concat!(
                "{{ bos_token }}{% for message in messages %}",
                "{% if message['role'] == 'system' %}{{ raise_exception('Mistral instruct has no system role') }}",
                "{% elif (message['role'] == 'user') != (loop.index0 % 2 == 0) %}",
                "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}",
                "{% elif message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}",
                "{% else %}{{ ' ' + message['content'] + eos_token }}{% endif %}{% endfor %}"
            ),
            Self::Alpaca => concat!(
                "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}",
                "{% elif message['role'] == 'user' %}{{ '### Instruction:\n' + message['content'] + '\n\n' }}",
                "{% else %}{{ '### Response:\n' + message['content'] + eos_token + '\n\n' }}{% endif %}{% endfor %}",
                "{% if add_generation_prompt %}{{ '### Response:\n' }}{% endif %}"
            ),
            Self::Zephyr => concat!(
                "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}",
                "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
            ),
        }
    }

    /// Compiles the template.
    pub fn compile(self) -> Result<ChatTemplate> {
        ChatTemplate::new(format!("builtin:{}", self.name()), self.source())
    }
}
