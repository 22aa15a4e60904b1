//! The profile of a string or label column: nulls, how many distinct values
//! (a HyperLogLog++), and the count of each value, exact while a column has at most
//! `TRACKED` distinct values (a baseline's vocabulary is always tracked).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use hyperloglogplus::{HyperLogLog, HyperLogLogPlus};
use serde::{Deserialize, Serialize};

/// Distinct values counted one by one; past this, new values count as untracked.
pub const TRACKED: usize = 1024;
/// Integer columns whose values all lie in 0..SMALL are counted in an array.
const SMALL: usize = 64;
/// Most frequent values the summary shows.
pub const TOP: usize = 10;

/// Hashers with fixed seeds, so that the distinct count of an input is the same
/// on every run.
type Hll = HyperLogLogPlus<String, foldhash::quality::FixedState>;
type Counts<K> = HashMap<K, u64, foldhash::fast::FixedState>;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CategoricalProfile {
    pub rows: u64,
    pub nulls: u64,
    /// Distinct non-null values: exact when `complete`, else the HyperLogLog++
    /// estimate (about 1% error).
    pub distinct: u64,
    /// Whether `values` holds every value seen.
    pub complete: bool,
    /// Rows whose value is not in `values` (it was full).
    pub untracked: u64,
    /// The `TOP` most frequent values with their share of the non-null rows.
    #[serde(default)]
    pub top: Vec<(String, f64)>,
    /// Count of each tracked value.
    pub values: BTreeMap<String, u64>,
    #[serde(skip)]
    hll: Option<Hll>,
}

impl CategoricalProfile {
    pub fn empty() -> CategoricalProfile {
        CategoricalProfile {
            rows: 0,
            nulls: 0,
            distinct: 0,
            complete: true,
            untracked: 0,
            top: vec![],
            values: BTreeMap::new(),
            hll: None,
        }
    }

    /// One batch's column; `vocabulary` (a baseline's values) is tracked whatever
    /// the number of other values.
    pub fn of(column: &ArrayRef, vocabulary: Option<&Arc<HashSet<String>>>) -> CategoricalProfile {
        let mut p = CategoricalProfile::empty();
        p.rows = column.len() as u64;
        p.nulls = column.null_count() as u64;
        let mut hll = new_hll();
        // Labels are integers more often than not: counted as numbers, named once.
        let integers = match column.data_type() {
            DataType::Int64 => Some(column.clone()),
            d if d.is_integer() => cast(column, &DataType::Int64).ok(),
            _ => None,
        };
        if let Some(ints) = integers {
            let ints = ints.as_primitive::<Int64Type>();
            match small_counts(ints) {
                Some(counts) => p.count_small(&counts, &mut hll),
                None => {
                    let name = |k: i64| Cow::Owned(k.to_string());
                    p.count(ints.iter(), name, vocabulary, &mut hll);
                }
            }
        } else {
            let strings = match column.data_type() {
                DataType::Utf8 => column.clone(),
                _ => match cast(column, &DataType::Utf8) {
                    Ok(c) => c,
                    Err(_) => {
                        p.nulls = p.rows;
                        return p;
                    }
                },
            };
            let strings = strings.as_string::<i32>();
            p.nulls = strings.null_count() as u64;
            p.count(strings.iter(), Cow::Borrowed, vocabulary, &mut hll);
        }
        p.complete = p.untracked == 0;
        p.hll = Some(hll);
        p
    }

    /// Integers in 0..SMALL (class labels, mostly), counted by `small_counts`.
    fn count_small(&mut self, counts: &[u64; SMALL], hll: &mut Hll) {
        for (k, &c) in counts.iter().enumerate().filter(|(_, &c)| c > 0) {
            let k = k.to_string();
            hll.insert(&k);
            self.values.insert(k, c);
        }
    }

    /// Counts the values of a batch: each distinct value once in the HyperLogLog
    /// (inserting a value again changes nothing), each untracked one as it comes.
    fn count<'a, K: Hash + Eq + Copy + 'a>(
        &mut self,
        values: impl Iterator<Item = Option<K>>,
        name: impl Fn(K) -> Cow<'a, str>,
        vocabulary: Option<&Arc<HashSet<String>>>,
        hll: &mut Hll,
    ) {
        let mut counts: Counts<K> = Counts::default();
        for v in values.flatten() {
            if let Some(c) = counts.get_mut(&v) {
                *c += 1;
                continue;
            }
            let tracked =
                counts.len() < TRACKED || vocabulary.is_some_and(|s| s.contains(name(v).as_ref()));
            if tracked {
                counts.insert(v, 1);
            } else {
                hll.insert(name(v).as_ref());
                self.untracked += 1;
            }
        }
        for (k, c) in counts {
            let k = name(k).into_owned();
            hll.insert(&k);
            self.values.insert(k, c);
        }
    }

