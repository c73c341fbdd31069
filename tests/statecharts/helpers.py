"""Test helpers: the engine's own testing kit (`statecharts.engine.testing`) and small chart builders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from statecharts.engine import ActionContext, Chart, Event, Interpreter, TraceRecorder
from statecharts.engine.testing import FakeHost, start

__all__ = ["FakeHost", "entries_exits", "interpreter", "log_to"]


def interpreter(chart: Chart, data: Any = None) -> tuple[Interpreter[Any], TraceRecorder, FakeHost]:
    """A started interpreter on a `FakeHost`, with its trace (`testing.start`)."""
    return start(chart, data)


def log_to(log: list[str], text: str) -> Callable[[ActionContext[Any], Event], None]:
    """An action appending `text` to `log`."""

    def act(ctx: ActionContext[Any], event: Event) -> None:
        log.append(text)

    act.__name__ = f"log_{text.replace(':', '_').replace(' ', '_')}"
    return act


def entries_exits(rec: TraceRecorder) -> list[str]:
    return [f"{r.kind}:{r.state}" for r in rec.of_kind("entry", "exit")]
