#!/usr/bin/env python3
"""Several models in one pass against one run per model, on the same data.

    pip install -r testdata/requirements.txt
    cargo build --release     # or pass --batchinfer target/debug/batchinfer
    python benches/multi_model.py [--rows 2000000] [--repeat 3] [--threads 2] \
        [--models logistic_regression,random_forest_100]

One pass:  batchinfer score -m a=A.onnx -m b=B.onnx ...   (the input is read once)
Separate:  batchinfer score -m A.onnx ...; batchinfer score -m B.onnx ...
Run alternately, --repeat times each; medians of wall time, and bytes read from
files as the runs' summaries report them (Linux rchar: every read(2), page-cache
hits included). Data and models are compare_peers.py's, in target/peer-bench/.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_peers as peers  # noqa: E402  (same data and models)


def run(cmd):
    """Wall seconds and the summary JSON of one batchinfer run."""
    summary = peers.OUT / "multi-summary.json"
    t0 = time.perf_counter()
    out = subprocess.run(cmd + ["--summary-json", str(summary)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return wall, json.loads(summary.read_text())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batchinfer", default=None)
    ap.add_argument("--models", default="logistic_regression,random_forest_100")
    args = ap.parse_args()
    root = peers.ROOT
    binary = Path(args.batchinfer).resolve() if args.batchinfer else next(
        (p for p in [root / "target/release/batchinfer", root / "target/debug/batchinfer"] if p.exists()), None)
    if binary is None:
        sys.exit("build batchinfer first (cargo build --release)")
    peers.OUT.mkdir(parents=True, exist_ok=True)
    if not (peers.OUT / "io_floor.onnx").exists():
        peers.make_models()
    data = peers.OUT / f"data_{args.rows}.parquet"
    if not data.exists():
        peers.make_data(args.rows, False)
    models = args.models.split(",")
    out = str(peers.OUT / "multi-out.parquet")
    base = [str(binary), "score", "-i", str(data), "-o", out, "--overwrite", "--keep", "id",
            "--features", ",".join(peers.FEATURES), "--threads", str(args.threads), "-q", "--summary", "none"]
    one_pass, separate = [], []
    for _ in range(args.repeat):
        specs = []
        for m in models:
            specs += ["-m", f"{m}={peers.OUT / m}.onnx"]
        wall, s = run(base + specs)
        one_pass.append((wall, s["read_bytes"], s["peak_rss_mib"]))
        walls, read, rss = 0.0, 0, 0.0
        for m in models:
            wall, s = run(base + ["-m", f"{peers.OUT / m}.onnx"])
            walls += wall
            read += s["read_bytes"]
            rss = max(rss, s["peak_rss_mib"])
        separate.append((walls, read, rss))
    print(f"{args.rows:,} rows x {peers.N_FEATURES} float32 + id, Parquet; models {', '.join(models)}; "
          f"{args.threads} threads; {os.cpu_count()} cores; median of {args.repeat}; binary {binary.relative_to(root)}")
    print("| | wall s | rows/s | MiB read from files | peak MiB |")
    print("|---|---|---|---|---|")
    for name, runs in [("one pass, all models", one_pass), (f"{len(models)} separate runs", separate)]:
        wall = statistics.median(w for w, _, _ in runs)
        read = statistics.median(r for _, r, _ in runs)
        rss = max(m for _, _, m in runs)
        print(f"| {name} | {wall:.2f} | {args.rows / wall:,.0f} | {read / 2**20:,.1f} | {rss:.0f} |")
    ratio = statistics.median(w for w, _, _ in separate) / statistics.median(w for w, _, _ in one_pass)
    print(f"separate runs take {ratio:.2f}x the wall time of one pass")


if __name__ == "__main__":
    main()
