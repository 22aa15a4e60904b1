//! The moments of float32 model inputs, gathered while their tensor is built.
//!
//! A model's float32 input tensor is written in blocks of rows that stay in L1
//! (`model::tensors`); adding each block's values to per-feature sums right
//! there costs a fraction of a second pass over the columns, which on a cheap
//! model was the largest part of what profiling costs (the column data comes
//! from the decoding threads, through the shared cache, a second time).
//!
//! Contract: [`RowSums::add_block`] takes the tensor's rows in order, block by
//! block; [`RowSums::moments`] then gives feature `j`'s moments over every row
//! added, the same figures `NumericProfile` computes from the column (to the
//! last digits of the mean and the variance), or None when a value was not
//! finite (a NaN, an infinity, a null the tensor holds as NaN) or a square
//! overflowed: then the profile measures that column itself, as without a tap.
//! Only on CPUs with AVX-512 ([`RowSums::new`] is None elsewhere, and the
//! column's own loop runs).

use super::numeric::{Moments, Sums};

/// The sums of a batch's tapped inputs: per model, per input (None: not tapped).
#[derive(Debug, Clone, Default)]
pub struct InputSums(pub Vec<Vec<Option<RowSums>>>);

/// Features a vector holds.
const LANES: usize = 16;

/// Per-feature sums of the rows of one float32 tensor, `f` features wide.
#[derive(Debug, Clone)]
pub struct RowSums {
    f: usize,
    ranged: bool,
    /// Per feature, padded to whole vectors: the baseline's range (the
    /// infinities without one), the first row's value the sums are of
    /// deviations from, and the sums.
    lo: Vec<f32>,
    hi: Vec<f32>,
    shift: Vec<f32>,
    sum: Vec<f64>,
    sq: Vec<f64>,
    min: Vec<f32>,
    max: Vec<f32>,
    outside: Vec<u64>,
    rows: u64,
}

impl RowSums {
    /// Sums for a tensor of `ranges.len()` features; a feature's range (from a
    /// baseline) makes its values outside it counted. None without AVX-512.
    pub fn new(ranges: &[Option<(f64, f64)>]) -> Option<RowSums> {
        if !available() || ranges.is_empty() {
            return None;
        }
        let f = ranges.len();
        let padded = f.div_ceil(LANES) * LANES;
        let mut lo = vec![f32::NEG_INFINITY; padded];
        let mut hi = vec![f32::INFINITY; padded];
        for (j, r) in ranges.iter().enumerate() {
            if let Some((a, b)) = r {
                (lo[j], hi[j]) = (*a as f32, *b as f32);
            }
        }
        Some(RowSums {
            f,
            ranged: ranges.iter().any(Option::is_some),
            lo,
            hi,
            shift: vec![0.0; padded],
            sum: vec![0.0; padded],
            sq: vec![0.0; padded],
            min: vec![f32::INFINITY; padded],
            max: vec![f32::NEG_INFINITY; padded],
            outside: vec![0; padded],
            rows: 0,
        })
    }

    /// Features wide.
    pub fn width(&self) -> usize {
        self.f
    }

    /// Adds the next rows of the tensor (`rows.len()` a multiple of the width).
    pub fn add_block(&mut self, rows: &[f32]) {
        let n = rows.len() / self.f;
        if n == 0 {
            return;
        }
        if self.rows == 0 {
            self.shift[..self.f].copy_from_slice(&rows[..self.f]);
        }
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: a RowSums exists only where the CPU has AVX-512F (`new`),
            // and `rows` holds n whole rows of `f` values.
            unsafe {
                if self.ranged {
                    avx512::add::<true>(self, &rows[..n * self.f], n);
                } else {
                    avx512::add::<false>(self, &rows[..n * self.f], n);
                }
            }
        }
        self.rows += n as u64;
    }

    /// Feature `j`'s moments over the rows added; None when one of its values was
    /// not finite (or no row was added).
    pub fn moments(&self, j: usize) -> Option<Moments> {
        let (sum, sq) = (self.sum[j], self.sq[j]);
        if self.rows == 0 || !(sum.is_finite() && sq.is_finite()) {
            return None;
        }
        let sums = Sums {
            count: self.rows,
            sum,
            sq,
            min: f64::from(self.min[j]),
            max: f64::from(self.max[j]),
            outside: self.outside[j],
            seen: self.rows,
        };
        Some(Moments::from_sums(sums, f64::from(self.shift[j])))
    }
}

fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{RowSums, LANES};

    /// Sixteen features at a time, down the block's rows (two sets of float32
    /// accumulators, even and odd rows), then added to the float64 sums.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn add<const RANGE: bool>(s: &mut RowSums, rows: &[f32], n: usize) {
        let f = s.f;
        for k in (0..f).step_by(LANES) {
            let width = (f - k).min(LANES);
            let mask: __mmask16 = if width == LANES {
                0xffff
            } else {
                (1u16 << width) - 1
            };
            // SAFETY: the per-feature vectors are padded to whole vectors, so
            // each full-width access at `k` stays inside them; the row loads are
            // masked to the row's `width` values from `k`, inside `rows`.
            unsafe {
                let sh = _mm512_loadu_ps(s.shift.as_ptr().add(k));
                let (lo, hi) = (
                    _mm512_loadu_ps(s.lo.as_ptr().add(k)),
                    _mm512_loadu_ps(s.hi.as_ptr().add(k)),
                );
                let (mut s0, mut s1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
                let (mut q0, mut q1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
                let (mut mn0, mut mn1) =
                    (_mm512_set1_ps(f32::INFINITY), _mm512_set1_ps(f32::INFINITY));
                let (mut mx0, mut mx1) = (
                    _mm512_set1_ps(f32::NEG_INFINITY),
                    _mm512_set1_ps(f32::NEG_INFINITY),
                );
                let (mut out0, mut out1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
                let one = _mm512_set1_epi32(1);
                let base = rows.as_ptr().add(k);
                // One row into one set of accumulators (named, so that they stay in
                // registers).
                macro_rules! row {
                    ($r:expr, $s:ident, $q:ident, $mn:ident, $mx:ident, $out:ident) => {{
                        let x = _mm512_maskz_loadu_ps(mask, base.add($r * f));
                        let d = _mm512_sub_ps(x, sh);
                        $s = _mm512_add_ps($s, d);
                        $q = _mm512_fmadd_ps(d, d, $q);
                        $mn = _mm512_min_ps($mn, x);
                        $mx = _mm512_max_ps($mx, x);
                        if RANGE {
                            let o = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, lo)
                                | _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, hi);
                            $out = _mm512_mask_add_epi32($out, o & mask, $out, one);
                        }
                    }};
                }
                let mut r = 0;
                while r + 1 < n {
                    row!(r, s0, q0, mn0, mx0, out0);
                    row!(r + 1, s1, q1, mn1, mx1, out1);
                    r += 2;
                }
                if r < n {
                    row!(r, s0, q0, mn0, mx0, out0);
                }
                let total_s = _mm512_add_ps(s0, s1);
                let total_q = _mm512_add_ps(q0, q1);
                let high =
                    |v: __m512| _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
                for (sums, v) in [(&mut s.sum, total_s), (&mut s.sq, total_q)] {
                    let p = sums.as_mut_ptr().add(k);
                    let lo8 = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
                    let hi8 = _mm512_cvtps_pd(high(v));
                    _mm512_storeu_pd(p, _mm512_add_pd(_mm512_loadu_pd(p), lo8));
                    _mm512_storeu_pd(p.add(8), _mm512_add_pd(_mm512_loadu_pd(p.add(8)), hi8));
                }
                let pm = s.min.as_mut_ptr().add(k);
                _mm512_storeu_ps(
                    pm,
                    _mm512_min_ps(_mm512_loadu_ps(pm), _mm512_min_ps(mn0, mn1)),
                );
                let px = s.max.as_mut_ptr().add(k);
                _mm512_storeu_ps(
                    px,
                    _mm512_max_ps(_mm512_loadu_ps(px), _mm512_max_ps(mx0, mx1)),
                );
                if RANGE {
                    let mut counts = [0u32; LANES];
                    _mm512_storeu_si512(counts.as_mut_ptr().cast(), _mm512_add_epi32(out0, out1));
                    for (o, c) in s.outside[k..k + LANES].iter_mut().zip(counts) {
                        *o += u64::from(c);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::numeric::NumericProfile;
    use crate::profile::sample::Sampled;
    use arrow::array::{ArrayRef, Float32Array};
    use std::sync::Arc;

    /// Row-major values of `f` features × `n` rows, and the columns they come from.
    fn table(n: usize, f: usize) -> (Vec<f32>, Vec<ArrayRef>) {
        let value = |i: usize, j: usize| {
            let x = ((i * 7919 + j * 104_729) % 10_007) as f32 / 10_007.0;
            1000.0 * j as f32 + (x - 0.5) * (j + 1) as f32
        };
        let rows = (0..n)
            .flat_map(|i| (0..f).map(move |j| value(i, j)))
            .collect();
        let columns = (0..f)
            .map(|j| {
                Arc::new(Float32Array::from_iter_values((0..n).map(|i| value(i, j)))) as ArrayRef
            })
            .collect();
        (rows, columns)
    }

    #[test]
    fn block_sums_match_the_columns_own_moments() {
        if !available() {
            assert!(RowSums::new(&[None]).is_none(), "no tap without AVX-512");
            return;
        }
        for f in [1, 15, 16, 17, 30, 40] {
            let n = 1000;
            let (rows, columns) = table(n, f);
            let ranges: Vec<_> = (0..f)
                .map(|j| (j % 2 == 0).then_some((1000.0 * j as f64 - 0.1, 1000.0 * j as f64 + 0.2)))
                .collect();
            let mut sums = RowSums::new(&ranges).expect("AVX-512");
            // Blocks of 256 rows, the last one short, as the tensor is built.
            for block in rows.chunks(256 * f) {
                sums.add_block(block);
            }
            for (j, column) in columns.iter().enumerate() {
                let from_column = NumericProfile::of(column, &Sampled::default(), ranges[j]);
                let mut from_rows = NumericProfile::of_moments(
                    column,
                    &Sampled::default(),
                    ranges[j],
                    sums.moments(j).expect("finite"),
                );
                let mut a = from_column.clone();
                a.finish();
                from_rows.finish();
                assert_eq!(
                    (a.count, a.nan, a.min, a.max),
                    (from_rows.count, from_rows.nan, from_rows.min, from_rows.max),
                    "f {f} j {j}"
                );
                assert_eq!(
                    a.outside_baseline, from_rows.outside_baseline,
                    "f {f} j {j}"
                );
                let close = |x: f64, y: f64| (x - y).abs() <= 1e-5 * (1.0 + x.abs());
                assert!(
                    close(a.mean.unwrap(), from_rows.mean.unwrap()),
                    "f {f} j {j}: {:?} {:?}",
                    a.mean,
                    from_rows.mean
                );
                assert!(
                    close(a.std.unwrap(), from_rows.std.unwrap()),
                    "f {f} j {j}: {:?} {:?}",
                    a.std,
                    from_rows.std
                );
            }
        }
    }

    #[test]
    fn a_value_that_is_not_finite_leaves_its_feature_to_the_column() {
        if !available() {
            return assert!(RowSums::new(&[None]).is_none());
        }
        let f = 3;
        let (mut rows, _) = table(300, f);
        rows[5 * f + 1] = f32::NAN;
        rows[7 * f + 2] = f32::INFINITY;
        let mut sums = RowSums::new(&[None; 3]).expect("AVX-512");
        sums.add_block(&rows);
        assert!(sums.moments(0).is_some());
        assert!(sums.moments(1).is_none());
        assert!(sums.moments(2).is_none());
    }
}
