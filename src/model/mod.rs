//! Everything that touches tract: opening an ONNX model, checking that every
//! operator can run, compiling one optimised plan with a symbolic batch dimension,
//! and running batches through it. No tract type leaves this module: callers see
//! [`Signature`], [`OutputColumn`] and Arrow arrays.

pub mod categories;
pub mod maps;
mod ml;
pub mod native;
pub mod set;
/// Arrow ↔ tensor conversion. Public only for the criterion benches of the
/// conversions (`benches/pipeline.rs`), the one place tract values cross out.
#[doc(hidden)]
pub mod tensors;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;
use sha2::{Digest, Sha256};
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::DimLike;

use crate::profile::rows::RowSums;

pub use tensors::{cast_kind, CastKind};

/// Element type of a model input or output, as batchinfer supports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    F32,
    F64,
    I64,
    I32,
    Bool,
    Str,
}

impl ElemType {
    fn from_onnx(code: i32) -> Option<ElemType> {
        // onnx.proto TensorProto.DataType
        match code {
            1 => Some(ElemType::F32),
            11 => Some(ElemType::F64),
            7 => Some(ElemType::I64),
            6 => Some(ElemType::I32),
            9 => Some(ElemType::Bool),
            8 => Some(ElemType::Str),
            _ => None,
        }
    }

    fn datum_type(self) -> DatumType {
        match self {
            ElemType::F32 => f32::datum_type(),
            ElemType::F64 => f64::datum_type(),
            ElemType::I64 => i64::datum_type(),
            ElemType::I32 => i32::datum_type(),
            ElemType::Bool => bool::datum_type(),
            ElemType::Str => String::datum_type(),
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, ElemType::F32 | ElemType::F64)
    }
}

impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ElemType::F32 => "float32",
            ElemType::F64 => "float64",
            ElemType::I64 => "int64",
            ElemType::I32 => "int32",
            ElemType::Bool => "bool",
            ElemType::Str => "string",
        })
    }
}

/// One dimension of a declared shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    Symbolic(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbolic(s) if s.is_empty() => f.write_str("?"),
            Dim::Symbolic(s) => f.write_str(s),
        }
    }
}

/// A model input as declared in the file.
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub name: String,
    pub elem: ElemType,
    pub shape: Vec<Dim>,
    /// The names of the F features of an `[N, F]` input, where the file stores
    /// them (native XGBoost and LightGBM models); empty otherwise.
    pub feature_names: Vec<String>,
    /// For each of the F features, the categories it was trained with, where the
    /// file stores them (native models' categorical features); empty otherwise.
    pub categories: Vec<Option<std::sync::Arc<categories::Vocabulary>>>,
    /// A map input (`DictVectorizer`, `CastMap`): fed by one map or struct column,
    /// which the input stage turns into this `[N, C]` tensor.
    pub map: Option<Arc<maps::MapInput>>,
}

impl InputSpec {
    /// The vocabulary that encodes column `j` of this input, if a column of type
    /// `dt` is one it encodes.
    pub fn vocabulary(
        &self,
        j: usize,
        dt: &arrow::datatypes::DataType,
    ) -> Option<&categories::Vocabulary> {
        self.categories
            .get(j)
            .and_then(|v| v.as_deref())
            .filter(|v| v.encodes(dt))
    }

    /// How many columns feed this input: `Some(F)` for `[N, F]`, 1 for `[N]` or
    /// `[N, 1]`, `None` when the width is symbolic.
    pub fn width(&self) -> Option<usize> {
        if self.map.is_some() {
            return Some(1);
        }
        match self.shape.as_slice() {
            [] | [_] => Some(1),
            [_, Dim::Fixed(f)] => Some(*f),
            _ => None,
        }
    }

    /// `float32 [N, 8]`, or for a map input what it takes and the tensor it makes.
    pub fn type_text(&self) -> String {
        match &self.map {
            Some(m) => format!("{} → {} {}", m.describe(), self.elem, self.shape_text()),
            None => format!("{} {}", self.elem, self.shape_text()),
        }
    }

