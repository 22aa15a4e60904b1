//! What the scoring workers measure: values that add, returned by each worker
//! and reduced; the summary is derived from them.

use std::ops::Add;

/// What scoring workers measure; values add up across workers.
#[derive(Debug, Default, Clone)]
pub struct WorkerStats {
    pub rows: u64,
    pub score_s: f64,
    /// Seconds per batch, one entry per batch scored.
    pub batch_s: Vec<f64>,
    /// NaN values among float predictions.
    pub nan_predictions: u64,
    /// Seconds spent in each model (several models share each batch).
    pub model_s: Vec<f64>,
}

impl Add for WorkerStats {
    type Output = WorkerStats;
    fn add(mut self, other: WorkerStats) -> WorkerStats {
        self.rows += other.rows;
        self.score_s += other.score_s;
        self.batch_s.extend(other.batch_s);
        self.nan_predictions += other.nan_predictions;
        if self.model_s.len() < other.model_s.len() {
            self.model_s.resize(other.model_s.len(), 0.0);
        }
        for (a, b) in self.model_s.iter_mut().zip(other.model_s) {
            *a += b;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_add_up() {
        let a = WorkerStats {
            rows: 3,
            score_s: 1.0,
            batch_s: vec![1.0],
            nan_predictions: 1,
            model_s: vec![0.25, 0.75],
        };
        let b = WorkerStats {
            rows: 4,
            score_s: 2.0,
            batch_s: vec![2.0],
            nan_predictions: 2,
            model_s: vec![0.5, 1.5],
        };
        let s = a + b;
        assert_eq!(
            (s.rows, s.score_s, s.batch_s.len(), s.nan_predictions),
            (7, 3.0, 2, 3)
        );
        assert_eq!(s.model_s, [0.75, 2.25]);
    }
}
