"""onnxruntime sessions for the learned models: provider and threads from settings, a checked load, runs off the loop.

`open_model(path, kind)` refuses a file that is missing, empty, not ONNX, refused by onnxruntime or off its
contract (`ModelError` / `ContractError`, one line each). `ModelSession.run` is synchronous (CPU-bound);
`run_async` and the runners' async methods run it in a worker thread (`anyio.to_thread`), one run at a time
per session, so the event loop is never blocked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import numpy as np

from .contracts import (
    BATCH,
    Contract,
    ContractError,
    ModelError,
    ModelMetadata,
    check_io,
    check_metadata,
    check_outputs,
    contract,
    probe_input,
)

CPU = "CPUExecutionProvider"
MAX_THREADS = 64
T = TypeVar("T")


def available_providers() -> list[str]:
    import onnxruntime as ort  # loaded on use: the controller starts without it

    return list(ort.get_available_providers())


def check_provider(provider: str) -> str:
    """`provider` if this onnxruntime build has it, else a ModelError naming the ones it has."""
    have = available_providers()
    if provider not in have:
        raise ModelError(f"execution provider {provider!r} is not available here (available: {', '.join(have)})")
    return provider


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """How sessions run: the execution provider and onnxruntime's intra-op thread count."""

    provider: str = CPU
    intra_op_threads: int = 1

    def __post_init__(self) -> None:
        n = self.intra_op_threads
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_THREADS:
            raise ModelError(f"intra_op_threads must be an integer in [1, {MAX_THREADS}], got {n!r}")
        if not isinstance(self.provider, str) or not self.provider:
            raise ModelError(f"provider must be an execution provider's name, got {self.provider!r}")


def _options(settings: SessionSettings) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = settings.intra_op_threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3  # errors only: a refused file is reported by us, in one line
    # Idle pool threads sleep instead of spinning: the cores are shared with the force reflex.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


_ORT_PREFIX = re.compile(r"\[ONNXRuntimeError\] : \d+ : (\w+) : ")


def _first_line(exc: BaseException, source: str = "") -> str:
    """onnxruntime's message in one line: 'CODE: what', without its prefix and our file's name."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    text = _ORT_PREFIX.sub(lambda m: m[1] + ": ", text, count=1)
    if source:
        text = text.replace(f"Load model from {source} failed:", "").replace(source, "the file")
    return text


def _session(path: Path, settings: SessionSettings) -> Any:
    import onnxruntime as ort

    source = str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ModelError(f"{source}: no such file") from None
    except OSError as exc:
        raise ModelError(f"{source}: cannot read ({exc.strerror or exc})") from None
    if path.is_dir():
        raise ModelError(f"{source}: is a directory, not an ONNX model file")
    if size == 0:
        raise ModelError(f"{source}: empty file, not an ONNX model")
    check_provider(settings.provider)
    providers = [settings.provider] if settings.provider == CPU else [settings.provider, CPU]
    try:
        sess = ort.InferenceSession(source, sess_options=_options(settings), providers=providers)
    except Exception as exc:  # onnxruntime raises its own classes (InvalidProtobuf, Fail, InvalidGraph, ...)
        raise ModelError(f"{source}: not a loadable ONNX model (truncated or corrupt?): "
                         f"onnxruntime: {_first_line(exc, source)}") from None
    used = sess.get_providers()
    if not used or used[0] != settings.provider:
        raise ModelError(f"{source}: onnxruntime did not start provider {settings.provider!r} (it runs on {used})")
    return sess


class ModelSession:
    """A loaded, contract-checked model: `run(feeds)` and `await run_async(feeds)` return its outputs by name."""

    def __init__(self, session: Any, c: Contract, metadata: ModelMetadata, source: str) -> None:
        self.session, self.contract, self.metadata, self.source = session, c, metadata, source
        self.limiter = anyio.CapacityLimiter(1)  # one run at a time: concurrent runs would share the same cores
        inp = session.get_inputs()[0]
        self.fixed_batch: int | None = inp.shape[0] if isinstance(inp.shape[0], int) else None

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [t.name for t in self.contract.outputs]
        try:
            values = self.session.run(names, dict(feeds))
        except Exception as exc:
            raise ModelError(f"{self.source}: run failed: onnxruntime: {_first_line(exc)}") from None
        return dict(zip(names, values, strict=True))

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` in a worker thread, holding this session's run slot (pre- and post-processing included)."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def run_async(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return await self.call(self.run, feeds)


def probe(session: ModelSession) -> list[str]:
    """Run the model on a fixed input (a batch of 1, and of 3 where the batch axis is symbolic); its problems."""
    c = session.contract
    problems: list[str] = []
    for batch in (1,) if session.fixed_batch == 1 else (1, 3):
        feeds = {s.name: probe_input(s, batch) for s in c.inputs}
        try:
            problems += check_outputs(session.run(feeds), c, batch)
        except ModelError as exc:
            problems.append(f"a run on a batch of {batch} failed: {str(exc).split(': ', 1)[-1]}")
        if problems:
            break
    return problems


def open_model(path: str | Path, kind: str, settings: SessionSettings | None = None, *,
               run_probe: bool = True) -> ModelSession:
    """Load `path` as a `kind` model and check it against its contract (see docs/models.md)."""
    c = contract(kind)
    p = Path(path)
    sess = _session(p, settings or SessionSettings())
    problems = check_io(sess.get_inputs(), sess.get_outputs(), c)
    meta, meta_problems = check_metadata(dict(sess.get_modelmeta().custom_metadata_map), c)
    problems += meta_problems
    if problems:
        raise ContractError(str(p), c, problems)
    model = ModelSession(sess, c, meta, str(p))
    if run_probe:
        problems = probe(model)
        if problems:
            raise ContractError(str(p), c, problems)
    return model


__all__ = ["BATCH", "CPU", "ModelSession", "SessionSettings", "available_providers", "check_provider",
           "open_model", "probe"]
