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
    /// The column's Arrow type (`Float64`, `Int64`, …), set by the plan when the
    /// profile is named (the workers' batch profiles leave it empty).
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
    /// The sampled finite values, weighted; None when there are none. In JSON,
    /// DDSketch's standard binary encoding (the one DataDog's Java library
    /// reads) in base64.
    #[serde(with = "encoded")]
    pub sketch: Option<DDSketch>,
    /// Σ weight² of the sketched values: with the sketch's count (Σ weight), what
    /// the sample is worth in unweighted values, (Σ w)² / Σ w².
    #[serde(default)]
    pub sample_sq: u64,
    /// A batch's sampled values (value, weight), added to the sketch of the part
    /// they are merged into: the workers do not build a sketch per batch.
    #[serde(skip)]
    samples: Vec<(f64, u64)>,
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
            sample_sq: 0,
            samples: vec![],
        }
    }

    /// The profile of one batch's column; `range` is the baseline's [min, max].
    pub fn of(column: &ArrayRef, sampled: &Sampled, range: Option<(f64, f64)>) -> NumericProfile {
        NumericProfile::measure(column, sampled, range, None)
    }

    /// The same profile, with the column's moments already known (gathered as its
    /// tensor was built, `rows`): only its nulls and sampled values are read.
    pub fn of_moments(
        column: &ArrayRef,
        sampled: &Sampled,
        range: Option<(f64, f64)>,
        moments: Moments,
    ) -> NumericProfile {
        NumericProfile::measure(column, sampled, range, Some(moments))
    }

    fn measure(
        column: &ArrayRef,
        sampled: &Sampled,
        range: Option<(f64, f64)>,
        known: Option<Moments>,
    ) -> NumericProfile {
        let mut p = NumericProfile::empty(range.is_some());
        match column.data_type() {
            DataType::Float64 => p.add(column.as_primitive::<Float64Type>(), sampled, range, known),
            DataType::Float32 => p.add(column.as_primitive::<Float32Type>(), sampled, range, known),
            DataType::Int64 => p.add(column.as_primitive::<Int64Type>(), sampled, range, known),
            DataType::Int32 => p.add(column.as_primitive::<Int32Type>(), sampled, range, known),
            _ => {
                // Other types through the cast table's float64; what does not cast is null.
                let opts = CastOptions {
                    safe: true,
                    ..Default::default()
                };
                match cast_with_options(column, &DataType::Float64, &opts) {
                    Ok(c) => p.add(c.as_primitive::<Float64Type>(), sampled, range, None),
                    Err(_) => {
                        p.rows = column.len() as u64;
                        p.nulls = p.rows;
                    }
                }
            }
        }
        p
    }

    fn add<T>(
        &mut self,
        a: &PrimitiveArray<T>,
        sampled: &Sampled,
        range: Option<(f64, f64)>,
        known: Option<Moments>,
    ) where
        T: ArrowPrimitiveType,
        T::Native: Lanes,
    {
        self.rows = a.len() as u64;
        self.nulls = a.null_count() as u64;
        let values = a.values();
        let m = match a.nulls().filter(|n| n.null_count() > 0) {
            None => known.unwrap_or_else(|| dense_moments(values, range)),
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
        self.samples.reserve(sampled.rows().len());
        for &(row, weight) in sampled.rows() {
            let row = row as usize;
            if a.is_valid(row) {
                let v = values[row].to_f64();
                if v.is_finite() {
                    self.samples.push((v, weight));
                }
            }
        }
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
        self.sample_sq += other.sample_sq;
        self.sketch_samples(&other.samples);
    }

    /// Derived figures for the summary: the standard deviation and the quantiles.
    pub fn finish(&mut self) {
        let samples = std::mem::take(&mut self.samples);
        self.sketch_samples(&samples);
        self.std = (self.count > 0).then(|| (self.m2 / self.count as f64).max(0.0).sqrt());
        // The sketch is of a sample, to 1%: its quantiles are held to the range
        // every value was seen in (a p50 below the minimum would be wrong).
        let (lo, hi) = (
            self.min.unwrap_or(f64::NEG_INFINITY),
            self.max.unwrap_or(f64::INFINITY),
        );
        self.quantiles = match &self.sketch {
            Some(s) => QUANTILES
                .iter()
                .filter_map(|(name, q)| {
                    Some((name.to_string(), s.quantile(*q).ok()??.clamp(lo, hi)))
                })
                .collect(),
            None => vec![],
        };
    }

    fn sketch_samples(&mut self, samples: &[(f64, u64)]) {
        if samples.is_empty() {
            return;
        }
        let sketch = self
            .sketch
            .get_or_insert_with(|| DDSketch::new(sketch_config()));
        for &(v, w) in samples {
            sketch.add_with_count(v, w);
            self.sample_sq += w * w;
        }
    }

    /// What the sketch's sample is worth in unweighted values.
    pub fn effective_sample(&self) -> f64 {
        match self.sample_sq {
            0 => 0.0,
            sq => (self.sampled_weight() as f64).powi(2) / sq as f64,
        }
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

/// Counts, range and moments of a batch's values.
pub struct Moments {
    count: u64,
    nan: u64,
    min: f64,
    max: f64,
    mean: f64,
    m2: f64,
    outside: u64,
}

/// The moments of a column without nulls: the same figures as `moments`, in
/// lanes the compiler keeps in vector registers. Every value is profiled, so this
/// loop is most of what profiling costs (docs/benchmarks.md, "Profiling").
fn dense_moments<T: Lanes>(values: &[T], range: Option<(f64, f64)>) -> Moments {
    let shift = values
        .iter()
        .map(|v| v.to_f64())
        .find(|v| v.is_finite())
        .unwrap_or(0.0);
    let (lo, hi) = range.unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
    let whole = values.len() - values.len() % T::CHUNK;
    let mut m = match range {
        None => T::kernel::<false>(&values[..whole], shift, lo, hi),
        Some(_) => T::kernel::<true>(&values[..whole], shift, lo, hi),
    };
    let tail = moments(values[whole..].iter().map(|v| v.to_f64()), range);
    m.add(&tail, shift);
    Moments::from_sums(m, shift)
}

/// Sums over a chunk of values, before they are turned into `Moments`.
pub(super) struct Sums {
    pub(super) count: u64,
    pub(super) sum: f64,
    pub(super) sq: f64,
    pub(super) min: f64,
    pub(super) max: f64,
    pub(super) outside: u64,
    pub(super) seen: u64,
}

impl Default for Sums {
    /// No values: min and max start at the infinities.
    fn default() -> Sums {
        Sums {
            count: 0,
            sum: 0.0,
            sq: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            outside: 0,
            seen: 0,
        }
    }
}

impl Sums {
    /// Adds the sums of other values (with the same shift).
    fn absorb(&mut self, part: &Sums) {
        self.count += part.count;
        self.sum += part.sum;
        self.sq += part.sq;
        self.min = self.min.min(part.min);
        self.max = self.max.max(part.max);
        self.outside += part.outside;
        self.seen += part.seen;
    }

    fn add(&mut self, tail: &Moments, shift: f64) {
        self.count += tail.count;
        self.sum += tail.sum_d(shift);
        self.sq += tail.sq_d(shift);
        self.min = self.min.min(tail.min);
        self.max = self.max.max(tail.max);
        self.outside += tail.outside;
        self.seen += tail.count + tail.nan;
    }
}

impl Moments {
    pub(super) fn from_sums(s: Sums, shift: f64) -> Moments {
        let mean_d = if s.count > 0 {
            s.sum / s.count as f64
        } else {
            0.0
        };
        Moments {
            count: s.count,
            nan: s.seen - s.count,
            min: s.min,
            max: s.max,
            mean: shift + mean_d,
            m2: (s.sq - s.sum * mean_d).max(0.0),
            outside: s.outside,
        }
    }
}

/// A column type with a vector loop: `CHUNK` values at a time, a value that is
/// not finite replaced by `shift` (a finite value of the column, so min and max
/// are unchanged) and not counted. `RANGE`: count the values outside [lo, hi].
trait Lanes: ToF64 {
    const CHUNK: usize;
    fn kernel<const RANGE: bool>(values: &[Self], shift: f64, lo: f64, hi: f64) -> Sums;
}

impl Lanes for f32 {
    /// Chunks of 128: float32 sums within a chunk, float64 across chunks.
    const CHUNK: usize = 128;

    fn kernel<const RANGE: bool>(values: &[f32], shift: f64, lo: f64, hi: f64) -> Sums {
        let (shift32, lo32, hi32) = (shift as f32, lo as f32, hi as f32);
        #[cfg(target_arch = "x86_64")]
        let sums = if std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX-512F, AVX2 and FMA, checked just above.
            unsafe { avx512::f32_sums::<RANGE>(values, shift32, lo32, hi32) }
        } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            unsafe { avx2::f32_sums::<RANGE>(values, shift32, lo32, hi32) }
        } else {
            portable_f32::<RANGE>(values, shift32, lo32, hi32)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let sums = portable_f32::<RANGE>(values, shift32, lo32, hi32);
        // The float32 sums were of deviations from the float32 shift.
        let drift = shift32 as f64 - shift;
        let n = sums.count as f64;
        Sums {
            sum: sums.sum + drift * n,
            sq: sums.sq + 2.0 * drift * sums.sum + drift * drift * n,
            ..sums
        }
    }
}

/// The float32 loop for CPUs without AVX2 (and the reference its tests compare with).
fn portable_f32<const RANGE: bool>(values: &[f32], shift: f32, lo: f32, hi: f32) -> Sums {
    let mut out = Sums {
        seen: values.len() as u64,
        ..Sums::default()
    };
    for chunk in values.chunks_exact(f32::CHUNK) {
        let (mut s, mut q) = (0.0f32, 0.0f32);
        for &x in chunk {
            let finite = x.is_finite();
            let y = if finite { x } else { shift };
            let d = y - shift;
            s += d;
            q += d * d;
            out.min = out.min.min(y as f64);
            out.max = out.max.max(y as f64);
            out.count += finite as u64;
            if RANGE {
                out.outside += (finite && (y < lo || y > hi)) as u64;
            }
        }
        out.sum += s as f64;
        out.sq += q as f64;
    }
    out
}

/// Explicit AVX2: the compiler's own vectorisation of these loops was 5 times
/// slower (1.3 ns a value, against 0.27), and this loop is most of what
/// profiling costs.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::Sums;

    /// `values.len()` is a multiple of 128 (`f32::CHUNK`). A chunk without NaN or
    /// infinities (the usual case) takes the loop without a blend; one with them
    /// is measured again by the loop that replaces them.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn f32_sums<const RANGE: bool>(
        values: &[f32],
        shift: f32,
        lo: f32,
        hi: f32,
    ) -> Sums {
        let mut total = Sums::default();
        for chunk in values.chunks(128 * 64) {
            // SAFETY: AVX2 and FMA are enabled for this function's callers too.
            let mut part = unsafe { sums::<RANGE, false>(chunk, shift, lo, hi) };
            if part.count < part.seen {
                // SAFETY: as above.
                part = unsafe { sums::<RANGE, true>(chunk, shift, lo, hi) };
            }
            total.absorb(&part);
        }
        total
    }

    /// `BLEND`: values that are not finite replaced by `shift` and not counted;
    /// without it every value is taken as it is, right when all are finite
    /// (`count == seen`).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sums<const RANGE: bool, const BLEND: bool>(
        values: &[f32],
        shift: f32,
        lo: f32,
        hi: f32,
    ) -> Sums {
        let absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let inf = _mm256_set1_ps(f32::INFINITY);
        let (sh, vlo, vhi) = (
            _mm256_set1_ps(shift),
            _mm256_set1_ps(lo),
            _mm256_set1_ps(hi),
        );
        let mut mn = [_mm256_set1_ps(f32::INFINITY); 2];
        let mut mx = [_mm256_set1_ps(f32::NEG_INFINITY); 2];
        let (mut count, mut outside) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        let (mut sum, mut sq) = ([_mm256_setzero_pd(); 2], [_mm256_setzero_pd(); 2]);
        for chunk in values.chunks_exact(128) {
            let (mut s, mut q) = ([_mm256_setzero_ps(); 2], [_mm256_setzero_ps(); 2]);
            for (k, eight) in chunk.chunks_exact(8).enumerate() {
                // SAFETY: `eight` holds 8 floats; an unaligned load reads just them.
                let x = unsafe { _mm256_loadu_ps(eight.as_ptr()) };
                let finite = _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_and_ps(x, absmask), inf);
                let x = if BLEND {
                    _mm256_blendv_ps(sh, x, finite)
                } else {
                    x
                };
                let d = _mm256_sub_ps(x, sh);
                let a = k & 1;
                s[a] = _mm256_add_ps(s[a], d);
                q[a] = _mm256_fmadd_ps(d, d, q[a]);
                mn[a] = _mm256_min_ps(mn[a], x);
                mx[a] = _mm256_max_ps(mx[a], x);
                // A true lane is all ones, -1 as an integer.
                count = _mm256_sub_epi32(count, _mm256_castps_si256(finite));
                if RANGE {
                    let out = _mm256_or_ps(
                        _mm256_cmp_ps::<_CMP_LT_OQ>(x, vlo),
                        _mm256_cmp_ps::<_CMP_GT_OQ>(x, vhi),
                    );
                    let out = if BLEND {
                        _mm256_and_ps(out, finite)
                    } else {
                        out
                    };
                    outside = _mm256_sub_epi32(outside, _mm256_castps_si256(out));
                }
            }
            let (s, q) = (_mm256_add_ps(s[0], s[1]), _mm256_add_ps(q[0], q[1]));
            sum[0] = _mm256_add_pd(sum[0], _mm256_cvtps_pd(_mm256_castps256_ps128(s)));
            sum[1] = _mm256_add_pd(sum[1], _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(s)));
            sq[0] = _mm256_add_pd(sq[0], _mm256_cvtps_pd(_mm256_castps256_ps128(q)));
            sq[1] = _mm256_add_pd(sq[1], _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(q)));
        }
        let mn = _mm256_min_ps(mn[0], mn[1]);
        let mx = _mm256_max_ps(mx[0], mx[1]);
        // SAFETY: AVX2 is enabled for this function.
        unsafe { finish(values.len(), mn, mx, count, outside, sum, sq) }
    }

    /// The lanes' figures added up.
    #[target_feature(enable = "avx2")]
    unsafe fn finish(
        seen: usize,
        mn: __m256,
        mx: __m256,
        count: __m256i,
        outside: __m256i,
        sum: [__m256d; 2],
        sq: [__m256d; 2],
    ) -> Sums {
        let (mut f, mut i) = ([0.0f32; 8], [0i32; 8]);
        let (mut d0, mut d1) = ([0.0f64; 4], [0.0f64; 4]);
        // SAFETY: each store writes a whole local array of the vector's size.
        unsafe {
            _mm256_storeu_ps(f.as_mut_ptr(), mn);
            let min = f.iter().copied().fold(f32::INFINITY, f32::min) as f64;
            _mm256_storeu_ps(f.as_mut_ptr(), mx);
            let max = f.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            _mm256_storeu_si256(i.as_mut_ptr().cast(), count);
            let count: u64 = i.iter().map(|&c| c as u32 as u64).sum();
            _mm256_storeu_si256(i.as_mut_ptr().cast(), outside);
            let outside: u64 = i.iter().map(|&c| c as u32 as u64).sum();
            _mm256_storeu_pd(d0.as_mut_ptr(), _mm256_add_pd(sum[0], sum[1]));
            _mm256_storeu_pd(d1.as_mut_ptr(), _mm256_add_pd(sq[0], sq[1]));
            Sums {
                count,
                sum: d0.iter().sum(),
                sq: d1.iter().sum(),
                min,
                max,
                outside,
                seen: seen as u64,
            }
        }
    }
}