    /// `shape [N, 8]`, or a map input's [`Self::type_text`] (mapping messages).
    pub fn shape_or_type(&self) -> String {
        match &self.map {
            Some(_) => self.type_text(),
            None => format!("shape {}", self.shape_text()),
        }
    }

    pub fn shape_text(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        format!("[{}]", dims.join(", "))
    }
}

/// A model output as declared in the file (types and shapes are known after compiling).
#[derive(Debug, Clone)]
pub struct OutputSpec {
    pub name: String,
    /// Class labels, when the output is a classifier's probabilities (ZipMap included).
    pub labels: Option<ml::Labels>,
}

/// Operators used by a model and who runs them.
#[derive(Debug, Clone, Default)]
pub struct OpReport {
    /// batchinfer's own implementations (`src/model/ml`).
    pub own: Vec<String>,
    /// tract's implementations.
    pub tract: Vec<String>,
    /// Neither: the model cannot run.
    pub missing: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Signature {
    pub inputs: Vec<InputSpec>,
    pub outputs: Vec<OutputSpec>,
}

/// Errors that make a model unusable; all are validation failures (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an ONNX model: {reason}")]
    NotOnnx { path: PathBuf, reason: String },
    #[error("--raw-score and --iterations apply to XGBoost and LightGBM files; {path} is an ONNX model, whose outputs are what its graph computes (export the margins from the graph, or score it without these options)")]
    NativeOnly { path: PathBuf },
    #[error("{path} is not a model batchinfer reads: {reason}")]
    Unknown { path: PathBuf, reason: String },
    #[error("cannot score {format} model {path}: {reason:#}")]
    Native {
        path: PathBuf,
        format: &'static str,
        reason: anyhow::Error,
    },
    #[error("model {path} uses operators batchinfer cannot run yet: {}. Nothing was scored; re-export the model without them or open an issue naming them", .ops.join(", "))]
    MissingOps { path: PathBuf, ops: Vec<String> },
    #[error("model {path} input `{input}` has type {found}, which batchinfer does not feed; supported: float32, float64, int64, int32, bool, string")]
    UnsupportedInput {
        path: PathBuf,
        input: String,
        found: String,
    },
    #[error("model {path} input `{input}` has shape {shape}; batchinfer feeds rows of a table, as inputs of shape [N] or [N, F] (one row per N). Re-export the model with a rank-1 or rank-2 input, or reshape inside the model")]
    UnsupportedShape {
        path: PathBuf,
        input: String,
        shape: String,
    },
    #[error("model {path} input `{input}` cannot be fed: {reason}")]
    MapInput {
        path: PathBuf,
        input: String,
        reason: String,
    },
    #[error("model {path} could not be prepared for scoring: {reason}")]
    Compile { path: PathBuf, reason: String },
}

/// A model file opened and checked, not yet compiled.
pub struct ModelFile {
    pub path: PathBuf,
    /// What a native file holds ("XGBoost 3.2.0 model: objective …"); None for ONNX.
    pub description: Option<String>,
    /// What a run should warn of before scoring (a native model's best iteration
    /// not used).
    pub warnings: Vec<String>,
    /// SHA-256 of the file's bytes, whatever its format.
    pub sha256: String,
    pub signature: Signature,
    pub ops: OpReport,
    proto: pb::ModelProto,
}

/// An ONNX file's graph, its map inputs lowered (`maps::lower`).
fn read_onnx(
    path: &Path,
    bytes: &[u8],
) -> Result<(pb::ModelProto, Vec<(String, maps::MapInput)>), ModelError> {
    let mut proto =
        onnx()
            .proto_model_for_read(&mut &bytes[..])
            .map_err(|e| ModelError::NotOnnx {
                path: path.to_owned(),
                reason: format!("{e:#}"),
            })?;
    let lowered = maps::lower(bytes, &mut proto).map_err(|r| ModelError::MapInput {
        path: path.to_owned(),
        input: r.input,
        reason: r.reason,
    })?;
    Ok((proto, lowered))
}

