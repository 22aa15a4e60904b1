//! Which rows feed the quantile sketches. Adding a value to a DDSketch costs a
//! logarithm (about 13 ns); counts, moments and ranges are over every row, the
//! sketches over a sample: every row of the first `HEAD` positions of the run,
//! then one row in 2 up to position 2·HEAD, one in 4 up to 4·HEAD, and so on to
//! one in `RATE`, each at an offset a hash of its block of positions picks and
//! counted as many times as it stands for. The rate rises gradually so that no
//! few heavy rows outweigh the rest: the sample is worth about 1.5·HEAD
//! unweighted rows at any input size, and more past 512·HEAD positions. A row's
//! position is its place in input order, so the sample, like the merged sketch,
//! is the same whatever the thread count and batch size.

/// Positions at the start of a run that are all sketched.
pub const HEAD: u64 = 4096;
/// The lowest sampling rate: one row in this many.
pub const RATE: u64 = 1024;

/// One row in how many is sketched at position `p`.
pub fn rate_at(p: u64) -> u64 {
    if p < HEAD {
        return 1;
    }
    // Band k ≥ 1 is [HEAD·2^(k-1), HEAD·2^k), at one row in 2^k.
    let band = 64 - (p / HEAD).leading_zeros() as u64;
    (1u64 << band.min(RATE.trailing_zeros() as u64)).min(RATE)
}

/// The sampled rows of a batch: (row in the batch, weight).
#[derive(Debug, Default, Clone)]
pub struct Sampled(Vec<(u32, u64)>);

impl Sampled {
    /// The rows whose run positions `position(i)` are sampled, for `n` rows.
    pub fn of(n: usize, position: impl Fn(usize) -> u64) -> Sampled {
        // Positions come in runs: a block's hash is computed once per block.
        let mut block = (u64::MAX, 0, 0);
        let mut rows = vec![];
        for i in 0..n {
            let p = position(i);
            if p < HEAD {
                rows.push((i as u32, 1));
                continue;
            }
            let rate = rate_at(p);
            if (block.0, block.1) != (p / rate, rate) {
                block = (p / rate, rate, mix(p / rate) % rate);
            }
            if p % rate == block.2 {
                rows.push((i as u32, rate));
            }
        }
        Sampled(rows)
    }

    /// The same sample as [`Sampled::of`] over the `n` consecutive positions from
    /// `first` (a batch no filter thinned), found block by block: a block of
    /// `rate` positions never straddles a change of rate, since each band starts
    /// at a multiple of its rate.
    pub fn of_range(first: u64, n: usize) -> Sampled {
        let end = first + n as u64;
        let mut rows = vec![];
        let mut p = first;
        while p < end {
            if p < HEAD {
                let stop = end.min(HEAD);
                rows.extend((p..stop).map(|q| ((q - first) as u32, 1)));
                p = stop;
                continue;
            }
            let rate = rate_at(p);
            let block = p / rate;
            let pick = block * rate + mix(block) % rate;
            if (p..end).contains(&pick) {
                rows.push(((pick - first) as u32, rate));
            }
            p = (block + 1) * rate;
        }
        Sampled(rows)
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
    fn a_range_of_positions_is_sampled_as_row_by_row() {
        let edges = [
            0,
            1,
            HEAD - 3,
            HEAD,
            2 * HEAD - 5,
            3 * HEAD + 7,
            128 * HEAD - 100,
            1 << 33,
        ];
        for first in edges {
            for n in [0, 1, 5, 300, 8192, 20_000] {
                let by_row = Sampled::of(n, |i| first + i as u64);
                assert_eq!(Sampled::of_range(first, n).0, by_row.0, "{first} + {n}");
            }
        }
    }

    #[test]
    fn the_rate_doubles_band_by_band_up_to_its_limit() {
        let rates: Vec<u64> = [
            0,
            HEAD - 1,
            HEAD,
            2 * HEAD - 1,
            2 * HEAD,
            4 * HEAD,
            128 * HEAD,
            1 << 40,
        ]
        .iter()
        .map(|&p| rate_at(p))
        .collect();
        assert_eq!(rates, [1, 1, 2, 2, 4, 8, 256, 1024]);
        // Worth about 1.5·HEAD unweighted rows at 20 × HEAD positions.
        let s = Sampled::of(20 * HEAD as usize, |i| i as u64);
        let (w, w2) = s.rows().iter().fold((0.0, 0.0), |(a, b), (_, w)| {
            (a + *w as f64, b + (*w * *w) as f64)
        });
        assert!((w / (20 * HEAD) as f64 - 1.0).abs() < 0.01, "{w}");
        let effective = w * w / w2;
        assert!(effective > 1.2 * HEAD as f64, "{effective}");
    }

    #[test]
    fn the_head_is_whole_and_the_rest_one_in_rate() {
        let head = Sampled::of(HEAD as usize, |i| i as u64);
        assert_eq!(head.rows().len(), HEAD as usize);
        let n = 1_000_000;
        let tail = Sampled::of(n, |i| 128 * HEAD + i as u64);
        let weight: u64 = tail.rows().iter().map(|(_, w)| w).sum();
        assert!((weight as f64 / n as f64 - 1.0).abs() < 0.001, "{weight}");
        // One row in each block, not always at the same offset.
        let offsets: std::collections::HashSet<u64> = tail
            .rows()
            .iter()
            .map(|(r, _)| (128 * HEAD + *r as u64) % RATE)
            .collect();
        assert!(offsets.len() > RATE as usize / 2, "{}", offsets.len());
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
