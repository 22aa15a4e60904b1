"""Work-arounds for incompatibilities between the pinned exporters; import for effect."""
import numpy as np
from onnx import helper

# skl2onnx 1.20 hands numpy booleans to onnx 1.23's make_attribute for
# HistGradientBoosting's nodes_missing_value_tracks_true, which onnx now refuses.
# Cast them to ints, which is what the attribute holds; nothing else changes.
_make_attribute = helper.make_attribute


def _make_attribute_bools_as_ints(key, value, *args, **kwargs):
    if isinstance(value, (list, tuple, np.ndarray)) and any(
        isinstance(v, (bool, np.bool_)) for v in value
    ):
        value = [int(v) for v in value]
    return _make_attribute(key, value, *args, **kwargs)


helper.make_attribute = _make_attribute_bools_as_ints
