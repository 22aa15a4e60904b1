#!/usr/bin/env python3
"""batchinfer with its input and output in S3 against batchinfer on local files, and
against the Python peer (benches/peer_python.py) reading and writing the same objects
through pyarrow's S3 filesystem, all on a real S3-compatible server on 127.0.0.1
(moto's, started here). The same rows and models as compare_peers.py, as a dataset
of part files of 262,144 rows (2 row groups, about 47 MiB each), as tables in object
storage are usually laid out: moto copies the whole object for every ranged read, so
a single large object measures moto, not the clients.

Contestants, run alternately, --repeat times each, medians reported:
  local        batchinfer score -i parts/ -o out.parquet
  s3           batchinfer score -i s3://bench/parts/ -o s3://bench/out.parquet
  python local / python s3   peer_python.py on the same paths

Also the peak RSS of the S3 run on 1M rows and on --rows rows (flat: memory does not
grow with the input).

    pip install -r testdata/requirements.txt "moto[server]"
    python benches/compare_peers.py --rows 5000000 --models io_floor   # makes data and models
    python benches/object_store.py [--rows 5000000] [--repeat 3] [--threads 2]
"""
import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

import boto3
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "target" / "peer-bench"
sys.path.insert(0, str(ROOT / "benches"))
from compare_peers import FEATURES, timed  # noqa: E402


def split(rows, per_part=262_144):
    """data_{rows}.parquet as part files of `per_part` rows (made once)."""
    parts = OUT / f"parts_{rows}"
    if not parts.exists():
        parts.mkdir()
        source = pq.ParquetFile(OUT / f"data_{rows}.parquet")
        writer, n, k = None, 0, 0
        for batch in source.iter_batches(batch_size=131_072):
            if writer is None:
                writer = pq.ParquetWriter(parts / f"part-{k:04d}.parquet", batch.schema, compression="snappy")
            writer.write_batch(batch, row_group_size=131_072)
            n += batch.num_rows
            if n >= per_part:
                writer.close()
                writer, n, k = None, 0, k + 1
        if writer is not None:
            writer.close()
    return parts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batchinfer", default=None)
    ap.add_argument("--models", default="logistic_regression,random_forest_100")
    args = ap.parse_args()
    binary = Path(args.batchinfer).resolve() if args.batchinfer else next(
        (p for p in [ROOT / "target/release/batchinfer", ROOT / "target/debug/batchinfer"] if p.exists()), None)
    data = OUT / f"data_{args.rows}.parquet"
    if binary is None or not data.exists():
        sys.exit("build batchinfer and run compare_peers.py for the data first (see the docstring)")

    server = subprocess.Popen([sys.executable, str(ROOT / "tests/servers/s3.py")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    moto_port = int(server.stdout.readline().split()[0])
    endpoint = f"http://127.0.0.1:{moto_port}"
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench",
               AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench",
                      aws_secret_access_key="bench", region_name="us-east-1")
    s3.create_bucket(Bucket="bench")
    sizes = [rows for rows in sorted({1_000_000, args.rows}) if (OUT / f"data_{rows}.parquet").exists()]
    for rows in sizes:
        parts = split(rows)
        for part in sorted(parts.iterdir()):
            s3.upload_file(str(part), "bench", f"parts_{rows}/{part.name}")

    def ours(model, src, dst):
        return [str(binary), "score", "-m", str(OUT / f"{model}.onnx"), "-i", src, "-o", dst, "--overwrite",
                "--keep", "id", "--features", ",".join(FEATURES), "--threads", str(args.threads), "-q",
                "--summary", "none"]

    def peer(model, src, dst):
        return [sys.executable, str(ROOT / "benches/peer_python.py"), str(OUT / f"{model}.onnx"), src, dst,
                "--threads", str(args.threads)]

    def run(cmd):
        os.environ.update(env)
        return timed(cmd)

    local_in, local_out = str(OUT / f"parts_{args.rows}"), str(OUT / "out.parquet")
    s3_in, s3_out = f"s3://bench/parts_{args.rows}/", "s3://bench/out.parquet"
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"{args.rows:,} rows x {len(FEATURES)} float32 + id; {args.threads} threads; {cpu}; "
          f"median of {args.repeat}; batchinfer binary {binary.relative_to(ROOT)}; moto server on 127.0.0.1")
    print("| model | batchinfer local s | batchinfer s3 s | s3/local | python local s | python s3 s | "
          "python/batchinfer local | python/batchinfer s3 | batchinfer s3 peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        times = {k: [] for k in ("local", "s3", "plocal", "ps3")}
        rss = []
        for _ in range(args.repeat):
            times["local"].append(run(ours(model, local_in, local_out))[0])
            wall, peak = run(ours(model, s3_in, s3_out))
            times["s3"].append(wall)
            rss.append(peak)
            times["plocal"].append(run(peer(model, local_in, local_out))[0])
            times["ps3"].append(run(peer(model, s3_in, s3_out))[0])
        m = {k: statistics.median(v) for k, v in times.items()}
        print(f"| {model} | {m['local']:.2f} | {m['s3']:.2f} | {m['s3'] / m['local']:.2f} | {m['plocal']:.2f} | "
              f"{m['ps3']:.2f} | {m['plocal'] / m['local']:.2f} | {m['ps3'] / m['s3']:.2f} | {max(rss):.0f} |",
              flush=True)
    model = args.models.split(",")[0]
    for rows in sizes:
        peak = max(run(ours(model, f"s3://bench/parts_{rows}/", s3_out))[1] for _ in range(2))
        print(f"peak RSS, {model}, s3 in and out, {rows:,} rows: {peak:.0f} MiB")
    server.stdin.close()
    server.wait()


if __name__ == "__main__":
    main()