    /// Adds the profile of later rows.
    pub fn merge(&mut self, other: &CategoricalProfile, vocabulary: Option<&Arc<HashSet<String>>>) {
        self.rows += other.rows;
        self.nulls += other.nulls;
        self.untracked += other.untracked;
        for (k, &c) in &other.values {
            let room = self.values.len() < TRACKED || vocabulary.is_some_and(|s| s.contains(k));
            match self.values.get_mut(k) {
                Some(n) => *n += c,
                None if room => {
                    self.values.insert(k.clone(), c);
                }
                None => self.untracked += c,
            }
        }
        self.complete = self.untracked == 0;
        match (&mut self.hll, &other.hll) {
            (Some(a), Some(b)) => {
                // Same precision on both sides: merging cannot fail.
                let _ = a.merge(b);
            }
            (None, Some(b)) => self.hll = Some(b.clone()),
            _ => {}
        }
    }

    /// Derived figures: the distinct count and the most frequent values.
    pub fn finish(&mut self) {
        self.distinct = if self.complete {
            self.values.len() as u64
        } else {
            self.hll.as_mut().map_or(0, |h| h.count().round() as u64)
        };
        let non_null = (self.rows - self.nulls).max(1) as f64;
        let mut top: Vec<(&String, &u64)> = self.values.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        self.top = top
            .into_iter()
            .take(TOP)
            .map(|(k, &c)| (k.clone(), c as f64 / non_null))
            .collect();
    }

    /// Non-null rows whose value is not in `vocabulary`: tracked values outside it,
    /// and every untracked row (the vocabulary is always tracked).
    pub fn unseen(&self, vocabulary: &HashSet<String>) -> u64 {
        let tracked: u64 = self
            .values
            .iter()
            .filter(|(k, _)| !vocabulary.contains(*k))
            .map(|(_, c)| c)
            .sum();
        tracked + self.untracked
    }
}

/// The count of each value of a column whose non-null values all lie in
/// 0..SMALL, in one pass; None as soon as one does not. Four tables taken in turn,
/// so that a run of equal labels does not wait on its own count.
fn small_counts(ints: &arrow::array::Int64Array) -> Option<[u64; SMALL]> {
    let mut tables = [[0u64; SMALL]; 4];
    let values = ints.values();
    match ints.nulls().filter(|n| n.null_count() > 0) {
        None => {
            for (i, &v) in values.iter().enumerate() {
                let k = usize::try_from(v).ok().filter(|&k| k < SMALL)?;
                tables[i & 3][k] += 1;
            }
        }
        Some(valid) => {
            for (i, (&v, ok)) in values.iter().zip(valid.iter()).enumerate() {
                if ok {
                    let k = usize::try_from(v).ok().filter(|&k| k < SMALL)?;
                    tables[i & 3][k] += 1;
                }
            }
        }
    }
    let mut counts = [0u64; SMALL];
    for (k, c) in counts.iter_mut().enumerate() {
        *c = tables.iter().map(|t| t[k]).sum();
    }
    Some(counts)
}

fn new_hll() -> Hll {
    // Precision 14: 16 Ki registers, about 0.8% standard error.
    HyperLogLogPlus::new(14, foldhash::quality::FixedState::default())
        .expect("14 is a valid precision")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};

    #[test]
    fn counts_each_value_and_the_most_frequent_first() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![
            Some("b"),
            Some("a"),
            None,
            Some("b"),
            Some("c"),
        ]));
        let mut p = CategoricalProfile::of(&a, None);
        let mut q = CategoricalProfile::of(&a, None);
        q.finish();
        p.merge(&q, None);
        p.finish();
        assert_eq!((p.rows, p.nulls, p.distinct, p.complete), (10, 2, 3, true));
        assert_eq!(p.top[0], ("b".to_string(), 0.5));
        assert_eq!(p.values["a"], 2);
    }

    #[test]
    fn small_integer_labels_are_counted_as_other_integers_are() {
        let small: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(0),
            Some(1),
            Some(1),
            None,
            Some(63),
        ]));
        let large: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(0),
            Some(1),
            Some(1),
            None,
            Some(64),
        ]));
        let (mut a, mut b) = (
            CategoricalProfile::of(&small, None),
            CategoricalProfile::of(&large, None),
        );
        a.finish();
        b.finish();
        assert_eq!(
            (a.nulls, a.distinct, a.values["1"], a.values["63"]),
            (1, 3, 2, 1)
        );
        assert_eq!(
            (b.nulls, b.distinct, b.values["1"], b.values["64"]),
            (1, 3, 2, 1)
        );
    }

    #[test]
    fn past_the_tracked_values_the_distinct_count_is_estimated() {
        let values: Vec<i64> = (0..5000).collect();
        let a: ArrayRef = Arc::new(Int64Array::from(values));
        let mut p = CategoricalProfile::of(&a, None);
        p.finish();
        assert!(!p.complete);
        assert_eq!(p.values.len(), TRACKED);
        assert_eq!(p.untracked, 5000 - TRACKED as u64);
        assert!(
            (p.distinct as f64 / 5000.0 - 1.0).abs() < 0.03,
            "{}",
            p.distinct
        );
    }

    #[test]
    fn a_baseline_vocabulary_is_always_tracked_so_unseen_rows_are_exact() {
        let vocabulary: Arc<HashSet<String>> = Arc::new(["4999".to_string()].into());
        let values: Vec<i64> = (0..5000).collect();
        let a: ArrayRef = Arc::new(Int64Array::from(values));
        let p = CategoricalProfile::of(&a, Some(&vocabulary));
        assert_eq!(p.values.get("4999"), Some(&1));
        assert_eq!(p.unseen(&vocabulary), 4999);
    }
}