/// AVX-512: sixteen values a vector, and a chunk of values that are all finite
/// (the usual case) takes a loop with no finiteness test at all: a NaN or an
/// infinity makes the sum of squares NaN or infinite, and only then is the chunk
/// measured again, by the AVX2 loop that replaces them. Two to three times fewer
/// instructions a value than the AVX2 loop.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::Sums;

    /// `values.len()` is a multiple of 128 (`f32::CHUNK`).
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn f32_sums<const RANGE: bool>(
        values: &[f32],
        shift: f32,
        lo: f32,
        hi: f32,
    ) -> Sums {
        let mut total = Sums::default();
        for chunk in values.chunks(128 * 64) {
            // SAFETY: AVX-512F, AVX2 and FMA are enabled for this function's callers.
            let part = match unsafe { clean::<RANGE>(chunk, shift, lo, hi) } {
                Some(part) => part,
                // SAFETY: as above.
                None => unsafe { super::avx2::sums::<RANGE, true>(chunk, shift, lo, hi) },
            };
            total.absorb(&part);
        }
        total
    }

    /// The sums of `values`, all taken as they are; None when a value was not
    /// finite (or a square overflowed), which the sum of squares shows.
    #[target_feature(enable = "avx512f")]
    unsafe fn clean<const RANGE: bool>(
        values: &[f32],
        shift: f32,
        lo: f32,
        hi: f32,
    ) -> Option<Sums> {
        let (sh, vlo, vhi) = (
            _mm512_set1_ps(shift),
            _mm512_set1_ps(lo),
            _mm512_set1_ps(hi),
        );
        let mut mn = [_mm512_set1_ps(f32::INFINITY); 2];
        let mut mx = [_mm512_set1_ps(f32::NEG_INFINITY); 2];
        let mut outside = 0u64;
        let (mut sum, mut sq) = ([_mm512_setzero_pd(); 2], [_mm512_setzero_pd(); 2]);
        for chunk in values.chunks_exact(128) {
            let (mut s, mut q) = ([_mm512_setzero_ps(); 2], [_mm512_setzero_ps(); 2]);
            for (k, sixteen) in chunk.chunks_exact(16).enumerate() {
                // SAFETY: `sixteen` holds 16 floats; an unaligned load reads just them.
                let x = unsafe { _mm512_loadu_ps(sixteen.as_ptr()) };
                let d = _mm512_sub_ps(x, sh);
                let a = k & 1;
                s[a] = _mm512_add_ps(s[a], d);
                q[a] = _mm512_fmadd_ps(d, d, q[a]);
                mn[a] = _mm512_min_ps(mn[a], x);
                mx[a] = _mm512_max_ps(mx[a], x);
                if RANGE {
                    let out = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, vlo)
                        | _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, vhi);
                    outside += u64::from(out.count_ones());
                }
            }
            let (s, q) = (_mm512_add_ps(s[0], s[1]), _mm512_add_ps(q[0], q[1]));
            let high =
                |v: __m512| _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
            sum[0] = _mm512_add_pd(sum[0], _mm512_cvtps_pd(_mm512_castps512_ps256(s)));
            sum[1] = _mm512_add_pd(sum[1], _mm512_cvtps_pd(high(s)));
            sq[0] = _mm512_add_pd(sq[0], _mm512_cvtps_pd(_mm512_castps512_ps256(q)));
            sq[1] = _mm512_add_pd(sq[1], _mm512_cvtps_pd(high(q)));
        }
        let sum = _mm512_reduce_add_pd(_mm512_add_pd(sum[0], sum[1]));
        let sq = _mm512_reduce_add_pd(_mm512_add_pd(sq[0], sq[1]));
        if !(sum.is_finite() && sq.is_finite()) {
            return None;
        }
        let n = values.len() as u64;
        Some(Sums {
            count: n,
            sum,
            sq,
            min: f64::from(_mm512_reduce_min_ps(_mm512_min_ps(mn[0], mn[1]))),
            max: f64::from(_mm512_reduce_max_ps(_mm512_max_ps(mx[0], mx[1]))),
            outside,
            seen: n,
        })
    }

    #[cfg(test)]
    pub fn available() -> bool {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
    }
}

