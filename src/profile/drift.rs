//! Comparing a run's profile with a baseline's, column by column, against
//! thresholds (`--max-drift`), and what a breach does (`--on-drift`).
//!
//! The figures: the population stability index over the baseline's deciles (its
//! sketch's bucket layout, so both sides are binned alike) or, for string and
//! label columns, over the baseline's values plus one bin for values it never saw;
//! the change in the null rate and in the NaN rate; the share of values outside
//! the baseline's [min, max]; the share of rows with a value the baseline never saw.

use std::collections::{BTreeMap, HashSet};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::categorical::CategoricalProfile;
use super::numeric::{share_below, NumericProfile};
use super::{ColumnProfile, Profile, ProfilePlan, Role, RunProfile};

/// What is measured, as `--max-drift` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    Psi,
    NullRate,
    NanRate,
    Range,
    Unseen,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::Psi,
        Metric::NullRate,
        Metric::NanRate,
        Metric::Range,
        Metric::Unseen,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Psi => "psi",
            Metric::NullRate => "null-rate",
            Metric::NanRate => "nan-rate",
            Metric::Range => "range",
            Metric::Unseen => "unseen",
        }
    }

    /// The default threshold: PSI above 0.25 is the usual "significant shift";
    /// rates are absolute changes or shares.
    pub fn default_threshold(self) -> f64 {
        match self {
            Metric::Psi => 0.25,
            Metric::NullRate | Metric::NanRate => 0.05,
            Metric::Range | Metric::Unseen => 0.01,
        }
    }

    fn parse(s: &str) -> Result<Metric> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .with_context(|| {
                let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                format!(
                    "--max-drift: unknown measure {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// PSI is judged when the two samples together weigh at least this many values,
/// 1 / (1/n_baseline + 1/n_run) with n each side's sample in unweighted values
/// (`NumericProfile::effective_sample`): below it, a
/// sample of the baseline's own distribution can pass 0.25 by chance more often
/// than once in a thousand runs (PSI over 10 bins is about chi²(9)/n). The
/// summary notes the columns not judged.
pub const PSI_MIN_SAMPLE: f64 = 250.0;

/// Whether PSI may be judged on samples of `a` and `b` values (see `PSI_MIN_SAMPLE`).
fn enough(a: f64, b: f64) -> bool {
    a > 0.0 && b > 0.0 && 1.0 / (1.0 / a + 1.0 / b) >= PSI_MIN_SAMPLE
}

/// Thresholds: the defaults, then per-column overrides; None turns a check off.
#[derive(Debug, Clone)]
pub struct Thresholds {
    all: BTreeMap<Metric, Option<f64>>,
    columns: BTreeMap<String, BTreeMap<Metric, Option<f64>>>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            all: Metric::ALL
                .iter()
                .map(|m| (*m, Some(m.default_threshold())))
                .collect(),
            columns: BTreeMap::new(),
        }
    }
}

impl Thresholds {
    /// Items `MEASURE=LIMIT` or `COLUMN:MEASURE=LIMIT`; LIMIT a number or `off`.
    pub fn parse(items: &[String]) -> Result<Thresholds> {
        let mut t = Thresholds::default();
        for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
            let Some((key, limit)) = item.rsplit_once('=') else {
                bail!("--max-drift {item:?}: expected MEASURE=LIMIT or COLUMN:MEASURE=LIMIT, e.g. psi=0.25 or age:null-rate=off");
            };
            let limit = match limit.trim() {
                "off" => None,
                v => match v.parse::<f64>() {
                    Ok(x) if x.is_finite() && x >= 0.0 => Some(x),
                    _ => bail!(
                        "--max-drift {item:?}: the limit must be a non-negative number or off"
                    ),
                },
            };
            match key.rsplit_once(':') {
                Some((column, metric)) => {
                    let m = Metric::parse(metric.trim())?;
                    t.columns
                        .entry(column.trim().to_string())
                        .or_default()
                        .insert(m, limit);
                }
                None => {
                    t.all.insert(Metric::parse(key.trim())?, limit);
                }
            }
        }
        Ok(t)
    }

    fn limit(&self, column: &str, m: Metric) -> Option<f64> {
        match self.columns.get(column).and_then(|c| c.get(&m)) {
            Some(l) => *l,
            None => self.all.get(&m).copied().flatten(),
        }
    }

    /// Columns named in overrides that the run does not profile.
    pub fn unknown_columns(&self, plan: &ProfilePlan) -> Vec<String> {
        self.columns
            .keys()
            .filter(|k| !plan.columns.iter().any(|c| &c.name == *k))
            .cloned()
            .collect()
    }

    /// The defaults in force, for the summary.
    pub fn shown(&self) -> BTreeMap<String, Option<f64>> {
        self.all
            .iter()
            .map(|(m, l)| (m.name().to_string(), *l))
            .collect()
    }
}

