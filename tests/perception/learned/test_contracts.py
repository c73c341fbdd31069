"""The model contracts (docs/models.md): fitting files load; every misfit is one line naming what differs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from perception.learned.contracts import (
    CONTRACTS,
    MASK_H,
    MASK_W,
    QUERIES,
    ContractError,
    ModelError,
    check_io,
    check_outputs,
)
from perception.learned.session import open_model
from tests.perception.learned import models as m


@dataclass
class _Arg:
    name: str
    type: str
    shape: list[int | str | None] | None


BUILDERS = {"segmenter": m.segmenter, "pick": m.pick, "embedding": m.embedding}


def _refused(path: Path, kind: str, cls: type[ModelError] = ContractError) -> str:
    with pytest.raises(cls) as info:
        open_model(path, kind)
    assert cls is ContractError or not isinstance(info.value, ContractError)  # a file error, not a misfit
    text = str(info.value)
    assert "\n" not in text and text.startswith(str(path))
    return text


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_a_model_of_the_contract_loads_with_its_metadata(tmp_path: Path, kind: str) -> None:
    path = m.write(tmp_path, f"{kind}.onnx", BUILDERS[kind]())
    model = open_model(path, kind)
    assert model.contract is CONTRACTS[kind]
    assert (model.metadata.contract, model.metadata.contract_version) == (kind, 1)
    assert (model.metadata.training_seed, model.metadata.data_size, model.metadata.metrics) == (0, 0, {})


def test_missing_empty_truncated_random_and_directory_are_file_errors(tmp_path: Path) -> None:
    good = m.segmenter()
    cases = {
        "missing.onnx": None,
        "empty.onnx": b"",
        "truncated.onnx": good[: len(good) // 2],
        "random.onnx": np.random.default_rng(1).bytes(4096),
        "text.onnx": b"not a model\n",
    }
    for name, data in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        text = _refused(path, "segmenter", ModelError)
        expected = {"missing.onnx": "no such file", "empty.onnx": "empty file"}.get(name, "not a loadable ONNX model")
        assert expected in text, text
    assert "is a directory" in _refused(tmp_path, "segmenter", ModelError)


def test_a_valid_model_of_another_kind_is_refused_naming_the_missing_tensor(tmp_path: Path) -> None:
    path = m.write(tmp_path, "pick.onnx", m.pick())
    text = _refused(path, "segmenter")
    assert "output 'sem_logits': expected float32 [batch, 4, 72, 96]" in text
    assert "found no such output (outputs: 'pred_logits', 'pred_masks', 'pred_status')" in text
    assert "metadata 'cellctl.contract': expected 'segmenter', found 'pick'" in text
    text = _refused(m.write(tmp_path, "emb.onnx", m.embedding()), "pick")
    assert "input 'image': expected float32 [batch, 4, 144, 192]" in text and "found no such input" in text


def test_a_wrong_output_shape_names_tensor_expected_and_found(tmp_path: Path) -> None:
    few_queries = m.pick(masks=np.zeros((8, MASK_H, MASK_W), np.float32))
    text = _refused(m.write(tmp_path, "q8.onnx", few_queries), "pick")
    assert "output 'pred_masks': expected float32 [batch, 16, 72, 96] (batch: symbolic or 1), " \
           "found float32 ['batch', 8, 72, 96]" in text
    coarse = m.segmenter(masks=np.zeros((QUERIES, 36, 48), np.float32))
    assert "found float32 ['batch', 16, 36, 48]" in _refused(m.write(tmp_path, "coarse.onnx", coarse), "segmenter")
    short = m.embedding(dim=64)
    assert "output 'embedding': expected float32 [batch, 128] (batch: symbolic), found float32 ['batch', 64]" in \
        _refused(m.write(tmp_path, "d64.onnx", short), "embedding")


def test_a_wrong_dtype_names_tensor_expected_and_found(tmp_path: Path) -> None:
    logits = np.tile(np.array([[-4.0, 4.0]]), (QUERIES, 1))  # float64
    text = _refused(m.write(tmp_path, "f64.onnx", m.pick(logits=logits)), "pick")
    assert "output 'pred_logits': expected float32 [batch, 16, 2] (batch: symbolic or 1), " \
           "found float64 ['batch', 16, 2]" in text


def test_batch_axis_symbolic_or_one_for_segmenters_symbolic_for_embedding(tmp_path: Path) -> None:
    open_model(m.write(tmp_path, "b1.onnx", m.segmenter(batch=1)), "segmenter")
    assert "found float32 [2, 4, 144, 192]" in _refused(m.write(tmp_path, "b2.onnx", m.segmenter(batch=2)),
                                                        "segmenter")
    text = _refused(m.write(tmp_path, "e1.onnx", m.embedding(batch=1)), "embedding")
    assert "input 'crop': expected float32 [batch, 3, 64, 64] (batch: symbolic), found float32 [1, 3, 64, 64]" in text


def test_a_symbolic_spatial_dim_is_refused() -> None:
    c = CONTRACTS["pick"]
    image = _Arg("image", "tensor(float)", ["batch", 4, 144, 192])
    outs = [_Arg("pred_logits", "tensor(float)", ["batch", 16, 2]),
            _Arg("pred_masks", "tensor(float)", ["batch", 16, "h", "w"]),
            _Arg("pred_status", "tensor(float)", ["batch", 16, 4])]
    assert check_io([image], outs, c) == [
        "output 'pred_masks': expected float32 [batch, 16, 72, 96] (batch: symbolic or 1), "
        "found float32 ['batch', 16, 'h', 'w']"]


def test_a_declared_shape_the_graph_contradicts_is_refused_with_the_inferred_one(tmp_path: Path) -> None:
    # onnxruntime reports the shapes its inference finds, not the declared ones.
    data = m.pick(status=np.zeros((QUERIES, 3), np.float32), declared={"pred_status": (QUERIES, 4)})
    text = _refused(m.write(tmp_path, "lies.onnx", data), "pick")
    assert "output 'pred_status': expected float32 [batch, 16, 4] (batch: symbolic or 1), found float32 [?, 16, 3]" \
        in text


def test_the_run_check_names_shape_type_and_non_finite_outputs() -> None:
    c = CONTRACTS["pick"]
    ok = {"pred_logits": np.zeros((3, 16, 2), np.float32), "pred_masks": np.zeros((3, 16, 72, 96), np.float32),
          "pred_status": np.zeros((3, 16, 4), np.float32)}
    assert check_outputs(ok, c, 3) == []
    bad = {**ok, "pred_status": np.zeros((3, 16, 3), np.float32), "pred_logits": np.full((3, 16, 2), np.nan,
                                                                                          np.float32)}
    assert check_outputs(bad, c, 3) == [
        "output 'pred_logits' (batch of 3): expected finite values, found NaN or infinity when run",
        "output 'pred_status' (batch of 3): expected float32 [3, 16, 4], found float32 [3, 16, 3] when run"]
    assert "found float64 [3, 16, 2]" in check_outputs({**ok, "pred_logits": np.zeros((3, 16, 2))}, c, 3)[0]


def test_an_embedding_that_is_not_unit_length_is_refused(tmp_path: Path) -> None:
    text = _refused(m.write(tmp_path, "raw.onnx", m.embedding(normalise=False)), "embedding")
    assert "output 'embedding' (batch of 1): expected L2-normalised rows, found norms" in text


@pytest.mark.parametrize(("change", "expected"), [
    ({"cellctl.contract_version": "2"}, "metadata 'cellctl.contract_version': expected '1', found '2'"),
    ({"cellctl.training_seed": "x"}, "metadata 'cellctl.training_seed': expected an integer >= 0, found 'x'"),
    ({"cellctl.data_size": "-3"}, "metadata 'cellctl.data_size': expected an integer >= 0, found '-3'"),
    ({"cellctl.metrics": "[1]"}, "metadata 'cellctl.metrics': expected a JSON object of finite numbers, found '[1]'"),
    ({"cellctl.metrics": '{"miou": "high"}'}, "expected a JSON object of finite numbers"),
    ({"cellctl.score_threshold": "1.5"}, "metadata 'cellctl.score_threshold': expected a number in (0, 1]"),
])
def test_metadata_problems_are_named(tmp_path: Path, change: dict[str, str], expected: str) -> None:
    path = m.write(tmp_path, "meta.onnx", m.segmenter(metadata={**m.meta("segmenter"), **change}))
    assert expected in _refused(path, "segmenter")


def test_missing_metadata_lists_every_missing_key(tmp_path: Path) -> None:
    text = _refused(m.write(tmp_path, "bare.onnx", m.embedding(metadata={"author": "x"})), "embedding")
    for key in ("contract", "contract_version", "training_seed", "data_size", "metrics", "match_threshold"):
        assert f"metadata 'cellctl.{key}': missing" in text
    meta = m.meta("embedding")
    del meta["cellctl.match_threshold"]
    text = _refused(m.write(tmp_path, "nothreshold.onnx", m.embedding(metadata=meta)), "embedding")
    assert text.endswith("does not fit the embedding contract v1: metadata 'cellctl.match_threshold': missing")
    open_model(m.write(tmp_path, "seg.onnx", m.segmenter()), "segmenter")  # a segmenter needs none


def test_metadata_is_read_with_thresholds_and_extra_entries(tmp_path: Path) -> None:
    meta = m.meta("embedding", match_threshold="0.7", source_commit="abc")
    meta["cellctl.metrics"] = '{"top1": 0.5}'
    model = open_model(m.write(tmp_path, "e.onnx", m.embedding(metadata=meta)), "embedding")
    assert model.metadata.match_threshold == 0.7 and model.metadata.metrics == {"top1": 0.5}
    assert model.metadata.other == {"cellctl.source_commit": "abc"}


def test_check_io_reports_unknown_rank_unknown_dims_and_extra_inputs() -> None:
    c = CONTRACTS["embedding"]
    outs = [_Arg("embedding", "tensor(float)", None)]
    ins = [_Arg("crop", "tensor(float)", [None, 3, 64, None]), _Arg("mask", "tensor(bool)", [None])]
    problems = check_io(ins, outs, c)
    assert problems == [
        "input 'crop': expected float32 [batch, 3, 64, 64] (batch: symbolic), found float32 [?, 3, 64, ?]",
        "output 'embedding': expected float32 [batch, 128] (batch: symbolic), found float32 of unknown rank",
        "inputs ['mask']: not in the contract (the runner feeds only ['crop'])",
    ]
    assert check_io([_Arg("crop", "tensor(float)", ["n", 3, 64, 64])], [_Arg("embedding", "tensor(float)",
                                                                              [None, 128])], c) == []
