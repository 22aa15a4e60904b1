//! The profile of a numeric column: counts, moments and range over every value,
//! quantiles from a DDSketch over the sampled rows (see `sample`).

use arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Float32Type, Float64Type, Int32Type, Int64Type,
};
use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

use super::sample::Sampled;

/// Relative accuracy of the quantiles (1%), and the sketch's bins: 2,048 bins of
/// 1% cover values from 1e-9 to beyond 1e8 on each side of zero before the lowest
/// bins are merged.
fn sketch_config() -> Config {
    Config::new(0.01, 2048, 1e-9)
}

/// The quantiles the summary shows.
pub const QUANTILES: [(&str, f64); 9] = [
    ("p01", 0.01),
    ("p05", 0.05),
    ("p10", 0.10),
    ("p25", 0.25),
    ("p50", 0.50),
    ("p75", 0.75),
    ("p90", 0.90),
    ("p95", 0.95),
    ("p99", 0.99),
];

/// Counts, moments and the sketch of one numeric column.
#[derive(Clone, Serialize, Deserialize)]
pub struct NumericProfile {
    /// The column's Arrow type (`Float64`, `Int64`, …).
    #[serde(default)]
    pub data_type: String,
    /// Rows seen, nulls included.
    pub rows: u64,
    pub nulls: u64,
    /// NaN and infinite values (not in the moments, the range or the sketch).
    pub nan: u64,
    /// Finite values: rows − nulls − nan.
    pub count: u64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    /// Population standard deviation.
    pub std: Option<f64>,
    /// `QUANTILES` from the sketch, filled in by `finish`.
    #[serde(default)]
    pub quantiles: Vec<(String, f64)>,
    /// Finite values outside the baseline's [min, max] (with a baseline only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside_baseline: Option<u64>,
    /// Sum of squared deviations from the mean (merging needs it).
    #[serde(default)]
    pub m2: f64,
    /// The sampled finite values, weighted; None when there are none.
    pub sketch: Option<DDSketch>,
}

impl std::fmt::Debug for NumericProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NumericProfile")
            .field("rows", &self.rows)
            .field("nulls", &self.nulls)
            .field("nan", &self.nan)
            .field("mean", &self.mean)
            .field("sampled", &self.sampled_weight())
            .finish_non_exhaustive()
    }
}

impl NumericProfile {
    pub fn empty(with_range: bool) -> NumericProfile {
        NumericProfile {
            data_type: String::new(),
            rows: 0,
            nulls: 0,
            nan: 0,
            count: 0,
            min: None,
            max: None,
            mean: None,
            std: None,
            quantiles: vec![],
            outside_baseline: with_range.then_some(0),
            m2: 0.0,
            sketch: None,
        }
    }

    /// The profile of one batch's column; `range` is the baseline's [min, max].
    pub fn of(column: &ArrayRef, sampled: &Sampled, range: Option<(f64, f64)>) -> NumericProfile {
        let mut p = NumericProfile::empty(range.is_some());
        p.data_type = column.data_type().to_string();
        match column.data_type() {
            DataType::Float64 => p.add(column.as_primitive::<Float64Type>(), sampled, range),
            DataType::Float32 => p.add(column.as_primitive::<Float32Type>(), sampled, range),
            DataType::Int64 => p.add(column.as_primitive::<Int64Type>(), sampled, range),
            DataType::Int32 => p.add(column.as_primitive::<Int32Type>(), sampled, range),
            _ => {
                // Other types through the cast table's float64; what does not cast is null.
                let opts = CastOptions {
                    safe: true,
                    ..Default::default()
                };
                match cast_with_options(column, &DataType::Float64, &opts) {
                    Ok(c) => p.add(c.as_primitive::<Float64Type>(), sampled, range),
                    Err(_) => {
                        p.rows = column.len() as u64;
                        p.nulls = p.rows;
                    }
                }
            }
        }
        p
    }

