#!/usr/bin/env python3
"""The Spark job a Spark or MLflow user would write instead of batchinfer: Spark in
local mode reads Parquet, mapInPandas scores each Arrow batch with onnxruntime, and
Spark writes id + predictions as Parquet.

    pip install "pyspark==4.0.*"      # needs Java 17
    python benches/peer_spark.py MODEL INPUT.parquet OUTPUT_DIR --threads 2
"""
import argparse
import time

import numpy as np
import onnxruntime as ort
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql.types import DoubleType, LongType, StructField, StructType


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    started = time.time()
    spark = (
        SparkSession.builder.master(f"local[{args.threads}]")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "65536")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "4g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    jvm_ready = time.time()

    sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    n_features = sess.get_inputs()[0].shape[1]
    outputs = [o.name for o in sess.get_outputs()]
    features = [f"f{i}" for i in range(n_features)]
    model_bytes = open(args.model, "rb").read()

    # One float column per output entry, as batchinfer writes them.
    probe = sess.run(None, {sess.get_inputs()[0].name: np.zeros((1, n_features), np.float32)})
    out_cols = []
    for name, value in zip(outputs, probe):
        value = np.asarray(value)
        width = 1 if value.ndim == 1 else value.shape[1]
        out_cols += [name] if width == 1 else [f"{name}_{i}" for i in range(width)]
    schema = StructType([StructField("id", LongType())] + [StructField(c, DoubleType()) for c in out_cols])

    def score(batches):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # Spark runs one task per core
        s = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        for pdf in batches:
            x = pdf[features].to_numpy(np.float32)
            res = s.run(None, {name: x})
            cols = {"id": pdf["id"].to_numpy()}
            for out, value in zip(outputs, res):
                value = np.asarray(value)
                if value.ndim == 1 or value.shape[1] == 1:
                    cols[out] = value.reshape(-1).astype(np.float64)
                else:
                    for i in range(value.shape[1]):
                        cols[f"{out}_{i}"] = value[:, i].astype(np.float64)
            yield pd.DataFrame(cols)

    df = spark.read.parquet(args.input).select("id", *features)
    df.mapInPandas(score, schema).write.mode("overwrite").parquet(args.output)
    done = time.time()
    print(f"spark: jvm start {jvm_ready - started:.1f} s, job {done - jvm_ready:.1f} s")
    spark.stop()


if __name__ == "__main__":
    main()
