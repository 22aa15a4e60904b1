#!/usr/bin/env python3
"""Native XGBoost and LightGBM models: batchinfer against the libraries' own predict.

For each model, on the same in-memory rows and the same thread count:
  native       batchinfer bench on the library's own file (model.json / model.txt)
  onnx         batchinfer bench on the same model converted by onnxmltools
  library      XGBoost's Booster.inplace_predict (nthread=T), LightGBM's
               Booster.predict (num_threads=T), on a float32 numpy array
Wall-clock rows per second over --rows rows (batchinfer: batches of 8,192 rows, its
`bench` command, which holds the rows in memory as the library does), median of
--repeat runs, measured alternately in one run of this script.

    pip install -r testdata/requirements.txt
    cargo build --release
    python benches/native_vs_library.py [--rows 1000000] [--repeat 5] [--threads 1,2]
                                        [--tables numeric,categorical]

A second table, categorical features (no ONNX export: onnxmltools converts neither
library's categorical splits): models trained on a DataFrame with two `category`
columns (30 string categories, 5 integer ones) beside 8 float features; the library
predicts on that DataFrame, batchinfer reads the same rows from Parquet, where the
string column is dictionary-encoded, as pandas writes it.

Models and data go to target/bench-native/ (not committed).
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
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "bench-native"
N_FEATURES = 20
FEATURES = [f"f{i}" for i in range(N_FEATURES)]


def make(rows):
    import lightgbm as lgb
    import pandas as pd
    import xgboost as xgb
    from onnxmltools.convert import convert_lightgbm, convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    xt = rng.normal(size=(20000, N_FEATURES)).astype(np.float32)
    z = xt[:, 0] * 1.5 - xt[:, 1] + 0.5 * xt[:, 2] * xt[:, 3] + np.sin(xt[:, 4])
    xt[rng.random(xt.shape) < 0.05] = np.nan
    y3 = np.digitize(z, np.quantile(z, [0.33, 0.66]))
    frame = pd.DataFrame(xt, columns=FEATURES)
    types = [("input", FloatTensorType([None, N_FEATURES]))]

    m = xgb.XGBClassifier(n_estimators=100, max_depth=6, n_jobs=2).fit(frame, y3)
    m.get_booster().save_model(str(OUT / "xgboost_100_3class.json"))
    onnx.save(convert_xgboost(m, initial_types=types, target_opset=15), OUT / "xgboost_100_3class.onnx")
    m = xgb.XGBClassifier(n_estimators=300, max_depth=8, n_jobs=2).fit(frame, (z > 0).astype(int))
    m.get_booster().save_model(str(OUT / "xgboost_300_binary.json"))
    onnx.save(convert_xgboost(m, initial_types=types, target_opset=15), OUT / "xgboost_300_binary.onnx")
    m = lgb.LGBMRegressor(n_estimators=200, num_leaves=31, verbose=-1, n_jobs=2).fit(frame, z)
    m.booster_.save_model(str(OUT / "lightgbm_200.txt"))
    onnx.save(convert_lightgbm(m, initial_types=types, target_opset=15), OUT / "lightgbm_200.onnx")
    m = lgb.LGBMClassifier(n_estimators=100, num_leaves=63, verbose=-1, n_jobs=2).fit(frame, y3)
    m.booster_.save_model(str(OUT / "lightgbm_100_3class.txt"))
    onnx.save(convert_lightgbm(m, initial_types=types, target_opset=15, zipmap=False), OUT / "lightgbm_100_3class.onnx")

    x = rng.normal(size=(rows, N_FEATURES)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    cols = {"id": pa.array(np.arange(rows, dtype=np.int64))}
    cols.update({c: pa.array(x[:, i]) for i, c in enumerate(FEATURES)})
    pq.write_table(pa.table(cols), OUT / f"data_{rows}.parquet")


COLORS = [f"c{i}" for i in range(30)]
SIZES = [3, 7, 10, 42, 99]


def categorical_frame(rng, n):
    import pandas as pd

    d = {f"f{i}": rng.normal(size=n).astype(np.float32) for i in range(8)}
    d["color"] = pd.Categorical(rng.choice(COLORS, n), categories=COLORS)
    d["size"] = pd.Categorical(rng.choice(SIZES, n), categories=SIZES)
    return pd.DataFrame(d)


def categorical_frames(rows):
    """The training frame and the scored one (the same every time)."""
    rng = np.random.default_rng(0)
    return categorical_frame(rng, 20000), categorical_frame(rng, rows)


def make_categorical(rows):
    import lightgbm as lgb
    import xgboost as xgb

    (OUT / "categorical").mkdir(parents=True, exist_ok=True)
    train, x = categorical_frames(rows)
    y = train.f0 + train.color.cat.codes % 3 + train["size"].cat.codes * 0.3
    b = xgb.train({"max_depth": 6, "tree_method": "hist", "max_cat_to_onehot": 1, "nthread": 2},
                  xgb.DMatrix(train, label=y, enable_categorical=True), 100)
    b.save_model(str(OUT / "categorical" / "xgboost_cat_100.json"))
    b = lgb.train({"num_leaves": 31, "verbose": -1, "num_threads": 2}, lgb.Dataset(train, label=y), 200)
    b.save_model(str(OUT / "categorical" / "lightgbm_cat_200.txt"))
    pq.write_table(pa.Table.from_pandas(x, preserve_index=False), OUT / "categorical" / f"data_{rows}.parquet",
                   row_group_size=65536)


def library_categorical_rows_per_s(model, frame, threads):
    if model.suffix == ".json":
        import xgboost as xgb
        booster = xgb.Booster(model_file=str(model))
        booster.set_param({"nthread": threads})
        predict = lambda f: booster.inplace_predict(f)  # noqa: E731
    else:
        import lightgbm as lgb
        booster = lgb.Booster(model_file=str(model))
        predict = lambda f: booster.predict(f, num_threads=threads)  # noqa: E731
    predict(frame.iloc[:8192])  # warm-up
    t0 = time.perf_counter()
    predict(frame)
    return len(frame) / (time.perf_counter() - t0)


def categorical(binary, rows, repeat, threads):
    data = OUT / "categorical" / f"data_{rows}.parquet"
    if not data.exists():
        make_categorical(rows)
    frame = categorical_frames(rows)[1]
    print()
    print(f"Categorical features: {rows:,} rows, 8 float32 + `color` (30 string categories) + `size` "
          f"(5 integer categories), in memory; rows/s, median of {repeat}")
    print("| model | threads | batchinfer, native file | library predict on the DataFrame | batchinfer / library |")
    print("|---|---|---|---|---|")
    for model in sorted((OUT / "categorical").glob("*_cat_*.*")):
        for t in threads:
            runs = {"batchinfer": [], "library": []}
            for _ in range(repeat):
                runs["batchinfer"].append(batchinfer_rows_per_s(binary, model, data, rows, t, features=None))
                runs["library"].append(library_categorical_rows_per_s(model, frame, t))
            b, lib = (statistics.median(runs[k]) for k in ("batchinfer", "library"))
            print(f"| {model.stem} | {t} | {b:,.0f} | {lib:,.0f} | {b / lib:.2f} |", flush=True)


def batchinfer_rows_per_s(binary, model, data, rows, threads, features=FEATURES):
    cmd = [str(binary), "bench", str(model), "--input", str(data),
           "--threads", str(threads), "--batch-size", "8192", "--rows", str(rows), "--repeat", "1", "--json"]
    if features:
        cmd += ["--features", ",".join(features)]
    report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return report["results"][0]["rows_per_s"]


def library_rows_per_s(model, x, threads):
    if model.suffix == ".json":
        import xgboost as xgb
        booster = xgb.Booster(model_file=str(model))
        booster.set_param({"nthread": threads})
        booster.inplace_predict(x[:8192])  # warm-up
        t0 = time.perf_counter()
        booster.inplace_predict(x)
    else:
        import lightgbm as lgb
        booster = lgb.Booster(model_file=str(model))
        booster.predict(x[:8192], num_threads=threads)
        t0 = time.perf_counter()
        booster.predict(x, num_threads=threads)
    return len(x) / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--tables", default="numeric,categorical", help="which of the two tables to measure")
    ap.add_argument("--batchinfer", default=str(ROOT / "target/release/batchinfer"))
    args = ap.parse_args()
    binary = Path(args.batchinfer)
    if not binary.exists():
        sys.exit("build batchinfer first (cargo build --release)")
    threads = [int(v) for v in args.threads.split(",")]
    tables = args.tables.split(",")
    import lightgbm
    import xgboost
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"{cpu}, {os.cpu_count()} cores; XGBoost {xgboost.__version__}, LightGBM {lightgbm.__version__}")
    if "numeric" in tables:
        numeric(binary, args.rows, args.repeat, threads)
    if "categorical" in tables:
        categorical(binary, args.rows, args.repeat, threads)


def numeric(binary, rows, repeat, threads):
    data = OUT / f"data_{rows}.parquet"
    if not data.exists():
        make(rows)
    x = np.ascontiguousarray(np.stack(
        [pq.read_table(data, columns=[c])[c].to_numpy(zero_copy_only=False) for c in FEATURES], axis=1
    ).astype(np.float32))
    print(f"{len(x):,} rows x {N_FEATURES} float32 (5% NaN), in memory; rows/s, median of {repeat}")
    print("| model | threads | batchinfer, native file | batchinfer, ONNX export | library predict | native / library | native / ONNX |")
    print("|---|---|---|---|---|---|---|")
    for native in sorted(list(OUT.glob("*.json")) + list(OUT.glob("*.txt"))):
        exported = native.with_suffix(".onnx")
        for t in threads:
            runs = {"native": [], "onnx": [], "library": []}
            for _ in range(repeat):  # alternate the three
                runs["native"].append(batchinfer_rows_per_s(binary, native, data, len(x), t))
                runs["onnx"].append(batchinfer_rows_per_s(binary, exported, data, len(x), t))
                runs["library"].append(library_rows_per_s(native, x, t))
            n, o, lib = (statistics.median(runs[k]) for k in ("native", "onnx", "library"))
            print(f"| {native.stem} | {t} | {n:,.0f} | {o:,.0f} | {lib:,.0f} | {n / lib:.2f} | {n / o:.2f} |", flush=True)


if __name__ == "__main__":
    main()