/// The model file's bytes: a local file, or an object (`s3://…`) fetched whole.
fn read_model(path: &Path) -> std::io::Result<Vec<u8>> {
    let location = path.to_str().map(crate::storage::Location::parse);
    match location {
        Some(Ok(crate::storage::Location::Object(url))) => crate::storage::read::read_all(&url)
            .map(|b| b.to_vec())
            .map_err(|e| std::io::Error::other(format!("{e:#}"))),
        Some(Ok(crate::storage::Location::Local(local))) => std::fs::read(local),
        _ => std::fs::read(path),
    }
}

fn onnx() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    ml::register(&mut onnx.op_register);
    onnx
}

impl ModelFile {
    /// Reads the file, hashes it, and checks its operators and input types. A
    /// parser panic on a damaged file is reported as "not an ONNX model".
    pub fn open(path: &Path) -> Result<ModelFile, ModelError> {
        Self::open_with(path, native::Options::default())
    }

    /// As [`ModelFile::open`], a native model scored as `options` say (its margins
    /// instead of probabilities or predictions, some of its iterations). Options
    /// other than the defaults are refused for ONNX models, whose outputs are what
    /// their graph computes.
    pub fn open_with(path: &Path, options: native::Options) -> Result<ModelFile, ModelError> {
        crate::sys::panics::catch(|| Self::open_unguarded(path, options)).unwrap_or_else(|p| {
            Err(ModelError::NotOnnx {
                path: path.to_owned(),
                reason: format!("parsing it crashed the ONNX reader ({p})"),
            })
        })
    }

    fn open_unguarded(path: &Path, options: native::Options) -> Result<ModelFile, ModelError> {
        let bytes = read_model(path).map_err(|source| ModelError::Read {
            path: path.to_owned(),
            source,
        })?;
        let sha256 = format!("{:x}", Sha256::digest(&bytes));
        let format = native::detect(&bytes).map_err(|reason| ModelError::Unknown {
            path: path.to_owned(),
            reason,
        })?;
        if !options.is_default() && format == native::Format::Onnx {
            return Err(ModelError::NativeOnly {
                path: path.to_owned(),
            });
        }
        let mut warnings = vec![];
        let mut lowered = vec![];
        let (proto, native) = if format == native::Format::Onnx {
            let proto;
            (proto, lowered) = read_onnx(path, &bytes)?;
            (proto, None)
        } else {
            let t = native::translate(format, &bytes, options).map_err(|reason| {
                ModelError::Native {
                    path: path.to_owned(),
                    format: format.name(),
                    reason,
                }
            })?;
            warnings = t.warnings;
            (
                t.proto,
                Some((t.feature_names, t.categories, t.description)),
            )
        };
        let graph = proto.graph.as_ref().ok_or_else(|| ModelError::NotOnnx {
            path: path.to_owned(),
            reason: "the file holds no graph".into(),
        })?;
        if graph.node.is_empty() && graph.output.is_empty() {
            return Err(ModelError::NotOnnx {
                path: path.to_owned(),
                reason: "the graph is empty".into(),
            });
        }
        let mut ops = op_report(graph);
        // The map operators run in the input stage (`maps`): their nodes are gone.
        ops.own
            .extend(lowered.iter().map(|(_, m)| m.op.to_string()));
        ops.own.sort();
        ops.own.dedup();
        if !ops.missing.is_empty() {
            return Err(ModelError::MissingOps {
                path: path.to_owned(),
                ops: ops.missing,
            });
        }
        let mut signature = signature(path, graph)?;
        for (name, m) in lowered {
            if let Some(spec) = signature.inputs.iter_mut().find(|i| i.name == name) {
                spec.map = Some(Arc::new(m));
            }
        }
        let description = native.map(|(names, categories, description)| {
            signature.inputs[0].feature_names = names;
            signature.inputs[0].categories = categories;
            description
        });
        Ok(ModelFile {
            path: path.to_owned(),
            description,
            warnings,
            sha256,
            signature,
            ops,
            proto,
        })
    }

