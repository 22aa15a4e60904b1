//! Dot products over feature rows with eight independent partial sums, so the
//! compiler vectorises them: a plain `.sum()` of f32 must add in order and runs
//! at one add per add-latency. The summation order differs from a sequential
//! sum by rounding only (the golden tests hold to 1e-5 against onnxruntime).

const LANES: usize = 8;

/// Σ a[i]·b[i].
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    fold(a, b, |x, y| x * y)
}

/// Σ (a[i] − b[i])².
#[inline]
pub fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    fold(a, b, |x, y| (x - y) * (x - y))
}

#[inline(always)]
fn fold(a: &[f32], b: &[f32], term: impl Fn(f32, f32) -> f32) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let chunks = n / LANES * LANES;
    for (ca, cb) in a[..chunks]
        .chunks_exact(LANES)
        .zip(b[..chunks].chunks_exact(LANES))
    {
        for l in 0..LANES {
            acc[l] += term(ca[l], cb[l]);
        }
    }
    let mut sum = acc.iter().sum::<f32>();
    for (x, y) in a[chunks..].iter().zip(&b[chunks..]) {
        sum += term(*x, *y);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_sequential_sum_on_exact_values() {
        for n in [0, 1, 7, 8, 9, 30, 64] {
            let a: Vec<f32> = (0..n).map(|i| i as f32).collect();
            let b: Vec<f32> = (0..n).map(|i| (i % 5) as f32 - 2.0).collect();
            let seq: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert_eq!(dot(&a, &b), seq, "n = {n}");
            let d: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
            assert_eq!(squared_distance(&a, &b), d, "n = {n}");
        }
    }
}
