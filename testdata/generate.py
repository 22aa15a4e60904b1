#!/usr/bin/env python3
"""Generate batchinfer's test models, inputs and onnxruntime reference outputs.

Run by hand (see testdata/README.md); the outputs are committed, so tests and CI
never run this script and never download anything.

    pip install -r testdata/requirements.txt
    python testdata/generate.py

Writes:
  data/      input tables (Parquet and CSV)
  models/    ONNX models, made by the real exporters (skl2onnx, onnxmltools, onnx)
  expected/  onnxruntime's predictions, one Parquet file per case, with the
             columns named as batchinfer names them (DESIGN.md, "Outputs")
  cases.json one entry per golden case: model, input, extra flags, expected file
"""
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from onnx import TensorProto, helper
from skl2onnx import convert_sklearn, to_onnx
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.svm import SVC, SVR, LinearSVC
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

warnings.filterwarnings("ignore")

import exporter_compat  # noqa: E402,F401  (patches an skl2onnx/onnx incompatibility)
HERE = Path(__file__).resolve().parent
DATA, MODELS, EXPECTED = HERE / "data", HERE / "models", HERE / "expected"
OPSET = {"": 15, "ai.onnx.ml": 3}
N_FEATURES = 8
FEATURES = [f"f{i}" for i in range(N_FEATURES)]
rng = np.random.default_rng(20261127)


# ---------------------------------------------------------------- data
def numeric_table(n, start_id, with_nulls):
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    cols = {
        "id": pa.array(np.arange(start_id, start_id + n, dtype=np.int64)),
        "ts": pa.array(
            pd.date_range("2024-01-01", periods=n, freq="min").values.astype("datetime64[us]")
        ),
        "segment": pa.array(rng.choice(["a", "b", "c"], size=n)),
    }
    mask = rng.random(size=x.shape) < 0.08 if with_nulls else np.zeros(x.shape, bool)
    for i, name in enumerate(FEATURES):
        cols[name] = pa.array(x[:, i], mask=mask[:, i])
    return pa.table(cols)


def features_of(table):
    """The [N, F] float32 matrix a single-input model sees: nulls become NaN."""
    return np.stack(
        [table[c].to_numpy(zero_copy_only=False).astype(np.float32) for c in FEATURES], axis=1
    )


def mixed_table(n):
    age = rng.normal(45, 12, size=n)
    age_mask = rng.random(n) < 0.1
    income = rng.lognormal(10, 0.5, size=n)
    plan = rng.choice(["basic", "plus", "pro"], size=n).astype(object)
    plan[rng.random(n) < 0.03] = "legacy"  # unseen in training: handle_unknown="ignore"
    visits = rng.poisson(5, size=n).astype(np.int64)
    return pa.table(
        {
            "id": pa.array(np.arange(n, dtype=np.int64) + 10_000),
            "age": pa.array(age, mask=age_mask),
            "income": pa.array(income),
            "plan": pa.array(list(plan), type=pa.string()),
            "n_visits": pa.array(visits),
        }
    )


def write_csv(table, path):
    pacsv.write_csv(table, path, pacsv.WriteOptions(include_header=True))


# ---------------------------------------------------------------- models
def targets(x):
    z = x[:, 0] * 1.5 - x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + np.sin(x[:, 4])
    z = np.nan_to_num(z)
    return z


def save(model, name):
    # Reproducible bytes: skl2onnx names graphs with a random UUID and lists opsets
    # in hash order.
    model.graph.name = name
    opsets = sorted(model.opset_import, key=lambda o: o.domain)
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    path = MODELS / f"{name}.onnx"
    onnx.save(model, path)
    return path


def skl(est, name, zipmap=True, n_features=N_FEATURES):
    opts = {id(est): {"zipmap": False}} if not zipmap else None
    m = convert_sklearn(
        est,
        initial_types=[("input", FloatTensorType([None, n_features]))],
        target_opset=OPSET,
        options=opts,
    )
    return save(m, name)


def ort_outputs(path, feeds):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return names, sess.run(None, feeds)


def flatten(names, values, labels=None):
    """Name ORT outputs as batchinfer does: [N]/[N,1] -> one column, [N,K] -> K columns,
    ZipMap (a list of dicts) -> one column per class label."""
    cols = {}
    for name, v in zip(names, values):
        if isinstance(v, list):  # ZipMap output: list of {label: prob}
            keys = list(v[0].keys())
            for k in keys:
                cols[f"{name}_{k}"] = pa.array(np.array([d[k] for d in v], dtype=np.float32))
            continue
        v = np.asarray(v)
        if v.ndim > 2 and all(d == 1 for d in v.shape[1:-1]):  # [N, 1, K] is written as [N, K]
            v = v.reshape(v.shape[0], v.shape[-1])
        if v.ndim == 1 or (v.ndim == 2 and v.shape[1] == 1):
            flat = v.reshape(-1)
            cols[name] = pa.array(flat if flat.dtype != object else [str(s) for s in flat])
        else:
            suffixes = labels if labels is not None and len(labels) == v.shape[1] else range(v.shape[1])
            for i, s in enumerate(suffixes):
                cols[f"{name}_{s}"] = pa.array(v[:, i])
    return cols


CASES = []


def case(name, model_path, data_file, table, feeds, args=(), labels=None, tolerance=1e-5, reference=None):
    # reference: another model whose onnxruntime outputs, through a function, are the
    # expected ones (where onnxruntime itself is wrong about `model_path`).
    names, values = ort_outputs(model_path, feeds) if reference is None else ort_outputs(reference[0], feeds)
    if reference is not None:
        values = [reference[1](v) for v in values]
    cols = {"id": table["id"]}
    cols.update(flatten(names, values, labels))
    pq.write_table(pa.table(cols), EXPECTED / f"{name}.parquet")
    CASES.append(
        {
            "name": name,
            "model": f"models/{model_path.name}",
            "input": f"data/{data_file}",
            "args": list(args),
            "expected": f"expected/{name}.parquet",
            "tolerance": tolerance,
        }
    )


