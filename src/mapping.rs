//! Columns → model inputs, by the four rules of docs/guide.md:
//! 1. an explicit mapping (`--features`, `--input-map`) always wins;
//! 2. otherwise inputs named like columns are fed from those columns;
//! 3. otherwise a single `[N, F]` input whose model names its features (XGBoost's
//!    and LightGBM's own files) takes the columns of those names, in the model's order;
//! 4. otherwise a single `[N, F]` input takes the F numeric columns that are not
//!    kept-only, in file order (a single map input, the only map or struct column).
//!
//! The plan is checked against the cast table before anything is scored.

use std::fmt::Write;

use arrow::datatypes::{DataType, Schema};

use crate::model::{cast_kind, CastKind, Feed, InputSpec, Signature};

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct MappingRequest {
    pub features: Option<Vec<String>>,
    pub input_map: Vec<(String, Vec<String>)>,
    pub keep: Vec<String>,
    pub keep_all: bool,
}

/// How one model input is fed.
#[derive(Debug, Clone)]
pub struct InputPlan {
    pub input: usize,
    pub columns: Vec<String>,
    pub casts: Vec<CastKind>,
    pub rule: &'static str,
}

/// The whole mapping, before projection.
#[derive(Debug, Clone)]
pub struct MappingPlan {
    pub inputs: Vec<InputPlan>,
    /// Columns written to the output first, types unchanged.
    pub keep: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MappingError(pub String);

fn err(msg: impl Into<String>) -> MappingError {
    MappingError(msg.into())
}

fn is_numeric(dt: &DataType) -> bool {
    dt.is_numeric()
        || matches!(
            dt,
            DataType::Boolean | DataType::Decimal128(..) | DataType::Decimal256(..)
        )
}

fn column_type<'a>(schema: &'a Schema, name: &str) -> Result<&'a DataType, MappingError> {
    schema
        .field_with_name(name)
        .map(|f| f.data_type())
        .map_err(|_| {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            err(format!(
                "column `{name}` is not in the input; its columns are: {}",
                names.join(", ")
            ))
        })
}

fn input_plan(
    schema: &Schema,
    spec: &InputSpec,
    ix: usize,
    columns: Vec<String>,
    rule: &'static str,
) -> Result<InputPlan, MappingError> {
    if let Some(width) = spec.width() {
        if width != columns.len() {
            return Err(err(format!(
                "model input `{}` takes {width} columns ({}), but {} were mapped to it: {}",
                spec.name,
                spec.shape_or_type(),
                columns.len(),
                columns.join(", ")
            )));
        }
    }
    let mut casts = vec![];
    for (j, c) in columns.iter().enumerate() {
        let dt = column_type(schema, c)?;
        let kind = match (&spec.map, spec.vocabulary(j, dt)) {
            (Some(m), _) => m.cast_kind(dt, spec.elem),
            (None, Some(v)) => CastKind::Narrowing(v.plan_text()),
            (None, None) => cast_kind(dt, spec.elem),
        };
        if let CastKind::Impossible(why) = kind {
            return Err(err(format!(
                "column `{c}` is {dt}, which cannot feed model input `{}` ({}): {why}. Map another column, or convert it before scoring",
                spec.name, spec.elem
            )));
        }
        casts.push(kind);
    }
    Ok(InputPlan {
        input: ix,
        columns,
        casts,
        rule,
    })
}

