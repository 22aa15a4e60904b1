//! Splitting a dataset into input units (a Parquet row group, a whole CSV file),
//! assigning units to shards, and grouping a shard's units into part files.
//!
//! Assignment is a pure function of the units and the shard count, so N copies of
//! batchinfer started by a scheduler (Kubernetes Indexed Jobs, AWS Batch or Slurm
//! arrays, Airflow mapped tasks) each take a disjoint, contiguous slice, and
//! together score every unit exactly once. Slices are balanced by rows (Parquet)
//! or bytes (CSV, whose row count is unknown until read).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::source::{Dataset, FileSelection};

/// This run's shard: `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// Scheduler variables that carry an array task's index and, where they do, the count.
const SCHEDULERS: &[(&str, &str, Option<&str>, Option<&str>)] = &[
    // (scheduler, index variable, count variable, first index variable)
    (
        "AWS Batch",
        "AWS_BATCH_JOB_ARRAY_INDEX",
        Some("AWS_BATCH_JOB_ARRAY_SIZE"),
        None,
    ),
    (
        "Slurm",
        "SLURM_ARRAY_TASK_ID",
        Some("SLURM_ARRAY_TASK_COUNT"),
        Some("SLURM_ARRAY_TASK_MIN"),
    ),
    (
        "Google Cloud Batch",
        "BATCH_TASK_INDEX",
        Some("BATCH_TASK_COUNT"),
        None,
    ),
    (
        "Cloud Run jobs",
        "CLOUD_RUN_TASK_INDEX",
        Some("CLOUD_RUN_TASK_COUNT"),
        None,
    ),
    ("Kubernetes", "JOB_COMPLETION_INDEX", None, None),
    ("Nomad", "NOMAD_ALLOC_INDEX", None, None),
];

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// `I/N`, or `auto` / `auto/N`: the index (and count) from the scheduler's
    /// variables. Kubernetes gives no count, so it needs `auto/N`.
    pub fn parse(spec: &str, env: &BTreeMap<String, String>) -> Result<Shard> {
        let bad =
            || anyhow::anyhow!("--shard {spec:?}: expected I/N (0 <= I < N), auto, or auto/N");
        let (index, count) = spec.split_once('/').unwrap_or((spec, ""));
        let count: Option<u32> = match count {
            "" => None,
            n => Some(n.trim().parse().map_err(|_| bad())?),
        };
        let shard = if index.trim() == "auto" {
            Self::from_env(env, count)?
        } else {
            Shard {
                index: index.trim().parse().map_err(|_| bad())?,
                count: count.ok_or_else(bad)?,
            }
        };
        if shard.count == 0 || shard.index >= shard.count {
            bail!(
                "shard {}/{} is out of range: the index runs from 0 to count - 1",
                shard.index,
                shard.count
            );
        }
        Ok(shard)
    }

    fn from_env(env: &BTreeMap<String, String>, count: Option<u32>) -> Result<Shard> {
        for (scheduler, index_var, count_var, min_var) in SCHEDULERS {
            let Some(raw) = env.get(*index_var) else {
                continue;
            };
            let number = |var: &str, raw: &str| -> Result<u32> {
                raw.trim()
                    .parse()
                    .with_context(|| format!("{var}={raw:?} is not a number"))
            };
            let first = match min_var.and_then(|v| env.get(v).map(|raw| (v, raw))) {
                Some((v, raw)) => number(v, raw)?,
                None => 0,
            };
            let index = number(index_var, raw)?
                .checked_sub(first)
                .with_context(|| format!("{index_var} is below the array's first index"))?;
            let from_env = match count_var.and_then(|v| env.get(v).map(|raw| (v, raw))) {
                Some((v, raw)) => Some(number(v, raw)?),
                None => None,
            };
            let count = match (count, from_env) {
                (Some(n), Some(m)) if n != m => bail!(
                    "--shard auto/{n} but {scheduler} says the array has {m} tasks"
                ),
                (Some(n), _) | (None, Some(n)) => n,
                (None, None) => bail!(
                    "{scheduler} gives the index ({index_var}) but not the number of shards; pass --shard auto/N"
                ),
            };
            return Ok(Shard { index, count });
        }
        bail!("--shard auto: none of {} is set; pass --shard I/N", {
            let vars: Vec<&str> = SCHEDULERS.iter().map(|s| s.1).collect();
            vars.join(", ")
        })
    }

    /// Marker and manifest names carry the shard when there are several.
    pub fn suffix(&self) -> String {
        if self.count == 1 {
            String::new()
        } else {
            format!("-shard-{:04}-of-{:04}", self.index, self.count)
        }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The smallest piece of input a shard takes whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub file: usize,
    /// The Parquet row group; None: the whole (CSV) file.
    pub row_group: Option<usize>,
    /// Rows, when the file says (Parquet).
    pub rows: Option<u64>,
    /// Index in its file of the unit's first row.
    pub first_row: u64,
    /// What balancing counts: rows, or bytes for CSV.
    pub weight: u64,
}

