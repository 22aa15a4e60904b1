//! `LabelEncoder` (ai.onnx.ml, opsets 1–4): each input value looked up in a table
//! of keys, replaced by its value, or by the default when it is not a key. skl2onnx
//! emits it for `OrdinalEncoder` and `LabelEncoder`. `CategoryMapper` is the same
//! lookup between `cats_strings` and `cats_int64s`, either way.
//!
//! Keys and values are strings, int64 or float32 (opset 2: `keys_strings`,
//! `values_int64s`, …; opset 4 also as tensors, `keys_tensor`, `values_tensor`,
//! `default_tensor`); opset 1's `classes_strings` maps strings to their index and
//! back. As in onnxruntime, a NaN key matches a NaN value; the default values are
//! `-1`, `"_Unused"` and `-0.0`.

use std::collections::HashMap;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::kernel::Kernel;

/// One side of the table.
#[derive(Debug, Clone)]
enum Column {
    Str(Vec<String>),
    Int(Vec<i64>),
    Float(Vec<f32>),
}

impl Column {
    fn len(&self) -> usize {
        match self {
            Column::Str(v) => v.len(),
            Column::Int(v) => v.len(),
            Column::Float(v) => v.len(),
        }
    }

    fn datum_type(&self) -> DatumType {
        match self {
            Column::Str(_) => String::datum_type(),
            Column::Int(_) => i64::datum_type(),
            Column::Float(_) => f32::datum_type(),
        }
    }

    /// From a tensor attribute (opset 4); int and float widths other than 64/32
    /// are widened or narrowed to those.
    fn of_tensor(t: &Tensor) -> TractResult<Column> {
        Ok(match t.datum_type() {
            DatumType::String => Column::Str(t.try_as_plain_ram()?.as_slice::<String>()?.to_vec()),
            dt if dt.is_integer() => Column::Int(
                t.cast_to::<i64>()?
                    .try_as_plain_ram()?
                    .as_slice::<i64>()?
                    .to_vec(),
            ),
            dt if dt.is_float() => Column::Float(
                t.cast_to::<f32>()?
                    .try_as_plain_ram()?
                    .as_slice::<f32>()?
                    .to_vec(),
            ),
            dt => bail!("LabelEncoder: keys or values of type {dt:?}"),
        })
    }
}

/// A float key: its bits, with every NaN the same and 0.0 equal to -0.0.
fn float_key(x: f32) -> u32 {
    if x.is_nan() {
        f32::NAN.to_bits()
    } else {
        (x + 0.0).to_bits()
    }
}

/// Keys, by the index of their value.
#[derive(Debug)]
enum Keys {
    Str(HashMap<String, usize>),
    Int(HashMap<i64, usize>),
    Float(HashMap<u32, usize>),
}

/// One mapping: keys to values, a default for the rest.
#[derive(Debug)]
struct Table {
    keys: Keys,
    values: Column,
    default: Column,
}

impl Table {
    fn new(keys: Column, values: Column, default: Column) -> TractResult<Table> {
        ensure!(
            keys.len() == values.len(),
            "LabelEncoder has {} keys and {} values",
            keys.len(),
            values.len()
        );
        ensure!(
            default.len() == 1 && default.datum_type() == values.datum_type(),
            "LabelEncoder's default is not one value of the values' type"
        );
        // The first of repeated keys wins.
        let keys = match keys {
            Column::Str(k) => Keys::Str(
                k.into_iter()
                    .enumerate()
                    .rev()
                    .map(|(i, k)| (k, i))
                    .collect(),
            ),
            Column::Int(k) => Keys::Int(
                k.into_iter()
                    .enumerate()
                    .rev()
                    .map(|(i, k)| (k, i))
                    .collect(),
            ),
            Column::Float(k) => Keys::Float(
                k.into_iter()
                    .enumerate()
                    .rev()
                    .map(|(i, k)| (float_key(k), i))
                    .collect(),
            ),
        };
        Ok(Table {
            keys,
            values,
            default,
        })
    }

    fn takes(&self, input: DatumType) -> bool {
        match self.keys {
            Keys::Str(_) => input == String::datum_type(),
            Keys::Int(_) => input.is_integer(),
            Keys::Float(_) => input.is_float(),
        }
    }

    /// The value index of each input value (None: the default).
    fn indices(&self, x: &Tensor) -> TractResult<Vec<Option<usize>>> {
        Ok(match &self.keys {
            Keys::Str(k) => x
                .try_as_plain_ram()?
                .as_slice::<String>()?
                .iter()
                .map(|v| k.get(v).copied())
                .collect(),
            Keys::Int(k) => x
                .cast_to::<i64>()?
                .try_as_plain_ram()?
                .as_slice::<i64>()?
                .iter()
                .map(|v| k.get(v).copied())
                .collect(),
            Keys::Float(k) => x
                .cast_to::<f32>()?
                .try_as_plain_ram()?
                .as_slice::<f32>()?
                .iter()
                .map(|v| k.get(&float_key(*v)).copied())
                .collect(),
        })
    }
}

/// The operator: one table, or (opset 1, `CategoryMapper`) one for each
/// direction, chosen by the input's type.
#[derive(Debug)]
pub struct LabelEncoder {
    name: &'static str,
    tables: Vec<Table>,
}

impl LabelEncoder {
    fn table(&self, input: DatumType) -> TractResult<&Table> {
        self.tables
            .iter()
            .find(|t| t.takes(input))
            .with_context(|| format!("LabelEncoder has no keys of the input's type {input:?}"))
    }
}

