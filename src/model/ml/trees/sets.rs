//! The value sets of `BRANCH_MEMBER` nodes (opset-5 `TreeEnsemble`, and the
//! categorical splits of native XGBoost and LightGBM models).
//!
//! Contract: [`Set::contains`] is the membership test of one node; NaN is never a
//! member (a node's `missing_value_tracks_true` decides where NaN goes). How a value
//! is compared with the members is the set's [`Rule`]: exactly, as ONNX says, or as
//! XGBoost and LightGBM turn a float into a category (the integer part, each library
//! with its own treatment of negative and out-of-range values).

/// How a value is compared with a set's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// ONNX: the value equals a member.
    Exact,
    /// XGBoost: a value below 0 or at or above 2^24 − 1 is no category (never a
    /// member); otherwise its integer part is the category.
    Xgboost,
    /// LightGBM: the integer part (toward zero) is the category; a negative one is
    /// never a member.
    Lightgbm,
}

impl Rule {
    pub fn parse(s: &str) -> Option<Rule> {
        match s {
            "exact" => Some(Rule::Exact),
            "xgboost" => Some(Rule::Xgboost),
            "lightgbm" => Some(Rule::Lightgbm),
            _ => None,
        }
    }
}

/// Members that are small non-negative integers (the usual case: category codes)
/// are held as bits; any others, sorted, are searched.
const MAX_BIT: f32 = 65_536.0;

#[derive(Debug, Clone)]
pub struct Set {
    rule: Rule,
    bits: Vec<u64>,
    others: Vec<f32>,
}

impl Set {
    /// A set of `members` (none NaN).
    pub fn new(rule: Rule, members: impl IntoIterator<Item = f32>) -> Set {
        let mut bits = Vec::new();
        let mut others = Vec::new();
        for m in members {
            debug_assert!(!m.is_nan(), "NaN delimits sets, it is never a member");
            if (0.0..MAX_BIT).contains(&m) && m.fract() == 0.0 {
                let i = m as usize;
                if bits.len() <= i / 64 {
                    bits.resize(i / 64 + 1, 0);
                }
                bits[i / 64] |= 1 << (i % 64);
            } else {
                others.push(m);
            }
        }
        others.sort_by(f32::total_cmp);
        others.dedup();
        Set { rule, bits, others }
    }

    #[inline]
    pub fn contains(&self, x: f32) -> bool {
        let v = match self.rule {
            Rule::Exact => x,
            Rule::Xgboost => {
                if !(0.0..16_777_215.0).contains(&x) {
                    return false;
                }
                x.trunc()
            }
            Rule::Lightgbm => {
                let t = x.trunc();
                // -0.0 (from a value in (-1, 0)) is category 0, as in LightGBM.
                if t.is_nan() || t < 0.0 {
                    return false;
                }
                t
            }
        };
        if (0.0..MAX_BIT).contains(&v) && v.fract() == 0.0 {
            let i = v as usize;
            return self
                .bits
                .get(i / 64)
                .is_some_and(|word| word >> (i % 64) & 1 == 1);
        }
        // -0.0 was caught above as 0; total_cmp finds every other float exactly.
        self.others.binary_search_by(|m| m.total_cmp(&v)).is_ok()
    }

    pub fn rule(&self) -> Rule {
        self.rule
    }

    /// The member bits (bit `i` of word `i / 64` for member `i`), when every member
    /// is one of them: the sets the AVX2 walk can test.
    pub fn bits_only(&self) -> Option<&[u64]> {
        self.others.is_empty().then_some(&self.bits[..])
    }

    /// Members, for tests and probes: the integers held as bits, then the others.
    #[cfg(test)]
    pub fn members(&self) -> Vec<f32> {
        let bits = self.bits.iter().enumerate().flat_map(|(w, word)| {
            (0..64)
                .filter(move |b| word >> b & 1 == 1)
                .map(move |b| (w * 64 + b) as f32)
        });
        bits.chain(self.others.iter().copied()).collect()
    }
}

/// Splits NaN-delimited `values` into `count` member lists (the encoding of
/// `membership_values`, in the order the member nodes are listed).
pub fn split_members(values: &[f32], count: usize) -> Result<Vec<Vec<f32>>, String> {
    let mut sets: Vec<Vec<f32>> = Vec::with_capacity(count);
    let mut current = Vec::new();
    for &v in values {
        if v.is_nan() {
            sets.push(std::mem::take(&mut current));
        } else {
            current.push(v);
        }
    }
    if !current.is_empty() {
        // The last set may go without its closing NaN.
        sets.push(current);
    }
    if sets.len() != count {
        return Err(format!(
            "membership_values holds {} sets, but {count} nodes are BRANCH_MEMBER",
            sets.len()
        ));
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_sets_hold_integers_and_other_floats() {
        let s = Set::new(Rule::Exact, [3.0, 0.0, 70_000.0, -2.0, 1.5, 200.0]);
        for m in [3.0, 0.0, -0.0, 70_000.0, -2.0, 1.5, 200.0] {
            assert!(s.contains(m), "{m}");
        }
        for v in [1.0, 2.9, 3.5, -1.5, 1.0e9, f32::NAN, f32::INFINITY, 199.0] {
            assert!(!s.contains(v), "{v}");
        }
        let mut m = s.members();
        m.sort_by(f32::total_cmp);
        assert_eq!(m, [-2.0, 0.0, 1.5, 3.0, 200.0, 70_000.0]);
    }

    #[test]
    fn library_rules_take_the_integer_part_and_differ_below_zero() {
        let x = Set::new(Rule::Xgboost, [0.0, 2.0]);
        let l = Set::new(Rule::Lightgbm, [0.0, 2.0]);
        for s in [&x, &l] {
            assert!(s.contains(2.0) && s.contains(2.7) && s.contains(0.0));
            assert!(!s.contains(1.0) && !s.contains(3.0) && !s.contains(f32::NAN));
            assert!(!s.contains(-1.0) && !s.contains(-3.0) && !s.contains(1.0e12));
        }
        // XGBoost: any negative value is an invalid category; LightGBM truncates
        // -0.5 to category 0.
        assert!(!x.contains(-0.5));
        assert!(l.contains(-0.5));
    }

    #[test]
    fn membership_values_split_on_nan() {
        let nan = f32::NAN;
        let sets = split_members(&[1.0, 2.0, nan, 5.0, nan], 2).unwrap();
        assert_eq!(sets, [vec![1.0, 2.0], vec![5.0]]);
        assert_eq!(split_members(&[1.0, nan, 4.0], 2).unwrap()[1], [4.0]);
        assert!(split_members(&[1.0, nan], 2)
            .unwrap_err()
            .contains("1 sets"));
    }
}
