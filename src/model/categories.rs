//! The categories a native model was trained with (XGBoost's `cats`, LightGBM's
//! `pandas_categorical`): how a column of category names feeds a categorical
//! feature, whose trees split on the category's code (its position in the list).
//!
//! Contract: a string column (plain or dictionary-encoded), or a dictionary column
//! of integers, is encoded through the [`Vocabulary`]; a null becomes NaN (a
//! missing value, routed as the model routes missing values); a value the model
//! never saw becomes NaN as well or is a bad row, as the library that trained the
//! model does ([`Unseen`]). A plain numeric column holds codes already and is not
//! encoded (as the libraries take a numeric array).

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int64Type};

/// What an unseen category becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unseen {
    /// A missing value (LightGBM: pandas turns it into NaN).
    Missing,
    /// A bad row (XGBoost refuses a category not in its training set).
    BadRow,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Names {
    Strings(Vec<String>),
    Ints(Vec<i64>),
}

/// One categorical feature's categories, code = position.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    pub names: Names,
    pub unseen: Unseen,
    strings: HashMap<String, f32>,
    ints: HashMap<i64, f32>,
}

/// Why a row cannot be encoded: a value the model never saw, with `Unseen::BadRow`.
#[derive(Debug, Clone, PartialEq)]
pub struct UnseenValue {
    pub row: usize,
    pub reason: String,
}

impl Vocabulary {
    pub fn new(names: Names, unseen: Unseen) -> Vocabulary {
        let (mut strings, mut ints) = (HashMap::new(), HashMap::new());
        match &names {
            Names::Strings(v) => {
                for (i, s) in v.iter().enumerate() {
                    strings.entry(s.clone()).or_insert(i as f32);
                }
            }
            Names::Ints(v) => {
                for (i, k) in v.iter().enumerate() {
                    ints.entry(*k).or_insert(i as f32);
                }
            }
        }
        Vocabulary {
            names,
            unseen,
            strings,
            ints,
        }
    }

