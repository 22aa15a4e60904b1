//! Map inputs: a model input of ONNX type `map(K, V)` whose one consumer is a
//! `DictVectorizer` or a `CastMap` (scikit-learn's `DictVectorizer` pipelines, as
//! skl2onnx exports them). tract has no map values, so the operator runs here, in the
//! input stage: [`lower`] rewrites the graph so that the input is the operator's
//! `[N, C]` tensor, and [`MapInput::tensor`] fills that tensor from one Arrow `Map`
//! or `Struct` column, one row per map.
//!
//! The contract (docs/models.md, "Map inputs"), the operators' own: entry `j` of a
//! row is the value under the vocabulary's `j`-th key, 0 (or `""`) where the row has
//! no such key; keys outside the vocabulary are ignored. A null map is a bad row, as
//! is a key that appears twice in one map; a null value under a key is NaN for a
//! float tensor (as nulls in float columns are) and a bad row otherwise. In a struct
//! column the field names are the keys and a null field is an absent key.

use std::collections::HashMap;
use std::fmt;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int64Type};
use tract_onnx::pb;
use tract_onnx::prelude::*;

use super::{cast_kind, BadRow, CastKind, ElemType, ScoreError};

/// The two operators that take maps.
pub const MAP_OPS: &[&str] = &["CastMap", "DictVectorizer"];

/// What a map input's keys are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Str,
    I64,
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::Str => "string",
            KeyType::I64 => "int64",
        })
    }
}

/// A map-typed model input, lowered to the tensor its operator makes.
#[derive(Debug, Clone)]
pub struct MapInput {
    /// `DictVectorizer` or `CastMap`.
    pub op: &'static str,
    pub key: KeyType,
    /// The map's declared value type.
    pub value: ElemType,
    /// Keys, in the order of the tensor's C entries.
    keys: Vec<String>,
    /// Each key's entry (as text: struct field names, string keys).
    positions: HashMap<String, usize>,
    /// Int64 keys' entries, looked up without formatting each key of the data.
    int_positions: HashMap<i64, usize>,
}

impl MapInput {
    fn new(op: &'static str, key: KeyType, value: ElemType, keys: Vec<String>) -> MapInput {
        let mut positions = HashMap::with_capacity(keys.len());
        for (j, k) in keys.iter().enumerate() {
            // The first of a repeated key wins, as in the operators' implementations.
            positions.entry(k.clone()).or_insert(j);
        }
        let int_positions = positions
            .iter()
            .filter_map(|(k, &j)| Some((k.parse::<i64>().ok()?, j)))
            .collect();
        MapInput {
            op,
            key,
            value,
            keys,
            positions,
            int_positions,
        }
    }

    /// C, the tensor's width.
    pub fn width(&self) -> usize {
        self.keys.len()
    }

    /// `map(string, float32) by DictVectorizer over 6 keys (a, b, c, …)`.
    pub fn describe(&self) -> String {
        let shown: Vec<&str> = self.keys.iter().take(4).map(String::as_str).collect();
        let more = if self.keys.len() > 4 { ", …" } else { "" };
        format!(
            "map({}, {}) by {} over {} keys ({}{more})",
            self.key,
            self.value,
            self.op,
            self.keys.len(),
            shown.join(", ")
        )
    }