/// Decides which columns feed which inputs.
#[allow(clippy::too_many_lines)] // the four mapping rules of docs/guide.md in order, each a few lines
pub fn plan(
    schema: &Schema,
    sig: &Signature,
    req: &MappingRequest,
) -> Result<MappingPlan, MappingError> {
    let keep: Vec<String> = if req.keep_all {
        schema.fields().iter().map(|f| f.name().clone()).collect()
    } else {
        req.keep.clone()
    };
    for k in &keep {
        column_type(schema, k)?;
    }
    let inputs = &sig.inputs;
    let mut plans = vec![];
    if let Some(features) = &req.features {
        if inputs.len() != 1 {
            let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(err(format!(
                "--features maps columns to a model with one input, but this model has {}: {}; use --input-map NAME=col1,col2 for each",
                inputs.len(),
                names.join(", ")
            )));
        }
        plans.push(input_plan(
            schema,
            &inputs[0],
            0,
            features.clone(),
            "--features",
        )?);
    } else if !req.input_map.is_empty() {
        for (name, _) in &req.input_map {
            if !inputs.iter().any(|i| &i.name == name) {
                let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
                return Err(err(format!(
                    "--input-map names `{name}`, which is not a model input; inputs: {}",
                    names.join(", ")
                )));
            }
        }
        for (ix, spec) in inputs.iter().enumerate() {
            let cols = match req.input_map.iter().find(|(n, _)| n == &spec.name) {
                Some((_, cols)) => (cols.clone(), "--input-map"),
                None if schema.field_with_name(&spec.name).is_ok() => {
                    (vec![spec.name.clone()], "same name")
                }
                None => {
                    return Err(err(format!(
                        "model input `{}` is not mapped: add --input-map {}=COLUMNS",
                        spec.name, spec.name
                    )))
                }
            };
            plans.push(input_plan(schema, spec, ix, cols.0, cols.1)?);
        }
    } else if inputs
        .iter()
        .all(|i| schema.field_with_name(&i.name).is_ok())
    {
        for (ix, spec) in inputs.iter().enumerate() {
            plans.push(input_plan(
                schema,
                spec,
                ix,
                vec![spec.name.clone()],
                "same name",
            )?);
        }
    } else if inputs.len() == 1 && !inputs[0].feature_names.is_empty() {
        let spec = &inputs[0];
        let missing: Vec<&str> = spec
            .feature_names
            .iter()
            .filter(|n| schema.field_with_name(n).is_err())
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(err(format!(
                "the model names its {} features and the input has no column {}; map them with --features",
                spec.feature_names.len(),
                missing.join(", ")
            )));
        }
        plans.push(input_plan(
            schema,
            spec,
            0,
            spec.feature_names.clone(),
            "the model's feature names",
        )?);
    } else if inputs.len() == 1 {
        let spec = &inputs[0];
        // A map input takes the one map or struct column instead of numeric ones.
        let (kind, rule) = if spec.map.is_some() {
            ("map or struct", "the only map or struct column")
        } else {
            ("numeric", "numeric columns in file order")
        };
        let candidates: Vec<String> = schema
            .fields()
            .iter()
            // Kept-only columns are those named in --keep; --keep-all copies every
            // column but leaves them all candidates.
            .filter(|f| {
                let fits = if spec.map.is_some() {
                    matches!(f.data_type(), DataType::Map(..) | DataType::Struct(_))
                } else {
                    is_numeric(f.data_type())
                };
                fits && !req.keep.contains(f.name())
            })
            .map(|f| f.name().clone())
            .collect();
        match spec.width() {
            _ if candidates.is_empty() => {
                return Err(err(format!("model input `{}` needs {kind} columns and the input has none that are not kept", spec.name)))
            }
            Some(w) if w != candidates.len() => {
                return Err(err(format!(
                    "model input `{}` takes {w} columns ({}) and the input has {} {kind} columns that are not kept: {}. Name them with --features",
                    spec.name,
                    spec.shape_or_type(),
                    candidates.len(),
                    candidates.join(", ")
                )))
            }
            _ => {}
        }
        plans.push(input_plan(schema, spec, 0, candidates, rule)?);
    } else {
        let missing: Vec<&str> = inputs
            .iter()
            .filter(|i| schema.field_with_name(&i.name).is_err())
            .map(|i| i.name.as_str())
            .collect();
        return Err(err(format!(
            "the model has {} inputs and no column is named {}; map them with --input-map NAME=col1,col2",
            inputs.len(),
            missing.join(", ")
        )));
    }
    Ok(MappingPlan {
        inputs: plans,
        keep,
    })
}

impl MappingPlan {
    /// Indices of every column to read, ascending (the order readers return them in).
    pub fn projection(&self, schema: &Schema) -> Vec<usize> {
        let mut cols: Vec<usize> = self
            .keep
            .iter()
            .chain(self.inputs.iter().flat_map(|p| p.columns.iter()))
            .filter_map(|name| schema.index_of(name).ok())
            .collect();
        cols.sort_unstable();
        cols.dedup();
        cols
    }

    /// Feeds over the projected schema.
    pub fn feeds(&self, projected: &Schema) -> Vec<Feed> {
        self.inputs
            .iter()
            .map(|p| Feed {
                input: p.input,
                columns: p
                    .columns
                    .iter()
                    .map(|c| {
                        projected
                            .index_of(c)
                            .expect("projected schema holds mapped columns")
                    })
                    .collect(),
            })
            .collect()
    }

    /// The width each input gets from its columns (fixes symbolic widths).
    pub fn widths(&self, n_inputs: usize) -> Vec<Option<usize>> {
        let mut w = vec![None; n_inputs];
        for p in &self.inputs {
            w[p.input] = Some(p.columns.len());
        }
        w
    }

