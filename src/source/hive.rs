//! Hive-style partitioned directories (`sales/year=2024/month=01/part-0.parquet`):
//! each `key=value` directory between the input root and a file is a column whose
//! value is the same for every row of that file. The columns come after the file's
//! own columns, in path order, and can be kept, mapped and filtered on; a filter
//! on them decides which files are opened at all (`crate::select`).
//!
//! Values are percent-decoded as Hive, Spark and pyarrow write them, and
//! `__HIVE_DEFAULT_PARTITION__` is null. A key whose every value is an integer is
//! Int64; any other key is a string (dates included: ISO dates compare as text).

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Result};
use arrow::array::{ArrayRef, Int64Array, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, FieldRef};
use percent_encoding::percent_decode_str;

use super::InputFile;

/// The value Hive writes for a null partition value.
const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

/// The `key=value` directories of `file` below `root`, in path order.
pub fn pairs(root: &Path, file: &Path) -> Vec<(String, String)> {
    let Ok(relative) = file.strip_prefix(root) else {
        return vec![];
    };
    let Some(dirs) = relative.parent() else {
        return vec![];
    };
    dirs.components()
        .filter_map(|c| {
            let (key, value) = c.as_os_str().to_str()?.split_once('=')?;
            (!key.is_empty()).then(|| (key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// The partition columns of a dataset: their fields, and each file's value of each
/// as a one-row array.
#[derive(Debug, Clone, Default)]
pub struct Partitions {
    pub fields: Vec<FieldRef>,
    /// Per file, per field: a one-row array.
    pub values: Vec<Vec<ArrayRef>>,
}

impl Partitions {
    /// Infers the partition columns from the files' paths; every file must have the
    /// same keys in the same order.
    pub fn infer(files: &[InputFile]) -> Result<Partitions> {
        let Some(first) = files.first() else {
            return Ok(Partitions::default());
        };
        let keys = |f: &InputFile| f.partitions.iter().map(|(k, _)| k.clone()).collect();
        let first_keys: Vec<String> = keys(first);
        for file in files {
            let these: Vec<String> = keys(file);
            if these != first_keys {
                bail!(
                    "{} is in partition directories [{}] but {} is in [{}]; every input file must sit at the same depth of the same key=value directories",
                    file.display(),
                    these.join(", "),
                    first.display(),
                    first_keys.join(", ")
                );
            }
        }
        let mut fields = vec![];
        let mut columns: Vec<Vec<ArrayRef>> = vec![vec![]; files.len()];
        for (k, key) in first_keys.iter().enumerate() {
            let decoded: Vec<Option<String>> = files
                .iter()
                .map(|f| decode(&f.partitions[k].1))
                .collect::<Result<_>>()?;
            let ints: Option<Vec<Option<i64>>> = decoded
                .iter()
                .map(|v| match v {
                    None => Some(None),
                    Some(s) => s.parse::<i64>().ok().map(Some),
                })
                .collect();
            let data_type = match ints {
                Some(ints) => {
                    for (file, v) in ints.into_iter().enumerate() {
                        columns[file].push(Arc::new(Int64Array::from(vec![v])) as ArrayRef);
                    }
                    DataType::Int64
                }
                None => {
                    for (file, v) in decoded.into_iter().enumerate() {
                        columns[file].push(Arc::new(StringArray::from(vec![v])) as ArrayRef);
                    }
                    DataType::Utf8
                }
            };
            fields.push(Arc::new(Field::new(key, data_type, true)));
        }
        Ok(Partitions {
            fields,
            values: columns,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Partition column `k` of file `file`, repeated for a batch of `rows` rows.
    pub fn column(&self, file: usize, k: usize, rows: usize) -> Result<ArrayRef> {
        let zeros = UInt32Array::from(vec![0u32; rows]);
        Ok(arrow::compute::take(&self.values[file][k], &zeros, None)?)
    }
}

fn decode(raw: &str) -> Result<Option<String>> {
    if raw == HIVE_NULL {
        return Ok(None);
    }
    match percent_decode_str(raw).decode_utf8() {
        Ok(s) => Ok(Some(s.into_owned())),
        Err(_) => bail!("partition value {raw:?} is not UTF-8 once percent-decoded"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Format;
    use arrow::array::Array;

    fn file(path: &str, root: &str) -> InputFile {
        InputFile {
            path: path.into(),
            format: Format::Parquet,
            size: 0,
            partitions: pairs(Path::new(root), Path::new(path)),
            stream: false,
            remote: None,
        }
    }

    #[test]
    fn keys_come_from_directories_below_the_root_only() {
        assert_eq!(
            pairs(
                Path::new("/d/x=1/data"),
                Path::new("/d/x=1/data/year=2024/month=01/f=2.parquet")
            ),
            vec![
                ("year".to_string(), "2024".to_string()),
                ("month".to_string(), "01".to_string())
            ]
        );
        assert!(pairs(Path::new("/d"), Path::new("/d/f.parquet")).is_empty());
    }

    #[test]
    fn integers_are_int64_and_the_rest_strings_with_nulls_and_escapes() {
        let files = [
            file("/d/year=2024/city=New%20York/a.parquet", "/d"),
            file(
                "/d/year=__HIVE_DEFAULT_PARTITION__/city=Paris/a.parquet",
                "/d",
            ),
            file("/d/year=2023/city=01/a.parquet", "/d"),
        ];
        let p = Partitions::infer(&files).unwrap();
        assert_eq!(p.fields[0].data_type(), &DataType::Int64);
        assert_eq!(p.fields[1].data_type(), &DataType::Utf8);
        let year = p.column(1, 0, 3).unwrap();
        assert_eq!(year.len(), 3);
        assert_eq!(year.null_count(), 3);
        let city = p.column(0, 1, 2).unwrap();
        let city = city.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(city.value(1), "New York");
        let odd = [
            file("/d/year=2024/a.parquet", "/d"),
            file("/d/a.parquet", "/d"),
        ];
        let e = Partitions::infer(&odd).unwrap_err().to_string();
        assert!(e.contains("same depth"), "{e}");
    }
}