    /// Builds the optimised plan. `widths[i]` fixes the width of input `i` where the
    /// file leaves it symbolic (the mapping knows it from the columns).
    pub fn compile(&self, widths: &[Option<usize>]) -> Result<Model, ModelError> {
        crate::sys::panics::catch(|| self.compile_unguarded(widths)).unwrap_or_else(|p| {
            Err(ModelError::Compile {
                path: self.path.clone(),
                reason: format!("preparing it crashed tract ({p})"),
            })
        })
    }

    fn compile_unguarded(&self, widths: &[Option<usize>]) -> Result<Model, ModelError> {
        let started = Instant::now();
        let err = |e: anyhow::Error| ModelError::Compile {
            path: self.path.clone(),
            reason: format!("{e:#}"),
        };
        let plan = self.build_plan(widths).map_err(err)?;
        let outputs = self.output_columns(&plan).map_err(err)?;
        let chunk_rows = chunk_rows(&plan);
        Ok(Model {
            path: self.path.clone(),
            sha256: self.sha256.clone(),
            signature: self.signature.clone(),
            plan,
            outputs,
            compile_s: started.elapsed().as_secs_f64(),
            chunk_rows,
        })
    }

    fn build_plan(&self, widths: &[Option<usize>]) -> anyhow::Result<Arc<TypedSimplePlan>> {
        let onnx = onnx();
        // The model's directory, for weights stored beside it (external data).
        let dir = self
            .path
            .parent()
            .map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                }
            })
            .and_then(|d| d.to_str());
        let parsed = onnx.parse(&self.proto, dir)?;
        anyhow::ensure!(
            parsed.unresolved_inputs.is_empty(),
            "the graph has inputs that nothing defines: {}",
            parsed.unresolved_inputs.join(", ")
        );
        let mut model = parsed.model;
        let batch = model.sym("N").to_dim();
        for (ix, input) in self.signature.inputs.iter().enumerate() {
            let mut shape: TVec<TDim> = tvec![batch.clone()];
            for (axis, d) in input.shape.iter().enumerate().skip(1) {
                shape.push(match d {
                    Dim::Fixed(n) => n.to_dim(),
                    Dim::Symbolic(_) if axis == 1 => widths
                        .get(ix)
                        .copied()
                        .flatten()
                        .with_context(|| format!("input `{}` has a symbolic width", input.name))?
                        .to_dim(),
                    Dim::Symbolic(s) => {
                        anyhow::bail!(
                            "input `{}` has symbolic dimension `{s}` on axis {axis}",
                            input.name
                        )
                    }
                });
            }
            if input.shape.is_empty() {
                shape.clear();
            }
            model.set_input_fact(ix, InferenceFact::dt_shape(input.elem.datum_type(), shape))?;
        }
        let typed = model.into_typed()?.into_optimized()?;
        tract_onnx::tract_core::plan::SimplePlan::new(typed)
    }

    fn output_columns(&self, plan: &TypedSimplePlan) -> anyhow::Result<Vec<OutputColumn>> {
        let model = plan.model();
        let mut columns = vec![];
        for (ix, spec) in self.signature.outputs.iter().enumerate() {
            let fact = model.output_fact(ix)?;
            let dt = tensors::arrow_type(fact.datum_type).with_context(|| {
                format!("output `{}` has type {:?}", spec.name, fact.datum_type)
            })?;
            let dims: Vec<TDim> = fact.shape.iter().cloned().collect();
            // [N, 1, …, 1, K] is written as [N, K] (OneHotEncoder over an [N, 1] input).
            let dims = match dims.as_slice() {
                [n, middle @ .., k] if !middle.is_empty() && middle.iter().all(|d| d.is_one()) => {
                    vec![n.clone(), k.clone()]
                }
                _ => dims,
            };
            let width = match dims.as_slice() {
                [] | [_] => 1,
                [_, k] => k
                    .to_usize()
                    .with_context(|| format!("output `{}` has a symbolic width {k}", spec.name))?,
                other => anyhow::bail!(
                    "output `{}` has rank {}; batchinfer writes rank 1 or 2",
                    spec.name,
                    other.len()
                ),
            };
            let suffixes: Vec<String> = match &spec.labels {
                Some(labels) if width > 1 && labels.len() == width => labels.names(),
                _ => (0..width).map(|i| i.to_string()).collect(),
            };
            if width == 1 {
                columns.push(OutputColumn {
                    name: spec.name.clone(),
                    output: ix,
                    index: 0,
                    data_type: dt.clone(),
                });
            } else {
                for (i, s) in suffixes.into_iter().enumerate() {
                    columns.push(OutputColumn {
                        name: format!("{}_{s}", spec.name),
                        output: ix,
                        index: i,
                        data_type: dt.clone(),
                    });
                }
            }
        }
        Ok(columns)
    }
}

