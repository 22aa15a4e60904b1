//! Which rows feed the quantile sketches. Adding a value to a DDSketch costs a
//! logarithm (about 13 ns); counts, moments and ranges are over every row, the
//! sketches over a sample: every row of the first `HEAD` rows of the run, then one
//! row in `RATE`, picked by a hash of the row's position in the run and counted
//! `RATE` times. A row's position is its place in input order, so the sample, like
//! the merged sketch, is the same whatever the thread count and batch size.

/// Rows at the start of a run that are all sketched (small inputs get exact bins).
pub const HEAD: u64 = 16_384;
/// One row in this many is sketched after the head, with this weight.
pub const RATE: u64 = 64;

/// The sampled rows of a batch: (row in the batch, weight).
#[derive(Debug, Default, Clone)]
pub struct Sampled(Vec<(u32, u64)>);

impl Sampled {
    /// The rows whose run positions `position(i)` are sampled, for `n` rows.
    pub fn of(n: usize, position: impl Fn(usize) -> u64) -> Sampled {
        Sampled(
            (0..n)
                .filter_map(|i| weight(position(i)).map(|w| (i as u32, w)))
                .collect(),
        )
    }

    /// Every row, weight 1 (tests).
    #[cfg(test)]
    pub fn every_row(n: usize) -> Sampled {
        Sampled((0..n as u32).map(|i| (i, 1)).collect())
    }

    pub fn rows(&self) -> &[(u32, u64)] {
        &self.0
    }

    /// The same sample over a subset of the rows: `kept[j]` is the row of the
    /// batch that row `j` of the subset is.
    pub fn within(&self, kept: &[u32]) -> Sampled {
        let mut out = vec![];
        let mut s = self.0.iter().peekable();
        for (j, &row) in kept.iter().enumerate() {
            while s.peek().is_some_and(|(r, _)| *r < row) {
                s.next();
            }
            if let Some(&&(r, w)) = s.peek() {
                if r == row {
                    out.push((j as u32, w));
                }
            }
        }
        Sampled(out)
    }
}

/// The weight of the row at run position `p`, if it is sampled.
fn weight(p: u64) -> Option<u64> {
    if p < HEAD {
        return Some(1);
    }
    (mix(p).is_multiple_of(RATE)).then_some(RATE)
}

/// SplitMix64's finaliser: neighbouring positions get unrelated bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_is_whole_and_the_rest_one_in_rate() {
        let head = Sampled::of(HEAD as usize, |i| i as u64);
        assert_eq!(head.rows().len(), HEAD as usize);
        let n = 1_000_000;
        let tail = Sampled::of(n, |i| HEAD + i as u64);
        let weight: u64 = tail.rows().iter().map(|(_, w)| w).sum();
        assert!((weight as f64 / n as f64 - 1.0).abs() < 0.02, "{weight}");
    }

    #[test]
    fn the_sample_depends_on_positions_not_on_batches() {
        let whole = Sampled::of(100_000, |i| 50_000 + i as u64);
        let mut pieces = vec![];
        for start in (0..100_000).step_by(8192) {
            let n = (100_000 - start).min(8192);
            let b = Sampled::of(n, |i| 50_000 + (start + i) as u64);
            pieces.extend(b.rows().iter().map(|(r, w)| (*r + start as u32, *w)));
        }
        assert_eq!(whole.rows(), &pieces[..]);
    }

    #[test]
    fn a_subset_keeps_its_sampled_rows() {
        let s = Sampled::every_row(6);
        let sub = s.within(&[1, 3, 4]);
        assert_eq!(sub.rows(), &[(0, 1), (1, 1), (2, 1)]);
        let sparse = Sampled(vec![(2, 64), (5, 64)]);
        assert_eq!(sparse.within(&[0, 2, 4, 5]).rows(), &[(1, 64), (3, 64)]);
    }
}
