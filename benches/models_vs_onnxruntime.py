#!/usr/bin/env python3
"""Model throughput, batchinfer against onnxruntime, one thread, same models, same data.

For each model family and batch size, both engines score the same in-memory rows on
one thread; the figure is rows per CPU-second (CPU time, so other load on a shared
machine matters less than for wall time). Median of --repeat runs, measured
alternately in one run of this script.

    pip install -r testdata/requirements.txt
    cargo build --release            # or pass --batchinfer target/debug/batchinfer
    python benches/models_vs_onnxruntime.py [--rows 65536] [--repeat 5]

Models and data are generated into target/bench-models/ (not committed).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "testdata"))
import exporter_compat  # noqa: E402,F401  (patches an skl2onnx/onnx incompatibility)
OUT = ROOT / "target" / "bench-models"
N_FEATURES = 20
FEATURES = [f"f{i}" for i in range(N_FEATURES)]


def make(rows):
    """Bench models as in ../shared/MEASURED.md, trained on synthetic data."""
    from sklearn.ensemble import (GradientBoostingRegressor, HistGradientBoostingClassifier,
                                  RandomForestClassifier)
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    import lightgbm as lgb
    import xgboost as xgb
    from onnxmltools.convert import convert_lightgbm, convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType as MlFloat

    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    xt = rng.normal(size=(20000, N_FEATURES)).astype(np.float32)
    z = xt[:, 0] * 1.5 - xt[:, 1] + 0.5 * xt[:, 2] * xt[:, 3] + np.sin(xt[:, 4])
    y2 = (z > 0).astype(np.int64)
    y3 = np.digitize(z, np.quantile(z, [0.33, 0.66]))
    y4 = np.digitize(z, np.quantile(z, [0.25, 0.5, 0.75]))
    xt_nan = xt.copy()
    xt_nan[rng.random(xt.shape) < 0.05] = np.nan
    types = [("input", FloatTensorType([None, N_FEATURES]))]
    opset = {"": 15, "ai.onnx.ml": 3}

    def skl(est, name, x, y):
        est.fit(x, y)
        onnx.save(convert_sklearn(est, initial_types=types, target_opset=opset), OUT / f"{name}.onnx")

    skl(RandomForestClassifier(100, max_depth=10, random_state=0, n_jobs=-1), "random_forest_100", xt, y2)
    skl(GradientBoostingRegressor(n_estimators=200, max_depth=3, random_state=0), "gradient_boosting_200", xt, z)
    skl(HistGradientBoostingClassifier(max_iter=100, random_state=0), "hist_gradient_boosting_nan", xt_nan, y2)
    skl(LogisticRegression(max_iter=300), "logistic_regression_4", xt, y4)
    skl(MLPClassifier(hidden_layer_sizes=(256, 256), max_iter=5, random_state=0), "mlp_256x256", xt, y3)
    mt = [("input", MlFloat([None, N_FEATURES]))]
    m = xgb.XGBClassifier(n_estimators=100, max_depth=6).fit(xt_nan, y3)
    onnx.save(convert_xgboost(m, initial_types=mt, target_opset=15), OUT / "xgboost_100_3class.onnx")
    m = lgb.LGBMRegressor(n_estimators=200, num_leaves=31, verbose=-1).fit(xt_nan, z)
    onnx.save(convert_lightgbm(m, initial_types=mt, target_opset=15), OUT / "lightgbm_200.onnx")

    onnx.save(dense_network(rng), OUT / "onnx_dense_256x256.onnx")

    x = rng.normal(size=(rows, N_FEATURES)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    cols = {"id": pa.array(np.arange(rows, dtype=np.int64))}
    cols.update({c: pa.array(x[:, i]) for i, c in enumerate(FEATURES)})
    pq.write_table(pa.table(cols), OUT / "data.parquet")


def dense_network(rng):
    """A plain network built with the onnx package: Gemm, BatchNormalization, Relu,
    Gemm, Tanh, Gemm, Softmax."""
    from onnx import TensorProto, helper, numpy_helper
    w = lambda *s: rng.normal(size=s).astype(np.float32) * 0.1
    init = [numpy_helper.from_array(a, n) for a, n in [
        (w(N_FEATURES, 256), "w1"), (w(256), "b1"), (1 + w(256), "scale"), (w(256), "bias"),
        (w(256), "mean"), (1 + np.abs(w(256)), "var"), (w(256, 256), "w2"), (w(256), "b2"),
        (w(256, 4), "w3"), (w(4), "b3")]]
    nodes = [
        helper.make_node("Gemm", ["input", "w1", "b1"], ["h1"]),
        helper.make_node("BatchNormalization", ["h1", "scale", "bias", "mean", "var"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r1"]),
        helper.make_node("Gemm", ["r1", "w2", "b2"], ["h2"]),
        helper.make_node("Tanh", ["h2"], ["t2"]),
        helper.make_node("Gemm", ["t2", "w3", "b3"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(nodes, "dense", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", N_FEATURES])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 4])], init)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    m.ir_version = 8
    return m


def ort_rows_per_cpu_s(model, x, batch):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    sess.run(None, {name: x[:batch]})  # warm-up
    t0 = time.process_time()
    for s in range(0, len(x), batch):
        sess.run(None, {name: x[s:s + batch]})
    return len(x) / (time.process_time() - t0)


def batchinfer_rows_per_cpu_s(binary, model, data, rows, batches, repeat):
    cmd = [str(binary), "bench", str(model), "--input", str(data), "--features", ",".join(FEATURES),
           "--threads", "1", "--batch-size", ",".join(map(str, batches)), "--rows", str(rows),
           "--repeat", str(repeat), "--json"]
    report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return {r["batch_size"]: r["rows_per_cpu_s"] for r in report["results"]}, report["model_load_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=65536)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch-sizes", default="1024,8192")
    ap.add_argument("--batchinfer", default=None)
    args = ap.parse_args()
    batches = [int(b) for b in args.batch_sizes.split(",")]
    binary = Path(args.batchinfer).resolve() if args.batchinfer else next(
        (p for p in [ROOT / "target/release/batchinfer", ROOT / "target/debug/batchinfer"] if p.exists()), None)
    if binary is None:
        sys.exit("build batchinfer first (cargo build --release)")
    if not (OUT / "data.parquet").exists():
        make(args.rows)
    if not (OUT / "onnx_dense_256x256.onnx").exists():
        onnx.save(dense_network(np.random.default_rng(8)), OUT / "onnx_dense_256x256.onnx")
    x = np.stack([pq.read_table(OUT / "data.parquet", columns=[c])[c].to_numpy(zero_copy_only=False).astype(np.float32)
                  for c in FEATURES], axis=1)[: args.rows]
    x = np.ascontiguousarray(x)
    print(f"machine: {os.cpu_count()} cores; {len(x)} rows x {N_FEATURES} float32; one thread; "
          f"rows per CPU-second, median of {args.repeat}; batchinfer binary {binary.relative_to(ROOT)}")
    print(f"| model | batch | batchinfer | onnxruntime | ratio |")
    print(f"|---|---|---|---|---|")
    for model in sorted(OUT.glob("*.onnx")):
        ours = {b: [] for b in batches}
        theirs = {b: [] for b in batches}
        load = None
        for _ in range(args.repeat):  # alternate the two engines
            res, load = batchinfer_rows_per_cpu_s(binary, model, OUT / "data.parquet", len(x), batches, 1)
            for b in batches:
                ours[b].append(res[b])
                theirs[b].append(ort_rows_per_cpu_s(model, x, b))
        for b in batches:
            a, o = statistics.median(ours[b]), statistics.median(theirs[b])
            print(f"| {model.stem} | {b} | {a:,.0f} | {o:,.0f} | {a / o:.2f} |", flush=True)
        print(f"| {model.stem} | load+optimise | {load * 1000:.0f} ms | | |")


if __name__ == "__main__":
    main()