fn op_report(graph: &pb::GraphProto) -> OpReport {
    let known = onnx();
    let mut seen = BTreeSet::new();
    for node in &graph.node {
        seen.insert(node.op_type.clone());
    }
    let mut report = OpReport::default();
    for op in seen {
        if ml::OWN_OPS.contains(&op.as_str()) {
            report.own.push(op);
        } else if known.op_register.0.contains_key(&op) {
            report.tract.push(op);
        } else {
            report.missing.push(op);
        }
    }
    report
}

fn signature(path: &Path, graph: &pb::GraphProto) -> Result<Signature, ModelError> {
    use pb::tensor_shape_proto::dimension::Value;
    use pb::type_proto::Value as TypeValue;
    let initializers: BTreeSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut inputs = vec![];
    for input in graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
    {
        let unsupported = |found: String| ModelError::UnsupportedInput {
            path: path.to_owned(),
            input: input.name.clone(),
            found,
        };
        let Some(TypeValue::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref())
        else {
            return Err(unsupported("a non-tensor type".into()));
        };
        let elem = ElemType::from_onnx(t.elem_type)
            .ok_or_else(|| unsupported(format!("ONNX element type {}", t.elem_type)))?;
        let shape = t
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(Value::DimValue(v)) if *v >= 0 => Dim::Fixed(*v as usize),
                        Some(Value::DimParam(p)) => Dim::Symbolic(p.clone()),
                        _ => Dim::Symbolic(String::new()),
                    })
                    .collect()
            })
            .unwrap_or_else(|| vec![Dim::Symbolic(String::new()), Dim::Symbolic(String::new())]);
        if shape.len() > 2 {
            let spec = InputSpec {
                name: input.name.clone(),
                elem,
                shape,
                feature_names: vec![],
                categories: vec![],
                map: None,
            };
            return Err(ModelError::UnsupportedShape {
                path: path.to_owned(),
                input: spec.name.clone(),
                shape: spec.shape_text(),
            });
        }
        inputs.push(InputSpec {
            name: input.name.clone(),
            elem,
            shape,
            feature_names: vec![],
            categories: vec![],
            map: None,
        });
    }
    let producers: HashMap<&str, &pb::NodeProto> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    let outputs = graph
        .output
        .iter()
        .map(|o| OutputSpec {
            name: o.name.clone(),
            labels: labels_of(&o.name, &producers),
        })
        .collect();
    Ok(Signature { inputs, outputs })
}

/// Class labels of an output that carries a classifier's probabilities, found by
/// walking back through ZipMap, Identity, Cast and Normalizer nodes.
fn labels_of(output: &str, producers: &HashMap<&str, &pb::NodeProto>) -> Option<ml::Labels> {
    let mut name = output;
    for _ in 0..16 {
        let node = producers.get(name)?;
        match node.op_type.as_str() {
            "ZipMap" => return ml::zipmap_labels(node).ok(),
            "LinearClassifier" | "TreeEnsembleClassifier" | "SVMClassifier" => {
                return (node.output.get(1).map(String::as_str) == Some(name))
                    .then(|| ml::Labels::from_node(node).ok())
                    .flatten();
            }
            "Identity" | "Cast" | "Normalizer" => name = node.input.first()?,
            _ => return None,
        }
    }
    None
}

