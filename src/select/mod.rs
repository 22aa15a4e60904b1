//! Which rows are scored, and with which derived columns: `--sample`, then
//! `--with`, `--filter` or `--sql` (polars SQL, behind the default `polars`
//! feature), applied to each batch on the workers; `--limit` is applied by the
//! writer, which sees the rows in order.

#[cfg(feature = "polars")]
mod bridge;
#[cfg(feature = "polars")]
mod sql;
#[cfg(feature = "polars")]
mod transform;

use std::sync::Arc;

use anyhow::{bail, Result};
use arrow::array::BooleanArray;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::source::Pruner;

/// `--with`, `--filter` and `--sql` as given, in the order they apply (a build
/// without polars refuses them).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct TransformSpec {
    /// `--with NAME=EXPR`, in order (each may use the ones before).
    pub with: Vec<(String, String)>,
    pub filter: Option<String>,
    pub sql: Option<String>,
}

impl TransformSpec {
    pub fn is_empty(&self) -> bool {
        self.with.is_empty() && self.filter.is_none() && self.sql.is_none()
    }
}

/// The selection options of a run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SelectSpec {
    pub transform: TransformSpec,
    /// Fraction of the input rows to score, chosen by `seed`.
    pub sample: Option<f64>,
    pub seed: u64,
    /// Stop after this many output rows.
    pub limit: Option<u64>,
}

impl SelectSpec {
    pub fn is_empty(&self) -> bool {
        self.transform.is_empty() && self.sample.is_none() && self.limit.is_none()
    }
}

/// The rows of a batch, as indices in their input file.
#[derive(Debug, Clone, PartialEq)]
pub enum RowNumbers {
    /// Consecutive rows from this one.
    From(u64),
    /// Rows picked by a filter or a sample.
    Picked(Arc<[u64]>),
}

impl RowNumbers {
    /// The input row of the batch's row `i`.
    pub fn at(&self, i: usize) -> u64 {
        match self {
            RowNumbers::From(first) => first + i as u64,
            RowNumbers::Picked(rows) => rows[i],
        }
    }

    /// The rows of a batch of `n` rows, for messages.
    pub fn describe(&self, n: usize) -> String {
        match (self, n) {
            (_, 0) => "no rows".into(),
            (RowNumbers::From(first), n) => format!("rows {first}..{}", first + n as u64),
            (RowNumbers::Picked(_), n) => {
                format!(
                    "{n} selected rows between row {} and row {}",
                    self.at(0),
                    self.at(n - 1)
                )
            }
        }
    }
}

/// A checked selection, shared by the workers.
pub struct Selection {
    sample: Option<(f64, u64)>,
    /// Per input file, the hash of its path that `--sample` mixes in.
    file_keys: Vec<u64>,
    #[cfg(feature = "polars")]
    transform: Option<transform::Transform>,
    /// The batches the transform returns (set by [`Selection::plan`]).
    schema: Option<SchemaRef>,
    pub limit: Option<u64>,
}

impl Selection {
    /// Checks the options (usage errors; nothing is opened).
    pub fn new(spec: &SelectSpec) -> Result<Selection> {
        if let Some(f) = spec.sample {
            if !(f > 0.0 && f <= 1.0) {
                bail!("--sample {f}: give a fraction of the rows, more than 0 and at most 1 (0.01 is 1%)");
            }
        }
        if spec.limit == Some(0) {
            bail!("--limit must be at least 1");
        }
        #[cfg(feature = "polars")]
        let transform = if spec.transform.is_empty() {
            None
        } else {
            Some(transform::Transform::new(&spec.transform)?)
        };
        #[cfg(not(feature = "polars"))]
        if !spec.transform.is_empty() {
            bail!("--filter, --with and --sql need polars, and this batchinfer was built without it; rebuild with the default features (cargo build --release)");
        }
        Ok(Selection {
            sample: spec.sample.map(|f| (f, spec.seed)),
            file_keys: vec![],
            #[cfg(feature = "polars")]
            transform,
            schema: None,
            limit: spec.limit,
        })
    }

    /// Whether this selection can leave out input rows (so an empty result is fine).
    pub fn drops_rows(&self) -> bool {
        #[cfg(feature = "polars")]
        if self.transform.as_ref().is_some_and(|t| t.filters_rows) {
            return true;
        }
        self.sample.is_some()
    }

    /// The pruner for the inputs: the row filter, if there is one.
    pub fn pruner(&self) -> Option<&dyn Pruner> {
        #[cfg(feature = "polars")]
        if let Some(t) = &self.transform {
            return Some(t as &dyn Pruner);
        }
        None
    }

