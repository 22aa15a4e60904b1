#!/usr/bin/env python3
"""Model throughput, batchinfer against onnxruntime, same models, same data, same threads.

For each model family, thread count and batch size, both engines score the same
in-memory rows; the figure is rows per CPU-second on one thread (CPU time, so other
load on a shared machine matters less than for wall time) and rows per wall-second on
more. Median of --repeat runs, measured alternately in one run of this script.

For dense models (Gemm and MatMul with constant weights) it also prints GFLOP/s and
the share of the core's fp32 peak. The peak is measured first, by a small loop of
independent fused multiply-adds (C, built with gcc for the widest vectors the CPU
has: AVX-512, else AVX2), on one core and on --threads cores at once. The CPU's model
name heads the output.

    pip install -r testdata/requirements.txt
    cargo build --release            # or pass --batchinfer target/debug/batchinfer
    python benches/models_vs_onnxruntime.py [--rows 65536] [--repeat 5] [--threads 1,2]
        [--models mlp,dense]

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
    """The bench models, trained on synthetic data."""
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


FMA_LOOP = r"""
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
/* 24 independent accumulators in registers: enough to cover an FMA's latency on two ports. */
#define EACH(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) \
                X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)
#define DECLARE(i) VEC acc##i = SET1(1.0f + i * 0.01f);
#define STEP(i) acc##i = FMA(acc##i, a, b);
#define FOLD(i) STORE(lanes, acc##i); sink += lanes[0];
int main(int argc, char **argv) {
    long iters = atol(argv[1]);
    EACH(DECLARE)
    VEC a = SET1(0.999999f), b = SET1(1e-7f);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long n = 0; n < iters; n++) { EACH(STEP) }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    float sink = 0, lanes[LANES];
    EACH(FOLD)
    double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    printf("%.3f %f\\n", (double)iters * 24 * LANES * 2 / s / 1e9, sink);
    return 0;
}
"""


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def fma_peak_gflops(thread_counts):
    """fp32 GFLOP/s of as many cores running the loop at once as each thread count (the best of 5)."""
    flags = Path("/proc/cpuinfo").read_text()
    if " avx512f" in flags:
        isa, cflags = "AVX-512", ["-mavx512f", "-DVEC=__m512", "-DSET1=_mm512_set1_ps",
                                  "-DFMA=_mm512_fmadd_ps", "-DSTORE=_mm512_storeu_ps", "-DLANES=16"]
    else:
        isa, cflags = "AVX2", ["-mavx2", "-mfma", "-DVEC=__m256", "-DSET1=_mm256_set1_ps",
                               "-DFMA=_mm256_fmadd_ps", "-DSTORE=_mm256_storeu_ps", "-DLANES=8"]
    OUT.mkdir(parents=True, exist_ok=True)
    src, exe = OUT / "fma_peak.c", OUT / f"fma_peak_{isa}"
    src.write_text(FMA_LOOP)
    subprocess.run(["gcc", "-O2", *cflags, str(src), "-o", str(exe)], check=True)
    iters = str(200_000_000 // 24)

    def once(n):
        procs = [subprocess.Popen([str(exe), iters], stdout=subprocess.PIPE, text=True) for _ in range(n)]
        return sum(float(p.communicate()[0].split()[0]) for p in procs)

    return isa, {n: max(once(n) for _ in range(5)) for n in thread_counts}


def dense_flop_per_row(model):
    """2 x K x N for each Gemm or MatMul whose right-hand side is a constant [K, N]; None if
    the model has no such node (trees, linear classifiers)."""
    m = onnx.load(str(model))
    shapes = {t.name: list(t.dims) for t in m.graph.initializer}
    flop = 0
    for node in m.graph.node:
        if node.op_type in ("Gemm", "MatMul") and len(node.input) > 1 and node.input[1] in shapes:
            k, n = shapes[node.input[1]][-2:]
            if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
                k, n = n, k
            flop += 2 * k * n
    return flop or None


def ort_rows_per_s(model, x, batch, threads):
    """Rows per CPU-second on one thread, rows per wall-second on more."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    sess.run(None, {name: x[:batch]})  # warm-up
    clock = time.process_time if threads == 1 else time.perf_counter
    t0 = clock()
    for s in range(0, len(x), batch):
        sess.run(None, {name: x[s:s + batch]})
    return len(x) / (clock() - t0)