def label_encoders(mixed, mixed_pd):
    """LabelEncoder as the onnx package writes it: opset 4 with tensor attributes
    (int64 keys to floats, strings to int64, float keys with NaN to strings), and
    opset 1 (int64 to the strings of classes_strings)."""
    from onnx import numpy_helper

    def t(name, values, dtype=None):
        return numpy_helper.from_array(np.array(values, dtype=dtype), name)

    ages = mixed_pd.age.to_numpy(np.float32)
    age_keys = np.array([np.nan, ages[0], ages[1], ages[2]], np.float32)
    nodes = [
        helper.make_node("LabelEncoder", ["n_visits"], ["visits_weight"], domain="ai.onnx.ml",
                         keys_tensor=t("k", [1, 2, 3, 4, 5], np.int64), values_tensor=t("v", [0.5, 1.5, 2.5, 3.5, 4.5], np.float32),
                         default_tensor=t("d", [-1.0], np.float32)),
        helper.make_node("LabelEncoder", ["plan"], ["plan_code"], domain="ai.onnx.ml",
                         keys_tensor=t("k", ["basic", "plus", "pro"], object), values_tensor=t("v", [10, 20, 30], np.int64),
                         default_tensor=t("d", [99], np.int64)),
        helper.make_node("LabelEncoder", ["age"], ["age_tag"], domain="ai.onnx.ml",
                         keys_floats=list(age_keys), values_strings=["missing", "first", "second", "third"], default_string="other"),
    ]
    inputs = [helper.make_tensor_value_info("n_visits", TensorProto.INT64, ["N"]),
              helper.make_tensor_value_info("plan", TensorProto.STRING, ["N"]),
              helper.make_tensor_value_info("age", TensorProto.FLOAT, ["N"])]
    outputs = [helper.make_tensor_value_info("visits_weight", TensorProto.FLOAT, ["N"]),
               helper.make_tensor_value_info("plan_code", TensorProto.INT64, ["N"]),
               helper.make_tensor_value_info("age_tag", TensorProto.STRING, ["N"])]
    m = helper.make_model(helper.make_graph(nodes, "label_encoders", inputs, outputs),
                          opset_imports=[helper.make_opsetid("", 15), helper.make_opsetid("ai.onnx.ml", 4)])
    m.ir_version = 8
    path = save(m, "label_encoders_opset4")
    feeds = {"n_visits": mixed_pd.n_visits.to_numpy(np.int64), "plan": mixed_pd.plan.to_numpy(object), "age": ages}
    case("label_encoders_opset4", path, "mixed.parquet", mixed, feeds)

    node = helper.make_node("LabelEncoder", ["n_visits"], ["visits_name"], domain="ai.onnx.ml",
                            classes_strings=["zero", "one", "two", "three"], default_string="many")
    m = helper.make_model(
        helper.make_graph([node], "label_encoder_opset1", [inputs[0]],
                          [helper.make_tensor_value_info("visits_name", TensorProto.STRING, ["N"])]),
        opset_imports=[helper.make_opsetid("", 15), helper.make_opsetid("ai.onnx.ml", 1)])
    m.ir_version = 8
    path = save(m, "label_encoder_opset1")
    case("label_encoder_opset1", path, "mixed.parquet", mixed, {"n_visits": feeds["n_visits"]})


def small_ml_ops(mixed, mixed_pd):
    """CategoryMapper both ways (with both defaults given, which tract's own
    refuses), FeatureVectorizer (float inputs with NaN, int64 inputs, inputs given
    more columns than they have), and OneHotEncoder over an [N, 1] input (an [N, 1, K] output)."""
    ml = [helper.make_opsetid("", 15), helper.make_opsetid("ai.onnx.ml", 1)]

    def model(name, nodes, inputs, outputs):
        m = helper.make_model(helper.make_graph(nodes, name, inputs, outputs), opset_imports=ml)
        m.ir_version = 8
        return save(m, name)

    vi = helper.make_tensor_value_info
    plan = mixed_pd.plan.to_numpy(object)
    visits = mixed_pd.n_visits.to_numpy(np.int64)
    m = model("category_mapper", [
        helper.make_node("CategoryMapper", ["plan"], ["plan_id"], domain="ai.onnx.ml",
                         cats_strings=["basic", "plus", "pro"], cats_int64s=[1, 2, 3], default_int64=-7, default_string="none"),
        helper.make_node("CategoryMapper", ["n_visits"], ["visits_band"], domain="ai.onnx.ml",
                         cats_strings=["low", "mid", "high"], cats_int64s=[2, 5, 8], default_int64=-7, default_string="none"),
    ], [vi("plan", TensorProto.STRING, ["N"]), vi("n_visits", TensorProto.INT64, ["N"])],
        [vi("plan_id", TensorProto.INT64, ["N"]), vi("visits_band", TensorProto.STRING, ["N"])])
    case("category_mapper", m, "mixed.parquet", mixed, {"plan": plan, "n_visits": visits})

    m = model("feature_vectorizer", [
        helper.make_node("FeatureVectorizer", ["income", "age"], ["features"], domain="ai.onnx.ml", inputdimensions=[1, 2]),
        helper.make_node("FeatureVectorizer", ["n_visits", "n_visits"], ["visits"], domain="ai.onnx.ml", inputdimensions=[2, 1]),
    ], [vi("income", TensorProto.FLOAT, ["N", 1]), vi("age", TensorProto.FLOAT, ["N", 1]), vi("n_visits", TensorProto.INT64, ["N", 1])],
        [vi("features", TensorProto.FLOAT, ["N", 3]), vi("visits", TensorProto.FLOAT, ["N", 3])])
    case("feature_vectorizer", m, "mixed.parquet", mixed, {
        "income": mixed_pd.income.to_numpy(np.float32).reshape(-1, 1), "age": mixed_pd.age.to_numpy(np.float32).reshape(-1, 1),
        "n_visits": visits.reshape(-1, 1)})

    m = model("one_hot_rank3", [
        helper.make_node("OneHotEncoder", ["plan"], ["plan_onehot"], domain="ai.onnx.ml",
                         cats_strings=["basic", "plus", "pro"], zeros=1),
    ], [vi("plan", TensorProto.STRING, ["N", 1])], [vi("plan_onehot", TensorProto.FLOAT, ["N", 1, 3])])
    case("one_hot_rank3", m, "mixed.parquet", mixed, {"plan": plan.reshape(-1, 1)})