/// Every unit of the dataset left to read, in input order.
pub fn units(dataset: &Dataset) -> Vec<Unit> {
    let mut units = vec![];
    for (file, info) in dataset.files.iter().enumerate() {
        match dataset.selection(file) {
            None => {}
            Some(FileSelection::RowGroups(groups)) => {
                units.extend(groups.iter().map(|g| Unit {
                    file,
                    row_group: Some(g.index),
                    rows: Some(g.rows),
                    first_row: g.first_row,
                    weight: g.rows,
                }));
            }
            Some(FileSelection::Whole) => units.push(Unit {
                file,
                row_group: None,
                rows: None,
                first_row: 0,
                weight: info.size,
            }),
        }
    }
    units
}

/// The units of `shard`: a contiguous slice, cut where the cumulative weight
/// crosses k/N of the total (a unit goes to the shard holding its midpoint).
pub fn assign(units: &[Unit], shard: Shard) -> Vec<usize> {
    let total: u128 = units.iter().map(|u| u.weight as u128).sum();
    let n = shard.count as u128;
    let mut before: u128 = 0;
    let mut mine = vec![];
    for (i, u) in units.iter().enumerate() {
        let w = u.weight as u128;
        let owner = if total == 0 {
            // No weights at all: by position.
            i as u128 * n / units.len().max(1) as u128
        } else {
            ((2 * before + w) * n / (2 * total)).min(n - 1)
        };
        if owner == shard.index as u128 {
            mine.push(i);
        }
        before += w;
    }
    mine
}

/// One part file: consecutive units of one input file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartPlan {
    /// File name in the output directory; made from the first unit, so that the
    /// names sort in input order whatever the shard count.
    pub name: String,
    pub file: usize,
    /// Row groups read (None: the whole file).
    pub row_groups: Option<Vec<usize>>,
    pub first_row: u64,
    /// Rows, when the file says.
    pub rows: Option<u64>,
}

