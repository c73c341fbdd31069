"""`cellctl models check FILE --kind ...`: exit 0 when the file fits its contract, 1 with a one-line reason."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cellctl.cli import app
from tests.perception.learned import models as m

runner = CliRunner()


def _check(path: Path, kind: str, *more: str) -> tuple[int, str]:
    result = runner.invoke(app, ["models", "check", str(path), "--kind", kind, *more])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.mark.parametrize(("kind", "build"), [("segmenter", m.segmenter), ("pick", m.pick),
                                             ("embedding", m.embedding)])
def test_a_fitting_file_exits_0_and_says_what_it_checked(tmp_path: Path, kind: str, build: Callable[[], bytes]) -> None:
    path = m.write(tmp_path, f"{kind}.onnx", build())
    code, out = _check(path, kind)
    assert code == 0, out
    assert f"fits the {kind} contract v1" in out and "training seed 0, data size 0, metrics {}" in out


def test_misfits_and_bad_files_exit_1_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    pick = m.write(tmp_path, "pick.onnx", m.pick())
    f64 = m.write(tmp_path, "f64.onnx", m.pick(logits=np.zeros((16, 2))))
    good = m.segmenter()
    cases = {
        (pick, "segmenter"): "output 'sem_logits': expected float32 [batch, 4, 72, 96]",
        (f64, "pick"): "output 'pred_logits': expected float32 [batch, 16, 2] (batch: symbolic or 1), found float64",
        (m.write(tmp_path, "cut.onnx", good[:100]), "segmenter"): "not a loadable ONNX model",
        (m.write(tmp_path, "noise.onnx", np.random.default_rng(2).bytes(999)), "pick"): "not a loadable ONNX model",
        (m.write(tmp_path, "empty.onnx", b""), "embedding"): "empty file",
        (tmp_path / "absent.onnx", "embedding"): "no such file",
    }
    for (path, kind), expected in cases.items():
        code, out = _check(path, kind)
        assert code == 1, out
        lines = out.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}") and expected in lines[0], out


def test_the_run_can_be_skipped(tmp_path: Path) -> None:
    path = m.write(tmp_path, "raw.onnx", m.embedding(normalise=False))  # not unit length: only the run sees it
    assert _check(path, "embedding")[0] == 1
    assert _check(path, "embedding", "--no-run")[0] == 0


def test_an_unknown_kind_is_a_usage_error(tmp_path: Path) -> None:
    code, out = _check(m.write(tmp_path, "e.onnx", m.embedding()), "detector")
    assert code == 2 and "'detector' is not one of" in out


def test_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    path = m.write(tmp_path, "cut.onnx", m.pick()[:-10])
    proc = subprocess.run([sys.executable, "-m", "cellctl", "models", "check", str(path), "--kind", "pick"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.startswith(f"error: {path}: not a loadable ONNX model"), proc.stderr
