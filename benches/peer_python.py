#!/usr/bin/env python3
"""The script a user would write instead of batchinfer: pyarrow reads record batches,
numpy stacks the feature columns into a float32 matrix, onnxruntime scores it with
the given number of threads, pyarrow writes the id and the predictions as Parquet.

    python benches/peer_python.py MODEL INPUT(.parquet|.csv) OUTPUT.parquet --threads 2

With --date-range COL,FROM,TO the input is a hive-partitioned directory and only
rows with FROM <= COL <= TO are scored, through pyarrow.dataset's filter (which
skips partitions and row groups by their statistics).

INPUT and OUTPUT may be s3://bucket/key (AWS_ENDPOINT_URL, when set, names the
server). The input is read through pyarrow's S3 filesystem. The output is written to
a temporary local file and uploaded with boto3 at the end: pyarrow 26's S3 writer
refuses moto's answer to CompleteMultipartUpload ("error embedded in a 200 OK
response"), which boto3 accepts.
"""
import os
import tempfile
import datetime
import argparse

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def filesystem(path):
    """(filesystem, path) for pyarrow: S3 for s3:// paths, else local."""
    if not path.startswith("s3://"):
        return None, path
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    kwargs = {"region": os.environ.get("AWS_REGION", "us-east-1")}
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        kwargs.update(endpoint_override=host, scheme=scheme)
    return pafs.S3FileSystem(**kwargs), path[len("s3://"):]


def batches(path, columns, batch_size, date_range=None):
    if date_range:
        col, lo, hi = date_range.split(",")
        lo, hi = datetime.date.fromisoformat(lo), datetime.date.fromisoformat(hi)
        dataset = ds.dataset(path, format="parquet", partitioning="hive")
        # The partition columns as well, so that whole months are skipped too.
        expr = (ds.field(col) >= lo) & (ds.field(col) <= hi) & (ds.field("year") == lo.year) & (ds.field("month") == lo.month)
        yield from dataset.to_batches(columns=columns, filter=expr, batch_size=batch_size)
    elif path.endswith(".csv"):
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 24),
                                convert_options=pacsv.ConvertOptions(include_columns=columns))
        for b in reader:
            yield b
    else:
        fs, path = filesystem(path)
        yield from ds.dataset(path, format="parquet", filesystem=fs).to_batches(columns=columns, batch_size=batch_size)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=65536)
    ap.add_argument("--date-range", default=None, help="COL,FROM,TO (ISO dates), hive-partitioned input")
    args = ap.parse_args()

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    n_features = inp.shape[1]
    features = [f"f{i}" for i in range(n_features)]
    outputs = [o.name for o in sess.get_outputs()]

    writer = None
    upload = args.output.startswith("s3://")
    local_output = tempfile.mkstemp(suffix=".parquet")[1] if upload else args.output
    for batch in batches(args.input, ["id"] + features, args.batch_size, args.date_range):
        x = np.stack([batch.column(f).to_numpy(zero_copy_only=False) for f in features], axis=1).astype(np.float32)
        results = sess.run(None, {inp.name: x})
        cols = {"id": batch.column("id")}
        for name, value in zip(outputs, results):
            if isinstance(value, list):  # ZipMap
                for key in value[0]:
                    cols[f"{name}_{key}"] = pa.array(np.array([d[key] for d in value], dtype=np.float32))
                continue
            value = np.asarray(value)
            if value.ndim == 1 or value.shape[1] == 1:
                cols[name] = pa.array(value.reshape(-1))
            else:
                for i in range(value.shape[1]):
                    cols[f"{name}_{i}"] = pa.array(value[:, i])
        table = pa.table(cols)
        if writer is None:
            writer = pq.ParquetWriter(local_output, table.schema)
        writer.write_table(table)
    writer.close()
    if upload:
        import boto3

        bucket, _, key = args.output[len("s3://"):].partition("/")
        boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL")).upload_file(local_output, bucket, key)
        os.remove(local_output)


if __name__ == "__main__":
    main()
