#!/usr/bin/env python3
"""Native model files and the libraries' own predictions for them.

Trains small XGBoost and LightGBM models, one per objective and booster
batchinfer reads, saves each with the library's own `save_model` (XGBoost: as
JSON and as UBJSON; LightGBM: its text format), and records what the library's
own `predict` returns for the rows of
data/numeric_nan.parquet (800 rows, 8 float32 features with NaN in them), in
the columns batchinfer writes:
  classifiers   label (int64), probabilities_0 … probabilities_K-1 (float32)
  regressors    prediction, or prediction_0 … for several outputs (float32)

    pip install -r testdata/requirements.txt
    python testdata/generate_native.py

Writes models/native/*, expected/native/*.parquet and native_cases.json (the
cases tests/cli/native.rs runs). Deterministic: same versions, same files.
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import xgboost as xgb

HERE = Path(__file__).resolve().parent
MODELS, EXPECTED = HERE / "models" / "native", HERE / "expected" / "native"
FEATURES = [f"f{i}" for i in range(8)]
TOL = 1e-5
# Models also scored with --raw-score, against XGBoost's output_margin=True and
# LightGBM's raw_score=True.
RAW = {"xgb_binary_logistic", "xgb_multi_softprob", "xgb_poisson", "lgbm_binary_sigmoid", "lgbm_multiclass", "lgbm_gamma"}


def data():
    """The rows scored (with NaN), and training rows like them."""
    table = pq.read_table(HERE / "data" / "numeric_nan.parquet")
    x = np.stack([table[f].to_numpy(zero_copy_only=False) for f in FEATURES], axis=1).astype(np.float32)
    rng = np.random.default_rng(7)
    xt = rng.normal(size=(1500, len(FEATURES))).astype(np.float32)
    xt[rng.random(xt.shape) < 0.08] = np.nan
    z = np.nan_to_num(xt[:, 0]) * 1.5 - np.nan_to_num(xt[:, 1]) + 0.5 * np.nan_to_num(xt[:, 2] * xt[:, 3]) + np.sin(np.nan_to_num(xt[:, 4]))
    return x, xt, z


def margins(pred):
    """Raw margins as batchinfer writes them with --raw-score."""
    pred = pred.astype(np.float32)
    if pred.ndim == 1:
        return {"margin": pred}
    return {f"margin_{i}": pred[:, i] for i in range(pred.shape[1])}


def raw_case(cases, name, model, pred, feature_names=True):
    """A case scoring `model` with --raw-score against the library's margins."""
    pq.write_table(pa.table(margins(pred)), EXPECTED / f"{name}.parquet")
    cases.append({
        "name": name,
        "model": model,
        "input": "data/numeric_nan.parquet",
        "args": ["--raw-score"] + ([] if feature_names else ["--features", ",".join(FEATURES)]),
        "expected": f"expected/native/{name}.parquet",
        "tolerance": TOL,
    })


def columns(pred, kind, k):
    """XGBoost's predictions as batchinfer's columns."""
    if kind == "binary":
        p = pred.astype(np.float32)
        return {"label": (p > 0.5).astype(np.int64), "probabilities_0": (1 - p).astype(np.float32), "probabilities_1": p}
    if kind == "multiclass":
        p = pred.astype(np.float32)
        out = {"label": p.argmax(axis=1).astype(np.int64)}
        out.update({f"probabilities_{i}": p[:, i] for i in range(k)})
        return out
    pred = pred.astype(np.float32)
    if pred.ndim == 1:
        return {"prediction": pred}
    return {f"prediction_{i}": pred[:, i] for i in range(pred.shape[1])}