macro_rules! wide_lanes {
    ($($t:ty),*) => {$(
        impl Lanes for $t {
            const CHUNK: usize = 8;

            #[inline(always)]
            fn kernel<const RANGE: bool>(values: &[$t], shift: f64, lo: f64, hi: f64) -> Sums {
                wide_kernel::<$t, RANGE>(values, shift, lo, hi)
            }
        }
    )*};
}
wide_lanes!(f64, i64, i32);

/// Lanes of float64 accumulators.
#[inline(always)]
fn wide_kernel<T: ToF64, const RANGE: bool>(values: &[T], shift: f64, lo: f64, hi: f64) -> Sums {
    const L: usize = 8;
    let (mut sum, mut sq) = ([0.0f64; L], [0.0f64; L]);
    let (mut min, mut max) = ([f64::INFINITY; L], [f64::NEG_INFINITY; L]);
    let (mut count, mut outside) = ([0u64; L], [0u64; L]);
    for chunk in values.chunks_exact(L) {
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
            if RANGE {
                outside[j] += ((y < lo) | (y > hi)) as u64 & finite as u64;
            }
        }
    }
    Sums {
        count: count.iter().sum(),
        sum: sum.iter().sum(),
        sq: sq.iter().sum(),
        min: min.iter().copied().fold(f64::INFINITY, f64::min),
        max: max.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        outside: outside.iter().sum(),
        seen: values.len() as u64,
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

/// A sketch in JSON: its standard binary encoding in base64, a few bytes per
/// bucket instead of a number per bucket of its whole range.
mod encoded {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};
    use sketches_ddsketch::DDSketch;

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: Serializer>(sketch: &Option<DDSketch>, s: S) -> Result<S::Ok, S::Error> {
        match sketch {
            Some(k) => s.serialize_some(&B64.encode(k.to_java_bytes())),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DDSketch>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let bytes = B64.decode(text).map_err(serde::de::Error::custom)?;
        DDSketch::from_java_bytes(&bytes)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("a sketch that does not decode: {e:?}")))
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
        let m = dense_moments(&values, range);
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
        let unranged = dense_moments(&values, None);
        assert_eq!((unranged.count, unranged.outside), (plain.count, 0));
        // Float32 values: the float32 sums within chunks of 128 stay within 1e-6.
        let single: Vec<f32> = values.iter().map(|v| *v as f32).collect();
        let exact = moments(single.iter().map(|v| *v as f64), range);
        for m in [dense_moments(&single, range), dense_moments(&single, None)] {
            assert_eq!((m.count, m.nan), (exact.count, exact.nan));
            assert_eq!((m.min, m.max), (exact.min, exact.max));
            assert!((m.mean - exact.mean).abs() < 1e-6 * exact.mean.abs().max(1.0));
            assert!(
                (m.m2 / exact.m2 - 1.0).abs() < 1e-6,
                "{} {}",
                m.m2,
                exact.m2
            );
        }
        assert_eq!(dense_moments(&single, range).outside, exact.outside);
        let ints: Vec<i64> = (0..77).collect();
        let m = dense_moments(&ints, Some((0.0, 70.0)));
        assert_eq!(
            (m.count, m.outside, m.min, m.max, m.mean),
            (77, 6, 0.0, 76.0, 38.0)
        );
    }

    #[test]
    fn the_float32_loops_agree_with_each_other() {
        let clean: Vec<f32> = (0..1280)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.37 - 50.0)
            .collect();
        let mut dirty = clean.clone();
        dirty[3] = f32::NAN;
        dirty[700] = f32::NEG_INFINITY;
        for (values, finite) in [(&clean, 1280), (&dirty, 1278)] {
            for range in [false, true] {
                let portable = match range {
                    true => portable_f32::<true>(values, 1.5, -40.0, 300.0),
                    false => portable_f32::<false>(values, 1.5, -40.0, 300.0),
                };
                let mut loops = vec![match range {
                    true => f32::kernel::<true>(values, 1.5, -40.0, 300.0),
                    false => f32::kernel::<false>(values, 1.5, -40.0, 300.0),
                }];
                // Each vector loop this CPU can run, whichever the kernel picks.
                #[cfg(target_arch = "x86_64")]
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has AVX2 and FMA, checked just above.
                    loops.push(unsafe {
                        match range {
                            true => avx2::f32_sums::<true>(values, 1.5, -40.0, 300.0),
                            false => avx2::f32_sums::<false>(values, 1.5, -40.0, 300.0),
                        }
                    });
                }
                #[cfg(target_arch = "x86_64")]
                if avx512::available() {
                    // SAFETY: the CPU has AVX-512F, AVX2 and FMA, checked just above.
                    loops.push(unsafe {
                        match range {
                            true => avx512::f32_sums::<true>(values, 1.5, -40.0, 300.0),
                            false => avx512::f32_sums::<false>(values, 1.5, -40.0, 300.0),
                        }
                    });
                }
                let figures = |s: &Sums| (s.count, s.outside, s.min, s.max, s.seen);
                assert_eq!(portable.count, finite);
                for chosen in &loops {
                    assert_eq!(figures(chosen), figures(&portable));
                    assert!((chosen.sum / portable.sum - 1.0).abs() < 1e-6);
                    assert!((chosen.sq / portable.sq - 1.0).abs() < 1e-6);
                }
            }
        }
    }

    #[test]
    fn a_sketch_read_back_from_json_gives_the_same_shares_and_quantiles() {
        let p = profile(
            (0..5000)
                .map(|i| Some((i as f64 - 2500.0) * 0.37))
                .collect(),
        );
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.len() < 4000, "{} bytes", json.len());
        let back: NumericProfile = serde_json::from_str(&json).unwrap();
        let (a, b) = (p.sketch.as_ref().unwrap(), back.sketch.as_ref().unwrap());
        assert_eq!(a.count(), b.count());
        for q in [0.01, 0.1, 0.5, 0.77, 0.99] {
            let e = a.quantile(q).unwrap().unwrap();
            assert_eq!(e, b.quantile(q).unwrap().unwrap());
            assert_eq!(share_below(a, e), share_below(b, e));
        }
        assert_eq!(back.sample_sq, p.sample_sq);
    }

    #[test]
    fn quantiles_are_within_the_sketch_accuracy() {
        let p = profile((1..=10_000).map(|i| Some(i as f64)).collect());
        let median = p.quantiles.iter().find(|(n, _)| n == "p50").unwrap().1;
        assert!((median / 5000.0 - 1.0).abs() < 0.02, "{median}");
    }

    #[test]
    fn quantiles_stay_within_the_values_seen() {
        // A sketch's bucket holds values within 1% of its representative value,
        // which can lie below the smallest value or above the largest.
        let p = profile(vec![Some(0.2446), Some(0.2446), Some(0.75), Some(0.2446)]);
        let (min, max) = (p.min.unwrap(), p.max.unwrap());
        for (name, q) in &p.quantiles {
            assert!((min..=max).contains(q), "{name} {q} outside [{min}, {max}]");
        }
        let p50 = p.quantiles.iter().find(|(n, _)| n == "p50").unwrap().1;
        assert_eq!(p50, 0.2446);
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