/// One prediction column: which output it comes from and which of its K entries,
/// or (a list column) all K of them.
#[derive(Debug, Clone)]
pub struct OutputColumn {
    pub name: String,
    pub output: usize,
    pub index: usize,
    /// The column's type: the entry's type, or a fixed-size list of K entries.
    pub data_type: DataType,
}

impl OutputColumn {
    /// K when the column holds a whole `[N, K]` output as a fixed-size list.
    pub fn list_width(&self) -> Option<usize> {
        match &self.data_type {
            DataType::FixedSizeList(_, k) => Some(*k as usize),
            _ => None,
        }
    }
}

impl OutputColumn {
    pub fn field(&self) -> Field {
        Field::new(&self.name, self.data_type.clone(), true)
    }
}

/// Which batch columns feed one model input.
#[derive(Debug, Clone)]
pub struct Feed {
    pub input: usize,
    /// Indices into the scored batch, in the order the input's F entries take them.
    pub columns: Vec<usize>,
}

/// A row the model cannot take, found while building tensors.
#[derive(Debug, Clone, thiserror::Error)]
#[error("row {row}, column `{column}`: {reason}")]
pub struct BadRow {
    /// Row index within the batch.
    pub row: usize,
    pub column: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error(transparent)]
    BadRow(#[from] BadRow),
    #[error("model execution failed: {0:#}")]
    Model(anyhow::Error),
}

/// A compiled model: one optimised plan, shared by every worker.
pub struct Model {
    pub path: PathBuf,
    pub sha256: String,
    pub signature: Signature,
    pub outputs: Vec<OutputColumn>,
    /// Time spent loading, typing and optimising, in seconds.
    pub compile_s: f64,
    /// Rows per run of the plan: a batch is scored in chunks of at most this many
    /// rows, so that the widest intermediate values stay within a core's L2 cache.
    pub chunk_rows: usize,
    plan: Arc<TypedSimplePlan>,
}

/// What a chunk's widest intermediate values may take: this machine's L2 per core
/// (1 MiB, `lscpu`). An MLP with 256-unit layers scored 8,192-row batches at
/// 711k rows/s on 2 threads and 1,024-row ones at 870k (`batchinfer bench`).
const CHUNK_BYTES: usize = 1 << 20;

/// The fewest rows per chunk, however wide the model: smaller runs cost more in
/// per-run overhead than they gain in cache.
const MIN_CHUNK_ROWS: usize = 256;

/// Rows per chunk for a plan: [`CHUNK_BYTES`] over the bytes per row of its widest
/// value with a batch axis (the models' first axis is the batch symbol `N`).
fn chunk_rows(plan: &TypedSimplePlan) -> usize {
    let widest = plan
        .model()
        .nodes()
        .iter()
        .flat_map(|n| n.outputs.iter())
        .filter_map(|o| {
            let shape = &o.fact.shape;
            if shape.rank() == 0 || shape[0].to_i64().is_ok() {
                return None;
            }
            let mut per_row = o.fact.datum_type.size_of();
            for d in shape.iter().skip(1) {
                per_row = per_row.checked_mul(d.to_usize().ok()?)?;
            }
            Some(per_row)
        })
        .max()
        .unwrap_or(0);
    (CHUNK_BYTES / widest.max(1)).max(MIN_CHUNK_ROWS)
}

/// Per-worker state over the shared plan.
pub struct Session {
    state: TypedSimpleState,
    plan: Arc<TypedSimplePlan>,
}

