//! Conversation memory: the window keeps the last k exchanges; the summary memory folds the
//! oldest exchanges into an LLM-written summary exactly when the kept ones exceed the budget;
//! the pipeline places either before the question.

use std::cell::RefCell;

use llm_rag::RagError;
use llm_rag::llm_core::chat::Message;
use llm_rag::memory::{Memory, SummaryMemory, WindowMemory, SUMMARY_LABEL};
use llm_rag::pipeline::{build_messages, build_messages_with_history, SYSTEM_PROMPT};
use llm_rag::query::FnLlm;
use llm_rag::split::Length;
use llm_rag::store::Hit;

fn contents(messages: &[Message]) -> Vec<(&str, &str)> {
    messages.iter().map(|m| (m.role.as_str(), m.content.as_str())).collect()
}

#[test]
fn window_memory_keeps_the_last_k_exchanges() {
    let mut memory = WindowMemory::new(2);
    for i in 1..=3 {
        memory.save(&format!("q{i}"), &format!("a{i}")).unwrap();
    }
    assert_eq!(contents(&memory.messages()), [("user", "q2"), ("assistant", "a2"), ("user", "q3"), ("assistant", "a3")]);
    memory.clear();
    assert!(memory.messages().is_empty());

    let mut none = WindowMemory::new(0);
    none.save("q", "a").unwrap();
    assert!(none.messages().is_empty(), "k = 0 remembers nothing");
}

#[test]
fn summary_memory_folds_the_oldest_exchanges_once_over_budget() {
    let prompts = RefCell::new(vec![]);
    let llm = FnLlm(|p: &str| {
        prompts.borrow_mut().push(p.to_string());
        Ok(format!("  summary {}  ", prompts.borrow().len()))
    });
    // Budget 40 characters of "Human: ..\nAI: .." text.
    let mut memory = SummaryMemory::new(&llm, Length::Chars, 40);

    // "Human: hi\nAI: hello" is 19 characters: fits, no call.
    memory.save("hi", "hello").unwrap();
    assert!(prompts.borrow().is_empty());
    assert_eq!(contents(&memory.messages()), [("user", "hi"), ("assistant", "hello")]);

    // Both exchanges are 19 + 1 + 28 = 48 > 40; without the first, 28 fits: one exchange folded.
    memory.save("how are you?", "fine").unwrap();
    assert_eq!(prompts.borrow().len(), 1);
    assert!(prompts.borrow()[0].starts_with("Progressively summarize the lines of conversation provided"));
    assert!(prompts.borrow()[0].ends_with("Current summary:\n\n\nNew lines of conversation:\nHuman: hi\nAI: hello\n\nNew summary:"));
    assert_eq!(memory.summary(), "summary 1", "the reply, trimmed");
    let summary = format!("{SUMMARY_LABEL}\nsummary 1");
    assert_eq!(
        contents(&memory.messages()),
        [("system", summary.as_str()), ("user", "how are you?"), ("assistant", "fine")]
    );

    // 28 + 1 + 29 = 58 > 40; the second exchange is folded onto the running summary.
    memory.save("and you?", "also fine").unwrap();
    assert_eq!(prompts.borrow().len(), 2);
    assert!(prompts.borrow()[1].ends_with("Current summary:\nsummary 1\n\nNew lines of conversation:\nHuman: how are you?\nAI: fine\n\nNew summary:"));
    assert_eq!(memory.summary(), "summary 2");
    assert_eq!(memory.exchanges().len(), 1);
}

#[test]
fn an_exchange_over_the_whole_budget_is_folded_at_once() {
    let llm = FnLlm(|p: &str| Ok(if p.contains("Human: a long question") { "S".to_string() } else { "?".to_string() }));
    let mut memory = SummaryMemory::new(&llm, Length::Chars, 10);
    memory.save("a long question", "a long answer").unwrap();
    assert_eq!(contents(&memory.messages()), [("system", format!("{SUMMARY_LABEL}\nS").as_str())]);
}

#[test]
fn a_failed_summary_keeps_the_exchange() {
    let llm = FnLlm(|_: &str| Err(RagError::Config { field: "llm".into(), message: "offline".into() }));
    let mut memory = SummaryMemory::new(&llm, Length::Chars, 10);
    assert!(memory.save("a long question", "a long answer").is_err());
    assert_eq!(memory.exchanges().len(), 1);
    assert_eq!(memory.summary(), "");
}

#[test]
fn pipeline_puts_history_between_the_rules_and_the_question() {
    let llm = FnLlm(|_: &str| Ok("They said hello.".to_string()));
    let mut memory = SummaryMemory::new(&llm, Length::Chars, 40);
    memory.save("hi", "hello").unwrap();
    memory.save("how are you?", "fine").unwrap();
    let hit = Hit { id: "d".into(), score: 1.0, text: "Paris is in France.".into(), metadata: Default::default() };

    let messages = build_messages_with_history("Where is Paris?", std::slice::from_ref(&hit), &memory.messages());
    let roles: Vec<&str> = messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"], "one system message, then alternating turns");
    assert_eq!(messages[0].content, format!("{SYSTEM_PROMPT}\n\n{SUMMARY_LABEL}\nThey said hello."));
    assert_eq!((messages[1].content.as_str(), messages[2].content.as_str()), ("how are you?", "fine"));
    assert!(messages[3].content.contains("Paris is in France.") && messages[3].content.ends_with("Question: Where is Paris?"));

    // No history: exactly the messages the pipeline built before memory existed.
    assert_eq!(build_messages("Where is Paris?", std::slice::from_ref(&hit)), build_messages_with_history("Where is Paris?", std::slice::from_ref(&hit), &[]));

    let mut window = WindowMemory::new(1);
    window.save("hi", "hello").unwrap();
    let messages = build_messages_with_history("q", &[], &window.messages());
    assert_eq!(contents(&messages)[..3], [("system", SYSTEM_PROMPT), ("user", "hi"), ("assistant", "hello")]);
}