/// What a breach does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDrift {
    /// Nothing is committed; exit 6.
    Fail,
    /// Committed, with the breach recorded.
    Warn,
}

impl OnDrift {
    pub fn parse(s: &str) -> Result<OnDrift> {
        match s {
            "fail" => Ok(OnDrift::Fail),
            "warn" => Ok(OnDrift::Warn),
            other => bail!("--on-drift {other:?}: expected fail or warn"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OnDrift::Fail => "fail",
            OnDrift::Warn => "warn",
        }
    }
}

/// A figure over its threshold.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub column: String,
    pub role: Role,
    pub measure: Metric,
    pub value: f64,
    pub threshold: f64,
    /// What `baseline` and `current` are: `null rate`, `NaN rate`, `mean` or
    /// `top value's share` (for PSI, to show which way the column moved).
    pub compared: Option<&'static str>,
    /// That figure in the baseline and in this run.
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    /// Directory outputs: the part whose rows drifted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
}

impl Finding {
    /// How far over its threshold: findings are listed worst first.
    fn severity(&self) -> f64 {
        if self.threshold > 0.0 {
            self.value / self.threshold
        } else {
            f64::INFINITY
        }
    }

    /// One line: `x3 (input): psi 1.84 > 0.25 (mean 0.01 → 1.02)`.
    pub fn line(&self) -> String {
        let part = self
            .part
            .as_deref()
            .map(|p| format!(" in part {p}"))
            .unwrap_or_default();
        let was = match (self.compared, self.baseline, self.current) {
            (Some(what), Some(b), Some(c)) => format!(" ({what} {} → {})", fmt(b), fmt(c)),
            _ => String::new(),
        };
        format!(
            "{} ({}){part}: {} {} > {}{was}",
            self.column,
            self.role.name(),
            self.measure.name(),
            fmt(self.value),
            fmt(self.threshold)
        )
    }
}

fn fmt(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.001 {
        format!("{v:.2e}")
    } else {
        format!("{v:.4}")
    }
}

/// The comparison of some rows with the baseline.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Comparison {
    pub findings: Vec<Finding>,
    /// Checks that could not be made, and why.
    pub notes: Vec<String>,
}

/// The baseline a run is held to, and what a breach does.
#[derive(Debug, Clone)]
pub struct DriftGuard {
    pub baseline: Profile,
    /// Where the baseline came from, for messages.
    pub path: String,
    pub thresholds: Thresholds,
    pub on_drift: OnDrift,
}

impl DriftGuard {
    /// Columns the run profiles that the baseline does not have (or has as
    /// another kind): such a baseline is refused before scoring.
    pub fn unmatched(&self, plan: &ProfilePlan) -> Vec<String> {
        plan.columns
            .iter()
            .filter_map(|c| {
                let here = match c.kind {
                    super::Kind::Numeric => "numeric",
                    super::Kind::Categorical => "categorical",
                };
                match self.baseline.column(c.role, &c.name) {
                    None => Some(format!(
                        "{} `{}` (not in the baseline)",
                        c.role.name(),
                        c.name
                    )),
                    Some(b) if b.kind() != here => Some(format!(
                        "{} `{}` ({here} here, {} in the baseline)",
                        c.role.name(),
                        c.name,
                        b.kind()
                    )),
                    Some(_) => None,
                }
            })
            .collect()
    }