    /// The plan as `inspect` and the log show it.
    /// The plan, one line per column (`inspect`), or with `compact` runs of three
    /// or more consecutive columns with the same type and cast on one line (the
    /// log of `score`: a 300-feature model's plan stays a few lines).
    pub fn render(&self, sig: &Signature, schema: &Schema, compact: bool) -> String {
        let mut out = String::new();
        for p in &self.inputs {
            let spec = &sig.inputs[p.input];
            let _ = writeln!(
                out,
                "input `{}` {} ← {} column(s) by {}:",
                spec.name,
                spec.type_text(),
                p.columns.len(),
                p.rule
            );
            let described: Vec<(&String, String, String)> = p
                .columns
                .iter()
                .zip(&p.casts)
                .map(|(c, cast)| {
                    let dt = schema
                        .field_with_name(c)
                        .map(|f| f.data_type().to_string())
                        .unwrap_or_default();
                    let how = match cast {
                        CastKind::Exact => "exact".to_string(),
                        CastKind::Narrowing(why) => format!("narrowing: {why}"),
                        CastKind::Impossible(why) => format!("impossible: {why}"),
                    };
                    (c, dt, how)
                })
                .collect();
            let mut i = 0;
            while i < described.len() {
                let (c, dt, how) = &described[i];
                let run = described[i..]
                    .iter()
                    .take_while(|(_, d, h)| d == dt && h == how)
                    .count();
                if compact && run >= 3 {
                    let last = described[i + run - 1].0;
                    let _ = writeln!(
                        out,
                        "  {c} … {last} ({run} columns, {dt}) → {} [{how}]",
                        spec.elem
                    );
                    i += run;
                } else {
                    let _ = writeln!(out, "  {c} ({dt}) → {} [{how}]", spec.elem);
                    i += 1;
                }
            }
        }
        if self.keep.is_empty() {
            let _ = writeln!(out, "kept columns: none");
        } else {
            let _ = writeln!(out, "kept columns: {}", self.keep.join(", "));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Dim, ElemType};
    use arrow::datatypes::Field;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("a", DataType::Float32, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("b", DataType::Float64, true),
        ])
    }

    fn single(width: Dim) -> Signature {
        Signature {
            inputs: vec![InputSpec {
                name: "input".into(),
                elem: ElemType::F32,
                shape: vec![Dim::Symbolic("N".into()), width],
                feature_names: vec![],
                categories: vec![],
                map: None,
            }],
            outputs: vec![],
        }
    }

    #[test]
    fn numeric_columns_not_kept_feed_a_single_input_in_file_order() {
        let req = MappingRequest {
            keep: vec!["id".into()],
            ..Default::default()
        };
        let p = plan(&schema(), &single(Dim::Fixed(2)), &req).unwrap();
        assert_eq!(p.inputs[0].columns, vec!["a", "b"]);
        assert_eq!(p.projection(&schema()), vec![0, 1, 3]);
    }

    #[test]
    fn ambiguity_lists_the_candidates() {
        let e = plan(
            &schema(),
            &single(Dim::Fixed(2)),
            &MappingRequest::default(),
        )
        .unwrap_err();
        assert!(
            e.0.contains("id, a, b") && e.0.contains("--features"),
            "{}",
            e.0
        );
    }

    #[test]
    fn explicit_features_win_and_casts_are_checked() {
        let req = MappingRequest {
            features: Some(vec!["b".into(), "a".into()]),
            ..Default::default()
        };
        let p = plan(&schema(), &single(Dim::Fixed(2)), &req).unwrap();
        assert_eq!(p.inputs[0].columns, vec!["b", "a"]);
        let req = MappingRequest {
            features: Some(vec!["a".into(), "name".into()]),
            ..Default::default()
        };
        // Text feeds a float input, parsed row by row.
        let p = plan(&schema(), &single(Dim::Fixed(2)), &req).unwrap();
        assert!(matches!(p.inputs[0].casts[1], CastKind::Narrowing(_)));
        // ... but not an integer input.
        let mut ints = single(Dim::Fixed(2));
        ints.inputs[0].elem = ElemType::I64;
        let req = MappingRequest {
            features: Some(vec!["id".into(), "name".into()]),
            ..Default::default()
        };
        let e = plan(&schema(), &ints, &req).unwrap_err();
        assert!(e.0.contains("`name` is Utf8"), "{}", e.0);
    }

    #[test]
    fn missing_column_is_named() {
        let req = MappingRequest {
            features: Some(vec!["a".into(), "zz".into()]),
            ..Default::default()
        };
        let e = plan(&schema(), &single(Dim::Fixed(2)), &req).unwrap_err();
        assert!(e.0.contains("`zz` is not in the input"), "{}", e.0);
    }
}
