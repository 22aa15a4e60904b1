#!/usr/bin/env python3
"""End to end, batchinfer against what users would write instead, on the same data
with the same thread count: Parquet (and CSV) in, id + predictions as Parquet out.

Contestants, run alternately, --repeat times each, medians reported:
  batchinfer   batchinfer score --threads T
  B            --batchinfer-b BINARY: a second build (static, dist profile), same command
  python       benches/peer_python.py (pyarrow + numpy + onnxruntime, T threads)
  spark        benches/peer_spark.py (Spark local[T], mapInPandas + onnxruntime), with
               --spark-models; whole command timed, JVM start included, Parquet only
and the I/O floor: both tools with a trivial model (Slice: the first of the 30 features)
that reads the same columns and writes one, so the difference to a real model is the model.
io_floor_4class writes the columns the 4-class logistic regression writes (an int64 label
and 4 float32 columns: the sign of the first feature, and the first 4 features), so the
LR's wall time can be set against a floor with its own output.

    pip install -r testdata/requirements.txt
    cargo build --release     # or pass --batchinfer target/debug/batchinfer
    python benches/compare_peers.py [--rows 5000000] [--repeat 3] [--threads 2] [--csv]

Data and models go to target/peer-bench/ (not committed). Peak RSS comes from GNU time.
"""
import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "peer-bench"
sys.path.insert(0, str(ROOT / "testdata"))
import exporter_compat  # noqa: E402,F401  (patches an skl2onnx/onnx incompatibility)

N_FEATURES = 30
FEATURES = [f"f{i}" for i in range(N_FEATURES)]


def make_models():
    from onnx import TensorProto, helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(11)
    x = rng.normal(size=(20000, N_FEATURES)).astype(np.float32)
    z = x[:, 0] * 1.5 - x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + np.sin(x[:, 4])
    y2 = (z > 0).astype(np.int64)
    y4 = np.digitize(z, np.quantile(z, [0.25, 0.5, 0.75]))
    types = [("input", FloatTensorType([None, N_FEATURES]))]
    opset = {"": 15, "ai.onnx.ml": 3}
    for name, est, y in [
        ("logistic_regression", LogisticRegression(max_iter=300), y4),
        ("random_forest_100", RandomForestClassifier(100, max_depth=10, random_state=0, n_jobs=-1), y2),
        ("gradient_boosting_200", GradientBoostingRegressor(n_estimators=200, max_depth=3, random_state=0), z),
        ("mlp_2x256", MLPClassifier(hidden_layer_sizes=(256, 256), max_iter=5, random_state=0), y4),
    ]:
        est.fit(x, y)
        options = {id(est): {"zipmap": False}} if hasattr(est, "classes_") else None
        onnx.save(convert_sklearn(est, initial_types=types, target_opset=opset, options=options), OUT / f"{name}.onnx")
    make_floor()