    fn add<T>(&mut self, a: &PrimitiveArray<T>, sampled: &Sampled, range: Option<(f64, f64)>)
    where
        T: ArrowPrimitiveType,
        T::Native: ToF64,
    {
        self.rows = a.len() as u64;
        self.nulls = a.null_count() as u64;
        let values = a.values();
        let m = match a.nulls().filter(|n| n.null_count() > 0) {
            None => dense_moments(values, range),
            Some(valid) => moments(
                values
                    .iter()
                    .zip(valid.iter())
                    .filter(|(_, ok)| *ok)
                    .map(|(v, _)| v.to_f64()),
                range,
            ),
        };
        self.nan = m.nan;
        self.count = m.count;
        if m.count > 0 {
            self.min = Some(m.min);
            self.max = Some(m.max);
            self.mean = Some(m.mean);
            self.m2 = m.m2;
        }
        if let Some(o) = &mut self.outside_baseline {
            *o = m.outside;
        }
        let mut sketch = DDSketch::new(sketch_config());
        for &(row, weight) in sampled.rows() {
            let row = row as usize;
            if a.is_valid(row) {
                let v = values[row].to_f64();
                if v.is_finite() {
                    sketch.add_with_count(v, weight);
                }
            }
        }
        self.sketch = (sketch.count() > 0).then_some(sketch);
    }

    /// Adds `other`, the profile of later rows (Chan et al.'s merge of moments).
    pub fn merge(&mut self, other: &NumericProfile) {
        let (n1, n2) = (self.count as f64, other.count as f64);
        match (self.mean, other.mean) {
            (Some(a), Some(b)) => {
                let n = n1 + n2;
                let delta = b - a;
                self.mean = Some(a + delta * n2 / n);
                self.m2 += other.m2 + delta * delta * n1 * n2 / n;
            }
            (None, Some(b)) => {
                self.mean = Some(b);
                self.m2 = other.m2;
            }
            _ => {}
        }
        self.min = min_of(self.min, other.min, f64::min);
        self.max = min_of(self.max, other.max, f64::max);
        if self.data_type.is_empty() {
            self.data_type.clone_from(&other.data_type);
        }
        self.rows += other.rows;
        self.nulls += other.nulls;
        self.nan += other.nan;
        self.count += other.count;
        if let (Some(a), Some(b)) = (&mut self.outside_baseline, other.outside_baseline) {
            *a += b;
        }
        match (&mut self.sketch, &other.sketch) {
            (Some(a), Some(b)) => {
                // Same configuration on both sides: merging cannot fail.
                let _ = a.merge(b);
            }
            (None, Some(b)) => self.sketch = Some(b.clone()),
            _ => {}
        }
    }

    /// Derived figures for the summary: the standard deviation and the quantiles.
    pub fn finish(&mut self) {
        self.std = (self.count > 0).then(|| (self.m2 / self.count as f64).max(0.0).sqrt());
        self.quantiles = match &self.sketch {
            Some(s) => QUANTILES
                .iter()
                .filter_map(|(name, q)| Some((name.to_string(), s.quantile(*q).ok()??)))
                .collect(),
            None => vec![],
        };
    }

    /// Weighted sampled values of the sketch.
    pub fn sampled_weight(&self) -> u64 {
        self.sketch.as_ref().map_or(0, |s| s.count() as u64)
    }
}

fn min_of(a: Option<f64>, b: Option<f64>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

/// Column values as f64.
pub trait ToF64: Copy {
    fn to_f64(self) -> f64;
}

impl ToF64 for f64 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}
impl ToF64 for f32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}
impl ToF64 for i64 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}
impl ToF64 for i32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

struct Moments {
    count: u64,
    nan: u64,
    min: f64,
    max: f64,
    mean: f64,
    m2: f64,
    outside: u64,
}

/// The moments of a column without nulls: the same figures as `moments`, in
/// lanes the compiler keeps in vector registers (AVX2 where the CPU has it). Every
/// value is profiled, so this loop is most of what profiling costs.
fn dense_moments<T: ToF64>(values: &[T], range: Option<(f64, f64)>) -> Moments {
    let shift = values
        .iter()
        .map(|v| v.to_f64())
        .find(|v| v.is_finite())
        .unwrap_or(0.0);
    let (lo, hi) = range.unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { lanes_avx2(values, shift, lo, hi) };
    }
    lanes(values, shift, lo, hi)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lanes_avx2<T: ToF64>(values: &[T], shift: f64, lo: f64, hi: f64) -> Moments {
    lanes(values, shift, lo, hi)
}