    /// Whether a column of type `dt` feeds this input, checked before scoring.
    pub fn cast_kind(&self, dt: &DataType, elem: ElemType) -> CastKind {
        match dt {
            DataType::Map(entries, _) => {
                let DataType::Struct(kv) = entries.data_type() else {
                    return CastKind::Impossible("a map column without key and value fields");
                };
                if kv.len() != 2 {
                    return CastKind::Impossible("a map column without key and value fields");
                }
                let key_ok = match self.key {
                    KeyType::Str => matches!(
                        kv[0].data_type(),
                        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                    ),
                    KeyType::I64 => kv[0].data_type().is_integer(),
                };
                if !key_ok {
                    return match self.key {
                        KeyType::Str => CastKind::Impossible("the model's map keys are strings"),
                        KeyType::I64 => CastKind::Impossible("the model's map keys are integers"),
                    };
                }
                value_kind(kv[1].data_type(), elem)
            }
            DataType::Struct(fields) => {
                if !fields.iter().any(|f| self.positions.contains_key(f.name())) {
                    return CastKind::Impossible("no field is named like one of the model's keys");
                }
                let mut worst = CastKind::Exact;
                for f in fields
                    .iter()
                    .filter(|f| self.positions.contains_key(f.name()))
                {
                    match value_kind(f.data_type(), elem) {
                        CastKind::Exact => {}
                        k @ CastKind::Impossible(_) => return k,
                        k @ CastKind::Narrowing(_) => worst = k,
                    }
                }
                worst
            }
            _ => CastKind::Impossible("a map input is fed by one map or struct column"),
        }
    }

    /// The `[n, C]` tensor of `elem` entries for the `n` rows of `col`; the first
    /// bad row is an error.
    pub fn tensor(&self, col: &ArrayRef, name: &str, elem: ElemType) -> Result<Tensor, ScoreError> {
        let mut first = None;
        let tensor = self.fill(col, name, elem, &mut |b| {
            first = Some(b);
            false
        })?;
        match first {
            Some(b) => Err(ScoreError::BadRow(b)),
            None => Ok(tensor),
        }
    }

    /// Every row of `col` the input cannot take.
    pub fn bad_rows(
        &self,
        col: &ArrayRef,
        name: &str,
        elem: ElemType,
    ) -> Result<Vec<BadRow>, ScoreError> {
        let mut rows = vec![];
        self.fill(col, name, elem, &mut |b| {
            rows.push(b);
            true
        })?;
        Ok(rows)
    }

    /// Builds the tensor, handing each bad row to `bad` (which says whether to go on).
    fn fill(
        &self,
        col: &ArrayRef,
        name: &str,
        elem: ElemType,
        bad: &mut dyn FnMut(BadRow) -> bool,
    ) -> Result<Tensor, ScoreError> {
        let n = col.len();
        let c = self.width();
        let entries = Entries::of(self, col, name, elem)?;
        let shape = [n, c];
        let model = |e: anyhow::Error| ScoreError::Model(e);
        match elem {
            ElemType::F32 => {
                let v = entries
                    .values
                    .iter()
                    .map(|a| a.as_primitive::<Float32Type>())
                    .collect::<Vec<_>>();
                let out =
                    entries.scatter(n, c, 0f32, Some(f32::NAN), |a, i| v[a].value(i), name, bad);
                Tensor::from_shape(&shape, &out).map_err(model)
            }
            ElemType::F64 => {
                let v = entries
                    .values
                    .iter()
                    .map(|a| a.as_primitive::<Float64Type>())
                    .collect::<Vec<_>>();
                let out =
                    entries.scatter(n, c, 0f64, Some(f64::NAN), |a, i| v[a].value(i), name, bad);
                Tensor::from_shape(&shape, &out).map_err(model)
            }
            ElemType::I64 => {
                let v = entries
                    .values
                    .iter()
                    .map(|a| a.as_primitive::<Int64Type>())
                    .collect::<Vec<_>>();
                let out = entries.scatter(n, c, 0i64, None, |a, i| v[a].value(i), name, bad);
                Tensor::from_shape(&shape, &out).map_err(model)
            }
            ElemType::Str => {
                let v = entries
                    .values
                    .iter()
                    .map(|a| a.as_string::<i32>())
                    .collect::<Vec<_>>();
                let out = entries.scatter(
                    n,
                    c,
                    String::new(),
                    None,
                    |a, i| v[a].value(i).to_owned(),
                    name,
                    bad,
                );
                tract_ndarray::Array2::from_shape_vec((n, c), out)
                    .map(|a| a.into_tensor())
                    .map_err(|e| model(e.into()))
            }
            ElemType::I32 | ElemType::Bool => {
                Err(model(anyhow::anyhow!("{} makes no {elem} tensor", self.op)))
            }
        }
    }
}

