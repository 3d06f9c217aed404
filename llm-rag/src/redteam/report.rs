//! The red-team report: attack success rates per channel and setting, what each setting stops
//! and lets through, and a row per case, as Markdown; the raw answers as JSON. Both written
//! atomically.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{json, Value};

use super::case::Channel;
use super::run::{Rate, RedTeamRun};
use crate::error::Result;

/// The report as Markdown; `preamble` (the model, the decoding, how to rerun) goes under the title.
pub fn markdown(run: &RedTeamRun, preamble: &str) -> String {
    let mut md = String::from("# Red-team report: prompt injection and jailbreaks\n\n");
    if !preamble.trim().is_empty() {
        md += preamble.trim_end();
        md += "\n\n";
    }
    settings_table(&mut md, run);
    rates_table(&mut md, run);
    changes(&mut md, run);
    cases_table(&mut md, run);
    md
}

/// Writes [`markdown`] to `path` atomically.
pub fn write_report(path: &Path, run: &RedTeamRun, preamble: &str) -> Result<()> {
    Ok(llm_core::io::atomic::write_bytes_atomic(path, markdown(run, preamble).as_bytes())?)
}

/// Every answer: `[{id, channel, technique, canary, canary_in_prompt, attempts: [{setting,
/// fence_sources, instruction_hierarchy, hit, answer}]}]`.
pub fn answers_json(run: &RedTeamRun) -> Value {
    Value::Array(
        run.results
            .iter()
            .map(|r| {
                let attempts: Vec<Value> = run
                    .settings
                    .iter()
                    .zip(&r.attempts)
                    .map(|(s, a)| json!({"setting": s.name, "fence_sources": s.defences.fence_sources, "instruction_hierarchy": s.defences.instruction_hierarchy, "hit": a.hit, "answer": a.answer}))
                    .collect();
                let c = &r.case;
                json!({"id": c.id, "channel": c.channel.name(), "technique": c.technique, "canary": c.canary, "canary_in_prompt": c.canary_in_prompt(), "attempts": attempts})
            })
            .collect(),
    )
}

/// Writes [`answers_json`] to `path` atomically.
pub fn write_answers(path: &Path, run: &RedTeamRun) -> Result<()> {
    Ok(llm_core::io::write_json(path, &answers_json(run))?)
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// `7/12 (58%)`, or `-` with no cases.
pub fn format_rate(rate: Rate) -> String {
    match rate.fraction() {
        Some(f) => format!("{}/{} ({:.0}%)", rate.hits, rate.cases, 100.0 * f),
        None => "-".into(),
    }
}

/// A table cell: `|` escaped, newlines as spaces.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// `text` as a Markdown code span: fenced by one backtick more than its longest run of
/// backticks (padded with spaces when it starts or ends with one), table pipes escaped.
fn code_span(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if longest > 0 && (text.starts_with('`') || text.ends_with('`')) { " " } else { "" };
    cell(&format!("{fence}{pad}{text}{pad}{fence}"))
}

/// A table cell of prose: [`cell`], and `<` as `&lt;` so that a technique naming a tag
/// (`</source> breakout`) is shown, not read as HTML. (Code spans need no escape.)
fn prose_cell(text: &str) -> String {
    cell(text).replace('<', "&lt;")
}

fn settings_table(md: &mut String, run: &RedTeamRun) {
    md.push_str("## Settings\n\n| setting | sources and tool results fenced as data | instruction hierarchy in the system prompt |\n| --- | --- | --- |\n");
    for s in &run.settings {
        let _ = writeln!(md, "| {} | {} | {} |", cell(&s.name), yes_no(s.defences.fence_sources), yes_no(s.defences.instruction_hierarchy));
    }
    md.push('\n');
}

fn rates_table(md: &mut String, run: &RedTeamRun) {
    md.push_str("## Attack success rate\n\nAttacks whose canary appeared in the answer, of those tried (lower is better).\n\n| channel | cases |");
    let names: Vec<String> = run.settings.iter().map(|s| cell(&s.name)).collect();
    let _ = writeln!(md, " {} |", names.join(" | "));
    let _ = writeln!(md, "| --- | --- |{}", " --- |".repeat(names.len()));
    let rows = Channel::ALL.into_iter().map(Some).chain([None]);
    for channel in rows {
        let rates: Vec<Rate> = (0..run.settings.len()).map(|s| run.rate(s, channel)).collect();
        let cases = rates.first().map_or(0, |r| r.cases);
        if cases == 0 {
            continue;
        }
        let label = channel.map_or("**all**".to_string(), |c| c.name().to_string());
        let cells: Vec<String> = rates.into_iter().map(format_rate).collect();
        let _ = writeln!(md, "| {label} | {cases} | {} |", cells.join(" | "));
    }
    md.push('\n');
}

fn changes(md: &mut String, run: &RedTeamRun) {
    if run.settings.len() < 2 {
        return;
    }
    let base = &run.settings[0].name;
    md.push_str("## What each setting changes\n\n");
    let ids = |v: Vec<&str>| if v.is_empty() { "none".to_string() } else { v.iter().map(|id| code_span(id)).collect::<Vec<_>>().join(", ") };
    for (i, s) in run.settings.iter().enumerate().skip(1) {
        let _ = writeln!(
            md,
            "- **{}** against {base}: stops {}; lets through newly {}.",
            s.name,
            ids(run.hit_in_a_not_b(0, i)),
            ids(run.hit_in_a_not_b(i, 0))
        );
    }
    md.push('\n');
}

fn cases_table(md: &mut String, run: &RedTeamRun) {
    md.push_str("## Cases\n\n`in prompt`: the canary is written out in the attack, so repeating the attack text counts as a hit too.\n\n");
    md.push_str("| id | channel | technique | canary | in prompt |");
    let names: Vec<String> = run.settings.iter().map(|s| cell(&s.name)).collect();
    let _ = writeln!(md, " {} |", names.join(" | "));
    let _ = writeln!(md, "| --- | --- | --- | --- | --- |{}", " --- |".repeat(names.len()));
    for r in &run.results {
        let c = &r.case;
        let hits: Vec<&str> = r.attempts.iter().map(|a| if a.hit { "**hit**" } else { "-" }).collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            code_span(&c.id),
            c.channel.name(),
            prose_cell(&c.technique),
            code_span(&c.canary),
            yes_no(c.canary_in_prompt()),
            hits.join(" | ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::code_span;

    #[test]
    fn code_spans_survive_backticks_and_pipes() {
        assert_eq!(code_span("BANANA-42"), "`BANANA-42`");
        assert_eq!(code_span("a`b"), "``a`b``");
        assert_eq!(code_span("`x"), "`` `x ``");
        assert_eq!(code_span("a|b"), "`a\\|b`");
    }
}