def main():
    MODELS.mkdir(parents=True, exist_ok=True)
    EXPECTED.mkdir(parents=True, exist_ok=True)
    x, xt, z = data()
    y_bin = (z > 0).astype(np.float32)
    y_3 = np.digitize(z, np.quantile(z, [0.33, 0.66])).astype(np.float32)
    y_pos = np.exp(z / 3).astype(np.float32)
    y_count = np.random.default_rng(1).poisson(np.exp(z / 3)).astype(np.float32)
    y_frac = (1 / (1 + np.exp(-z))).astype(np.float32)
    base = {"max_depth": 4, "eta": 0.3, "seed": 0, "nthread": 1}
    named = pd.DataFrame(xt, columns=FEATURES)
    cases = []

    def model(name, params, label, rounds=12, kind="regression", k=1, feature_names=True, dmatrix=None, expect=None):
        train = dmatrix or xgb.DMatrix(named if feature_names else xt, label=label)
        booster = xgb.train({**base, **params}, train, rounds)
        score = xgb.DMatrix(pd.DataFrame(x, columns=FEATURES) if feature_names else x)
        pred = booster.predict(score)
        cols = columns(pred, kind, k)
        if expect is not None:
            cols = expect(booster, score, cols)
        for ext in ("json", "ubj"):
            booster.save_model(str(MODELS / f"{name}.{ext}"))
        if name in RAW:
            raw_case(cases, f"{name}_raw", f"models/native/{name}.json", booster.predict(score, output_margin=True), feature_names)
        expected = EXPECTED / f"{name}.parquet"
        pq.write_table(pa.table(cols), expected)
        for ext in ("json", "ubj"):
            cases.append({
                "name": f"{name}_{ext}",
                "model": f"models/native/{name}.{ext}",
                "input": "data/numeric_nan.parquet",
                # Models trained without feature names take the columns in order.
                "args": [] if feature_names else ["--features", ",".join(FEATURES)],
                "expected": f"expected/native/{name}.parquet",
                "tolerance": TOL,
            })

    def with_probabilities(booster, score, cols):
        """multi:softmax predicts labels; its probabilities are softprob's."""
        soft = booster.copy()
        soft.set_param({"objective": "multi:softprob"})
        p = soft.predict(score).astype(np.float32)
        cols = {"label": cols["prediction"].astype(np.int64)}
        cols.update({f"probabilities_{i}": p[:, i] for i in range(p.shape[1])})
        return cols

    def hinge(booster, score, cols):
        return {"prediction": cols["prediction"]}

    model("xgb_binary_logistic", {"objective": "binary:logistic"}, y_bin, kind="binary")
    model("xgb_binary_logitraw", {"objective": "binary:logitraw"}, y_bin)
    model("xgb_binary_hinge", {"objective": "binary:hinge"}, y_bin, expect=hinge)
    model("xgb_reg_logistic", {"objective": "reg:logistic"}, y_frac)
    model("xgb_multi_softprob", {"objective": "multi:softprob", "num_class": 3}, y_3, kind="multiclass", k=3)
    model("xgb_multi_softmax", {"objective": "multi:softmax", "num_class": 3}, y_3, expect=with_probabilities)
    model("xgb_squarederror", {"objective": "reg:squarederror"}, z, feature_names=False)
    model("xgb_absoluteerror", {"objective": "reg:absoluteerror"}, z)
    model("xgb_pseudohubererror", {"objective": "reg:pseudohubererror"}, z)
    model("xgb_quantileerror", {"objective": "reg:quantileerror", "quantile_alpha": [0.1, 0.5, 0.9]}, z)
    model("xgb_poisson", {"objective": "count:poisson"}, y_count)
    model("xgb_gamma", {"objective": "reg:gamma"}, y_pos)
    model("xgb_tweedie", {"objective": "reg:tweedie", "tweedie_variance_power": 1.3}, y_count)
    model("xgb_cox", {"objective": "survival:cox"}, np.where(y_bin > 0, 1, -1) * (1 + np.abs(z)).astype(np.float32))
    qid = np.repeat(np.arange(len(z) // 15), 15)
    ranked = xgb.DMatrix(named, label=np.digitize(z, [-1, 0, 1]).astype(np.float32), qid=qid)
    model("xgb_rank_ndcg", {"objective": "rank:ndcg"}, None, dmatrix=ranked)
    model("xgb_dart", {"objective": "reg:squarederror", "booster": "dart", "rate_drop": 0.3, "skip_drop": 0.0}, z)
    model("xgb_forest", {"objective": "binary:logistic", "num_parallel_tree": 4, "subsample": 0.7, "colsample_bynode": 0.7, "eta": 1.0}, y_bin, rounds=2, kind="binary")
    model("xgb_base_score", {"objective": "binary:logistic", "base_score": 0.3}, y_bin, kind="binary")
    two = np.stack([z, np.nan_to_num(xt[:, 5]) * 2], axis=1).astype(np.float32)
    model("xgb_two_targets", {"objective": "reg:squarederror", "tree_method": "hist"}, two)
    model("xgb_multi_output_tree", {"objective": "reg:squarederror", "tree_method": "hist", "multi_strategy": "multi_output_tree"}, two)
    linear = {"booster": "gblinear", "updater": "coord_descent", "feature_selector": "cyclic"}
    model("xgb_gblinear_binary", {**linear, "objective": "binary:logistic"}, y_bin, kind="binary")
    model("xgb_gblinear_multiclass", {**linear, "objective": "multi:softprob", "num_class": 3}, y_3, kind="multiclass", k=3)
    model("xgb_gblinear_regression", {**linear, "objective": "reg:squarederror"}, z)
    model("xgb_gblinear_poisson", {**linear, "objective": "count:poisson"}, y_count)

    lightgbm_models(cases, x, xt, z, y_bin, y_3, y_pos, y_count, y_frac)
    iterations(cases, x, xt, z)
    categorical_models(cases)
    refused()
    (HERE / "native_cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    import lightgbm

    print(f"{len(cases)} cases, XGBoost {xgb.__version__}, LightGBM {lightgbm.__version__}")


def lightgbm_models(cases, x, xt, z, y_bin, y_3, y_pos, y_count, y_frac):
    """One LightGBM model per objective. Feature f4 has no missing value in
    training, so its splits are of missing type None (a NaN scored is taken as
    0); the others have NaN (missing type NaN, the default direction)."""
    import lightgbm as lgb

    xt = xt.copy()
    xt[:, 4] = np.nan_to_num(xt[:, 4])
    named = pd.DataFrame(xt, columns=FEATURES)
    scored = pd.DataFrame(x, columns=FEATURES)
    base = {"num_leaves": 15, "learning_rate": 0.2, "min_data_in_leaf": 10, "seed": 0,
            "num_threads": 1, "deterministic": True, "verbose": -1}

    def model(name, params, label, rounds=10, kind="regression", k=1, feature_names=True, group=None):
        train = lgb.Dataset(named if feature_names else xt, label=label, group=group)
        booster = lgb.train({**base, **params}, train, rounds)
        pred = booster.predict(scored if feature_names else x)
        booster.save_model(str(MODELS / f"{name}.txt"))
        if name in RAW:
            raw_case(cases, f"{name}_raw", f"models/native/{name}.txt", booster.predict(scored if feature_names else x, raw_score=True), feature_names)
        pq.write_table(pa.table(columns(pred, kind, k)), EXPECTED / f"{name}.parquet")
        cases.append({
            "name": name,
            "model": f"models/native/{name}.txt",
            "input": "data/numeric_nan.parquet",
            "args": [] if feature_names else ["--features", ",".join(FEATURES)],
            "expected": f"expected/native/{name}.parquet",
            "tolerance": TOL,
        })

    model("lgbm_binary", {"objective": "binary"}, y_bin, kind="binary")
    model("lgbm_binary_sigmoid", {"objective": "binary", "sigmoid": 2.0}, y_bin, kind="binary")
    model("lgbm_multiclass", {"objective": "multiclass", "num_class": 3}, y_3, kind="multiclass", k=3)
    model("lgbm_multiclassova", {"objective": "multiclassova", "num_class": 3}, y_3, kind="multiclass", k=3)
    model("lgbm_regression", {"objective": "regression"}, z, feature_names=False)
    for objective in ["regression_l1", "huber", "fair", "quantile", "mape"]:
        model(f"lgbm_{objective}", {"objective": objective}, z)
    model("lgbm_poisson", {"objective": "poisson"}, y_count)
    model("lgbm_gamma", {"objective": "gamma"}, y_pos)
    model("lgbm_tweedie", {"objective": "tweedie"}, y_count)
    model("lgbm_cross_entropy", {"objective": "cross_entropy"}, y_frac)
    model("lgbm_cross_entropy_lambda", {"objective": "cross_entropy_lambda"}, y_frac)
    grades = np.digitize(z, [-1, 0, 1])
    groups = [15] * (len(z) // 15)  # 100 queries of 15 rows
    for objective in ["lambdarank", "rank_xendcg"]:
        model(f"lgbm_{objective}", {"objective": objective}, grades, group=groups)
    zero_as_missing(cases, base)
    # Linear trees: a NaN in a leaf's features gives the leaf's plain value.
    model("lgbm_linear_tree", {"objective": "regression", "linear_tree": True}, z)
    model("lgbm_linear_tree_binary", {"objective": "binary", "linear_tree": True, "linear_lambda": 0.1}, y_bin, kind="binary")
    model("lgbm_random_forest", {"objective": "binary", "boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.7, "feature_fraction": 0.7}, y_bin, kind="binary")


def iterations(cases, x, xt, z):
    """--iterations: an XGBoost model trained with early stopping (its file records
    best_iteration and holds the trees after it): all trees (Booster.predict), the
    best iteration (the scikit-learn estimator's predict) and the first 2; the first
    5 iterations of the 3-class XGBoost and LightGBM models."""
    import lightgbm as lgb

    scored = pd.DataFrame(x, columns=FEATURES)

    def add(name, model, args, cols):
        pq.write_table(pa.table(cols), EXPECTED / f"{name}.parquet")
        cases.append({"name": name, "model": model, "input": "data/numeric_nan.parquet", "args": args,
                      "expected": f"expected/native/{name}.parquet", "tolerance": TOL})

    est = xgb.XGBRegressor(n_estimators=200, max_depth=4, learning_rate=0.6, early_stopping_rounds=3, n_jobs=1, random_state=0)
    named = pd.DataFrame(xt, columns=FEATURES)
    est.fit(named[:1000], z[:1000], eval_set=[(named[1000:], z[1000:])], verbose=False)
    path = MODELS / "xgb_early_stopping.json"
    est.save_model(str(path))
    booster = xgb.Booster(model_file=str(path))
    assert booster.best_iteration + 1 < booster.num_boosted_rounds(), "early stopping kept every round"
    model = "models/native/xgb_early_stopping.json"
    add("xgb_early_stopping_all", model, [], columns(booster.predict(xgb.DMatrix(scored)), "regression", 1))
    add("xgb_early_stopping_best", model, ["--iterations", "best"], columns(est.predict(scored), "regression", 1))
    add("xgb_early_stopping_2", model, ["--iterations", "2"],
        columns(booster.predict(xgb.DMatrix(scored), iteration_range=(0, 2)), "regression", 1))
    soft = xgb.Booster(model_file=str(MODELS / "xgb_multi_softprob.json"))
    add("xgb_multi_softprob_5", "models/native/xgb_multi_softprob.json", ["--iterations", "5"],
        columns(soft.predict(xgb.DMatrix(scored), iteration_range=(0, 5)), "multiclass", 3))
    lgbm = lgb.Booster(model_file=str(MODELS / "lgbm_multiclass.txt"))
    add("lgbm_multiclass_5", "models/native/lgbm_multiclass.txt", ["--iterations", "5"],
        columns(lgbm.predict(scored, num_iteration=5), "multiclass", 3))


def zero_as_missing(cases, base):
    """LightGBM with zero_as_missing: zeros (within 1e-35 of 0) and NaN go the
    default way. Scored from data/sparse.parquet: 600 rows of f0…f7 with 30%
    zeros, some values within 1e-35 of 0 (-1e-36, 1e-36), some just outside it
    (±1e-30) and some NaN."""
    import lightgbm as lgb

    rng = np.random.default_rng(13)

    def sparse(n):
        x = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
        x[rng.random(x.shape) < 0.3] = 0.0
        for v, share in ((-1e-36, 0.03), (1e-36, 0.03), (1e-30, 0.03), (-1e-30, 0.03), (np.nan, 0.05)):
            x[rng.random(x.shape) < share] = v
        return x

    xt, x = sparse(2000), sparse(600)
    z = xt[:, 0] * 1.5 - xt[:, 1] + np.where(xt[:, 2] == 0, 1.0, 0.0) + np.nan_to_num(xt[:, 3])
    z = np.nan_to_num(z)
    table = pa.table({"id": pa.array(np.arange(600, dtype=np.int64)), **{f: pa.array(x[:, i]) for i, f in enumerate(FEATURES)}})
    pq.write_table(table, HERE / "data" / "sparse.parquet")
    for name, params, label, kind in (
        ("lgbm_zero_as_missing", {"objective": "regression"}, z, "regression"),
        ("lgbm_zero_as_missing_binary", {"objective": "binary"}, (z > 0).astype(np.float32), "binary"),
    ):
        booster = lgb.train({**base, **params, "zero_as_missing": True}, lgb.Dataset(pd.DataFrame(xt, columns=FEATURES), label=label), 10)
        booster.save_model(str(MODELS / f"{name}.txt"))
        pq.write_table(pa.table(columns(booster.predict(pd.DataFrame(x, columns=FEATURES)), kind, 2)), EXPECTED / f"{name}.parquet")
        cases.append({"name": name, "model": f"models/native/{name}.txt", "input": "data/sparse.parquet", "args": [],
                      "expected": f"expected/native/{name}.parquet", "tolerance": TOL})


COLORS = ["red", "green", "blue", "black", "white", "amber", "teal", "plum"]  # pandas' order = the codes
SIZES = [3, 7, 10, 42]


def categorical_frame(rng, n, unseen=False):
    """Rows with two numeric features (NaN in `a`), a string category `color` and an
    integer category `size`, both pandas categoricals with nulls; with `unseen`,
    values no model was trained with ("purple", 99)."""
    a = rng.normal(size=n).astype(np.float32)
    a[rng.random(n) < 0.08] = np.nan
    color = rng.choice(COLORS, n).astype(object)
    color[rng.random(n) < 0.05] = None
    size = rng.choice(SIZES, n).astype(object)
    size[rng.random(n) < 0.05] = None
    if unseen:
        color[rng.random(n) < 0.1] = "purple"
        size[rng.random(n) < 0.1] = 99
    frame = pd.DataFrame({
        "a": a,
        "b": rng.normal(size=n).astype(np.float32),
        "color": pd.Categorical(color, categories=COLORS if not unseen else COLORS + ["purple"]),
        "size": pd.Categorical(size, categories=SIZES if not unseen else SIZES + [99]),
    })
    return frame


def categorical_models(cases):
    """Categorical splits, both libraries: trained on pandas categoricals (the
    files store the category names: XGBoost's `cats`, LightGBM's
    `pandas_categorical`), scored from data/categorical.parquet, whose `color`
    and `size` are dictionary columns as pandas writes categoricals; and trained
    on category codes (no names in the file), scored from the code columns. For
    LightGBM also data/categorical_unseen.parquet, with categories no model saw
    (LightGBM takes them as missing; XGBoost refuses them, a test checks that
    batchinfer makes them bad rows)."""
    import lightgbm as lgb

    rng = np.random.default_rng(11)
    train = categorical_frame(rng, 2000)
    y = (train.color.isin(["red", "blue", "teal"]).to_numpy() * 1.5 + np.nan_to_num(train.a.to_numpy()) * 0.5
         + (train["size"] == 7).to_numpy() - (train["size"] == 42).to_numpy() * 0.7 + train.b.to_numpy() * 0.2)
    y_bin = (y > np.median(y)).astype(np.float32)
    scored = {}
    for name, frame in (("categorical", categorical_frame(rng, 700)), ("categorical_unseen", categorical_frame(rng, 700, unseen=True))):
        table = pa.Table.from_pandas(frame, preserve_index=False)
        table = table.add_column(0, "id", pa.array(np.arange(len(frame), dtype=np.int64)))
        # Codes as the libraries take them from an array, null (NaN) for a null.
        codes = {c: pa.array(frame[c].cat.codes.to_numpy().astype(np.int32), mask=frame[c].isna().to_numpy()) for c in ("color", "size")}
        table = table.append_column("color_code", codes["color"]).append_column("size_code", codes["size"])
        pq.write_table(table, HERE / "data" / f"{name}.parquet")
        scored[name] = frame
    CODES = ["a", "b", "color_code", "size_code"]

    def as_codes(frame):
        x = np.stack([frame.a, frame.b, frame.color.cat.codes, frame["size"].cat.codes], axis=1).astype(np.float32)
        x[x[:, 2] < 0, 2] = np.nan
        x[x[:, 3] < 0, 3] = np.nan
        return x

    def add(name, model, data, cols, args=(), expected=None):
        if expected is None:
            expected = name
            pq.write_table(pa.table(cols), EXPECTED / f"{name}.parquet")
        cases.append({"name": name, "model": model, "input": f"data/{data}.parquet", "args": list(args),
                      "expected": f"expected/native/{expected}.parquet", "tolerance": TOL})

    xgb_base = {"max_depth": 4, "eta": 0.3, "seed": 0, "nthread": 1, "tree_method": "hist", "max_cat_to_onehot": 1}
    for name, params, label, kind, k in (
        ("xgb_categorical", {"objective": "reg:squarederror"}, y, "regression", 1),
        ("xgb_categorical_binary", {"objective": "binary:logistic"}, y_bin, "binary", 2),
        ("xgb_categorical_onehot", {"objective": "reg:squarederror", "max_cat_to_onehot": 16}, y, "regression", 1),
    ):
        booster = xgb.train({**xgb_base, **params}, xgb.DMatrix(train, label=label, enable_categorical=True), 10)
        for ext in ("json", "ubj"):
            booster.save_model(str(MODELS / f"{name}.{ext}"))
        pred = booster.predict(xgb.DMatrix(scored["categorical"], enable_categorical=True))
        cols = columns(pred, kind, k)
        pq.write_table(pa.table(cols), EXPECTED / f"{name}.parquet")
        for ext in ("json", "ubj"):
            add(f"{name}_{ext}", f"models/native/{name}.{ext}", "categorical", cols, expected=name)
    codes_train = xgb.DMatrix(as_codes(train), label=y, feature_types=["q", "q", "c", "c"], enable_categorical=True)
    booster = xgb.train(xgb_base, codes_train, 10)
    booster.save_model(str(MODELS / "xgb_categorical_codes.json"))
    pred = booster.predict(xgb.DMatrix(as_codes(scored["categorical"]), feature_types=["q", "q", "c", "c"], enable_categorical=True))
    add("xgb_categorical_codes", "models/native/xgb_categorical_codes.json", "categorical", columns(pred, "regression", 1),
        ["--features", ",".join(CODES)])

    lgb_base = {"num_leaves": 15, "learning_rate": 0.2, "min_data_in_leaf": 10, "min_data_per_group": 10, "cat_smooth": 1.0,
                "seed": 0, "num_threads": 1, "deterministic": True, "verbose": -1}
    for name, params, label, kind, k in (
        ("lgbm_categorical", {"objective": "regression"}, y, "regression", 1),
        ("lgbm_categorical_binary", {"objective": "binary"}, y_bin, "binary", 2),
    ):
        booster = lgb.train({**lgb_base, **params}, lgb.Dataset(train, label=label), 10)
        booster.save_model(str(MODELS / f"{name}.txt"))
        for data in ("categorical", "categorical_unseen"):
            frame = scored[data]
            if data == "categorical_unseen":
                # LightGBM sets a frame's categories to the training ones: unseen become NaN.
                frame = frame.assign(color=frame.color.cat.set_categories(COLORS), size=frame["size"].cat.set_categories(SIZES))
            cols = columns(booster.predict(frame), kind, k)
            add(f"{name}_{data.replace('categorical', 'names')}", f"models/native/{name}.txt", data, cols)
    booster = lgb.train({**lgb_base, "objective": "regression"}, lgb.Dataset(as_codes(train), label=y, categorical_feature=[2, 3]), 10)
    booster.save_model(str(MODELS / "lgbm_categorical_codes.txt"))
    add("lgbm_categorical_codes", "models/native/lgbm_categorical_codes.txt", "categorical",
        columns(booster.predict(as_codes(scored["categorical"])), "regression", 1), ["--features", ",".join(CODES)])


def refused():
    """Files batchinfer refuses by name: a pickle."""
    import pickle

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(200, 2)).astype(np.float32), columns=["a", "b"])
    frame["c"] = pd.Categorical(rng.choice(["x", "y", "z"], 200))
    y = frame.a.to_numpy() + (frame.c == "y").to_numpy() * 2
    clf = xgb.XGBClassifier(n_estimators=2, max_depth=2, n_jobs=1).fit(frame[["a", "b"]], y > 1)
    (MODELS / "refused_pickle.pkl").write_bytes(pickle.dumps(clf, protocol=4))


if __name__ == "__main__":
    main()