    /// Compares `rows` (the profile of a part or of the run) with the baseline.
    pub fn compare(&self, plan: &ProfilePlan, rows: &RunProfile, part: Option<&str>) -> Comparison {
        let named = rows.named(plan);
        let mut out = Comparison::default();
        for c in &plan.columns {
            let (Some(base), Some(cur)) = (
                self.baseline.column(c.role, &c.name),
                named.column(c.role, &c.name),
            ) else {
                continue;
            };
            if cur.rows() == 0 {
                continue;
            }
            let mut judge = Judge {
                thresholds: &self.thresholds,
                column: c,
                part,
                out: &mut out,
            };
            let rate = |p: &ColumnProfile| p.nulls() as f64 / p.rows().max(1) as f64;
            let (b, r) = (rate(base), rate(cur));
            judge.found(
                Metric::NullRate,
                (r - b).abs(),
                Some(("null rate", Some(b), Some(r))),
            );
            match (base, cur) {
                (ColumnProfile::Numeric(base), ColumnProfile::Numeric(cur)) => {
                    judge.numeric(base, cur)
                }
                (ColumnProfile::Categorical(base), ColumnProfile::Categorical(cur)) => {
                    judge.categorical(base, cur)
                }
                _ => {}
            }
        }
        out.findings.sort_by(|a, b| {
            b.severity()
                .total_cmp(&a.severity())
                .then(a.column.cmp(&b.column))
        });
        out
    }
}

/// The checks of one column, adding what breaches its limits to `out`.
struct Judge<'a> {
    thresholds: &'a Thresholds,
    column: &'a super::PlanColumn,
    part: Option<&'a str>,
    out: &'a mut Comparison,
}

impl Judge<'_> {
    /// `compared`: what the baseline and run figures shown with it are.
    fn found(
        &mut self,
        measure: Metric,
        value: f64,
        compared: Option<(&'static str, Option<f64>, Option<f64>)>,
    ) {
        let Some(threshold) = self.thresholds.limit(&self.column.name, measure) else {
            return;
        };
        if value <= threshold {
            return;
        }
        let (compared, baseline, current) = match compared {
            Some((what, b, c)) => (Some(what), b, c),
            None => (None, None, None),
        };
        self.out.findings.push(Finding {
            column: self.column.name.clone(),
            role: self.column.role,
            measure,
            value,
            threshold,
            compared,
            baseline,
            current,
            part: self.part.map(str::to_string),
        });
    }

    fn note(&mut self, why: String) {
        let part = self
            .part
            .map(|p| format!(" in part {p}"))
            .unwrap_or_default();
        let c = self.column;
        self.out
            .notes
            .push(format!("{} ({}){part}: {why}", c.name, c.role.name()));
    }

    fn numeric(&mut self, base: &NumericProfile, cur: &NumericProfile) {
        let nan = |p: &NumericProfile| p.nan as f64 / p.rows.max(1) as f64;
        let (b, r) = (nan(base), nan(cur));
        self.found(
            Metric::NanRate,
            (r - b).abs(),
            Some(("NaN rate", Some(b), Some(r))),
        );
        if let (Some(outside), true) = (cur.outside_baseline, cur.count > 0) {
            self.found(Metric::Range, outside as f64 / cur.count as f64, None);
        }
        if !enough(cur.effective_sample(), base.effective_sample()) {
            self.note(format!(
                "psi not judged on {} values against the baseline's {} (too few to tell drift from chance)",
                cur.count, base.count
            ));
        } else if let Some(psi) = numeric_psi(base, cur) {
            self.found(Metric::Psi, psi, Some(("mean", base.mean, cur.mean)));
        }
    }

    fn categorical(&mut self, base: &CategoricalProfile, cur: &CategoricalProfile) {
        if !base.complete {
            self.note("unseen and psi not judged: the baseline has more distinct values than are counted one by one".into());
            return;
        }
        let vocabulary: HashSet<String> = base.values.keys().cloned().collect();
        let non_null = (cur.rows - cur.nulls).max(1) as f64;
        self.found(
            Metric::Unseen,
            cur.unseen(&vocabulary) as f64 / non_null,
            None,
        );
        let n = |p: &CategoricalProfile| (p.rows - p.nulls) as f64;
        if enough(n(cur), n(base)) {
            let top = |p: &CategoricalProfile| p.top.first().map(|(_, s)| *s);
            let psi = categorical_psi(base, cur, &vocabulary);
            self.found(
                Metric::Psi,
                psi,
                Some(("top value's share", top(base), top(cur))),
            );
        }
    }
}

