//! MT-Bench's judge prompts, as FastChat ships them in
//! `fastchat/llm_judge/data/judge_prompts.jsonl` (lm-sys/FastChat, Apache-2.0): the texts are
//! the benchmark's definition, so they are kept byte for byte; `render` fills a template as
//! Python's `str.format` does.

/// What the judge is asked to end its reply with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// `[[rating]]`: a score on a scale of 1 to 10, e.g. `Rating: [[5]]`.
    Rating,
    /// `[[A]]`: `[[A]]` if assistant A is better, `[[B]]` if B is, `[[C]]` for a tie.
    Pair,
}

/// One judge prompt (a line of FastChat's `judge_prompts.jsonl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JudgePrompt {
    /// FastChat's name for it (`single-v1`, `pair-v2`, ...).
    pub name: &'static str,
    /// The system message.
    pub system_prompt: &'static str,
    /// The user message, with `{question}`, `{answer}` / `{answer_a}`, `{answer_b}` and, for
    /// the reference-based prompts, `{ref_answer_1}` fields.
    pub prompt_template: &'static str,
    /// The verdict the prompt asks for.
    pub output_format: OutputFormat,
}

/// Single-answer grading of a general question (FastChat's `single-v1`).
pub const SINGLE_V1: JudgePrompt = JudgePrompt {
    name: "single-v1",
    system_prompt: "You are a helpful assistant.",
    prompt_template: "[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response provided by an AI assistant to the user question displayed below. Your evaluation should consider factors such as the helpfulness, relevance, accuracy, depth, creativity, and level of detail of the response. Begin your evaluation by providing a short explanation. Be as objective as possible. After providing your explanation, you must rate the response on a scale of 1 to 10 by strictly following this format: \"[[rating]]\", for example: \"Rating: [[5]]\".\n\n[Question]\n{question}\n\n[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]",
    output_format: OutputFormat::Rating,
};

/// Single-answer grading against a reference answer (FastChat's `single-math-v1`, which
/// MT-Bench uses for math, reasoning and coding).
pub const SINGLE_MATH_V1: JudgePrompt = JudgePrompt {
    name: "single-math-v1",
    system_prompt: "You are a helpful assistant.",
    prompt_template: "[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response provided by an AI assistant to the user question displayed below. Your evaluation should consider correctness and helpfulness. You will be given a reference answer and the assistant's answer. Begin your evaluation by comparing the assistant's answer with the reference answer. Identify and correct any mistakes. Be as objective as possible. After providing your explanation, you must rate the response on a scale of 1 to 10 by strictly following this format: \"[[rating]]\", for example: \"Rating: [[5]]\".\n\n[Question]\n{question}\n\n[The Start of Reference Answer]\n{ref_answer_1}\n[The End of Reference Answer]\n\n[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]",
    output_format: OutputFormat::Rating,
};

/// Pairwise comparison on a general question (FastChat's `pair-v2`).
pub const PAIR_V2: JudgePrompt = JudgePrompt {
    name: "pair-v2",
    system_prompt: "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the user question displayed below. You should choose the assistant that follows the user's instructions and answers the user's question better. Your evaluation should consider factors such as the helpfulness, relevance, accuracy, depth, creativity, and level of detail of their responses. Begin your evaluation by comparing the two responses and provide a short explanation. Avoid any positional biases and ensure that the order in which the responses were presented does not influence your decision. Do not allow the length of the responses to influence your evaluation. Do not favor certain names of the assistants. Be as objective as possible. After providing your explanation, output your final verdict by strictly following this format: \"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is better, and \"[[C]]\" for a tie.",
    prompt_template: "[User Question]\n{question}\n\n[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]",
    output_format: OutputFormat::Pair,
};

/// Pairwise comparison against a reference answer (FastChat's `pair-math-v1`).
pub const PAIR_MATH_V1: JudgePrompt = JudgePrompt {
    name: "pair-math-v1",
    system_prompt: "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the user question displayed below. Your evaluation should consider correctness and helpfulness. You will be given a reference answer, assistant A's answer, and assistant B's answer. Your job is to evaluate which assistant's answer is better. Begin your evaluation by comparing both assistants' answers with the reference answer. Identify and correct any mistakes. Avoid any positional biases and ensure that the order in which the responses were presented does not influence your decision. Do not allow the length of the responses to influence your evaluation. Do not favor certain names of the assistants. Be as objective as possible. After providing your explanation, output your final verdict by strictly following this format: \"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is better, and \"[[C]]\" for a tie.",
    prompt_template: "[User Question]\n{question}\n\n[The Start of Reference Answer]\n{ref_answer_1}\n[The End of Reference Answer]\n\n[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]",
    output_format: OutputFormat::Pair,
};

