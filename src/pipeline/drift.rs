//! The writer's side of the run profile: batch profiles merged in input order
//! into the run's and the current part's, and each part held to the baseline
//! when it ends, before the destination commits it (`--on-drift fail`: never;
//! `warn`: committed with the breach in its metadata).

use std::sync::Arc;

use serde::Serialize;

use super::{Destination, PipelineError};
use crate::profile::drift::{DriftGuard, Finding, OnDrift};
use crate::profile::{Profile, ProfilePlan, RunProfile};

/// What the comparisons with the baseline found, over the parts checked.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Checked {
    /// Parts (a single output: the output) compared with the baseline.
    pub parts_checked: usize,
    /// Figures over their thresholds, worst first within each part.
    pub findings: Vec<Finding>,
    /// Checks not made, and why.
    pub notes: Vec<String>,
}

/// The run's profile and the current part's, with the baseline they are held to.
#[derive(Default)]
pub struct Profiles {
    plan: Arc<ProfilePlan>,
    guard: Option<Arc<DriftGuard>>,
    run: Option<RunProfile>,
    part: Option<(usize, RunProfile)>,
    checked: Checked,
}

impl Profiles {
    pub fn new(plan: Arc<ProfilePlan>, guard: Option<Arc<DriftGuard>>) -> Profiles {
        Profiles {
            run: Some(plan.empty()),
            plan,
            guard,
            part: None,
            checked: Checked::default(),
        }
    }

    /// A batch of `part` is about to be written: the part before it, if it ended,
    /// is checked first. An error when it breached under `--on-drift fail`.
    pub fn begin_part(
        &mut self,
        part: usize,
        destination: &mut dyn Destination,
    ) -> Option<PipelineError> {
        if self.part.as_ref().is_some_and(|(p, _)| *p == part) {
            return None;
        }
        let breach = self.end_part(destination);
        self.part = Some((part, self.plan.empty()));
        breach
    }

    /// Adds the profile of a batch written to the current part.
    pub fn add(&mut self, batch: &RunProfile) {
        if let Some((_, p)) = &mut self.part {
            p.merge(batch, &self.plan);
        }
    }

    /// The current part is complete: adds it to the run's profile, and compares
    /// it with the baseline.
    pub fn end_part(&mut self, destination: &mut dyn Destination) -> Option<PipelineError> {
        let (part, profile) = self.part.take()?;
        if let Some(run) = &mut self.run {
            run.merge(&profile, &self.plan);
        }
        let guard = self.guard.as_ref()?;
        let name = destination.part_name(part);
        let found = guard.compare(&self.plan, &profile, name.as_deref());
        self.checked.parts_checked += 1;
        self.checked.notes.extend(found.notes);
        if found.findings.is_empty() {
            return None;
        }
        // In text, a breach that fails the run is in the error and the summary.
        for f in &found.findings {
            let text = match (crate::sys::log::is_json(), guard.on_drift) {
                (false, OnDrift::Fail) => String::new(),
                _ => format!("batchinfer: drift: {}\n", f.line()),
            };
            crate::sys::log::event("warn", "drift", f, &text);
        }
        let lines: Vec<String> = found.findings.iter().map(Finding::line).collect();
        self.checked.findings.extend(found.findings.iter().cloned());
        match guard.on_drift {
            OnDrift::Warn => {
                let json = serde_json::to_string(&found.findings).unwrap_or_default();
                destination.annotate(part, "batchinfer.drift", &json);
                None
            }
            OnDrift::Fail => {
                let what = match &name {
                    Some(n) => format!("part {n}"),
                    None => "the output".to_string(),
                };
                let shown = lines.len().min(3);
                let more = match lines.len() - shown {
                    0 => String::new(),
                    n => format!("; and {n} more in the summary"),
                };
                Some(PipelineError::Drift(format!(
                    "the rows drifted from the baseline {} (--on-drift fail: {what} was not committed): {}{more}. Check the upstream data; pass --on-drift warn to commit and record it, or --max-drift to change a threshold",
                    guard.path,
                    lines[..shown].join("; ")
                )))
            }
        }
    }

    /// The profile of every row written (the current part's too, if it did not end).
    pub fn run_profile(&self) -> Profile {
        let Some(run) = &self.run else {
            return Profile::default();
        };
        match &self.part {
            Some((_, part)) => {
                let mut run = run.clone();
                run.merge(part, &self.plan);
                run.named(&self.plan)
            }
            None => run.named(&self.plan),
        }
    }

    /// With a baseline: what was checked and found.
    pub fn checked(&self) -> Option<Checked> {
        self.guard.as_ref().map(|_| self.checked.clone())
    }
}