/// Shares below this count as this in PSI (an empty bin would be infinite).
const FLOOR: f64 = 1e-4;

fn psi(pairs: impl Iterator<Item = (f64, f64)>) -> f64 {
    pairs
        .map(|(b, c)| {
            let (b, c) = (b.max(FLOOR), c.max(FLOOR));
            (c - b) * (c / b).ln()
        })
        .sum()
}

/// PSI over the baseline's deciles.
pub fn numeric_psi(base: &NumericProfile, cur: &NumericProfile) -> Option<f64> {
    let (bs, cs) = (base.sketch.as_ref()?, cur.sketch.as_ref()?);
    let mut edges: Vec<f64> = (1..10)
        .filter_map(|i| bs.quantile(i as f64 / 10.0).ok().flatten())
        .collect();
    edges.dedup();
    let cdf = |s, e: &[f64]| -> Vec<f64> {
        let mut v = vec![0.0];
        v.extend(e.iter().map(|&x| share_below(s, x)));
        v.push(1.0);
        v
    };
    let (b, c) = (cdf(bs, &edges), cdf(cs, &edges));
    let shares = |v: &[f64]| v.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>();
    Some(psi(shares(&b).into_iter().zip(shares(&c))))
}

/// PSI over the baseline's values, with one bin for values it never saw.
fn categorical_psi(
    base: &CategoricalProfile,
    cur: &CategoricalProfile,
    vocabulary: &HashSet<String>,
) -> f64 {
    let bn = (base.rows - base.nulls).max(1) as f64;
    let cn = (cur.rows - cur.nulls).max(1) as f64;
    let seen = base.values.iter().map(|(k, &c)| {
        (
            c as f64 / bn,
            cur.values.get(k).copied().unwrap_or(0) as f64 / cn,
        )
    });
    let unseen = (0.0, cur.unseen(vocabulary) as f64 / cn);
    psi(seen.chain(std::iter::once(unseen)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_take_defaults_overrides_and_off() {
        let t = Thresholds::parse(&[
            "psi=0.5".into(),
            "age:null-rate=off".into(),
            "a:b:psi=1".into(),
        ])
        .unwrap();
        assert_eq!(t.limit("x", Metric::Psi), Some(0.5));
        assert_eq!(t.limit("age", Metric::NullRate), None);
        assert_eq!(t.limit("age", Metric::Psi), Some(0.5));
        assert_eq!(t.limit("a:b", Metric::Psi), Some(1.0));
        assert_eq!(t.limit("x", Metric::Unseen), Some(0.01));
        for bad in ["psi", "psi=-1", "kl=0.1", "psi=x"] {
            let e = Thresholds::parse(&[bad.into()]).unwrap_err().to_string();
            assert!(e.contains("--max-drift"), "{bad}: {e}");
        }
    }

    #[test]
    fn psi_is_zero_for_equal_shares_and_grows_with_the_shift() {
        assert!(psi([(0.5, 0.5), (0.5, 0.5)].into_iter()).abs() < 1e-12);
        let small = psi([(0.5, 0.45), (0.5, 0.55)].into_iter());
        let large = psi([(0.5, 0.1), (0.5, 0.9)].into_iter());
        assert!(
            small > 0.0 && small < 0.05 && large > 0.5,
            "{small} {large}"
        );
    }
}