impl Model {
    /// Keeps only the named outputs (None: all) and writes those named in `as_list`
    /// as one fixed-size-list column each, named after the output. Errors name the
    /// unknown output and list the model's outputs.
    pub fn select_outputs(
        &mut self,
        keep: Option<&[String]>,
        as_list: &[String],
    ) -> Result<(), String> {
        let names: Vec<&str> = self
            .signature
            .outputs
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        for n in keep.unwrap_or_default().iter().chain(as_list) {
            if !names.contains(&n.as_str()) {
                return Err(format!(
                    "the model has no output `{n}`; its outputs are: {}",
                    names.join(", ")
                ));
            }
        }
        let mut columns: Vec<OutputColumn> = vec![];
        for (ix, name) in names.iter().enumerate() {
            if keep.is_some_and(|k| !k.iter().any(|n| n == name)) {
                continue;
            }
            let of_output = self.outputs.iter().filter(|c| c.output == ix);
            if as_list.iter().any(|n| n == name) {
                let parts: Vec<&OutputColumn> = of_output.collect();
                let Some(first) = parts.first() else { continue };
                let item = Arc::new(Field::new("item", first.data_type.clone(), false));
                columns.push(OutputColumn {
                    name: name.to_string(),
                    output: ix,
                    index: 0,
                    data_type: DataType::FixedSizeList(item, parts.len() as i32),
                });
            } else {
                columns.extend(of_output.cloned());
            }
        }
        self.outputs = columns;
        Ok(())
    }

    pub fn session(&self) -> anyhow::Result<Session> {
        Ok(Session {
            state: self.plan.spawn()?,
            plan: self.plan.clone(),
        })
    }
}

impl Model {
    /// The rows of `batch` the model cannot take (see `tensors::bad_rows`).
    pub fn bad_rows(&self, batch: &RecordBatch, feeds: &[Feed]) -> Result<Vec<BadRow>, ScoreError> {
        tensors::bad_rows(batch, feeds, &self.signature.inputs)
    }
}

impl Session {
    /// Scores one batch: builds the input tensors from `feeds`, runs the plan (on
    /// chunks of at most `model.chunk_rows` rows), and returns one array per entry
    /// of `model.outputs`.
    pub fn score(
        &mut self,
        model: &Model,
        batch: &RecordBatch,
        feeds: &[Feed],
    ) -> Result<Vec<ArrayRef>, ScoreError> {
        self.score_observed(model, batch, feeds, &mut [])
    }

    /// The same, adding each float32 input's tensor to `sums[input]` where it is
    /// Some (`tensors::input_tensor_observed`); `sums` may be shorter than the
    /// inputs.
    pub fn score_observed(
        &mut self,
        model: &Model,
        batch: &RecordBatch,
        feeds: &[Feed],
        sums: &mut [Option<RowSums>],
    ) -> Result<Vec<ArrayRef>, ScoreError> {
        let n = batch.num_rows();
        if n <= model.chunk_rows {
            return self.score_chunk(model, batch, feeds, sums);
        }
        let mut parts: Vec<Vec<ArrayRef>> = vec![];
        for start in (0..n).step_by(model.chunk_rows) {
            let len = model.chunk_rows.min(n - start);
            let part = self
                .score_chunk(model, &batch.slice(start, len), feeds, sums)
                .map_err(|e| match e {
                    ScoreError::BadRow(mut b) => {
                        b.row += start;
                        ScoreError::BadRow(b)
                    }
                    e => e,
                })?;
            parts.push(part);
        }
        (0..model.outputs.len())
            .map(|c| {
                let columns: Vec<&dyn arrow::array::Array> =
                    parts.iter().map(|p| p[c].as_ref()).collect();
                arrow::compute::concat(&columns).map_err(|e| ScoreError::Model(e.into()))
            })
            .collect()
    }

