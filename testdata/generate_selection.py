#!/usr/bin/env python3
"""Generate the inputs and references of batchinfer's selection tests (--filter,
--with, --sql, hive partitions, pruning).

Run by hand after generate.py (it reuses that script's logreg_multiclass model);
the outputs are committed, so tests and CI never run this script.

    pip install -r testdata/requirements.txt
    python testdata/generate_selection.py

Writes:
  data/events/            a hive-partitioned dataset, year=YYYY/month=MM/part-0.parquet,
                          each file sorted by event_date in row groups of 40 rows
  data/events_csv/        the same rows as CSV files, partitioned the same way
  models/linreg_log_amount.onnx
                          a linear regression over f0..f6 and log1p(amount)
  expected/selection/     the selected rows (kept columns) and onnxruntime's
                          predictions for them, one Parquet file per case
  selection_cases.json    one entry per case: model, input, flags, expected file,
                          tolerance, and how many rows pruning leaves to read

The selections are computed here with pandas, independently of polars; the rows
left to read are computed from the files' row-group date ranges and partitions.
"""
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LinearRegression

warnings.filterwarnings("ignore")

import exporter_compat  # noqa: E402,F401

HERE = Path(__file__).resolve().parent
DATA, MODELS, EXPECTED = HERE / "data", HERE / "models", HERE / "expected" / "selection"
FEATURES = [f"f{i}" for i in range(8)]
MONTHS = [(2023, 11), (2023, 12), (2024, 1), (2024, 2), (2024, 3)]
ROWS_PER_MONTH = 240
ROW_GROUP = 40
rng = np.random.default_rng(20261128)


def month_frame(year, month, first_id):
    n = ROWS_PER_MONTH
    start = pd.Timestamp(year=year, month=month, day=1)
    days = pd.Timestamp(start + pd.offsets.MonthEnd(0)).day
    dates = np.sort(start + pd.to_timedelta(rng.integers(0, days, n), unit="D"))
    amount = rng.lognormal(8, 1.5, n)
    amount[rng.random(n) < 0.05] = np.nan
    frame = pd.DataFrame(
        {
            "id": np.arange(first_id, first_id + n, dtype=np.int64),
            "event_date": pd.Series(dates).dt.date,
            "country": rng.choice(["FR", "DE", "ES", "US"], n),
            "amount": amount,
        }
    )
    x = rng.normal(size=(n, 8)).astype(np.float32)
    for i, f in enumerate(FEATURES):
        frame[f] = x[:, i]
    return frame


def to_table(frame):
    return pa.Table.from_pandas(frame, preserve_index=False).cast(
        pa.schema(
            [("id", pa.int64()), ("event_date", pa.date32()), ("country", pa.string()), ("amount", pa.float64())]
            + [(f, pa.float32()) for f in FEATURES]
        )
    )


def ort_run(model, x):
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: x})))


def rows_left(files, keep_file, keep_group):
    """Rows in the row groups pruning keeps: files whose partition passes, then row
    groups whose event_date range may hold a selected row."""
    total = 0
    for (year, month), path in files:
        if not keep_file(year, month):
            continue
        meta = pq.ParquetFile(path).metadata
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            col = [rg.column(c) for c in range(rg.num_columns) if rg.column(c).path_in_schema == "event_date"][0]
            if keep_group(col.statistics.min, col.statistics.max):
                total += rg.num_rows
    return total


CASES = []


def case(name, model, inp, args, expected, rows_read=None, tolerance=1e-5):
    pq.write_table(pa.Table.from_pandas(expected, preserve_index=False), EXPECTED / f"{name}.parquet")
    CASES.append(
        {
            "name": name,
            "model": f"models/{model.name}",
            "input": inp,
            "args": args,
            "expected": f"expected/selection/{name}.parquet",
            "tolerance": tolerance,
            "rows_read": rows_read,
        }
    )


def logreg_columns(frame, model):
    """Its outputs named as batchinfer names them: the ZipMap becomes one column per class."""
    out = ort_run(model, frame[FEATURES].to_numpy(np.float32))
    cols = {"output_label": out["output_label"].astype(np.int64)}
    for k in out["output_probability"][0]:
        cols[f"output_probability_{k}"] = np.array([d[k] for d in out["output_probability"]], np.float32)
    return pd.DataFrame(cols, index=frame.index)