    /// The columns the model and the output see, for an input of `input`.
    pub fn output_schema(&self, input: &SchemaRef) -> Result<SchemaRef> {
        #[cfg(feature = "polars")]
        if let Some(t) = &self.transform {
            t.check_names(input)?;
            return t.output_schema(input);
        }
        Ok(input.clone())
    }

    /// The input columns needed for the output columns `needed`.
    pub fn source_columns(&self, needed: &[String], input: &Schema) -> Vec<String> {
        #[cfg(feature = "polars")]
        if let Some(t) = &self.transform {
            return t.source_columns(needed, input);
        }
        let _ = input;
        needed.to_vec()
    }

    /// Fixes the schema of the batches read (the projected input): returns what
    /// `apply` makes of them.
    /// Also takes the input files, whose paths `--sample` hashes (so that the
    /// rows of a file are picked the same whichever other files are read).
    pub fn plan(
        &mut self,
        read: &SchemaRef,
        files: &[crate::source::InputFile],
    ) -> Result<SchemaRef> {
        self.file_keys = files.iter().map(|f| path_key(&f.display())).collect();
        let out = self.output_schema(read)?;
        self.schema = Some(out.clone());
        Ok(out)
    }

    fn file_key(&self, file: usize) -> u64 {
        self.file_keys.get(file).copied().unwrap_or(file as u64)
    }

    /// The rows of a read batch that are scored, and where each came from.
    pub fn apply(
        &self,
        file: usize,
        batch: RecordBatch,
        rows: RowNumbers,
    ) -> Result<(RecordBatch, RowNumbers)> {
        let (batch, rows) = match self.sample {
            None => (batch, rows),
            Some((fraction, seed)) => {
                let n = batch.num_rows();
                let keep: BooleanArray = (0..n)
                    .map(|i| Some(sampled(seed, self.file_key(file), rows.at(i), fraction)))
                    .collect();
                let picked: Vec<u64> = (0..n)
                    .filter(|&i| keep.value(i))
                    .map(|i| rows.at(i))
                    .collect();
                let batch = arrow::compute::filter_record_batch(&batch, &keep)?;
                (batch, RowNumbers::Picked(picked.into()))
            }
        };
        #[cfg(feature = "polars")]
        if let (Some(t), Some(schema)) = (&self.transform, &self.schema) {
            let (batch, kept) = t.apply(&batch, schema)?;
            let picked: Vec<u64> = kept.iter().map(|&i| rows.at(i as usize)).collect();
            return Ok((batch, RowNumbers::Picked(picked.into())));
        }
        Ok((batch, rows))
    }
}

/// A file path as 64 bits (the first 8 bytes of its SHA-256: stable across
/// platforms and Rust releases, unlike `std`'s hasher).
fn path_key(path: &str) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(path.as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Whether row `row` of the file whose path key is `file` is in the sample: a
/// hash of the seed and the row's place, so the same rows are picked whatever the
/// batch size, the thread count, the shard or the other files read.
fn sampled(seed: u64, file: u64, row: u64, fraction: f64) -> bool {
    // splitmix64's finaliser: a well-mixed 64-bit hash of the three numbers.
    let mut z = seed
        .wrapping_add(file.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(row.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(0x94D0_49BB_1331_11EB);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 11) as f64 / (1u64 << 53) as f64) < fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_close_to_the_fraction_and_depend_on_the_seed() {
        let picked = |seed| {
            (0..100_000u64)
                .filter(|&r| sampled(seed, 0, r, 0.1))
                .count()
        };
        let a = picked(0);
        assert!((9_500..10_500).contains(&a), "{a}");
        let same: usize = (0..100_000u64)
            .filter(|&r| sampled(0, 0, r, 0.1) && sampled(1, 0, r, 0.1))
            .count();
        // Two seeds pick independent rows: about 1% in both.
        assert!((800..1_200).contains(&same), "{same}");
        assert!((0..1000u64).all(|r| sampled(7, 3, r, 1.0)));
    }

    #[test]
    fn row_numbers_name_the_input_rows() {
        assert_eq!(RowNumbers::From(10).at(3), 13);
        assert_eq!(RowNumbers::From(10).describe(5), "rows 10..15");
        let picked = RowNumbers::Picked(vec![4, 9, 30].into());
        assert_eq!(picked.at(2), 30);
        assert_eq!(
            picked.describe(3),
            "3 selected rows between row 4 and row 30"
        );
    }
}
