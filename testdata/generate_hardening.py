"""Models for the hardening tests, made with the onnx package, references by onnxruntime.

  models/linear_external.onnx (+ linear_external.onnx.data)  a linear model over
      f0..f7 whose weights are stored outside the model file, as exporters write
      models over 2 GB; models/linear_embedded.onnx is the same model in one file.
  expected/linear_external.parquet  onnxruntime's predictions on data/numeric.parquet.
  models/rank3_input.onnx  a model whose input has shape [N, 2, 4], which
      batchinfer refuses before scoring.

Run: python testdata/generate_hardening.py   (onnx, onnxruntime, numpy, pyarrow;
versions in requirements.txt)
"""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).parent
MODELS = HERE / "models"
EXPECTED = HERE / "expected"
FEATURES = [f"f{i}" for i in range(8)]


def linear(name):
    rng = np.random.default_rng(7)
    # 64 KiB of weights: above onnx's size threshold for external data.
    w1 = rng.normal(size=(8, 2048)).astype(np.float32)
    w2 = rng.normal(size=(2048, 1)).astype(np.float32) / 50.0
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)], producer_name="onnx")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def main():
    embedded = MODELS / "linear_embedded.onnx"
    onnx.save(linear("linear"), embedded)
    external = MODELS / "linear_external.onnx"
    onnx.save(
        linear("linear"),
        external,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="linear_external.onnx.data",
        size_threshold=1024,
    )
    assert (MODELS / "linear_external.onnx.data").exists()
    table = pq.read_table(HERE / "data" / "numeric.parquet")
    x = np.stack([table[c].to_numpy().astype(np.float32) for c in FEATURES], axis=1)
    session = ort.InferenceSession(str(external), providers=["CPUExecutionProvider"])
    (score,) = session.run(["score"], {"x": x})
    pq.write_table(
        pa.table({"id": table["id"], "score": pa.array(score[:, 0], pa.float32())}),
        EXPECTED / "linear_external.parquet",
    )

    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0)],
        "rank3",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 4])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, ["N"])],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="onnx")
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, MODELS / "rank3_input.onnx")
    print("wrote", embedded, external, MODELS / "rank3_input.onnx")


if __name__ == "__main__":
    main()
