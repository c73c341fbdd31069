"""Issue 13, point 3: the `[perception]` section (model files, onnxruntime provider and threads)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellctl.config import ConfigError, RunConfig, load_config
from perception.learned.session import SessionSettings


def _load(tmp_path: Path, text: str) -> RunConfig:
    path = tmp_path / "cell.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_defaults_are_the_cpu_provider_one_thread_and_no_models() -> None:
    p = load_config(None).perception
    assert (p.segmenter, p.pick, p.embedding) == (None, None, None)
    assert p.session_settings() == SessionSettings("CPUExecutionProvider", 1)


def test_model_paths_provider_and_threads_are_read(tmp_path: Path) -> None:
    p = _load(tmp_path, '[perception]\nsegmenter = "models/seg.onnx"\npick = "models/pick.onnx"\n'
                        'embedding = "/opt/emb.onnx"\nprovider = "CPUExecutionProvider"\nintra_op_threads = 2\n'
              ).perception
    assert (p.segmenter, p.pick, p.embedding) == (Path("models/seg.onnx"), Path("models/pick.onnx"),
                                                  Path("/opt/emb.onnx"))
    assert p.session_settings() == SessionSettings("CPUExecutionProvider", 2)


def test_an_unavailable_provider_is_refused_naming_the_available_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, '[perception]\nprovider = "CUDAExecutionProvider"\n')
    text = str(err.value)
    assert text.startswith(f"{tmp_path / 'cell.toml'}: perception.provider: execution provider "
                           "'CUDAExecutionProvider' is not available here (available: ")
    assert "CPUExecutionProvider" in text and "\n" not in text


@pytest.mark.parametrize(("text", "key"), [
    ("intra_op_threads = 0", "perception.intra_op_threads"),
    ("intra_op_threads = 65", "perception.intra_op_threads"),
    ('segmenter = "a\\u0000b"', "perception.segmenter"),
    ('models = "x"', "perception.models"),
])
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf": {key}: "):
        _load(tmp_path, f"[perception]\n{text}\n")
