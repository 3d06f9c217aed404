//! Red-teaming the answer step: prompt-injection probes (instructions planted in retrieved
//! documents, in the question, in tool results) and jailbreak prompts to the chat model, each
//! run with and without the pipeline's defences ([`crate::answer::defences`]), scored by a
//! canary, and written up as a report.
//!
//! - [`case`]: the cases and their JSON file, validated on load.
//! - [`canary`]: an attack worked when its canary is in the answer (normalised).
//! - [`prompt`]: what a case shows the model under a setting of the defences.
//! - [`run`]: every case under every setting, attack success rates per channel.
//! - [`report`]: the Markdown report and the raw answers as JSON.
//!
//! ```no_run
//! # fn main() -> llm_rag::Result<()> {
//! use llm_rag::redteam::{case_messages, load_cases, run_red_team, write_report, Setting};
//! let cases = load_cases("examples/data/redteam/injections.json".as_ref())?;
//! let run = run_red_team(&cases, &Setting::undefended_and_defended(), |case, defences| {
//!     let _messages = case_messages(case, defences);
//!     Ok("the model's answer to the messages".to_string())
//! })?;
//! write_report("benches/redteam-report.md".as_ref(), &run, "")?;
//! # Ok(()) }
//! ```

pub mod canary;
pub mod case;
pub mod prompt;
pub mod report;
pub mod run;

pub use canary::{canary_hit, normalise};
pub use case::{load_cases, parse_cases, Case, Channel, ToolTurn};
pub use prompt::{case_messages, CHAT_SYSTEM_PROMPT};
pub use report::{answers_json, markdown, write_answers, write_report};
pub use run::{run_red_team, Attempt, CaseResult, Rate, RedTeamRun, Setting};
