#!/usr/bin/env python3
"""Scale on a real S3-compatible server on 127.0.0.1 (moto's, started here):

1. Listing: an input prefix of --objects small CSV objects; batchinfer lists it (one
   paginated listing) and scores every object. Reported: wall time, and the listing
   requests the server saw against the objects (from the proxy's request log).
   With --latency-ms N, a third measurement: the same --check through the
   server's proxy, which delays every request N ms as a real store's round trip
   does, with headers fetched 1 at a time against 16 (BATCHINFER_TEST_AHEAD, a
   knob of debug builds: run it with target/debug/batchinfer).
2. A directory output of --parts part objects (one row group each) on a prefix:
   wall time and the final manifest's size, against a run of the same rows into a
   local directory (which rewrites its manifest after each part; a prefix records
   each part with one small object instead).

    pip install "moto[server]" boto3 pyarrow
    python benches/object_store_scale.py [--objects 100000] [--parts 1000]
"""
import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "scale-bench"
MODEL = ROOT / "testdata/models/logreg_multiclass.onnx"
FEATURES = ",".join(f"f{i}" for i in range(8))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--parts", type=int, default=1_000)
    ap.add_argument("--batchinfer", default=None)
    ap.add_argument("--latency-ms", type=float, default=0)
    args = ap.parse_args()
    binary = Path(args.batchinfer).resolve() if args.batchinfer else next(
        p for p in [ROOT / "target/release/batchinfer", ROOT / "target/debug/batchinfer"] if p.exists())
    OUT.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen([sys.executable, str(ROOT / "tests/servers/s3.py")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, S3_LATENCY_MS=str(args.latency_ms)))
    port, proxy = (int(p) for p in server.stdout.readline().split())
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_REGION="us-east-1")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="scale")

    body = "id,f0,f1,f2,f3,f4,f5,f6,f7\n1,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8\n".encode()
    started = time.time()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: s3.put_object(Bucket="scale", Key=f"many/obj-{i:07d}.csv", Body=body),
                      range(args.objects)))
    print(f"uploaded {args.objects:,} objects in {time.time() - started:.0f} s")
    started = time.time()
    run = subprocess.run([str(binary), "score", "-m", str(MODEL), "-i", "s3://scale/many/", "-o",
                          str(OUT / "many.parquet"), "--overwrite", "--keep", "id", "--features", FEATURES,
                          "-q", "--check"], capture_output=True, text=True)
    listed = time.time() - started
    print(f"--check over s3://scale/many/ ({args.objects:,} objects; lists them and reads every CSV header): "
          f"{listed:.1f} s, rc {run.returncode}")

    if args.latency_ms:
        for ahead in ("1", "16", "1", "16"):
            started = time.time()
            env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy}", BATCHINFER_TEST_AHEAD=ahead)
            run = subprocess.run([str(binary), "score", "-m", str(MODEL), "-i", "s3://scale/many/", "-o",
                                  str(OUT / "many.parquet"), "--overwrite", "--keep", "id", "--features", FEATURES,
                                  "-q", "--check"], capture_output=True, text=True, env=env)
            print(f"--check, {args.latency_ms:.0f} ms per request, headers {ahead} at a time: "
                  f"{time.time() - started:.1f} s, rc {run.returncode}")

    n = args.parts * 100
    rng = np.random.default_rng(1)
    table = pa.table({"id": np.arange(n, dtype=np.int64),
                      **{f"f{i}": rng.normal(size=n).astype(np.float32) for i in range(8)}})
    pq.write_table(table, OUT / "parts.parquet", row_group_size=100)
    s3.upload_file(str(OUT / "parts.parquet"), "scale", "in/parts.parquet")
    for out in [str(OUT / "dir") + "/", "s3://scale/dir/"]:
        started = time.time()
        run = subprocess.run([str(binary), "score", "-m", str(MODEL), "-i", "s3://scale/in/parts.parquet", "-o", out,
                              "--overwrite", "--keep", "id", "--features", FEATURES, "-q", "--rows-per-file", "100",
                              "--batch-size", "100", "--summary", "none"], capture_output=True, text=True)
        wall = time.time() - started
        manifest = (OUT / "dir/_manifest.json").stat().st_size if not out.startswith("s3") else \
            s3.head_object(Bucket="scale", Key="dir/_manifest.json")["ContentLength"]
        print(f"directory output of {args.parts:,} parts into {out}: {wall:.1f} s, rc {run.returncode}, "
              f"final manifest {manifest:,} bytes")
    server.stdin.close()
    server.wait()


if __name__ == "__main__":
    main()