fn value_kind(dt: &DataType, elem: ElemType) -> CastKind {
    match (elem, dt) {
        // The operators' own conversion of floats to integers (CastMap TO_INT64).
        (ElemType::I64, DataType::Float16 | DataType::Float32 | DataType::Float64) => {
            CastKind::Narrowing(
                "floats truncated toward zero; NaN and values beyond int64 are bad rows",
            )
        }
        _ => cast_kind(dt, elem),
    }
}

fn arrow_target(elem: ElemType) -> DataType {
    match elem {
        ElemType::F32 => DataType::Float32,
        ElemType::F64 => DataType::Float64,
        ElemType::I64 => DataType::Int64,
        ElemType::I32 => DataType::Int32,
        ElemType::Bool => DataType::Boolean,
        ElemType::Str => DataType::Utf8,
    }
}

fn cast(a: &ArrayRef, to: &DataType, name: &str) -> Result<ArrayRef, ScoreError> {
    let opts = CastOptions {
        safe: true,
        ..Default::default()
    };
    cast_with_options(a, to, &opts).map_err(|e| {
        ScoreError::Model(anyhow::anyhow!(
            "cannot cast the values of column `{name}` to {to}: {e}"
        ))
    })
}

/// A map or struct column as entries: row `i` holds the entries
/// `layout.entries(i)`, and `layout.locate(e)` gives entry `e`'s tensor position
/// (None: not a model key) and where its value is in `values`.
struct Entries<'a> {
    col: &'a ArrayRef,
    layout: Layout,
    /// The values cast to the tensor's type, and as they were (to tell a null from
    /// a value the cast could not convert).
    values: Vec<ArrayRef>,
    originals: Vec<ArrayRef>,
    /// Each entry's key, for messages.
    key: Box<dyn Fn(usize) -> String + 'a>,
    /// Struct columns: a null field is an absent key.
    null_is_absent: bool,
}

/// Which entries each row holds, and where each entry goes and its value is.
enum Layout {
    /// A map column: row i holds entries `offsets[i] - offsets[0]` up to the next
    /// row's; entry e is value e of one array, at its key's position if the
    /// vocabulary has the key.
    Map {
        offsets: arrow::buffer::OffsetBuffer<i32>,
        position: Vec<Option<usize>>,
    },
    /// A struct column of k used fields (each used field's position): row i holds
    /// entries i·k up to (i + 1)·k, and entry e is field e % k of row e / k.
    Struct(Vec<usize>),
}

impl Layout {
    fn entries(&self, i: usize) -> std::ops::Range<usize> {
        match self {
            Layout::Map { offsets, .. } => {
                let base = offsets[0] as usize;
                offsets[i] as usize - base..offsets[i + 1] as usize - base
            }
            Layout::Struct(positions) => i * positions.len()..(i + 1) * positions.len(),
        }
    }

    /// Entry `e`'s tensor position, and the value array and index its value is at.
    fn locate(&self, e: usize) -> Option<(usize, usize, usize)> {
        match self {
            Layout::Map { position, .. } => position[e].map(|p| (p, 0, e)),
            Layout::Struct(positions) => {
                let k = positions.len();
                Some((positions[e % k], e % k, e / k))
            }
        }
    }
}