def main():
    for d in (DATA / "events", DATA / "events_csv", EXPECTED):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    frames, files = [], []
    first_id = 1
    for year, month in MONTHS:
        frame = month_frame(year, month, first_id)
        first_id += len(frame)
        part = f"year={year}/month={month:02}"
        (DATA / "events" / part).mkdir(parents=True)
        (DATA / "events_csv" / part).mkdir(parents=True)
        path = DATA / "events" / part / "part-0.parquet"
        pq.write_table(to_table(frame), path, row_group_size=ROW_GROUP)
        pacsv.write_csv(to_table(frame), DATA / "events_csv" / part / "part-0.csv")
        files.append(((year, month), path))
        frames.append(frame.assign(year=year, month=month))
    events = pd.concat(frames, ignore_index=True)

    logreg = MODELS / "logreg_multiclass.onnx"
    features = ["--features", ",".join(FEATURES)]

    # 1. A date range and a country: row groups before the date are not read.
    since = pd.Timestamp("2024-01-15").date()
    sel = events[(events.event_date >= since) & (events.country == "FR")]
    expected = pd.concat([sel[["id", "country", "year", "month"]], logreg_columns(sel, logreg)], axis=1)
    case(
        "filter_date_country",
        logreg,
        "data/events",
        ["--filter", "event_date >= '2024-01-15' AND country = 'FR'", "--keep", "id,country,year,month"] + features,
        expected,
        rows_read=rows_left(files, lambda y, m: True, lambda lo, hi: hi >= since),
    )

    # 2. A derived feature and a filter on partition columns: other months are not opened.
    x = np.random.default_rng(7).normal(size=(2000, 8)).astype(np.float32)
    x[:, 7] = np.log1p(np.random.default_rng(8).lognormal(8, 1.5, 2000)).astype(np.float32)
    y = x[:, 0] - 0.5 * x[:, 3] + 0.2 * x[:, 7]
    onx = convert_sklearn(
        LinearRegression().fit(x, y),
        initial_types=[("input", FloatTensorType([None, 8]))],
        target_opset={"": 15, "ai.onnx.ml": 3},
    )
    onx.graph.name = "linreg_log_amount"
    linreg = MODELS / "linreg_log_amount.onnx"
    linreg.write_bytes(onx.SerializeToString())
    log_amount = np.log1p(events.amount)
    sel = events[(events.year == 2024) & events.month.isin([2, 3]) & (log_amount > 8)].copy()
    sel["log_amount"] = np.log1p(sel.amount)
    xs = np.column_stack([sel[FEATURES[:7]].to_numpy(np.float32), sel.log_amount.to_numpy(np.float32)])
    expected = sel[["id", "year", "month", "log_amount"]].copy()
    expected["variable"] = ort_run(linreg, xs)["variable"].reshape(-1)
    case(
        "with_and_partition_filter",
        linreg,
        "data/events",
        [
            "--with", "log_amount=log1p(amount)",
            "--filter", "year = 2024 AND month IN (2, 3) AND log_amount > 8",
            "--features", ",".join(FEATURES[:7] + ["log_amount"]),
            "--keep", "id,year,month,log_amount",
        ],
        expected,
        rows_read=rows_left(files, lambda y, m: y == 2024 and m in (2, 3), lambda lo, hi: True),
    )

    # 3. A query: a projection with a computed feature, and a filter.
    sel = events[events.country.isin(["DE", "ES"]) & (events.amount >= 1000) & (events.amount <= 30000)].copy()
    sel["f7"] = sel.f7 * np.float32(2)
    expected = pd.concat([sel[["id", "country"]], logreg_columns(sel, logreg)], axis=1)
    case(
        "sql_projection",
        logreg,
        "data/events",
        [
            "--sql",
            "SELECT id, country, f0, f1, f2, f3, f4, f5, f6, f7 * 2 AS f7 FROM input "
            "WHERE country IN ('DE', 'ES') AND amount BETWEEN 1000 AND 30000",
            "--keep", "id,country",
        ] + features,
        expected,
    )

    # 4. CSV files in partition directories.
    sel = events[(events.month == 12) & (events.amount < 2000)]
    expected = pd.concat([sel[["id", "year", "month"]], logreg_columns(sel, logreg)], axis=1)
    case(
        "csv_partitions",
        logreg,
        "data/events_csv",
        ["--filter", "month = 12 AND amount < 2000", "--keep", "id,year,month"] + features,
        expected,
    )

    (HERE / "selection_cases.json").write_text(json.dumps(CASES, indent=1) + "\n")
    for c in CASES:
        rows = pq.read_metadata(HERE / c["expected"]).num_rows
        print(f"{c['name']}: {rows} rows selected, rows left to read {c['rows_read']}")


if __name__ == "__main__":
    main()