def onnx_mlp():
    """A plain network built with the onnx package: Gemm, BatchNormalization, Relu, Tanh,
    Gemm, Softmax, plus a Sigmoid head."""
    w1 = rng.normal(size=(N_FEATURES, 16)).astype(np.float32) * 0.5
    b1 = rng.normal(size=16).astype(np.float32) * 0.1
    scale, bias = rng.uniform(0.5, 1.5, 16).astype(np.float32), rng.normal(size=16).astype(np.float32)
    mean, var = rng.normal(size=16).astype(np.float32) * 0.1, rng.uniform(0.5, 2, 16).astype(np.float32)
    w2 = rng.normal(size=(16, 3)).astype(np.float32) * 0.5
    b2 = np.zeros(3, np.float32)
    w3 = rng.normal(size=(16, 1)).astype(np.float32) * 0.5
    init = [
        onnx.numpy_helper.from_array(a, n)
        for a, n in [(w1, "w1"), (b1, "b1"), (scale, "scale"), (bias, "bias"), (mean, "mean"),
                     (var, "var"), (w2, "w2"), (b2, "b2"), (w3, "w3")]
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"]),
        helper.make_node("BatchNormalization", ["h1", "scale", "bias", "mean", "var"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r1"]),
        helper.make_node("Tanh", ["r1"], ["t1"]),
        helper.make_node("Gemm", ["t1", "w2", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        helper.make_node("MatMul", ["t1", "w3"], ["s"]),
        helper.make_node("Sigmoid", ["s"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", N_FEATURES])],
        [
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1]),
        ],
        init,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return save(m, "onnx_mlp")


def unsupported_model():
    """A valid model using TfIdfVectorizer, which neither tract nor batchinfer runs:
    batchinfer must refuse it before scoring, naming the operator."""
    node = helper.make_node("TfIdfVectorizer", ["x"], ["y"], mode="TF", min_gram_length=1, max_gram_length=1,
                            max_skip_count=0, ngram_counts=[0], ngram_indexes=[0], pool_int64s=[1])
    graph = helper.make_graph(
        [node], "tfidf",
        [helper.make_tensor_value_info("x", TensorProto.INT64, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    save(m, "unsupported_tfidf")


def strict_one_hot_model():
    """OneHotEncoder with zeros=0 over `segment` (categories a, b): rows holding c
    make the model fail, which tests the row-by-row retry of --on-error skip."""
    nodes = [
        helper.make_node("OneHotEncoder", ["segment"], ["hot"], domain="ai.onnx.ml", cats_strings=["a", "b"], zeros=0),
        helper.make_node("Flatten", ["hot"], ["onehot"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "strict_one_hot",
        [helper.make_tensor_value_info("segment", TensorProto.STRING, ["N", 1])],
        [helper.make_tensor_value_info("onehot", TensorProto.FLOAT, ["N", 2])],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15), helper.make_opsetid("ai.onnx.ml", 1)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    save(m, "strict_one_hot")


def normalizer_case():
    """Normalizer in its three modes (MAX, L1, L2) over rows with negatives, rows of
    zeros and all-negative rows, made with the onnx package: the edge cases where
    runtimes differ. Drawn last, so the other files keep their bytes."""
    n = 64
    x = rng.normal(size=(n, 4)).astype(np.float32)
    x[::8] = 0.0
    x[3::8] = -np.abs(x[3::8])
    x[5, 1] = 0.0
    table = pa.table({"id": pa.array(np.arange(n, dtype=np.int64))} | {f"x{i}": pa.array(x[:, i]) for i in range(4)})
    pq.write_table(table, DATA / "normalize.parquet")
    nodes = [helper.make_node("Normalizer", ["x"], [f"{k.lower()}"], domain="ai.onnx.ml", norm=k) for k in ("MAX", "L1", "L2")]
    graph = helper.make_graph(
        nodes, "normalizers",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info(k.lower(), TensorProto.FLOAT, ["N", 4]) for k in ("MAX", "L1", "L2")],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15), helper.make_opsetid("ai.onnx.ml", 1)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    case("normalizers", save(m, "normalizers"), "normalize.parquet", table, {"x": x})


def dense_case():
    """Dense layers as exporters write them, made with the onnx package: Gemm with a
    transposed weight whose output is also a graph output and feeds a Relu, MatMul +
    Add of a scalar, Gemm + Relu, a MatMul with no bias, and a per-row (batched)
    MatMul of two activations. Drawn last, so the other files keep their bytes."""
    n, f = 300, 6
    x = (rng.normal(size=(n, f)) * 2).astype(np.float32)
    table = pa.table({"id": pa.array(np.arange(n, dtype=np.int64))} | {f"x{i}": pa.array(x[:, i]) for i in range(f)})
    pq.write_table(table, DATA / "dense.parquet")
    arrays = {
        "w1t": rng.normal(size=(16, f)), "b1": rng.normal(size=16) * 0.5,
        "w2": rng.normal(size=(16, 5)) * 0.3, "b2": np.array(0.25),
        "w3": rng.normal(size=(f, 12)), "b3": rng.normal(size=(1, 12)) * 0.5,
        "w4": rng.normal(size=(12, 3)) * 0.3, "axes": np.array([1], dtype=np.int64),
        "axes2": np.array([2], dtype=np.int64), "flat": np.array([-1, 1], dtype=np.int64),
    }
    init = [onnx.numpy_helper.from_array(v if v.dtype == np.int64 else v.astype(np.float32), k) for k, v in arrays.items()]
    nodes = [
        helper.make_node("Gemm", ["x", "w1t", "b1"], ["pre"], transB=1),
        helper.make_node("Relu", ["pre"], ["h1"]),
        helper.make_node("MatMul", ["h1", "w2"], ["m2"]),
        helper.make_node("Add", ["m2", "b2"], ["linear"]),
        helper.make_node("Gemm", ["x", "w3", "b3"], ["g3"]),
        helper.make_node("Relu", ["g3"], ["h3"]),
        helper.make_node("MatMul", ["h3", "w4"], ["relu_path"]),
        helper.make_node("Unsqueeze", ["h1", "axes"], ["row"]),
        helper.make_node("Unsqueeze", ["h1", "axes2"], ["col"]),
        helper.make_node("MatMul", ["row", "col"], ["dot"]),
        helper.make_node("Reshape", ["dot", "flat"], ["self_dot"]),
    ]
    outputs = [("pre", 16), ("linear", 5), ("relu_path", 3), ("self_dot", 1)]
    graph = helper.make_graph(
        nodes, "dense_layers",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", f])],
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, ["N", w]) for k, w in outputs],
        init,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    case("dense_layers", save(m, "dense_layers"), "dense.parquet", table, {"x": x})


def tree_ensemble_opset5(xt, zt, numeric_nan, x_nan, mixed, mixed_pd):
    """TreeEnsemble (ai.onnx.ml opset 5), which no exporter writes yet: scikit-learn
    forests' trees re-encoded with the onnx package. One as it is (two targets,
    AVERAGE). One over the mixed table (n_visits, age with NaN, income) with the
    splits on n_visits turned into BRANCH_MEMBER sets of counts (onnxruntime
    implements integer members only), NaN sent to the true branch at some nodes, a
    tree that is one leaf, and SUM. No post transform: onnxruntime 1.32 reads
    opset 5's post_transform with SOFTMAX (1) and LOGISTIC (2) swapped, so it is no
    reference for them (a unit test checks batchinfer against the definition)."""
    from onnx import numpy_helper
    from skl2onnx import to_onnx

    local = np.random.default_rng(5)
    code = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3, "BRANCH_EQ": 4, "BRANCH_NEQ": 5}

    def encode(forest, x1, members):
        a = {at.name: helper.get_attribute_value(at) for at in to_onnx(forest, x1, target_opset=OPSET).graph.node[0].attribute}
        modes = [m.decode() for m in a["nodes_modes"]]
        at = {(t, n): i for i, (t, n) in enumerate(zip(a["nodes_treeids"], a["nodes_nodeids"]))}
        weights = {}
        for t, n, k, w in zip(a["target_treeids"], a["target_nodeids"], a["target_ids"], a["target_weights"]):
            weights[(t, n, k)] = weights.get((t, n, k), 0.0) + w
        o = {k: [] for k in ("feat", "mode", "split", "tid", "tleaf", "fid", "fleaf", "miss", "ltarget", "lweight", "roots")}
        sets = []

        def emit(tree, node, target):
            i = at[(tree, node)]
            if modes[i] == "LEAF":
                o["ltarget"].append(target)
                o["lweight"].append(weights.get((tree, node, target), 0.0))
                return 1, len(o["ltarget"]) - 1
            j = len(o["feat"])
            for k in ("feat", "mode", "split", "tid", "tleaf", "fid", "fleaf", "miss"):
                o[k].append(0)
            f = a["nodes_featureids"][i]
            o["feat"][j], o["split"][j] = f, a["nodes_values"][i]
            o["mode"][j] = code[modes[i]]
            if members and f == 0:
                o["mode"][j] = 6
                sets.append((j, sorted(set(local.integers(0, 12, 5).tolist()))))
            o["miss"][j] = int(members and j % 3 == 1)
            o["tleaf"][j], o["tid"][j] = emit(tree, a["nodes_truenodeids"][i], target)
            o["fleaf"][j], o["fid"][j] = emit(tree, a["nodes_falsenodeids"][i], target)
            return 0, j

        n_targets = forest.n_outputs_
        for tree in sorted(set(a["nodes_treeids"])):
            for target in range(n_targets):
                o["roots"].append(emit(tree, 0, target)[1])
        if members:
            # A tree that is one leaf: a node whose branches both name the same leaf.
            o["ltarget"].append(0)
            o["lweight"].append(0.25)
            leaf = len(o["ltarget"]) - 1
            for k, v in (("feat", 0), ("mode", 0), ("split", 0.0), ("tid", leaf), ("tleaf", 1), ("fid", leaf), ("fleaf", 1), ("miss", 0)):
                o[k].append(v)
            o["roots"].append(len(o["feat"]) - 1)
        membership = [v for _, vals in sorted(sets) for v in vals + [np.nan]]
        return o, membership, n_targets

    def t(values, dtype):
        return numpy_helper.from_array(np.array(values, dtype=dtype))

    def model(name, o, membership, n_targets, n_features, aggregate, post):
        extra = {"membership_values": t(membership, np.float32)} if membership else {}
        node = helper.make_node(
            "TreeEnsemble", ["input"], ["scores"], domain="ai.onnx.ml", n_targets=n_targets,
            aggregate_function=aggregate, post_transform=post, tree_roots=o["roots"],
            nodes_featureids=o["feat"], nodes_modes=t(o["mode"], np.uint8), nodes_splits=t(o["split"], np.float32),
            nodes_truenodeids=o["tid"], nodes_trueleafs=o["tleaf"], nodes_falsenodeids=o["fid"],
            nodes_falseleafs=o["fleaf"], nodes_missing_value_tracks_true=o["miss"],
            leaf_targetids=o["ltarget"], leaf_weights=t(o["lweight"], np.float32), **extra)
        graph = helper.make_graph(
            [node], name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", n_features])],
            [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", n_targets])])
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("ai.onnx.ml", 5)])
        m.ir_version = 9
        onnx.checker.check_model(m)
        return save(m, name)

    y2 = np.stack([zt, np.sin(zt)], axis=1)
    forest = RandomForestRegressor(6, max_depth=5, random_state=0).fit(xt, y2)
    o, membership, k = encode(forest, xt[:1], False)
    path = model("tree_ensemble_opset5", o, membership, k, N_FEATURES, 0, 0)
    case("tree_ensemble_opset5", path, "numeric_nan.parquet", numeric_nan, {"input": x_nan})

    train = mixed_table(1500).to_pandas()
    cols = ["n_visits", "age", "income"]
    xm = train[cols].fillna(45.0).to_numpy(np.float32)
    ym = (train.n_visits.isin([2, 3, 7]) * 1.0 + train.age.fillna(45.0) / 50.0).to_numpy()
    ym = np.stack([ym - 1.5, np.log(train.income.to_numpy()) - 10.0], axis=1)
    forest = RandomForestRegressor(5, max_depth=4, random_state=0).fit(xm, ym)
    o, membership, k = encode(forest, xm[:1], True)
    path = model("tree_ensemble_members", o, membership, k, 3, 1, 0)
    feed = np.stack([mixed_pd[c].to_numpy(np.float32) for c in cols], axis=1)
    args = ["--features", ",".join(cols)]
    case("tree_ensemble_members", path, "mixed.parquet", mixed, {"input": feed}, args=args)

    # The post transforms as the operator defines them, applied to onnxruntime's
    # scores without one.
    def softmax(v):
        e = np.exp(v - v.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    for name, post, f in (("tree_ensemble_softmax", 1, softmax), ("tree_ensemble_logistic", 2, lambda v: 1 / (1 + np.exp(-v)))):
        m = model(name, o, membership, k, 3, 1, post)
        case(name, m, "mixed.parquet", mixed, {"input": feed}, args=args, reference=(path, f))

def map_inputs():
    """Map inputs: scikit-learn DictVectorizer pipelines as skl2onnx exports them (string
    and int64 keys), and CastMap (SPARSE, to floats and to int64) built with the onnx
    package. onnxruntime takes one map per run, so the references are made row by row.
    data/maps.parquet: `features` map<string, float32> (keys a..f and an unseen `zz`),
    `counts` map<int64, float32> (keys 0..7, beyond CastMap's max_map of 6 too), and
    `attrs`, the features as a struct (null field = absent key, no field `f`)."""
    from sklearn.feature_extraction import DictVectorizer
    from skl2onnx.common.data_types import DictionaryType

    r = np.random.default_rng(20261202)
    keys = list("abcdef")

    def draw(n, unseen):
        rows = []
        for _ in range(n):
            picked = r.choice(keys, size=int(r.integers(1, 5)), replace=False)
            d = {str(k): float(np.float32(r.normal())) for k in picked}
            if unseen and r.random() < 0.1:
                d["zz"] = float(np.float32(r.normal()))
            rows.append(d)
        return rows

    def draw_counts(n):
        return [
            {int(k): float(np.float32(r.normal() * 3)) for k in r.choice(8, size=int(r.integers(1, 5)), replace=False)}
            for _ in range(n)
        ]

    train = draw(600, unseen=False)
    y = np.array([int(d.get("a", 0) - d.get("b", 0) + 0.5 * d.get("c", 0) > 0) for d in train])
    train_counts = draw_counts(600)
    yc = np.array([d.get(0, 0) * 0.5 - d.get(3, 0) + d.get(5, 0) ** 2 * 0.1 for d in train_counts])

    n = 300
    feats = draw(n, unseen=True)
    counts = draw_counts(n)
    # The struct form of the features: no field `f`; rows keep at least one key.
    attrs = [{k: d.get(k) for k in "abcde"} for d in feats]
    for a, d in zip(attrs, feats):
        if all(v is None for v in a.values()):
            a["a"] = d["a"] = 1.0
            d.pop("f", None)
    struct_feats = [{k: v for k, v in a.items() if v is not None} for a in attrs]
    table = pa.table(
        {
            "id": pa.array(np.arange(n, dtype=np.int64) + 50_000),
            "features": pa.array([list(d.items()) for d in feats], type=pa.map_(pa.string(), pa.float32())),
            "counts": pa.array([list(d.items()) for d in counts], type=pa.map_(pa.int64(), pa.float32())),
            "attrs": pa.array(attrs, type=pa.struct([(k, pa.float32()) for k in "abcde"])),
        }
    )
    pq.write_table(table, DATA / "maps.parquet", row_group_size=128)

    def by_row(model_path, name, rows, reference=None):
        sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        runs = [sess.run(None, {name: d}) for d in rows]
        values = []
        for i in range(len(names)):
            parts = [run[i] for run in runs]
            values.append(sum(parts, []) if isinstance(parts[0], list) else np.concatenate(parts))
        cols = {"id": table["id"]}
        cols.update(flatten(names, values))
        return cols

    def golden(name, model_path, input_name, rows, args=()):
        pq.write_table(pa.table(by_row(model_path, input_name, rows)), EXPECTED / f"{name}.parquet")
        CASES.append(
            {
                "name": name,
                "model": f"models/{model_path.name}",
                "input": "data/maps.parquet",
                "args": list(args),
                "expected": f"expected/{name}.parquet",
                "tolerance": 1e-5,
            }
        )

    pipe = Pipeline([("dv", DictVectorizer(sparse=False)), ("clf", LogisticRegression(max_iter=500))]).fit(train, y)
    m = convert_sklearn(
        pipe,
        initial_types=[("features", DictionaryType(StringTensorType([1]), FloatTensorType([1])))],
        target_opset=OPSET,
    )
    m = save(m, "dictvectorizer_logreg")
    golden("dictvectorizer_logreg", m, "features", feats)
    golden("dictvectorizer_logreg_struct", m, "features", struct_feats, args=["--input-map", "features=attrs"])

    pipe = Pipeline([("dv", DictVectorizer(sparse=False)), ("reg", RandomForestRegressor(10, max_depth=5, random_state=0))])
    pipe.fit(train_counts, yc)
    m = convert_sklearn(
        pipe,
        initial_types=[("counts", DictionaryType(Int64TensorType([1]), FloatTensorType([1])))],
        target_opset=OPSET,
    )
    m = save(m, "dictvectorizer_int_keys_forest")
    golden("dictvectorizer_int_keys_forest", m, "counts", counts)

    def cast_map(name, cast_to, form="SPARSE"):
        from onnx import numpy_helper

        w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(6, 2) / 4 - 1, "w")
        nodes = [helper.make_node("CastMap", ["counts"], ["dense"], domain="ai.onnx.ml", cast_to=cast_to,
                                  map_form=form, max_map=6)]
        if cast_to == "TO_INT64":
            nodes.append(helper.make_node("Cast", ["dense"], ["dense_f"], to=TensorProto.FLOAT))
            nodes.append(helper.make_node("MatMul", ["dense_f", "w"], ["y"]))
        else:
            nodes.append(helper.make_node("MatMul", ["dense", "w"], ["y"]))
        inp = helper.make_value_info(
            "counts", helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, []))
        )
        graph = helper.make_graph(nodes, name, [inp], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], [w])
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15), helper.make_opsetid("ai.onnx.ml", 3)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        return save(m, name)

    golden("castmap_sparse_float", cast_map("castmap_sparse_float", "TO_FLOAT"), "counts", counts)
    golden("castmap_sparse_int64", cast_map("castmap_sparse_int64", "TO_INT64"), "counts", counts)
    # Refused by name: map_form DENSE makes a tensor as wide as each row's map.
    cast_map("castmap_dense", "TO_FLOAT", form="DENSE")


def main():
    for d in (DATA, MODELS, EXPECTED):
        d.mkdir(parents=True, exist_ok=True)
        for f in d.glob("*"):
            if f.is_file():
                f.unlink()
    (DATA / "numeric_parts").mkdir(exist_ok=True)
    for f in (DATA / "numeric_parts").glob("*"):
        f.unlink()

    # Inputs. numeric: 1,500 rows in row groups of 400; also as CSV and as three files.
    numeric = numeric_table(1500, 1, with_nulls=False)
    pq.write_table(numeric, DATA / "numeric.parquet", row_group_size=400)
    write_csv(numeric.drop_columns(["ts"]), DATA / "numeric.csv")
    for i, off in enumerate(range(0, 1500, 500)):
        pq.write_table(numeric.slice(off, 500), DATA / "numeric_parts" / f"part-{i:03}.parquet")
    numeric_nan = numeric_table(800, 100_000, with_nulls=True)
    pq.write_table(numeric_nan, DATA / "numeric_nan.parquet", row_group_size=300)
    mixed = mixed_table(600)
    pq.write_table(mixed, DATA / "mixed.parquet", row_group_size=250)
    write_csv(mixed, DATA / "mixed.csv")

    # Training data, drawn apart from the scored inputs.
    xt = rng.normal(size=(2000, N_FEATURES)).astype(np.float32)
    zt = targets(xt)
    y_bin = (zt > 0).astype(np.int64)
    y_multi = np.digitize(zt, np.quantile(zt, [0.25, 0.5, 0.75])).astype(np.int64)
    y_3 = np.digitize(zt, np.quantile(zt, [0.33, 0.66])).astype(np.int64)
    y_str = np.where(y_bin == 1, "yes", "no")
    xt_nan = xt.copy()
    xt_nan[rng.random(xt.shape) < 0.08] = np.nan

    x = features_of(numeric)
    x_nan = features_of(numeric_nan)
    feed = {"input": x}
    feed_nan = {"input": x_nan}

    # scikit-learn, linear
    m = skl(LogisticRegression(max_iter=500).fit(xt, y_multi), "logreg_multiclass")
    case("logreg_multiclass", m, "numeric.parquet", numeric, feed)
    case("logreg_multiclass_csv", m, "numeric.csv", numeric, feed)
    m = skl(LogisticRegression(max_iter=500).fit(xt, y_str), "logreg_binary_strlabels", zipmap=False)
    case("logreg_binary_strlabels", m, "numeric.parquet", numeric, feed, labels=["no", "yes"])
    m = skl(LogisticRegression(max_iter=500).fit(xt, y_bin), "logreg_binary")
    case("logreg_binary", m, "numeric.parquet", numeric, feed)
    m = skl(LinearRegression().fit(xt, zt), "linreg")
    case("linreg", m, "numeric.parquet", numeric, feed)

    # scikit-learn, trees
    m = skl(RandomForestClassifier(10, max_depth=6, random_state=0).fit(xt, y_bin), "rf_binary")
    case("rf_binary", m, "numeric.parquet", numeric, feed)
    m = skl(ExtraTreesClassifier(10, max_depth=6, random_state=0).fit(xt, y_3), "et_multiclass", zipmap=False)
    case("et_multiclass", m, "numeric.parquet", numeric, feed, labels=[0, 1, 2])
    m = skl(RandomForestRegressor(10, max_depth=6, random_state=0).fit(xt, zt), "rf_regressor")
    case("rf_regressor", m, "numeric.parquet", numeric, feed)
    m = skl(GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=0).fit(xt, zt), "gb_regressor")
    case("gb_regressor", m, "numeric.parquet", numeric, feed)
    m = skl(GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0).fit(xt, y_bin), "gb_binary")
    case("gb_binary", m, "numeric.parquet", numeric, feed)
    m = skl(GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0).fit(xt, y_3), "gb_multiclass")
    case("gb_multiclass", m, "numeric.parquet", numeric, feed)
    m = skl(HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(xt_nan, y_bin), "hgb_binary_nan")
    case("hgb_binary_nan", m, "numeric_nan.parquet", numeric_nan, feed_nan)
    m = skl(HistGradientBoostingRegressor(max_iter=20, random_state=0).fit(xt_nan, zt), "hgb_regressor_nan")
    case("hgb_regressor_nan", m, "numeric_nan.parquet", numeric_nan, feed_nan)

    m = skl(RandomForestClassifier(10, max_depth=6, random_state=0).fit(xt, np.array(["low", "mid", "high"])[y_3]), "rf_multiclass_strlabels")
    case("rf_multiclass_strlabels", m, "numeric.parquet", numeric, feed)
    m = skl(ExtraTreesRegressor(10, max_depth=6, random_state=0).fit(xt, zt), "et_regressor")
    case("et_regressor", m, "numeric.parquet", numeric, feed)
    m = skl(HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(xt_nan, y_3), "hgb_multiclass_nan", zipmap=False)
    case("hgb_multiclass_nan", m, "numeric_nan.parquet", numeric_nan, feed_nan, labels=[0, 1, 2])

    # scikit-learn, more linear models and SVMs
    m = skl(Ridge(alpha=0.5).fit(xt, zt), "ridge")
    case("ridge", m, "numeric.parquet", numeric, feed)
    m = skl(LinearSVC().fit(xt, y_bin), "linear_svc_binary")
    case("linear_svc_binary", m, "numeric.parquet", numeric, feed)
    m = skl(LinearSVC().fit(xt, y_3), "linear_svc_multiclass")
    case("linear_svc_multiclass", m, "numeric.parquet", numeric, feed)
    xs, ys, ys3, zs = xt[:300], y_bin[:300], y_3[:300], zt[:300]  # SVMs stay small
    m = skl(SVC(kernel="linear").fit(xs, ys), "svc_linear_binary", zipmap=False)
    case("svc_linear_binary", m, "numeric.parquet", numeric, feed, labels=[0, 1])
    m = skl(SVC(kernel="rbf").fit(xs, ys3), "svc_rbf_multiclass", zipmap=False)
    case("svc_rbf_multiclass", m, "numeric.parquet", numeric, feed, labels=[0, 1, 2])
    m = skl(SVC(kernel="rbf", probability=True, random_state=0).fit(xs, ys3), "svc_rbf_proba")
    case("svc_rbf_proba", m, "numeric.parquet", numeric, feed)
    m = skl(SVC(kernel="poly", degree=2, probability=True, random_state=0).fit(xs, ys), "svc_poly_binary_proba")
    case("svc_poly_binary_proba", m, "numeric.parquet", numeric, feed)
    m = skl(SVR(kernel="rbf").fit(xs, zs), "svr_rbf")
    case("svr_rbf", m, "numeric.parquet", numeric, feed)

    # scikit-learn, neural networks
    m = skl(MLPRegressor(hidden_layer_sizes=(32, 16), max_iter=300, random_state=0).fit(xt, zt), "mlp_regressor")
    case("mlp_regressor", m, "numeric.parquet", numeric, feed)
    m = skl(MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(xt, y_3), "mlp_classifier")
    case("mlp_classifier", m, "numeric.parquet", numeric, feed)

    # A ColumnTransformer pipeline, one input per column: float with NaN, int64, string.
    train_mixed = mixed_table(1500).to_pandas()
    train_mixed = train_mixed[train_mixed.plan != "legacy"]
    y_mixed = ((train_mixed.n_visits > 5) ^ (train_mixed.plan == "pro")).astype(np.int64)
    pre = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), ["age"]),
            ("inc", MinMaxScaler(), ["income"]),
            ("cnt", StandardScaler(), ["n_visits"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        ]
    )
    pipe = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))]).fit(
        train_mixed[["age", "income", "n_visits", "plan"]], y_mixed
    )
    m = convert_sklearn(
        pipe,
        initial_types=[
            ("age", FloatTensorType([None, 1])),
            ("income", FloatTensorType([None, 1])),
            ("n_visits", Int64TensorType([None, 1])),
            ("plan", StringTensorType([None, 1])),
        ],
        target_opset=OPSET,
    )
    m = save(m, "pipeline_mixed")
    mixed_pd = mixed.to_pandas()
    mixed_feed = {
        "age": mixed_pd.age.to_numpy(np.float32).reshape(-1, 1),
        "income": mixed_pd.income.to_numpy(np.float32).reshape(-1, 1),
        "n_visits": mixed_pd.n_visits.to_numpy(np.int64).reshape(-1, 1),
        "plan": mixed_pd.plan.to_numpy(object).reshape(-1, 1),
    }
    case("pipeline_mixed", m, "mixed.parquet", mixed, mixed_feed)
    case("pipeline_mixed_csv", m, "mixed.csv", mixed, mixed_feed)

    # OneHotEncoder over integer categories, one input per column.
    pipe_int = Pipeline([
        ("pre", ColumnTransformer([
            ("cnt", OneHotEncoder(handle_unknown="ignore"), ["n_visits"]),
            ("inc", StandardScaler(), ["income"]),
        ])),
        ("clf", RandomForestClassifier(10, max_depth=5, random_state=0)),
    ]).fit(train_mixed[["income", "n_visits"]], y_mixed)
    m = convert_sklearn(
        pipe_int,
        initial_types=[("income", FloatTensorType([None, 1])), ("n_visits", Int64TensorType([None, 1]))],
        target_opset=OPSET,
    )
    m = save(m, "pipeline_int_categories")
    case("pipeline_int_categories", m, "mixed.parquet", mixed, {k: mixed_feed[k] for k in ("income", "n_visits")})

    # OrdinalEncoder over a string column (skl2onnx: LabelEncoder, strings to
    # int64 codes; the unseen category gets the default -1), then a forest.
    from sklearn.preprocessing import OrdinalEncoder
    pipe_ord = Pipeline([
        ("pre", ColumnTransformer([
            ("ord", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), ["plan"]),
            ("num", "passthrough", ["income"]),
        ])),
        ("clf", RandomForestClassifier(10, max_depth=5, random_state=0)),
    ]).fit(train_mixed[["plan", "income"]], y_mixed)
    m = convert_sklearn(
        pipe_ord,
        initial_types=[("plan", StringTensorType([None, 1])), ("income", FloatTensorType([None, 1]))],
        target_opset=OPSET,
    )
    m = save(m, "pipeline_ordinal_encoder")
    case("pipeline_ordinal_encoder", m, "mixed.parquet", mixed, {k: mixed_feed[k] for k in ("plan", "income")})

    # scikit-learn's own LabelEncoder: a string column to its code (LabelEncoder
    # opset 2, keys_strings to values_int64s).
    from sklearn.preprocessing import LabelEncoder as SkLabelEncoder
    m = convert_sklearn(
        SkLabelEncoder().fit(train_mixed.plan), initial_types=[("plan", StringTensorType([None]))], target_opset=OPSET
    )
    m = save(m, "label_encoder_strings")
    case("label_encoder_strings", m, "mixed.parquet", mixed, {"plan": mixed_pd.plan.to_numpy(object)})

    # XGBoost and LightGBM through onnxmltools.
    import lightgbm as lgb
    import xgboost as xgb
    from onnxmltools.convert import convert_lightgbm, convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType as MlFloat

    ml_types = [("input", MlFloat([None, N_FEATURES]))]
    for name, est, y in [
        ("xgb_binary", xgb.XGBClassifier(n_estimators=20, max_depth=4), y_bin),
        ("xgb_multiclass", xgb.XGBClassifier(n_estimators=10, max_depth=4), y_3),
        ("xgb_regressor", xgb.XGBRegressor(n_estimators=20, max_depth=4), zt),
    ]:
        est.fit(xt_nan, y)
        m = save(convert_xgboost(est, initial_types=ml_types, target_opset=15), name)
        case(name, m, "numeric_nan.parquet", numeric_nan, feed_nan)
    for name, est, y in [
        ("lgbm_binary", lgb.LGBMClassifier(n_estimators=20, num_leaves=15, verbose=-1), y_bin),
        ("lgbm_multiclass", lgb.LGBMClassifier(n_estimators=10, num_leaves=15, verbose=-1), y_3),
        ("lgbm_regressor", lgb.LGBMRegressor(n_estimators=20, num_leaves=15, verbose=-1), zt),
    ]:
        est.fit(xt_nan, y)
        m = save(convert_lightgbm(est, initial_types=ml_types, target_opset=15, zipmap=False), name)
        case(name, m, "numeric_nan.parquet", numeric_nan, feed_nan)

    # CatBoost's own ONNX export.
    import catboost
    for name, est, y in [
        ("catboost_binary", catboost.CatBoostClassifier(iterations=20, depth=4, verbose=0, random_seed=0, thread_count=1, allow_writing_files=False), y_bin),
        ("catboost_multiclass", catboost.CatBoostClassifier(iterations=10, depth=4, verbose=0, random_seed=0, thread_count=1, allow_writing_files=False, loss_function="MultiClass"), y_3),
        ("catboost_regressor", catboost.CatBoostRegressor(iterations=20, depth=4, verbose=0, random_seed=0, thread_count=1, allow_writing_files=False), zt),
    ]:
        est.fit(xt, y)
        path = MODELS / f"{name}.onnx"
        est.save_model(str(path), format="onnx")
        m = onnx.load(path)
        # Drop the training time and random model id CatBoost records, for reproducible bytes.
        keep = [p for p in m.metadata_props if p.key not in ("train_finish_time", "model_guid")]
        del m.metadata_props[:]
        m.metadata_props.extend(keep)
        save(m, name)
        case(name, path, "numeric.parquet", numeric, {"features": x})

    # A network built directly with the onnx package.
    m = onnx_mlp()
    case("onnx_mlp", m, "numeric.parquet", numeric, {"x": x})
    case("onnx_mlp_parts", m, "numeric_parts", numeric, {"x": x})

    unsupported_model()
    label_encoders(mixed, mixed_pd)
    small_ml_ops(mixed, mixed_pd)
    strict_one_hot_model()
    normalizer_case()
    dense_case()
    tree_ensemble_opset5(xt, zt, numeric_nan, x_nan, mixed, mixed_pd)
    map_inputs()

    (HERE / "cases.json").write_text(json.dumps(CASES, indent=1) + "\n")
    ops = {}
    for f in sorted(MODELS.glob("*.onnx")):
        ops[f.stem] = sorted({n.op_type for n in onnx.load(f).graph.node})
    print(json.dumps(ops, indent=1))


if __name__ == "__main__":
    main()