/// Lanes of accumulators over chunks: a value that is not finite is replaced by
/// `shift` (a finite value of the column, so min and max are unchanged) and not
/// counted.
#[inline(always)]
fn lanes<T: ToF64>(values: &[T], shift: f64, lo: f64, hi: f64) -> Moments {
    const L: usize = 8;
    let (mut sum, mut sq) = ([0.0f64; L], [0.0f64; L]);
    let (mut min, mut max) = ([f64::INFINITY; L], [f64::NEG_INFINITY; L]);
    let (mut count, mut outside) = ([0u64; L], [0u64; L]);
    let chunks = values.chunks_exact(L);
    let rest = chunks.remainder();
    for chunk in chunks {
        for j in 0..L {
            let x = chunk[j].to_f64();
            let finite = x.abs() < f64::INFINITY;
            let y = if finite { x } else { shift };
            let d = y - shift;
            sum[j] += d;
            sq[j] += d * d;
            min[j] = if y < min[j] { y } else { min[j] };
            max[j] = if y > max[j] { y } else { max[j] };
            count[j] += finite as u64;
            outside[j] += (finite & ((y < lo) | (y > hi))) as u64;
        }
    }
    let tail = moments(rest.iter().map(|v| v.to_f64()), Some((lo, hi)));
    let count = count.iter().sum::<u64>() + tail.count;
    let sum = sum.iter().sum::<f64>() + tail.sum_d(shift);
    let sq = sq.iter().sum::<f64>() + tail.sq_d(shift);
    let mean_d = if count > 0 { sum / count as f64 } else { 0.0 };
    Moments {
        count,
        nan: values.len() as u64 - count,
        min: min.iter().copied().fold(tail.min, f64::min),
        max: max.iter().copied().fold(tail.max, f64::max),
        mean: shift + mean_d,
        m2: (sq - sum * mean_d).max(0.0),
        outside: outside.iter().sum::<u64>() + tail.outside,
    }
}

impl Moments {
    /// Σ (x − shift) over the values these moments describe.
    fn sum_d(&self, shift: f64) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            (self.mean - shift) * self.count as f64
        }
    }

    /// Σ (x − shift)² over them.
    fn sq_d(&self, shift: f64) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            let d = self.mean - shift;
            self.m2 + d * d * self.count as f64
        }
    }
}

/// One pass over a batch's values: sums of deviations from the first finite value
/// (so that a large mean does not swamp the variance).
fn moments(values: impl Iterator<Item = f64> + Clone, range: Option<(f64, f64)>) -> Moments {
    let shift = values.clone().find(|v| v.is_finite()).unwrap_or(0.0);
    let (lo, hi) = range.unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
    let (mut count, mut outside) = (0u64, 0u64);
    let (mut sum, mut sq) = (0.0f64, 0.0f64);
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut seen = 0u64;
    for v in values {
        seen += 1;
        let finite = v.is_finite();
        let d = if finite { v - shift } else { 0.0 };
        count += finite as u64;
        sum += d;
        sq += d * d;
        if finite {
            min = min.min(v);
            max = max.max(v);
        }
        outside += (finite && (v < lo || v > hi)) as u64;
    }
    let mean_d = if count > 0 { sum / count as f64 } else { 0.0 };
    Moments {
        count,
        nan: seen - count,
        min,
        max,
        mean: shift + mean_d,
        m2: (sq - sum * mean_d).max(0.0),
        outside,
    }
}