impl JudgePrompt {
    /// The prompt FastChat picks: the reference-based (`-math-`) one when a reference answer is
    /// given, as it does for the categories that need one.
    pub fn for_format(output_format: OutputFormat, with_reference: bool) -> Self {
        match (output_format, with_reference) {
            (OutputFormat::Rating, false) => SINGLE_V1,
            (OutputFormat::Rating, true) => SINGLE_MATH_V1,
            (OutputFormat::Pair, false) => PAIR_V2,
            (OutputFormat::Pair, true) => PAIR_MATH_V1,
        }
    }

    /// The user message: the template with `fields` (`(name, value)`) filled in as Python's
    /// `str.format` fills it (one pass, so a value that contains `{answer}` stays as written;
    /// `{{` and `}}` are literal braces).
    ///
    /// # Panics
    /// When the template names a field missing from `fields` (Python's `KeyError`): the
    /// templates are this module's constants, so that is a programming error.
    pub fn render(&self, fields: &[(&str, &str)]) -> String {
        let t = self.prompt_template;
        let mut out = String::with_capacity(t.len() + fields.iter().map(|(_, v)| v.len()).sum::<usize>());
        let mut rest = t;
        while let Some(i) = rest.find(['{', '}']) {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                out.push_str(&tail[..1]);
                rest = &tail[2..];
                continue;
            }
            let end = tail.find('}').unwrap_or_else(|| panic!("{}: unclosed `{{` in the template", self.name));
            let name = &tail[1..end];
            let value = fields
                .iter()
                .find(|(k, _)| *k == name)
                .unwrap_or_else(|| panic!("{}: no value for the template field `{name}`", self.name));
            out.push_str(value.1);
            rest = &tail[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FastChat's `judge_prompts.jsonl` lines for the four prompts, as JSON, compared field
    /// by field: the constants must be the benchmark's texts, byte for byte.
    const FASTCHAT_JSONL: &str = r#"{"name": "pair-v2", "type": "pairwise", "system_prompt": "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the user question displayed below. You should choose the assistant that follows the user's instructions and answers the user's question better. Your evaluation should consider factors such as the helpfulness, relevance, accuracy, depth, creativity, and level of detail of their responses. Begin your evaluation by comparing the two responses and provide a short explanation. Avoid any positional biases and ensure that the order in which the responses were presented does not influence your decision. Do not allow the length of the responses to influence your evaluation. Do not favor certain names of the assistants. Be as objective as possible. After providing your explanation, output your final verdict by strictly following this format: \"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is better, and \"[[C]]\" for a tie.", "prompt_template": "[User Question]\n{question}\n\n[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]", "description": "Prompt for general questions", "category": "general", "output_format": "[[A]]"}
{"name": "pair-math-v1", "type": "pairwise", "system_prompt": "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the user question displayed below. Your evaluation should consider correctness and helpfulness. You will be given a reference answer, assistant A's answer, and assistant B's answer. Your job is to evaluate which assistant's answer is better. Begin your evaluation by comparing both assistants' answers with the reference answer. Identify and correct any mistakes. Avoid any positional biases and ensure that the order in which the responses were presented does not influence your decision. Do not allow the length of the responses to influence your evaluation. Do not favor certain names of the assistants. Be as objective as possible. After providing your explanation, output your final verdict by strictly following this format: \"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is better, and \"[[C]]\" for a tie.", "prompt_template": "[User Question]\n{question}\n\n[The Start of Reference Answer]\n{ref_answer_1}\n[The End of Reference Answer]\n\n[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]", "description": "Prompt for math questions", "category": "math", "output_format": "[[A]]"}
{"name": "single-v1", "type": "single", "system_prompt": "You are a helpful assistant.", "prompt_template": "[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response provided by an AI assistant to the user question displayed below. Your evaluation should consider factors such as the helpfulness, relevance, accuracy, depth, creativity, and level of detail of the response. Begin your evaluation by providing a short explanation. Be as objective as possible. After providing your explanation, you must rate the response on a scale of 1 to 10 by strictly following this format: \"[[rating]]\", for example: \"Rating: [[5]]\".\n\n[Question]\n{question}\n\n[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]", "description": "Prompt for general questions", "category": "general", "output_format": "[[rating]]"}
{"name": "single-math-v1", "type": "single", "system_prompt": "You are a helpful assistant.", "prompt_template": "[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response provided by an AI assistant to the user question displayed below. Your evaluation should consider correctness and helpfulness. You will be given a reference answer and the assistant's answer. Begin your evaluation by comparing the assistant's answer with the reference answer. Identify and correct any mistakes. Be as objective as possible. After providing your explanation, you must rate the response on a scale of 1 to 10 by strictly following this format: \"[[rating]]\", for example: \"Rating: [[5]]\".\n\n[Question]\n{question}\n\n[The Start of Reference Answer]\n{ref_answer_1}\n[The End of Reference Answer]\n\n[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]", "description": "Prompt for general questions", "category": "math", "output_format": "[[rating]]"}"#;

    #[test]
    fn prompts_equal_fastchat_judge_prompts_jsonl() {
        for line in FASTCHAT_JSONL.lines() {
            let want: serde_json::Value = serde_json::from_str(line).unwrap();
            let ours = [SINGLE_V1, SINGLE_MATH_V1, PAIR_V2, PAIR_MATH_V1]
                .into_iter()
                .find(|p| p.name == want["name"])
                .unwrap_or_else(|| panic!("no constant for {}", want["name"]));
            assert_eq!(ours.system_prompt, want["system_prompt"], "{} system_prompt", ours.name);
            assert_eq!(ours.prompt_template, want["prompt_template"], "{} prompt_template", ours.name);
            let format = match ours.output_format {
                OutputFormat::Rating => "[[rating]]",
                OutputFormat::Pair => "[[A]]",
            };
            assert_eq!(format, want["output_format"], "{} output_format", ours.name);
        }
    }

    #[test]
    fn single_v1_renders_as_python_str_format() {
        // Python: judge_prompts["single-v1"]["prompt_template"].format(question=..., answer=...)
        let got = SINGLE_V1.render(&[("question", "What is 2+2?"), ("answer", "4")]);
        let want = "[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response provided by an AI assistant to the user question displayed below. Your evaluation should consider factors such as the helpfulness, relevance, accuracy, depth, creativity, and level of detail of the response. Begin your evaluation by providing a short explanation. Be as objective as possible. After providing your explanation, you must rate the response on a scale of 1 to 10 by strictly following this format: \"[[rating]]\", for example: \"Rating: [[5]]\".\n\n[Question]\nWhat is 2+2?\n\n[The Start of Assistant's Answer]\n4\n[The End of Assistant's Answer]";
        assert_eq!(got, want);
    }

    #[test]
    fn pair_v2_renders_as_python_str_format() {
        let got = PAIR_V2.render(&[("question", "Q?"), ("answer_a", "first"), ("answer_b", "second")]);
        let want = "[User Question]\nQ?\n\n[The Start of Assistant A's Answer]\nfirst\n[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\nsecond\n[The End of Assistant B's Answer]";
        assert_eq!(got, want);
    }

    #[test]
    fn rendering_is_one_pass_so_values_with_braces_stay_as_written() {
        // str.format does not re-read substituted text: "{answer}" inside the question stays.
        let got = SINGLE_MATH_V1.render(&[("question", "say {answer} {{x}}"), ("answer", "A"), ("ref_answer_1", "R")]);
        assert!(got.contains("[Question]\nsay {answer} {{x}}\n\n[The Start of Reference Answer]\nR\n"), "{got}");
        assert!(got.ends_with("[The Start of Assistant's Answer]\nA\n[The End of Assistant's Answer]"));
    }

    #[test]
    fn reference_picks_the_math_prompts() {
        assert_eq!(JudgePrompt::for_format(OutputFormat::Rating, false).name, "single-v1");
        assert_eq!(JudgePrompt::for_format(OutputFormat::Rating, true).name, "single-math-v1");
        assert_eq!(JudgePrompt::for_format(OutputFormat::Pair, false).name, "pair-v2");
        assert_eq!(JudgePrompt::for_format(OutputFormat::Pair, true).name, "pair-math-v1");
    }

    #[test]
    #[should_panic(expected = "no value for the template field `answer`")]
    fn a_missing_field_is_a_programming_error() {
        SINGLE_V1.render(&[("question", "Q")]);
    }
}
