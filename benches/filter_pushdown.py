#!/usr/bin/env python3
"""Scoring a 1% slice of a partitioned, sorted history against scoring all of it.

The dataset is hive-partitioned by month (year=2024/month=01..10), each month one
Parquet file sorted by event_date, in row groups of 65,536 rows: the layout a
nightly export leaves. The filter picks three days of one month, about 1% of the
rows. Contestants, run alternately --repeat times, medians reported:

  whole         batchinfer score over every row (no filter)
  filtered      batchinfer score --filter "event_date BETWEEN … AND month = 3"
  python        benches/peer_python.py with the same filter through pyarrow.dataset
                (hive partitioning and row-group statistics, as a user would write it)

Bytes read are batchinfer's summary field read_bytes (Linux rchar); peak RSS is GNU
time's; rows read are what pruning left to decode.

    pip install -r testdata/requirements.txt
    cargo build --release
    python benches/filter_pushdown.py [--rows 5000000] [--repeat 3] [--threads 2]

Data goes to target/peer-bench/ (not committed).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from compare_peers import FEATURES, N_FEATURES, OUT, ROOT, make_models, timed

FILTER = "year = 2024 AND month = 3 AND event_date BETWEEN '2024-03-10' AND '2024-03-12'"
PEER_FILTER = "event_date,2024-03-10,2024-03-12"
MONTHS = 10


def make_data(rows, path):
    rng = np.random.default_rng(13)
    per_month = rows // MONTHS
    for m in range(1, MONTHS + 1):
        start = np.datetime64(f"2024-{m:02}-01")
        days = (np.datetime64(f"2024-{m + 1:02}-01") if m < 12 else np.datetime64("2025-01-01")) - start
        dates = np.sort(start + rng.integers(0, days.astype(int), per_month).astype("timedelta64[D]"))
        cols = {
            "id": pa.array(np.arange((m - 1) * per_month, m * per_month, dtype=np.int64)),
            "event_date": pa.array(dates.astype("datetime64[D]"), type=pa.date32()),
        }
        x = rng.normal(size=(per_month, N_FEATURES)).astype(np.float32)
        cols.update({c: pa.array(x[:, i]) for i, c in enumerate(FEATURES)})
        part = path / f"year=2024/month={m:02}"
        part.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(cols), part / "part-0.parquet", row_group_size=65536, compression="snappy")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="logistic_regression")
    ap.add_argument("--batchinfer", default=str(ROOT / "target/release/batchinfer"))
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if not (OUT / f"{args.model}.onnx").exists():
        make_models()
    data = OUT / f"events_{args.rows}"
    if not data.exists():
        make_data(args.rows, data)
    model = str(OUT / f"{args.model}.onnx")
    t = str(args.threads)
    base = [args.batchinfer, "score", "-m", model, "-i", str(data), "--features", ",".join(FEATURES),
            "--keep", "id", "--threads", t, "--quiet", "--overwrite", "--summary-json"]
    runs = {
        "whole": base + [str(OUT / "fp_whole.json"), "-o", str(OUT / "fp_whole.parquet")],
        "filtered": base + [str(OUT / "fp_filtered.json"), "-o", str(OUT / "fp_filtered.parquet"), "--filter", FILTER],
        "python": [sys.executable, str(ROOT / "benches/peer_python.py"), model, str(data),
                   str(OUT / "fp_python.parquet"), "--threads", t, "--date-range", PEER_FILTER],
    }
    results = {k: [] for k in runs}
    for _ in range(args.repeat):
        for name, cmd in runs.items():
            results[name].append(timed(cmd))
    summaries = {k: json.loads((OUT / f"fp_{k}.json").read_text()) for k in ("whole", "filtered")}
    selected = pq.read_metadata(OUT / "fp_filtered.parquet").num_rows
    peer_rows = pq.read_metadata(OUT / "fp_python.parquet").num_rows
    if peer_rows != selected:
        sys.exit(f"the python peer selected {peer_rows} rows, batchinfer {selected}")
    print(f"{args.rows:,} rows in {MONTHS} monthly partitions, row groups of 65,536; filter selects {selected:,} rows "
          f"({100 * selected / args.rows:.2f}%); model {args.model}; {args.threads} threads; {os.cpu_count()} cores; "
          f"median of {args.repeat}")
    print("| run | wall s | peak RSS MiB | rows read | MiB read | files / row groups not read |")
    print("|---|---|---|---|---|---|")
    for name, samples in results.items():
        wall = statistics.median(s[0] for s in samples)
        rss = statistics.median(s[1] for s in samples)
        s = summaries.get(name)
        if s:
            skipped = s.get("skipped") or {"files": 0, "row_groups": 0}
            cells = (f"{s['rows_read']:,}", f"{s['read_bytes'] / 2**20:.1f}",
                     f"{skipped['files']} / {skipped['row_groups']}")
        else:
            cells = ("", "", "")
        print(f"| {name} | {wall:.2f} | {rss:.0f} | {' | '.join(cells)} |")
    whole = statistics.median(s[0] for s in results["whole"])
    filtered = statistics.median(s[0] for s in results["filtered"])
    python = statistics.median(s[0] for s in results["python"])
    print(f"filtered is {whole / filtered:.1f}x faster than whole; python peer / filtered = {python / filtered:.2f}x")


if __name__ == "__main__":
    main()
