"""Tiny ONNX models built with onnx.helper for the contract and runner tests (untrained: they compute a few
fixed ops, never a perception result). Outputs are either constants broadcast over the batch axis, the input
average-pooled by 2 (`POOL`), or, for the embedding, a fixed linear map of the pooled crop, L2-normalised."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from perception.learned.contracts import CROP, EMBED_DIM, INPUT_H, INPUT_W, MASK_H, MASK_W, QUERIES

POOL = "pool"  # an output that is the input image average-pooled by 2 (4 channels at half resolution)
_ELEM = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}


def meta(kind: str, **extra: str) -> dict[str, str]:
    """The required metadata of an untrained test model (seed 0, no data, no metrics)."""
    base = {"cellctl.contract": kind, "cellctl.contract_version": "1", "cellctl.training_seed": "0",
            "cellctl.data_size": "0", "cellctl.metrics": "{}"}
    if kind == "embedding":
        base["cellctl.match_threshold"] = "0.8"
    return {**base, **{f"cellctl.{k}": v for k, v in extra.items()}}


def build(inputs: dict[str, tuple[object, ...]], outputs: dict[str, np.ndarray | str], metadata: dict[str, str],
          *, batch: object = "batch", declared: dict[str, tuple[object, ...]] | None = None) -> bytes:
    """A model with one float32 input per entry (first dim `batch`) and the given outputs.

    An ndarray output is that constant broadcast over the batch (its dtype is the output's); POOL is the first
    input pooled by 2. `declared` overrides an output's declared shape (dims after the batch).
    """
    (in_name, in_dims), = inputs.items()
    nodes = [
        helper.make_node("ReduceMean", [in_name], ["mean"], axes=list(range(1, len(in_dims) + 1)), keepdims=1),
        helper.make_node("Mul", ["mean", "zero"], ["zeros4"]),
    ]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    outs = []
    for name, value in outputs.items():
        if isinstance(value, str):
            nodes.append(helper.make_node("AveragePool", [in_name], [name], kernel_shape=[2, 2], strides=[2, 2]))
            dims: tuple[object, ...] = (4, in_dims[1] // 2, in_dims[2] // 2)  # type: ignore[operator]
            elem = TensorProto.FLOAT
        else:
            rank = value.ndim + 1
            shape = numpy_helper.from_array(np.array([-1] + [1] * (rank - 1), np.int64), f"{name}_shape")
            inits += [shape, numpy_helper.from_array(value, f"{name}_const")]
            elem = _ELEM[value.dtype]
            nodes += [
                helper.make_node("Reshape", ["zeros4", f"{name}_shape"], [f"{name}_z"]),
                helper.make_node("Cast", [f"{name}_z"], [f"{name}_zc"], to=elem),
                helper.make_node("Add", [f"{name}_zc", f"{name}_const"], [name]),
            ]
            dims = value.shape
        dims = (declared or {}).get(name, dims)
        outs.append(helper.make_tensor_value_info(name, elem, [batch, *dims]))
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info(in_name, TensorProto.FLOAT,
                                                                            [batch, *in_dims])], outs, inits)
    return _serialise(graph, metadata)


def _serialise(graph: onnx.GraphProto, metadata: dict[str, str]) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    return model.SerializeToString()


IMAGE = {"image": (4, INPUT_H, INPUT_W)}


def segmenter(*, sem: np.ndarray | str = POOL, logits: np.ndarray | None = None, masks: np.ndarray | None = None,
              metadata: dict[str, str] | None = None, **kw: object) -> bytes:
    logits = np.tile(np.array([[-4.0, 4.0]], np.float32), (QUERIES, 1)) if logits is None else logits
    masks = np.full((QUERIES, MASK_H, MASK_W), -5.0, np.float32) if masks is None else masks
    return build(IMAGE, {"sem_logits": sem, "pred_logits": logits, "pred_masks": masks},
                 metadata or meta("segmenter"), **kw)  # type: ignore[arg-type]


def pick(*, logits: np.ndarray | None = None, masks: np.ndarray | None = None, status: np.ndarray | None = None,
         metadata: dict[str, str] | None = None, **kw: object) -> bytes:
    logits = np.tile(np.array([[-4.0, 4.0]], np.float32), (QUERIES, 1)) if logits is None else logits
    masks = np.full((QUERIES, MASK_H, MASK_W), -5.0, np.float32) if masks is None else masks
    status = np.zeros((QUERIES, 4), np.float32) if status is None else status
    return build(IMAGE, {"pred_logits": logits, "pred_masks": masks, "pred_status": status},
                 metadata or meta("pick"), **kw)  # type: ignore[arg-type]


def embedding(*, dim: int = EMBED_DIM, normalise: bool = True, batch: object = "batch",
              metadata: dict[str, str] | None = None) -> bytes:
    """crop [N, 3, 64, 64] -> average-pooled by 8 -> flattened (192) -> a fixed random matrix -> L2-normalised."""
    w = np.random.default_rng(5).standard_normal((3 * (CROP // 8) ** 2, dim)).astype(np.float32)
    nodes = [
        helper.make_node("AveragePool", ["crop"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w"], ["raw" if normalise else "embedding"]),
    ]
    if normalise:
        nodes.append(helper.make_node("LpNormalization", ["raw"], ["embedding"], axis=1, p=2))
    graph = helper.make_graph(nodes, "tiny-embedding",
                              [helper.make_tensor_value_info("crop", TensorProto.FLOAT, [batch, 3, CROP, CROP])],
                              [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [batch, dim])],
                              [numpy_helper.from_array(w, "w")])
    return _serialise(graph, metadata or meta("embedding"))


def write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path