def batchinfer_rows_per_s(binary, model, data, rows, batches, threads):
    """`batchinfer bench`'s rows per CPU-second on one thread, rows per wall-second on more."""
    cmd = [str(binary), "bench", str(model), "--input", str(data), "--features", ",".join(FEATURES),
           "--threads", str(threads), "--batch-size", ",".join(map(str, batches)), "--rows", str(rows),
           "--repeat", "1", "--json"]
    report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    key = "rows_per_cpu_s" if threads == 1 else "rows_per_s"
    return {r["batch_size"]: r[key] for r in report["results"]}, report["model_load_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=65536)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch-sizes", default="1024,8192")
    ap.add_argument("--threads", default="1", help="thread counts, comma-separated (1,2)")
    ap.add_argument("--models", default="", help="only models whose name contains one of these words")
    ap.add_argument("--batchinfer", default=None)
    args = ap.parse_args()
    batches = [int(b) for b in args.batch_sizes.split(",")]
    thread_counts = [int(t) for t in args.threads.split(",")]
    words = [w for w in args.models.split(",") if w]
    binary = Path(args.batchinfer).resolve() if args.batchinfer else next(
        (p for p in [ROOT / "target/release/batchinfer", ROOT / "target/debug/batchinfer"] if p.exists()), None)
    if binary is None:
        sys.exit("build batchinfer first (cargo build --release)")
    data = OUT / "data.parquet"
    if not data.exists() or pq.ParquetFile(data).metadata.num_rows < args.rows:
        make(args.rows)
    if not (OUT / "onnx_dense_256x256.onnx").exists():
        onnx.save(dense_network(np.random.default_rng(8)), OUT / "onnx_dense_256x256.onnx")
    x = np.stack([pq.read_table(data, columns=[c])[c].to_numpy(zero_copy_only=False).astype(np.float32)
                  for c in FEATURES], axis=1)[: args.rows]
    x = np.ascontiguousarray(x)
    isa, peaks = fma_peak_gflops(thread_counts)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; fp32 FMA peak ({isa} loop), GFLOP/s: "
          + ", ".join(f"{g:.0f} on {n} core{'s' * (n > 1)} at once" for n, g in peaks.items()))
    print(f"{len(x)} rows x {N_FEATURES} float32; rows per CPU-second on 1 thread, per wall-second on more; "
          f"median of {args.repeat}, alternately; batchinfer binary {binary.relative_to(ROOT)}")
    print("| model | threads | batch | batchinfer | onnxruntime | ratio | GFLOP/s, batchinfer / onnxruntime | share of peak |")
    print("|---|---|---|---|---|---|---|---|")
    for model in sorted(OUT.glob("*.onnx")):
        if words and not any(w in model.stem for w in words):
            continue
        flop = dense_flop_per_row(model)
        for threads in thread_counts:
            ours = {b: [] for b in batches}
            theirs = {b: [] for b in batches}
            load = None
            for _ in range(args.repeat):  # alternate the two engines
                res, load = batchinfer_rows_per_s(binary, model, data, len(x), batches, threads)
                for b in batches:
                    ours[b].append(res[b])
                    theirs[b].append(ort_rows_per_s(model, x, b, threads))
            for b in batches:
                a, o = statistics.median(ours[b]), statistics.median(theirs[b])
                dense = " | "
                if flop:
                    ga, go = a * flop / 1e9, o * flop / 1e9
                    dense = f"{ga:.0f} / {go:.0f} | {ga / peaks[threads]:.0%} / {go / peaks[threads]:.0%}"
                print(f"| {model.stem} | {threads} | {b} | {a:,.0f} | {o:,.0f} | {a / o:.2f} | {dense} |", flush=True)
        print(f"| {model.stem} | load+optimise | | {load * 1000:.0f} ms | | | | |")


if __name__ == "__main__":
    main()