/// An opset-4 tensor attribute (`keys_tensor`, `values_tensor`, `default_tensor`).
fn tensor(ctx: &ParsingContext, node: &NodeProto, name: &str) -> TractResult<Option<Column>> {
    node.get_attr_opt::<&tract_onnx::pb::TensorProto>(name)?
        .map(|t| Column::of_tensor(&ctx.load_tensor(t)?))
        .transpose()
}

/// The keys or values of opset 2/3 (`<side>_strings`, `_int64s`, `_floats`) or
/// opset 4 (`<side>_tensor`).
fn side(ctx: &ParsingContext, node: &NodeProto, name: &str) -> TractResult<Option<Column>> {
    if let Some(t) = tensor(ctx, node, &format!("{name}_tensor"))? {
        return Ok(Some(t));
    }
    if let Some(v) = node.get_attr_opt_vec::<String>(&format!("{name}_strings"))? {
        return Ok(Some(Column::Str(v)));
    }
    if let Some(v) = node.get_attr_opt_vec::<i64>(&format!("{name}_int64s"))? {
        return Ok(Some(Column::Int(v)));
    }
    if let Some(v) = node.get_attr_opt_vec::<f32>(&format!("{name}_floats"))? {
        return Ok(Some(Column::Float(v)));
    }
    Ok(None)
}

fn default_string(node: &NodeProto) -> TractResult<Column> {
    Ok(Column::Str(vec![node
        .get_attr_opt::<String>("default_string")?
        .unwrap_or_else(|| "_Unused".into())]))
}

fn default_int(node: &NodeProto) -> TractResult<Column> {
    Ok(Column::Int(vec![node
        .get_attr_opt::<i64>("default_int64")?
        .unwrap_or(-1)]))
}

pub fn label_encoder(ctx: &ParsingContext, node: &NodeProto) -> TractResult<LabelEncoder> {
    let tables = match (side(ctx, node, "keys")?, side(ctx, node, "values")?) {
        (Some(keys), Some(values)) => {
            let default = match tensor(ctx, node, "default_tensor")? {
                Some(d) => d,
                None => match &values {
                    Column::Str(_) => default_string(node)?,
                    Column::Int(_) => default_int(node)?,
                    Column::Float(_) => Column::Float(vec![node
                        .get_attr_opt::<f32>("default_float")?
                        .unwrap_or(-0.0)]),
                },
            };
            vec![Table::new(keys, values, default)?]
        }
        (None, None) => {
            // Opset 1: strings to their index, or, for an int64 input, back.
            let classes: Vec<String> = node.get_attr_vec("classes_strings")?;
            let index: Vec<i64> = (0..classes.len() as i64).collect();
            vec![
                Table::new(
                    Column::Str(classes.clone()),
                    Column::Int(index.clone()),
                    default_int(node)?,
                )?,
                Table::new(
                    Column::Int(index),
                    Column::Str(classes),
                    default_string(node)?,
                )?,
            ]
        }
        _ => bail!("LabelEncoder needs both keys and values"),
    };
    Ok(LabelEncoder {
        name: "LabelEncoder",
        tables,
    })
}

/// `CategoryMapper`: strings to the int64 at the same place in `cats_int64s`
/// (`default_int64`, -1, for the rest), or int64 back to strings
/// (`default_string`, `"_Unused"`).
pub fn category_mapper(node: &NodeProto) -> TractResult<LabelEncoder> {
    let strings: Vec<String> = node.get_attr_vec("cats_strings")?;
    let ints: Vec<i64> = node.get_attr_vec("cats_int64s")?;
    let tables = vec![
        Table::new(
            Column::Str(strings.clone()),
            Column::Int(ints.clone()),
            default_int(node)?,
        )?,
        Table::new(
            Column::Int(ints),
            Column::Str(strings),
            default_string(node)?,
        )?,
    ];
    Ok(LabelEncoder {
        name: "CategoryMapper",
        tables,
    })
}

impl Kernel for LabelEncoder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        s.given(&inputs[0].datum_type, move |s, dt| {
            let table = self.table(dt)?;
            s.equals(&outputs[0].datum_type, table.values.datum_type())
        })
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let table = self.table(inputs[0].datum_type)?;
        Ok(tvec!(table
            .values
            .datum_type()
            .fact(inputs[0].shape.clone())))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let table = self.table(x.datum_type())?;
        let found = table.indices(x)?;
        let shape = x.shape();
        fn pick<T: Datum + Clone>(values: &[T], default: &T, found: &[Option<usize>]) -> Vec<T> {
            found
                .iter()
                .map(|i| i.map_or_else(|| default.clone(), |i| values[i].clone()))
                .collect()
        }
        let out = match (&table.values, &table.default) {
            (Column::Str(v), Column::Str(d)) => {
                tract_ndarray::ArrayD::from_shape_vec(shape, pick(v, &d[0], &found))?.into_tensor()
            }
            (Column::Int(v), Column::Int(d)) => Tensor::from_shape(shape, &pick(v, &d[0], &found))?,
            (Column::Float(v), Column::Float(d)) => {
                Tensor::from_shape(shape, &pick(v, &d[0], &found))?
            }
            _ => bail!("LabelEncoder's default is not of the values' type"),
        };
        Ok(tvec!(out.into_tvalue()))
    }
}