def make_floor():
    """The I/O floor: read the 30 features into a tensor, write one number per row
    (the first feature, by Slice: nearly free in both engines; a ReduceMax took a
    quarter of tract's CPU through a generic path and flattered the floor)."""
    from onnx import TensorProto, helper

    const = lambda name, v: helper.make_node(  # noqa: E731
        "Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64, [1], [v]))
    graph = helper.make_graph(
        [const("starts", 0), const("ends", 1), const("axes", 1),
         helper.make_node("Slice", ["input", "starts", "ends", "axes"], ["floor"])], "floor",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", N_FEATURES])],
        [helper.make_tensor_value_info("floor", TensorProto.FLOAT, ["N", 1])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    m.ir_version = 8
    onnx.save(m, OUT / "io_floor.onnx")

    graph = helper.make_graph(
        [const("starts", 0), const("ends", 4), const("axes", 1), const("ends1", 1), const("flat", -1),
         helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])),
         helper.make_node("Slice", ["input", "starts", "ends", "axes"], ["probabilities"]),
         helper.make_node("Slice", ["input", "starts", "ends1", "axes"], ["first"]),
         helper.make_node("Reshape", ["first", "flat"], ["first_flat"]),
         helper.make_node("Greater", ["first_flat", "zero"], ["positive"]),
         helper.make_node("Cast", ["positive"], ["label"], to=TensorProto.INT64)], "floor_4class",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", N_FEATURES])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 4])])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    m.ir_version = 8
    onnx.save(m, OUT / "io_floor_4class.onnx")


def make_data(rows, csv):
    rng = np.random.default_rng(12)
    writer = None
    path = OUT / f"data_{rows}.parquet"
    for start in range(0, rows, 500_000):
        n = min(500_000, rows - start)
        cols = {"id": pa.array(np.arange(start, start + n, dtype=np.int64))}
        x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
        cols.update({c: pa.array(x[:, i]) for i, c in enumerate(FEATURES)})
        t = pa.table(cols)
        if writer is None:
            writer = pq.ParquetWriter(path, t.schema, compression="snappy")
        writer.write_table(t, row_group_size=131072)
    writer.close()
    if csv:
        pacsv.write_csv(pq.read_table(path), OUT / f"data_{rows}.csv")


def timed(cmd):
    """(wall seconds, peak RSS MiB) of one run."""
    out = subprocess.run(["/usr/bin/time", "-f", "%e %M"] + cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    wall, rss_kb = out.stderr.strip().splitlines()[-1].split()
    return float(wall), int(rss_kb) / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--csv", action="store_true", help="also compare on CSV input")
    ap.add_argument("--batchinfer", default=None)
    ap.add_argument("--batchinfer-b", default=None,
                    help="a second batchinfer binary (another build: static, dist profile) run alternately with the first")
    ap.add_argument("--b-args", default="",
                    help="extra arguments for the B runs, space-separated (B is the first binary unless --batchinfer-b): "
                         "--b-args=--no-profile measures what profiling costs")
    ap.add_argument("--no-python", action="store_true", help="leave the Python script out (to compare two builds)")
    ap.add_argument("--models", default="io_floor,io_floor_4class,logistic_regression,random_forest_100,gradient_boosting_200,mlp_2x256")
    ap.add_argument("--spark-models", default="", help="models to also run with Spark local (needs pyspark, Java 17)")
    args = ap.parse_args()
    binary_b = Path(args.batchinfer_b).resolve() if args.batchinfer_b else None
    binary = Path(args.batchinfer).resolve() if args.batchinfer else next(
        (p for p in [ROOT / "target/release/batchinfer", ROOT / "target/debug/batchinfer"] if p.exists()), None)
    if binary is None:
        sys.exit("build batchinfer first (cargo build --release)")
    b_args = args.b_args.split()
    if b_args and binary_b is None:
        binary_b = binary
    OUT.mkdir(parents=True, exist_ok=True)
    if not (OUT / "random_forest_100.onnx").exists():
        make_models()
    make_floor()
    if not (OUT / f"data_{args.rows}.parquet").exists() or (args.csv and not (OUT / f"data_{args.rows}.csv").exists()):
        make_data(args.rows, args.csv)
    formats = ["parquet"] + (["csv"] if args.csv else [])
    t = str(args.threads)
    print(f"{args.rows:,} rows x {N_FEATURES} float32 + id; {args.threads} threads each; {os.cpu_count()} cores; "
          f"median of {args.repeat}; batchinfer binary {binary}" + (f"; B: {binary_b} {' '.join(b_args)}" if binary_b else ""))
    header = ["model", "input", "batchinfer rows/s"]
    if not args.no_python:
        header += ["python rows/s", "ratio"]
    if binary_b:
        header += ["B rows/s", "B / batchinfer"]
    header += ["batchinfer peak MiB"] + (["B peak MiB"] if binary_b else []) + ([] if args.no_python else ["python peak MiB"])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    ours_by_model = {}
    for model in args.models.split(","):
        m = str(OUT / f"{model}.onnx")
        for fmt in formats:
            data = str(OUT / f"data_{args.rows}.{fmt}")
            ours, theirs, b_runs = [], [], []
            out = str(OUT / "out.parquet")
            score = ["score", "-m", m, "-i", data, "-o", out, "--overwrite", "--keep", "id",
                     "--features", ",".join(FEATURES), "--threads", t, "-q", "--summary", "none"]
            for _ in range(args.repeat):
                ours.append(timed([str(binary)] + score))
                if binary_b:
                    b_runs.append(timed([str(binary_b)] + score + b_args))
                if not args.no_python:
                    theirs.append(timed([sys.executable, str(ROOT / "benches/peer_python.py"), m, data, out, "--threads", t]))
            ow, orss = statistics.median(w for w, _ in ours), max(r for _, r in ours)
            row = [model, fmt, f"{args.rows / ow:,.0f}"]
            if not args.no_python:
                tw = statistics.median(w for w, _ in theirs)
                row += [f"{args.rows / tw:,.0f}", f"{tw / ow:.2f}"]
            if binary_b:
                bw = statistics.median(w for w, _ in b_runs)
                row += [f"{args.rows / bw:,.0f}", f"{ow / bw:.3f}"]
            row += [f"{orss:.0f}"] + ([f"{max(r for _, r in b_runs):.0f}"] if binary_b else [])
            row += [] if args.no_python else [f"{max(r for _, r in theirs):.0f}"]
            print("| " + " | ".join(row) + " |", flush=True)
            if fmt == "parquet":
                ours_by_model[model] = ow
    lr = ours_by_model.get("logistic_regression")
    for floor in ("io_floor", "io_floor_4class"):
        if lr is not None and floor in ours_by_model:
            print(f"logistic_regression wall / {floor} wall (parquet, batchinfer): {lr / ours_by_model[floor]:.2f}")
    spark_models = [m for m in args.spark_models.split(",") if m]
    if spark_models:
        print()
        print("| model | batchinfer rows/s | spark rows/s | ratio | spark peak MiB |")
        print("|---|---|---|---|---|")
    for model in spark_models:
        m = str(OUT / f"{model}.onnx")
        data = str(OUT / f"data_{args.rows}.parquet")
        runs = [timed([sys.executable, str(ROOT / "benches/peer_spark.py"), m, data, str(OUT / "spark_out"), "--threads", t])
                for _ in range(args.repeat)]
        sw, srss = statistics.median(w for w, _ in runs), max(r for _, r in runs)
        ow = ours_by_model.get(model)
        if ow is None:
            ow = statistics.median(timed([str(binary), "score", "-m", m, "-i", data, "-o", str(OUT / "out.parquet"), "--overwrite",
                                          "--keep", "id", "--features", ",".join(FEATURES), "--threads", t, "-q",
                                          "--summary", "none"])[0] for _ in range(args.repeat))
        print(f"| {model} | {args.rows / ow:,.0f} | {args.rows / sw:,.0f} | {sw / ow:.1f} | {srss:.0f} |", flush=True)


if __name__ == "__main__":
    main()