    fn score_chunk(
        &mut self,
        model: &Model,
        batch: &RecordBatch,
        feeds: &[Feed],
        sums: &mut [Option<RowSums>],
    ) -> Result<Vec<ArrayRef>, ScoreError> {
        let mut inputs: TVec<TValue> = tvec![];
        for (ix, spec) in model.signature.inputs.iter().enumerate() {
            let feed = feeds.iter().find(|f| f.input == ix).ok_or_else(|| {
                ScoreError::Model(anyhow::anyhow!("no columns feed input `{}`", spec.name))
            })?;
            let tap = sums.get_mut(ix).and_then(Option::as_mut);
            inputs.push(tensors::input_tensor_observed(batch, feed, spec, tap)?.into_tvalue());
        }
        let run = crate::sys::panics::catch(|| self.state.run(inputs))
            .unwrap_or_else(|p| Err(anyhow::anyhow!("the model crashed on this batch ({p})")));
        let outputs = match run {
            Ok(o) => o,
            Err(e) => {
                // A failed run leaves the state bound to this batch's size: start afresh.
                self.state = self.plan.spawn().map_err(ScoreError::Model)?;
                return Err(ScoreError::Model(e));
            }
        };
        tensors::output_arrays(&outputs, &model.outputs, batch.num_rows())
            .map_err(ScoreError::Model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, Float32Array, Int64Array};
    use arrow::datatypes::{Float32Type, Schema};

    fn testdata(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/models")
            .join(name)
    }

    /// 100 rows of 8 float32 features.
    fn features() -> RecordBatch {
        let fields: Vec<Field> = (0..8)
            .map(|i| Field::new(format!("f{i}"), DataType::Float32, false))
            .collect();
        let columns: Vec<ArrayRef> = (0..8)
            .map(|f| {
                Arc::new(Float32Array::from_iter_values(
                    (0..100).map(|r| ((r * 13 + f * 7) % 23) as f32 / 5.0 - 2.0),
                )) as ArrayRef
            })
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    #[test]
    fn chunked_runs_give_the_whole_batch_run() {
        let file = ModelFile::open(&testdata("onnx_mlp.onnx")).unwrap();
        let mut model = file.compile(&[Some(8)]).unwrap();
        let feeds = [Feed {
            input: 0,
            columns: (0..8).collect(),
        }];
        let batch = features();
        let whole = model
            .session()
            .unwrap()
            .score(&model, &batch, &feeds)
            .unwrap();
        model.chunk_rows = 7;
        let chunked = model
            .session()
            .unwrap()
            .score(&model, &batch, &feeds)
            .unwrap();
        assert_eq!(whole.len(), chunked.len());
        for (a, b) in whole.iter().zip(&chunked) {
            assert_eq!(a.len(), 100);
            assert_eq!(a.data_type(), b.data_type());
            let (a, b) = (
                a.as_primitive::<Float32Type>(),
                b.as_primitive::<Float32Type>(),
            );
            for i in 0..a.len() {
                // tract tiles its matrix kernels by rows: the last bits may differ.
                let (x, y) = (a.value(i), b.value(i));
                assert!(
                    (x - y).abs() <= 1e-6 * x.abs().max(1.0),
                    "row {i}: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn a_bad_row_in_a_later_chunk_is_named_by_its_row_in_the_batch() {
        let file = ModelFile::open(&testdata("pipeline_mixed.onnx")).unwrap();
        let mut model = file.compile(&[]).unwrap();
        model.chunk_rows = 7;
        let n = 30;
        let visits = Int64Array::from_iter((0..n).map(|r| (r != 23).then_some(r as i64)));
        let batch = RecordBatch::try_from_iter(vec![
            (
                "age",
                Arc::new(Float32Array::from(vec![40.0; n])) as ArrayRef,
            ),
            (
                "income",
                Arc::new(Float32Array::from(vec![5e4; n])) as ArrayRef,
            ),
            (
                "plan",
                Arc::new(arrow::array::StringArray::from(vec!["basic"; n])) as ArrayRef,
            ),
            ("n_visits", Arc::new(visits) as ArrayRef),
        ])
        .unwrap();
        let feeds: Vec<Feed> = file
            .signature
            .inputs
            .iter()
            .enumerate()
            .map(|(input, spec)| Feed {
                input,
                columns: vec![batch.schema().index_of(&spec.name).unwrap()],
            })
            .collect();
        match model.session().unwrap().score(&model, &batch, &feeds) {
            Err(ScoreError::BadRow(b)) => {
                assert_eq!(b.row, 23);
                assert_eq!(b.column, "n_visits");
            }
            other => panic!("expected a bad row, got {:?}", other.map(|v| v.len())),
        }
        assert!(batch.column(3).is_null(23));
    }
}