impl<'a> Entries<'a> {
    fn of(
        m: &MapInput,
        col: &'a ArrayRef,
        name: &str,
        elem: ElemType,
    ) -> Result<Entries<'a>, ScoreError> {
        let to = arrow_target(elem);
        let n = col.len();
        match col.data_type() {
            DataType::Map(..) => {
                let map = col.as_map();
                let offsets = map.value_offsets();
                let base = offsets[0] as usize;
                let len = offsets[n] as usize - base;
                let keys = map.keys().slice(base, len);
                let values = map.values().slice(base, len);
                let key_to = match m.key {
                    KeyType::Str => DataType::Utf8,
                    KeyType::I64 => DataType::Int64,
                };
                let keys = cast(&keys, &key_to, name)?;
                let position = match m.key {
                    KeyType::Str => keys
                        .as_string::<i32>()
                        .iter()
                        .map(|k| k.and_then(|k| m.positions.get(k).copied()))
                        .collect(),
                    KeyType::I64 => keys
                        .as_primitive::<Int64Type>()
                        .iter()
                        .map(|k| k.and_then(|k| m.int_positions.get(&k).copied()))
                        .collect(),
                };
                let cast_values = cast(&values, &to, name)?;
                Ok(Entries {
                    col,
                    layout: Layout::Map {
                        offsets: map.offsets().clone(),
                        position,
                    },
                    values: vec![cast_values],
                    originals: vec![values],
                    key: Box::new(move |e| {
                        arrow::util::display::array_value_to_string(&keys, e).unwrap_or_default()
                    }),
                    null_is_absent: false,
                })
            }
            DataType::Struct(fields) => {
                let s = col.as_struct();
                let used: Vec<(usize, usize)> = fields
                    .iter()
                    .enumerate()
                    .filter_map(|(f, field)| m.positions.get(field.name()).map(|&p| (f, p)))
                    .collect();
                let k = used.len();
                let mut values = vec![];
                let mut originals = vec![];
                for &(f, _) in &used {
                    let child = s.column(f).clone();
                    values.push(cast(&child, &to, name)?);
                    originals.push(child);
                }
                let names: Vec<String> = used
                    .iter()
                    .map(|&(f, _)| fields[f].name().clone())
                    .collect();
                Ok(Entries {
                    col,
                    layout: Layout::Struct(used.iter().map(|&(_, p)| p).collect()),
                    values,
                    originals,
                    key: Box::new(move |e| names[e % k].clone()),
                    null_is_absent: true,
                })
            }
            other => Err(ScoreError::Model(anyhow::anyhow!(
                "column `{name}` is {other}, which does not feed a map input"
            ))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn scatter<T: Clone>(
        &self,
        n: usize,
        c: usize,
        zero: T,
        null: Option<T>,
        get: impl Fn(usize, usize) -> T,
        name: &str,
        bad: &mut dyn FnMut(BadRow) -> bool,
    ) -> Vec<T> {
        let mut out = vec![zero; n * c];
        // The row that last set each position (duplicate keys are bad rows).
        let mut set_by = vec![usize::MAX; c];
        let report = |row: usize, reason: String, bad: &mut dyn FnMut(BadRow) -> bool| {
            bad(BadRow {
                row,
                column: name.to_owned(),
                reason,
            })
        };
        'rows: for i in 0..n {
            if self.col.is_null(i) {
                if report(i, "null where the model takes a map".into(), bad) {
                    continue;
                }
                break;
            }
            for e in self.layout.entries(i) {
                let Some((p, a, ix)) = self.layout.locate(e) else {
                    continue;
                };
                let value = &self.values[a];
                let reason = if value.is_null(ix) {
                    if self.originals[a].is_null(ix) {
                        if self.null_is_absent {
                            continue;
                        }
                        match &null {
                            Some(v) => {
                                if set_by[p] == i {
                                    Some(format!("key {} appears twice in the map", (self.key)(e)))
                                } else {
                                    set_by[p] = i;
                                    out[i * c + p] = v.clone();
                                    None
                                }
                            }
                            None => Some(format!("null value under key {}", (self.key)(e))),
                        }
                    } else {
                        let shown =
                            arrow::util::display::array_value_to_string(&self.originals[a], ix)
                                .unwrap_or_default();
                        Some(format!(
                            "value {shown} under key {} does not convert",
                            (self.key)(e)
                        ))
                    }
                } else if set_by[p] == i {
                    Some(format!("key {} appears twice in the map", (self.key)(e)))
                } else {
                    set_by[p] = i;
                    out[i * c + p] = get(a, ix);
                    None
                };
                if let Some(reason) = reason {
                    if report(i, reason, bad) {
                        continue 'rows;
                    }
                    break 'rows;
                }
            }
        }
        out
    }
}

/// A graph input's map type, read from the file (tract's ONNX messages know only
/// tensor types, so map types are decoded here from the file's bytes, every other
/// field skipped).
mod wire {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Model {
        #[prost(message, optional, tag = "7")]
        pub graph: Option<Graph>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Graph {
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfo>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfo {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub r#type: Option<Type>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Type {
        #[prost(message, optional, tag = "1")]
        pub tensor_type: Option<Tensor>,
        #[prost(message, optional, boxed, tag = "4")]
        pub sequence_type: Option<Box<Sequence>>,
        #[prost(message, optional, boxed, tag = "5")]
        pub map_type: Option<Box<Map>>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Tensor {
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sequence {
        #[prost(message, optional, boxed, tag = "1")]
        pub elem_type: Option<Box<Type>>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Map {
        #[prost(int32, tag = "1")]
        pub key_type: i32,
        #[prost(message, optional, boxed, tag = "2")]
        pub value_type: Option<Box<Type>>,
    }
}

/// Why a graph input cannot be lowered.
#[derive(Debug)]
pub struct Refusal {
    pub input: String,
    pub reason: String,
}

/// Rewrites every map-typed graph input of `proto` (decoded from `bytes`) as the
/// tensor its `DictVectorizer` or `CastMap` makes, and removes that node. Inputs
/// whose type tract could read are left alone; a `DictVectorizer` or `CastMap`
/// that does not read a graph input is refused, as is any other use of a map.
pub fn lower(bytes: &[u8], proto: &mut pb::ModelProto) -> Result<Vec<(String, MapInput)>, Refusal> {
    let Some(graph) = proto.graph.as_mut() else {
        return Ok(vec![]);
    };
    let untyped: Vec<String> = graph
        .input
        .iter()
        .filter(|i| i.r#type.as_ref().and_then(|t| t.value.as_ref()).is_none())
        .map(|i| i.name.clone())
        .collect();
    let mut lowered = vec![];
    if !untyped.is_empty() {
        use prost::Message;
        let wire = wire::Model::decode(bytes).map_err(|e| Refusal {
            input: untyped[0].clone(),
            reason: format!("its type could not be read: {e}"),
        })?;
        for name in &untyped {
            let ty = wire
                .graph
                .as_ref()
                .and_then(|g| g.input.iter().find(|i| &i.name == name))
                .and_then(|i| i.r#type.as_ref());
            let refuse = |reason: String| Refusal {
                input: name.clone(),
                reason,
            };
            let Some(map) = ty.and_then(|t| t.map_type.as_deref()) else {
                let found = match ty {
                    Some(t) if t.sequence_type.is_some() => "a sequence",
                    _ => "a type that is neither a tensor nor a map",
                };
                return Err(refuse(format!(
                    "it is {found}; batchinfer feeds tensors, and maps to DictVectorizer or CastMap"
                )));
            };
            let key = match map.key_type {
                8 => KeyType::Str,
                7 => KeyType::I64,
                k => return Err(refuse(format!("its map keys have ONNX type {k}; DictVectorizer and CastMap take string or int64 keys"))),
            };
            let value = map
                .value_type
                .as_ref()
                .and_then(|v| v.tensor_type.as_ref())
                .and_then(|t| ElemType::from_onnx(t.elem_type))
                .ok_or_else(|| {
                    refuse("its map values are not of a tensor type batchinfer reads".into())
                })?;
            let m = lower_one(graph, name, key, value).map_err(refuse)?;
            lowered.push((name.clone(), m));
        }
    }
    if let Some(node) = graph
        .node
        .iter()
        .find(|n| MAP_OPS.contains(&n.op_type.as_str()))
    {
        return Err(Refusal {
            input: node.input.first().cloned().unwrap_or_default(),
            reason: format!(
                "its {} node reads a map that is not a model input; batchinfer feeds map inputs only",
                node.op_type
            ),
        });
    }
    Ok(lowered)
}

fn lower_one(
    graph: &mut pb::GraphProto,
    name: &str,
    key: KeyType,
    value: ElemType,
) -> Result<MapInput, String> {
    let consumers: Vec<usize> = (0..graph.node.len())
        .filter(|&i| graph.node[i].input.iter().any(|x| x == name))
        .collect();
    let [at] = consumers[..] else {
        return Err(format!(
            "it feeds {} nodes; batchinfer feeds a map input to one DictVectorizer or CastMap",
            consumers.len()
        ));
    };
    let node = &graph.node[at];
    let (m, elem) = match node.op_type.as_str() {
        "DictVectorizer" => dict_vectorizer(node, key, value)?,
        "CastMap" => cast_map(node, key, value)?,
        other => {
            return Err(format!(
                "it feeds {other}; only DictVectorizer and CastMap take maps"
            ))
        }
    };
    retype(graph, name, elem, m.width());
    bypass(graph, at, name);
    Ok(m)
}

fn attr<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn text(a: &pb::AttributeProto) -> String {
    String::from_utf8_lossy(&a.s).into_owned()
}

/// DictVectorizer: the vocabulary of the keys' type; the tensor is of the values' type.
fn dict_vectorizer(
    node: &pb::NodeProto,
    key: KeyType,
    value: ElemType,
) -> Result<(MapInput, ElemType), String> {
    let strings = attr(node, "string_vocabulary").map(|a| &a.strings);
    let ints = attr(node, "int64_vocabulary").map(|a| &a.ints);
    let keys: Vec<String> = match (key, strings, ints) {
        (KeyType::Str, Some(s), _) if !s.is_empty() => s
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect(),
        (KeyType::I64, _, Some(i)) if !i.is_empty() => i.iter().map(i64::to_string).collect(),
        _ => {
            return Err(format!(
                "its DictVectorizer has no vocabulary of its {key} keys"
            ))
        }
    };
    if value == ElemType::Str && key == KeyType::Str {
        return Err("DictVectorizer takes map(string, int64|float|double) or map(int64, string|float|double)".into());
    }
    if !matches!(
        value,
        ElemType::F32 | ElemType::F64 | ElemType::I64 | ElemType::Str
    ) {
        return Err(format!("DictVectorizer does not take {value} map values"));
    }
    Ok((MapInput::new("DictVectorizer", key, value, keys), value))
}

/// CastMap, SPARSE: keys 0..max_map; the tensor of `cast_to`.
fn cast_map(
    node: &pb::NodeProto,
    key: KeyType,
    value: ElemType,
) -> Result<(MapInput, ElemType), String> {
    if key != KeyType::I64 {
        return Err("CastMap takes int64 keys".into());
    }
    if value != ElemType::F32 {
        return Err(format!(
            "its CastMap maps {value} values; batchinfer runs CastMap over float values (maps of strings are not supported yet)"
        ));
    }
    let form = attr(node, "map_form").map_or_else(|| "DENSE".into(), text);
    if form != "SPARSE" {
        return Err(format!(
            "its CastMap has map_form {form}: the tensor is as wide as each row's map, which a table cannot say; batchinfer runs map_form SPARSE (width max_map)"
        ));
    }
    let max_map = attr(node, "max_map").map_or(1, |a| a.i);
    if max_map < 1 {
        return Err(format!("its CastMap has max_map {max_map}"));
    }
    let cast_to = attr(node, "cast_to").map_or_else(|| "TO_FLOAT".into(), text);
    let elem = match cast_to.as_str() {
        "TO_FLOAT" => ElemType::F32,
        "TO_INT64" => ElemType::I64,
        other => {
            return Err(format!(
                "its CastMap casts {other}; batchinfer runs TO_FLOAT and TO_INT64 (onnxruntime writes TO_STRING's numbers in C's %f format)"
            ))
        }
    };
    let keys = (0..max_map).map(|k| k.to_string()).collect();
    Ok((MapInput::new("CastMap", key, value, keys), elem))
}

/// The graph input `name` becomes an `[N, width]` tensor of `elem`.
fn retype(graph: &mut pb::GraphProto, name: &str, elem: ElemType, width: usize) {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let dims = vec![
        Dimension {
            value: Some(Value::DimParam("N".into())),
            ..Default::default()
        },
        Dimension {
            value: Some(Value::DimValue(width as i64)),
            ..Default::default()
        },
    ];
    let input = graph
        .input
        .iter_mut()
        .find(|i| i.name == name)
        .expect("the input is in the graph");
    input.r#type = Some(pb::TypeProto {
        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
            elem_type: onnx_code(elem),
            shape: Some(pb::TensorShapeProto { dim: dims }),
        })),
        ..Default::default()
    });
}

/// Removes node `at`, whose work the input stage does: its readers read `name`.
fn bypass(graph: &mut pb::GraphProto, at: usize, name: &str) {
    let node = graph.node.remove(at);
    let output = node.output.first().cloned().unwrap_or_default();
    if graph.output.iter().any(|o| o.name == output) {
        // The operator's output is a model output: keep its name with an Identity.
        graph.node.insert(
            at,
            pb::NodeProto {
                op_type: "Identity".into(),
                input: vec![name.to_owned()],
                output: vec![output],
                name: node.name,
                ..Default::default()
            },
        );
    } else {
        for n in &mut graph.node {
            for i in &mut n.input {
                if *i == output {
                    *i = name.to_owned();
                }
            }
        }
        graph.value_info.retain(|v| v.name != output);
    }
}

fn onnx_code(elem: ElemType) -> i32 {
    match elem {
        ElemType::F32 => 1,
        ElemType::I32 => 6,
        ElemType::I64 => 7,
        ElemType::Str => 8,
        ElemType::Bool => 9,
        ElemType::F64 => 11,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        Float32Array, Float32Builder, Int64Array, MapBuilder, StringBuilder, StructArray,
    };
    use arrow::datatypes::Field;

    use super::*;

    fn dict() -> MapInput {
        MapInput::new(
            "DictVectorizer",
            KeyType::Str,
            ElemType::F32,
            vec!["a".into(), "b".into(), "c".into()],
        )
    }

    type Row<'a> = Option<&'a [(&'a str, Option<f32>)]>;

    fn maps(rows: &[Row]) -> ArrayRef {
        let mut b = MapBuilder::new(None, StringBuilder::new(), Float32Builder::new());
        for row in rows {
            match row {
                Some(entries) => {
                    for (k, v) in *entries {
                        b.keys().append_value(k);
                        b.values().append_option(*v);
                    }
                    b.append(true).unwrap();
                }
                None => b.append(false).unwrap(),
            }
        }
        Arc::new(b.finish())
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    #[test]
    fn keys_go_to_their_positions_absent_keys_are_zero_unknown_ones_ignored() {
        let col = maps(&[
            Some(&[("b", Some(2.0)), ("zz", Some(9.0)), ("a", Some(1.0))]),
            Some(&[]),
            Some(&[("c", None)]),
        ]);
        let t = dict().tensor(&col, "m", ElemType::F32).unwrap();
        assert_eq!(t.shape(), &[3, 3]);
        let v = values(&t);
        assert_eq!(&v[..6], &[1.0, 2.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(&v[6..8], &[0.0, 0.0]);
        assert!(v[8].is_nan(), "a null value under a key is NaN");
    }

    #[test]
    fn null_maps_and_repeated_keys_are_bad_rows() {
        let col = maps(&[
            Some(&[("a", Some(1.0))]),
            None,
            Some(&[("a", Some(1.0)), ("a", Some(2.0))]),
        ]);
        let rows = dict().bad_rows(&col, "m", ElemType::F32).unwrap();
        let found: Vec<(usize, &str)> = rows.iter().map(|b| (b.row, b.reason.as_str())).collect();
        assert_eq!(
            found,
            vec![
                (1, "null where the model takes a map"),
                (2, "key a appears twice in the map")
            ]
        );
        match dict().tensor(&col, "m", ElemType::F32) {
            Err(ScoreError::BadRow(b)) => assert_eq!(b.row, 1),
            other => panic!("expected a bad row, got {other:?}"),
        }
    }

    #[test]
    fn a_sliced_map_column_reads_its_own_rows() {
        let col = maps(&[
            Some(&[("a", Some(1.0))]),
            Some(&[("b", Some(2.0))]),
            Some(&[("c", Some(3.0))]),
        ]);
        let t = dict().tensor(&col.slice(1, 2), "m", ElemType::F32).unwrap();
        assert_eq!(values(&t), vec![0.0, 2.0, 0.0, 0.0, 0.0, 3.0]);
    }

    #[test]
    fn struct_fields_are_keys_and_null_fields_absent() {
        let col: ArrayRef = Arc::new(StructArray::from(vec![
            (
                Arc::new(Field::new("c", DataType::Float32, true)),
                Arc::new(Float32Array::from(vec![Some(3.0), None])) as ArrayRef,
            ),
            (
                Arc::new(Field::new("other", DataType::Int64, true)),
                Arc::new(Int64Array::from(vec![7, 8])) as ArrayRef,
            ),
            (
                Arc::new(Field::new("a", DataType::Float32, true)),
                Arc::new(Float32Array::from(vec![Some(1.0), Some(5.0)])) as ArrayRef,
            ),
        ]));
        assert_eq!(
            dict().cast_kind(col.data_type(), ElemType::F32),
            CastKind::Exact
        );
        let t = dict().tensor(&col, "s", ElemType::F32).unwrap();
        assert_eq!(values(&t), vec![1.0, 0.0, 3.0, 5.0, 0.0, 0.0]);
    }

    #[test]
    fn integer_tensors_truncate_floats_and_refuse_nulls_and_nan() {
        let m = MapInput::new(
            "CastMap",
            KeyType::I64,
            ElemType::F32,
            (0..3).map(|k| k.to_string()).collect(),
        );
        let mut b = MapBuilder::new(
            None,
            arrow::array::Int64Builder::new(),
            Float32Builder::new(),
        );
        for (k, v) in [(0i64, Some(2.7f32)), (2, Some(-2.7)), (5, Some(1.0))] {
            b.keys().append_value(k);
            b.values().append_option(v);
        }
        b.append(true).unwrap();
        b.keys().append_value(1);
        b.values().append_value(f32::NAN);
        b.append(true).unwrap();
        b.keys().append_value(1);
        b.values().append_null();
        b.append(true).unwrap();
        let col: ArrayRef = Arc::new(b.finish());
        let rows = m.bad_rows(&col, "m", ElemType::I64).unwrap();
        assert_eq!(rows.iter().map(|b| b.row).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(rows[1].reason, "null value under key 1");
        let t = m.tensor(&col.slice(0, 1), "m", ElemType::I64).unwrap();
        assert_eq!(
            t.to_plain_array_view::<i64>()
                .unwrap()
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            vec![2, 0, -2]
        );
    }

    #[test]
    fn the_plan_refuses_columns_that_cannot_feed_the_map() {
        let m = dict();
        let int_keys = maps_of(DataType::Int64, DataType::Float32);
        assert!(matches!(
            m.cast_kind(&int_keys, ElemType::F32),
            CastKind::Impossible(_)
        ));
        assert!(matches!(
            m.cast_kind(&DataType::Float32, ElemType::F32),
            CastKind::Impossible(_)
        ));
        let f64_values = maps_of(DataType::Utf8, DataType::Float64);
        assert!(matches!(
            m.cast_kind(&f64_values, ElemType::F32),
            CastKind::Narrowing(_)
        ));
    }

    fn maps_of(k: DataType, v: DataType) -> DataType {
        let kv = DataType::Struct(
            vec![Field::new("key", k, false), Field::new("value", v, true)].into(),
        );
        DataType::Map(Arc::new(Field::new("entries", kv, false)), false)
    }
}