/// The weighted share of a sketch's values below the bucket of `edge`, a value
/// the sketch itself returned: both sketches of a comparison share one bucket
/// layout, so shares are compared bucket for bucket.
pub fn share_below(sketch: &DDSketch, edge: f64) -> f64 {
    let n = sketch.count() as u64;
    if n == 0 {
        return 0.0;
    }
    let at = |rank: u64| -> f64 {
        if n == 1 || rank + 1 >= n {
            representative(sketch.max().unwrap_or(0.0))
        } else {
            let q = (rank as f64 + 0.5) / (n - 1) as f64;
            sketch.quantile(q.min(1.0)).ok().flatten().unwrap_or(0.0)
        }
    };
    // The first rank whose bucket is at or above the edge's.
    let (mut lo, mut hi) = (0u64, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if at(mid) < edge {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo as f64 / n as f64
}

/// The value the sketch reports for the bucket holding `v`.
fn representative(v: f64) -> f64 {
    let c = sketch_config();
    if v > c.min_possible() {
        c.value(c.key(v))
    } else if v < -c.min_possible() {
        -c.value(c.key(-v))
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Float64Array;
    use std::sync::Arc;

    fn profile(values: Vec<Option<f64>>) -> NumericProfile {
        let n = values.len();
        let a: ArrayRef = Arc::new(Float64Array::from(values));
        let mut p = NumericProfile::of(&a, &Sampled::every_row(n), Some((0.0, 10.0)));
        p.finish();
        p
    }

    #[test]
    fn counts_moments_and_range_over_every_value() {
        let p = profile(vec![
            Some(1.0),
            None,
            Some(f64::NAN),
            Some(3.0),
            Some(f64::INFINITY),
            Some(11.0),
        ]);
        assert_eq!((p.rows, p.nulls, p.nan, p.count), (6, 1, 2, 3));
        assert_eq!((p.min, p.max, p.mean), (Some(1.0), Some(11.0), Some(5.0)));
        let std = ((16.0 + 4.0 + 36.0) / 3.0f64).sqrt();
        assert!((p.std.unwrap() - std).abs() < 1e-12);
        assert_eq!(p.outside_baseline, Some(1));
    }

    #[test]
    fn merging_batches_gives_the_moments_of_the_whole() {
        let all: Vec<f64> = (0..1000).map(|i| 1e9 + (i as f64) * 0.5).collect();
        let whole = profile(all.iter().copied().map(Some).collect());
        let mut merged = NumericProfile::empty(true);
        for chunk in all.chunks(77) {
            let b: ArrayRef = Arc::new(Float64Array::from(chunk.to_vec()));
            merged.merge(&NumericProfile::of(
                &b,
                &Sampled::every_row(chunk.len()),
                Some((0.0, 10.0)),
            ));
        }
        merged.finish();
        assert_eq!(merged.count, 1000);
        assert!((merged.mean.unwrap() - whole.mean.unwrap()).abs() < 1e-6);
        assert!((merged.std.unwrap() - whole.std.unwrap()).abs() < 1e-6);
        assert!(
            (whole.std.unwrap() - 144.33).abs() < 0.01,
            "{:?}",
            whole.std
        );
        assert_eq!(merged.sampled_weight(), 1000);
        assert_eq!(merged.outside_baseline, Some(1000));
    }

    #[test]
    fn the_vector_loop_gives_the_figures_of_the_plain_one() {
        let mut values: Vec<f64> = (0..1003)
            .map(|i| ((i * 7919) % 1000) as f64 * 0.37 - 50.0)
            .collect();
        values[3] = f64::NAN;
        values[500] = f64::INFINITY;
        values[1001] = f64::NEG_INFINITY;
        let range = Some((-40.0, 300.0));
        let plain = moments(values.iter().copied(), range);
        for m in [
            dense_moments(&values, range),
            lanes(&values, values[0], -40.0, 300.0),
        ] {
            assert_eq!(
                (m.count, m.nan, m.outside),
                (plain.count, plain.nan, plain.outside)
            );
            assert_eq!((m.min, m.max), (plain.min, plain.max));
            assert!(
                (m.mean - plain.mean).abs() < 1e-9,
                "{} {}",
                m.mean,
                plain.mean
            );
            assert!((m.m2 / plain.m2 - 1.0).abs() < 1e-9);
        }
        let single: Vec<f32> = values.iter().map(|v| *v as f32).collect();
        let m = dense_moments(&single, range);
        assert_eq!(
            (m.count, m.nan, m.outside),
            (plain.count, plain.nan, plain.outside)
        );
    }

    #[test]
    fn quantiles_are_within_the_sketch_accuracy() {
        let p = profile((1..=10_000).map(|i| Some(i as f64)).collect());
        let median = p.quantiles.iter().find(|(n, _)| n == "p50").unwrap().1;
        assert!((median / 5000.0 - 1.0).abs() < 0.02, "{median}");
    }

    #[test]
    fn shares_below_an_edge_count_whole_buckets() {
        let mut s = DDSketch::new(sketch_config());
        for v in [0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0] {
            s.add(v);
        }
        let two = s.quantile(0.5).unwrap().unwrap();
        assert!((two - 2.0).abs() < 0.03);
        assert_eq!(share_below(&s, two), 0.4);
        assert_eq!(share_below(&s, representative(1.0)), 0.1);
        assert_eq!(share_below(&s, representative(3.0)), 0.6);
        assert_eq!(share_below(&s, representative(4.0)), 1.0);
        assert_eq!(share_below(&s, -5.0), 0.0);
    }
}
