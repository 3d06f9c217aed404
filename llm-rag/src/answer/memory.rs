//! Conversation memory for the answer step: what earlier exchanges to show the model.
//!
//! - [`WindowMemory`]: the last `k` exchanges (LangChain's `ConversationBufferWindowMemory`).
//! - [`SummaryMemory`]: recent exchanges verbatim while they fit a token budget; older ones are
//!   folded by an [`Llm`] into a running summary (LangChain's
//!   `ConversationSummaryBufferMemory`, with its summarisation prompt).
//!
//! Both give [`Memory::messages`]: an optional system message with the summary, then the kept
//! exchanges as alternating `user`/`assistant` messages, oldest first. Pass them to
//! [`crate::answer::pipeline::answer_with_history`] and [`Memory::save`] the question and the answer
//! after each turn.

use std::collections::VecDeque;

use llm_core::chat::Message;

use crate::error::Result;
use crate::retrieve::query::Llm;
use crate::split::Length;

/// One question and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The user's message.
    pub user: String,
    /// The assistant's reply.
    pub assistant: String,
}

impl Exchange {
    fn messages(&self) -> [Message; 2] {
        [Message::new("user", self.user.as_str()), Message::new("assistant", self.assistant.as_str())]
    }
}

/// What the answer step needs from a conversation memory.
pub trait Memory {
    /// Records one exchange (may call a model, hence the `Result`).
    fn save(&mut self, user: &str, assistant: &str) -> Result<()>;
    /// The messages to put between the system prompt and the new question.
    fn messages(&self) -> Vec<Message>;
    /// Forgets everything.
    fn clear(&mut self);
}

/// The last `k` exchanges; `k = 0` remembers nothing.
#[derive(Debug, Clone, Default)]
pub struct WindowMemory {
    k: usize,
    exchanges: VecDeque<Exchange>,
}

impl WindowMemory {
    /// Keeps the last `k` exchanges.
    pub fn new(k: usize) -> Self {
        Self { k, exchanges: VecDeque::with_capacity(k + 1) }
    }

    /// The kept exchanges, oldest first.
    pub fn exchanges(&self) -> impl Iterator<Item = &Exchange> {
        self.exchanges.iter()
    }
}

impl Memory for WindowMemory {
    fn save(&mut self, user: &str, assistant: &str) -> Result<()> {
        self.exchanges.push_back(Exchange { user: user.into(), assistant: assistant.into() });
        // LangChain keeps everything and shows the last k; nothing older is ever shown, so drop it.
        while self.exchanges.len() > self.k {
            self.exchanges.pop_front();
        }
        Ok(())
    }

    fn messages(&self) -> Vec<Message> {
        self.exchanges.iter().flat_map(Exchange::messages).collect()
    }

    fn clear(&mut self) {
        self.exchanges.clear();
    }
}

/// Label of the summary's system message.
pub const SUMMARY_LABEL: &str = "Summary of the conversation so far:";

/// LangChain's `SUMMARY_PROMPT` (progressive summarisation, with its worked example).
pub fn summary_prompt(summary: &str, new_lines: &str) -> String {
    format!(
        "Progressively summarize the lines of conversation provided, adding onto the previous summary returning a new summary.

EXAMPLE
Current summary:
The human asks what the AI thinks of artificial intelligence. The AI thinks artificial intelligence is a force for good.

New lines of conversation:
Human: Why do you think artificial intelligence is a force for good?
AI: Because artificial intelligence will help humans reach their full potential.

New summary:
The human asks what the AI thinks of artificial intelligence. The AI thinks artificial intelligence is a force for good because it will help humans reach their full potential.
END OF EXAMPLE

Current summary:
{summary}

New lines of conversation:
{new_lines}

New summary:"
    )
}

/// Exchanges as LangChain's `get_buffer_string` writes them: `Human: ...` and `AI: ...` lines.
pub fn buffer_string(exchanges: &[Exchange]) -> String {
    exchanges.iter().map(|e| format!("Human: {}\nAI: {}", e.user, e.assistant)).collect::<Vec<_>>().join("\n")
}

/// Recent exchanges verbatim while their [`buffer_string`] fits `max_tokens` (measured by
/// `length`); after each save the oldest exchanges that do not fit are summarised by `llm`
/// into the running summary, in one call.
///
/// LangChain prunes single messages; this prunes whole exchanges, so the kept turns always
/// start with a user message, which strict chat templates (Mistral, Gemma) require. The budget
/// covers the kept exchanges, not the summary (as in LangChain).
pub struct SummaryMemory<'a> {
    llm: &'a dyn Llm,
    length: Length<'a>,
    max_tokens: usize,
    summary: String,
    exchanges: Vec<Exchange>,
}

impl<'a> SummaryMemory<'a> {
    /// Summarises with `llm` once the kept exchanges exceed `max_tokens` `length` units
    /// (LangChain's default `max_token_limit` is 2000 tokens).
    pub fn new(llm: &'a dyn Llm, length: Length<'a>, max_tokens: usize) -> Self {
        Self { llm, length, max_tokens, summary: String::new(), exchanges: vec![] }
    }

    /// The running summary (empty until the budget was first exceeded).
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// The exchanges kept verbatim, oldest first.
    pub fn exchanges(&self) -> &[Exchange] {
        &self.exchanges
    }

    /// How many of the oldest exchanges must go for the rest to fit the budget.
    fn overflow(&self) -> usize {
        (0..=self.exchanges.len())
            .find(|&n| self.length.of(&buffer_string(&self.exchanges[n..])) <= self.max_tokens)
            .unwrap_or(self.exchanges.len())
    }
}

impl Memory for SummaryMemory<'_> {
    /// On a model error the exchange is kept and the error returned; the next save prunes.
    fn save(&mut self, user: &str, assistant: &str) -> Result<()> {
        self.exchanges.push(Exchange { user: user.into(), assistant: assistant.into() });
        let n = self.overflow();
        if n == 0 {
            return Ok(());
        }
        let reply = self.llm.complete(&summary_prompt(&self.summary, &buffer_string(&self.exchanges[..n])))?;
        self.summary = reply.trim().to_string();
        self.exchanges.drain(..n);
        Ok(())
    }

    fn messages(&self) -> Vec<Message> {
        let summary = (!self.summary.is_empty()).then(|| Message::new("system", format!("{SUMMARY_LABEL}\n{}", self.summary)));
        summary.into_iter().chain(self.exchanges.iter().flat_map(Exchange::messages)).collect()
    }

    fn clear(&mut self) {
        self.summary.clear();
        self.exchanges.clear();
    }
}
