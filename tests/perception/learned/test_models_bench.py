"""bench/models.py on tiny untrained ONNX models (no torch): one JSON object with the acceptance keys; a missing
or off-contract model file is one line on stderr and exit 2."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from perception.learned.contracts import MASK_H, MASK_W, QUERIES
from tests.perception.learned import models as m

BENCH = Path(__file__).resolve().parents[3] / "bench" / "models.py"
KEYS = ("segmenter_ms", "pick_model_ms", "embedding_ms", "pick_decision_ms")
FLOORS = ("segmenter_session_ms", "frame_tensor_ms", "crop_tensor_ms", "embedding_single_crop_session_ms",
          "pick_planning_ms")


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_models", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_models(tmp: Path) -> Path:
    """One pick segment in the middle of the frame, and an embedding that accepts any match: the decision plans."""
    logits = np.tile(np.array([[-4.0, 4.0]], np.float32), (QUERIES, 1))
    logits[0] = (4.0, -4.0)
    masks = np.full((QUERIES, MASK_H, MASK_W), -5.0, np.float32)
    masks[0, 30:45, 40:60] = 5.0
    status = np.zeros((QUERIES, 4), np.float32)
    status[0, 1] = 3.0  # free
    m.write(tmp, "segmenter.onnx", m.segmenter())
    m.write(tmp, "pick.onnx", m.pick(logits=logits, masks=masks, status=status))
    m.write(tmp, "embedding.onnx", m.embedding(metadata={**m.meta("embedding"), "cellctl.match_threshold": "-0.99"}))
    return tmp


def test_json_has_the_acceptance_figures(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bench = load_bench()
    rc = bench.main(["--models", str(tiny_models(tmp_path)), "--json", "--repeat", "2"])
    out = capsys.readouterr().out
    assert rc == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    for key in KEYS + FLOORS:
        for k in (key, key.replace("_ms", "_p95_ms")):
            value = result[k]
            assert isinstance(value, float) and math.isfinite(value) and value >= 0, k
    assert result["embedding_ms"] < result["embedding_single_crop_session_ms"] * result["embedding_batch"]
    assert (result["threads"], result["repeat"], result["seed"]) == (1, 2, 0)
    assert set(result["within_aims"]) == {"segmenter", "embedding", "pick_decision"}
    assert result["pick_segments"] == 1 and result["pick_decision_planned"], result["pick_decision_outcome"]


def test_table_names_each_row_and_aim(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bench = load_bench()
    assert bench.main(["--models", str(tiny_models(tmp_path)), "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("segmenter:", "pick model:", "embedding:", "pick decision:", "floor: segmenter session.run"):
        assert row in out
    assert "< 40" in out and "< 5" in out and "< 150" in out


def test_missing_model_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bench = load_bench()
    models = tiny_models(tmp_path)
    (models / "pick.onnx").unlink()
    assert bench.main(["--models", str(models), "--json", "--repeat", "2"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert str(models / "pick.onnx") in lines[0] and "no such file" in lines[0]


def test_off_contract_model_names_the_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bench = load_bench()
    models = tiny_models(tmp_path)
    m.write(models, "embedding.onnx", m.pick())  # a pick graph where the embedding should be
    assert bench.main(["--models", str(models), "--repeat", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(models / "embedding.onnx") in err and "does not fit the embedding contract" in err