    pub fn len(&self) -> usize {
        match &self.names {
            Names::Strings(v) => v.len(),
            Names::Ints(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a column of this type is encoded (names), rather than taken as
    /// codes.
    pub fn encodes(&self, dt: &DataType) -> bool {
        let strings =
            |d: &DataType| matches!(d, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
        match (&self.names, dt) {
            (Names::Strings(_), DataType::Dictionary(_, v)) => strings(v),
            (Names::Strings(_), d) => strings(d),
            (Names::Ints(_), DataType::Dictionary(_, v)) => v.is_integer(),
            _ => false,
        }
    }

    /// "8 names, an unseen one is missing": what `inspect` says of it.
    pub fn describe(&self) -> String {
        let kind = match self.names {
            Names::Strings(_) => "names",
            Names::Ints(_) => "integer categories",
        };
        let unseen = match self.unseen {
            Unseen::Missing => "an unseen one is missing",
            Unseen::BadRow => "an unseen one is a bad row",
        };
        format!("{} {kind}, {unseen}", self.len())
    }

    /// What the mapping plan says of an encoded column.
    pub fn plan_text(&self) -> &'static str {
        match self.unseen {
            Unseen::Missing => "category names to the model's codes; an unseen name is missing",
            Unseen::BadRow => "category names to the model's codes; an unseen name is a bad row",
        }
    }

    /// The codes of a column [`Vocabulary::encodes`], nulls and (with
    /// `Unseen::Missing`) unseen names as NaN; with `Unseen::BadRow`, the first
    /// unseen name is an error naming it.
    pub fn encode(&self, col: &ArrayRef) -> Result<Vec<f32>, UnseenValue> {
        let mut out = Vec::with_capacity(col.len());
        let mut first = None;
        self.each(col, |row, code| match code {
            Ok(c) => out.push(c.unwrap_or(f32::NAN)),
            Err(reason) => {
                first.get_or_insert(UnseenValue { row, reason });
                out.push(f32::NAN);
            }
        })?;
        match first {
            Some(unseen) => Err(unseen),
            None => Ok(out),
        }
    }

    /// Every row holding a name the model never saw, with `Unseen::BadRow` (none
    /// otherwise).
    pub fn unseen_rows(&self, col: &ArrayRef) -> Result<Vec<UnseenValue>, UnseenValue> {
        let mut found = vec![];
        self.each(col, |row, code| {
            if let Err(reason) = code {
                found.push(UnseenValue { row, reason });
            }
        })?;
        Ok(found)
    }

    /// Calls `f(row, code)` for every row: `Ok(None)` for a null or an unseen name
    /// taken as missing, `Err(reason)` for an unseen name that is a bad row.
    fn each(
        &self,
        col: &ArrayRef,
        mut f: impl FnMut(usize, Result<Option<f32>, String>),
    ) -> Result<(), UnseenValue> {
        if let Some(dict) = col.as_any_dictionary_opt() {
            // Each dictionary value is looked up once.
            let values = self.codes_of(dict.values())?;
            for (row, key) in dict.normalized_keys().into_iter().enumerate() {
                if col.is_null(row) {
                    f(row, Ok(None));
                } else {
                    f(row, values[key].clone());
                }
            }
            return Ok(());
        }
        for (row, code) in self.codes_of(col)?.into_iter().enumerate() {
            f(row, code);
        }
        Ok(())
    }

    /// The code of every value of a plain (not dictionary) array: `Ok(None)` for
    /// a null or a name taken as missing, `Err(reason)` for an unseen name that
    /// is a bad row.
    fn codes_of(&self, values: &ArrayRef) -> Result<Vec<Result<Option<f32>, String>>, UnseenValue> {
        // Found, or missing, or why not: the name is shown only for an unseen one.
        let look = |found: Option<f32>, shown: &dyn Fn() -> String| match (found, self.unseen) {
            (Some(c), _) => Ok(Some(c)),
            (None, Unseen::Missing) => Ok(None),
            (None, Unseen::BadRow) => Err(format!(
                "category {} is not one of the {} the model was trained with",
                shown(),
                self.len()
            )),
        };
        let failed = |e: arrow::error::ArrowError| UnseenValue {
            row: 0,
            reason: e.to_string(),
        };
        if matches!(
            values.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
            let strings = arrow::compute::cast(values, &DataType::Utf8).map_err(failed)?;
            return Ok(strings
                .as_string::<i32>()
                .iter()
                .map(|v| match v {
                    None => Ok(None),
                    Some(v) => look(self.strings.get(v).copied(), &|| format!("{v:?}")),
                })
                .collect());
        }
        let ints = arrow::compute::cast(values, &DataType::Int64).map_err(failed)?;
        Ok(ints
            .as_primitive::<Int64Type>()
            .iter()
            .map(|v| match v {
                None => Ok(None),
                Some(v) => look(self.ints.get(&v).copied(), &|| v.to_string()),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{DictionaryArray, Int64Array, Int8Array, StringArray};
    use arrow::datatypes::Int8Type;
    use std::sync::Arc;

    fn colors(unseen: Unseen) -> Vocabulary {
        Vocabulary::new(
            Names::Strings(vec!["black".into(), "blue".into(), "red".into()]),
            unseen,
        )
    }

    #[test]
    fn names_become_codes_and_nulls_missing() {
        let v = colors(Unseen::Missing);
        let col: ArrayRef = Arc::new(StringArray::from(vec![
            Some("red"),
            None,
            Some("black"),
            Some("purple"),
        ]));
        let codes = v.encode(&col).unwrap();
        assert_eq!(codes[0], 2.0);
        assert!(codes[1].is_nan());
        assert_eq!(codes[2], 0.0);
        assert!(codes[3].is_nan(), "unseen taken as missing");
        assert!(v.unseen_rows(&col).unwrap().is_empty());
    }

    #[test]
    fn an_unseen_name_is_a_bad_row_where_the_library_refuses_it() {
        let v = colors(Unseen::BadRow);
        let keys = Int8Array::from(vec![Some(0), Some(1), None, Some(1), Some(2)]);
        let values = Arc::new(StringArray::from(vec!["blue", "purple", "red"]));
        let col: ArrayRef = Arc::new(DictionaryArray::<Int8Type>::try_new(keys, values).unwrap());
        assert!(v.encodes(col.data_type()));
        let err = v.encode(&col).unwrap_err();
        assert_eq!(err.row, 1);
        assert!(err.reason.contains("\"purple\""), "{}", err.reason);
        let rows: Vec<usize> = v.unseen_rows(&col).unwrap().iter().map(|u| u.row).collect();
        assert_eq!(rows, [1, 3]);
    }

    #[test]
    fn integer_categories_encode_dictionary_columns_only() {
        let v = Vocabulary::new(Names::Ints(vec![3, 7, 10, 42]), Unseen::Missing);
        let keys = Int8Array::from(vec![0, 1, 2]);
        let values = Arc::new(Int64Array::from(vec![42, 3, 99]));
        let col: ArrayRef = Arc::new(DictionaryArray::<Int8Type>::try_new(keys, values).unwrap());
        assert!(v.encodes(col.data_type()));
        let codes = v.encode(&col).unwrap();
        assert_eq!(&codes[..2], [3.0, 0.0]);
        assert!(codes[2].is_nan());
        // A plain integer column holds codes already.
        assert!(!v.encodes(&DataType::Int64));
        assert!(!colors(Unseen::Missing).encodes(&DataType::Float32));
    }
}
