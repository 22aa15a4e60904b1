#!/usr/bin/env python3
"""The script a user would write instead of batchinfer: pyarrow reads record batches,
numpy stacks the feature columns into a float32 matrix, onnxruntime scores it with
the given number of threads, pyarrow writes the id and the predictions as Parquet.

    python benches/peer_python.py MODEL INPUT(.parquet|.csv) OUTPUT.parquet --threads 2

With --date-range COL,FROM,TO the input is a hive-partitioned directory and only
rows with FROM <= COL <= TO are scored, through pyarrow.dataset's filter (which
skips partitions and row groups by their statistics).
"""
import datetime
import argparse

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq


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
        yield from ds.dataset(path, format="parquet").to_batches(columns=columns, batch_size=batch_size)


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
            writer = pq.ParquetWriter(args.output, table.schema)
        writer.write_table(table)
    writer.close()


if __name__ == "__main__":
    main()
