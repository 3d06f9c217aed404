//! Running the cases under each setting of the defences and counting the attacks that worked.
//!
//! The model is a closure, `(case, defences) -> answer`, so the runner and the rates are tested
//! without one; [`super::prompt::case_messages`] gives what a real model should be shown.

use super::canary::canary_hit;
use super::case::{Case, Channel};
use crate::answer::defences::Defences;
use crate::error::Result;

/// A named setting of the defences (a column of the report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The report's name for it (`undefended`, `defended`...).
    pub name: String,
    /// The defences it switches on.
    pub defences: Defences,
}

impl Setting {
    /// A setting.
    pub fn new(name: impl Into<String>, defences: Defences) -> Self {
        Self { name: name.into(), defences }
    }

    /// `undefended` ([`Defences::NONE`]) and `defended` ([`Defences::ALL`]).
    pub fn undefended_and_defended() -> Vec<Setting> {
        vec![Self::new("undefended", Defences::NONE), Self::new("defended", Defences::ALL)]
    }

    /// Undefended, each defence alone, and both: which one does the work.
    pub fn ablation() -> Vec<Setting> {
        vec![
            Self::new("undefended", Defences::NONE),
            Self::new("fences only", Defences { fence_sources: true, instruction_hierarchy: false }),
            Self::new("hierarchy only", Defences { fence_sources: false, instruction_hierarchy: true }),
            Self::new("defended", Defences::ALL),
        ]
    }
}

/// One case's answer under one setting.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The model's answer.
    pub answer: String,
    /// Whether the canary is in it: the attack worked.
    pub hit: bool,
}

/// A case and its attempt under each setting, in the run's setting order.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    /// The case.
    pub case: Case,
    /// One per setting.
    pub attempts: Vec<Attempt>,
}

/// Attacks that worked out of those tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rate {
    /// Attacks whose canary appeared.
    pub hits: usize,
    /// Attacks tried.
    pub cases: usize,
}

impl Rate {
    /// `hits / cases` (attack success rate); `None` with no cases.
    pub fn fraction(self) -> Option<f64> {
        (self.cases > 0).then(|| self.hits as f64 / self.cases as f64)
    }
}

/// Every case under every setting.
#[derive(Debug, Clone, PartialEq)]
pub struct RedTeamRun {
    /// The settings, in column order.
    pub settings: Vec<Setting>,
    /// The cases, in file order.
    pub results: Vec<CaseResult>,
}

impl RedTeamRun {
    /// The attack success rate under setting `setting` (an index into [`Self::settings`]) over
    /// the cases of `channel`, or over all cases with `None`.
    ///
    /// # Panics
    /// When `setting` is not an index of [`Self::settings`] (as every result has one attempt
    /// per setting).
    pub fn rate(&self, setting: usize, channel: Option<Channel>) -> Rate {
        let results = self.results.iter().filter(|r| channel.is_none_or(|c| r.case.channel == c));
        results.fold(Rate::default(), |acc, r| Rate { hits: acc.hits + usize::from(r.attempts[setting].hit), cases: acc.cases + 1 })
    }

    /// Ids of the cases that hit under setting `a` but not under `b` (what `b` stopped, when
    /// `a` is the weaker setting).
    ///
    /// # Panics
    /// When `a` or `b` is not an index of [`Self::settings`].
    pub fn hit_in_a_not_b(&self, a: usize, b: usize) -> Vec<&str> {
        self.results.iter().filter(|r| r.attempts[a].hit && !r.attempts[b].hit).map(|r| r.case.id.as_str()).collect()
    }
}

/// Answers every case under every setting with `answer` and checks each answer for the case's
/// canary. The first error of `answer` ends the run.
pub fn run_red_team(cases: &[Case], settings: &[Setting], mut answer: impl FnMut(&Case, Defences) -> Result<String>) -> Result<RedTeamRun> {
    let mut results = Vec::with_capacity(cases.len());
    for case in cases {
        let mut attempts = Vec::with_capacity(settings.len());
        for setting in settings {
            let text = answer(case, setting.defences)?;
            let hit = canary_hit(&text, &case.canary);
            tracing::debug!(case = %case.id, setting = %setting.name, hit, "red-team attempt");
            attempts.push(Attempt { answer: text, hit });
        }
        results.push(CaseResult { case: case.clone(), attempts });
    }
    Ok(RedTeamRun { settings: settings.to_vec(), results })
}