/// Groups a shard's units into parts: a part never spans two input files, and
/// with `rows_per_file` a unit starts a new part when the part would pass it.
pub fn parts(units: &[Unit], mine: &[usize], rows_per_file: Option<u64>) -> Vec<PartPlan> {
    let mut parts: Vec<PartPlan> = vec![];
    let mut last: Option<usize> = None;
    for &i in mine {
        let u = &units[i];
        let extend = match (parts.last(), last) {
            (Some(p), Some(prev)) => {
                // Consecutive row groups of one file (a filter may have pruned some).
                let adjacent = prev + 1 == i
                    && units[prev].file == u.file
                    && units[prev].row_group.map(|g| g + 1) == u.row_group;
                let fits = match (rows_per_file, p.rows, u.rows) {
                    (Some(max), Some(have), Some(add)) => have + add <= max,
                    (Some(_), _, _) => false,
                    (None, _, _) => true,
                };
                adjacent && u.row_group.is_some() && fits
            }
            _ => false,
        };
        if extend {
            let p = parts.last_mut().expect("checked above");
            if let (Some(groups), Some(rg)) = (p.row_groups.as_mut(), u.row_group) {
                groups.push(rg);
            }
            p.rows = p.rows.zip(u.rows).map(|(a, b)| a + b);
        } else {
            parts.push(PartPlan {
                name: format!("part-{:05}-{:05}.parquet", u.file, u.row_group.unwrap_or(0)),
                file: u.file,
                row_groups: u.row_group.map(|rg| vec![rg]),
                first_row: u.first_row,
                rows: u.rows,
            });
        }
        last = Some(i);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn shard_specs_and_scheduler_variables() {
        let none = env(&[]);
        assert_eq!(
            Shard::parse("2/7", &none).unwrap(),
            Shard { index: 2, count: 7 }
        );
        assert!(Shard::parse("7/7", &none).is_err());
        assert!(Shard::parse("1", &none).is_err());
        assert!(Shard::parse("auto", &none).is_err());
        let aws = env(&[
            ("AWS_BATCH_JOB_ARRAY_INDEX", "3"),
            ("AWS_BATCH_JOB_ARRAY_SIZE", "5"),
        ]);
        assert_eq!(
            Shard::parse("auto", &aws).unwrap(),
            Shard { index: 3, count: 5 }
        );
        assert!(Shard::parse("auto/4", &aws).is_err(), "count disagrees");
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "11"),
            ("SLURM_ARRAY_TASK_MIN", "10"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(
            Shard::parse("auto", &slurm).unwrap(),
            Shard { index: 1, count: 4 }
        );
        let gcb = env(&[("BATCH_TASK_INDEX", "1"), ("BATCH_TASK_COUNT", "3")]);
        assert_eq!(
            Shard::parse("auto", &gcb).unwrap(),
            Shard { index: 1, count: 3 }
        );
        let run = env(&[("CLOUD_RUN_TASK_INDEX", "0"), ("CLOUD_RUN_TASK_COUNT", "2")]);
        assert_eq!(
            Shard::parse("auto", &run).unwrap(),
            Shard { index: 0, count: 2 }
        );
        let nomad = env(&[("NOMAD_ALLOC_INDEX", "4")]);
        assert!(
            Shard::parse("auto", &nomad).is_err(),
            "Nomad gives no count"
        );
        assert_eq!(
            Shard::parse("auto/5", &nomad).unwrap(),
            Shard { index: 4, count: 5 }
        );
        let k8s = env(&[("JOB_COMPLETION_INDEX", "2")]);
        assert!(
            Shard::parse("auto", &k8s).is_err(),
            "Kubernetes gives no count"
        );
        assert_eq!(
            Shard::parse("auto/3", &k8s).unwrap(),
            Shard { index: 2, count: 3 }
        );
    }

    fn unit(file: usize, rg: usize, rows: u64) -> Unit {
        Unit {
            file,
            row_group: Some(rg),
            rows: Some(rows),
            first_row: 0,
            weight: rows,
        }
    }

    #[test]
    fn shards_take_every_unit_once_in_contiguous_slices() {
        let units: Vec<Unit> = (0..23)
            .map(|i| unit(i / 5, i % 5, 1 + (i as u64 * 37) % 11))
            .collect();
        for n in [1, 2, 3, 7, 30] {
            let mut all = vec![];
            for index in 0..n {
                let mine = assign(&units, Shard { index, count: n });
                if let (Some(a), Some(b)) = (mine.first(), mine.last()) {
                    assert_eq!(mine, (*a..=*b).collect::<Vec<_>>(), "contiguous");
                }
                all.extend(mine);
            }
            assert_eq!(all, (0..23).collect::<Vec<_>>(), "N = {n}");
        }
    }

    #[test]
    fn parts_stay_within_a_file_and_under_the_row_cap() {
        let units = vec![
            unit(0, 0, 10),
            unit(0, 1, 10),
            unit(0, 2, 10),
            unit(1, 0, 5),
        ];
        let all: Vec<usize> = (0..4).collect();
        let p = parts(&units, &all, None);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].row_groups, Some(vec![0, 1, 2]));
        assert_eq!(p[0].rows, Some(30));
        assert_eq!(p[1].name, "part-00001-00000.parquet");
        let capped = parts(&units, &all, Some(20));
        let groups: Vec<_> = capped.iter().map(|p| p.row_groups.clone()).collect();
        assert_eq!(groups, [Some(vec![0, 1]), Some(vec![2]), Some(vec![0])]);
        assert_eq!(capped[1].name, "part-00000-00002.parquet");
    }
}
