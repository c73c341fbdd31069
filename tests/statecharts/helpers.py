"""Test helpers: a synchronous host and chart builders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from statecharts.engine import ActionContext, Chart, Event, Interpreter, Node, TraceRecorder


class FakeHost:
    """A synchronous host: time is set by hand, external posts are collected."""

    def __init__(self) -> None:
        self.t = 0.0
        self.external: list[Event] = []
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.scheduled: list[tuple[Event, float, str | None]] = []  # delayed sends, never delivered
        self.cancelled: list[str] = []

    def now(self) -> float:
        return self.t

    def post(self, event: Event) -> None:
        self.external.append(event)

    def schedule(self, event: Event, delay: float, send_id: str | None) -> None:
        self.scheduled.append((event, delay, send_id))

    def cancel(self, send_id: str) -> None:
        self.cancelled.append(send_id)

    def state_started(self, node: Node, generation: int) -> None:
        self.started.append(node.id)

    def state_stopped(self, node: Node) -> None:
        self.stopped.append(node.id)


def interpreter(chart: Chart, data: Any = None) -> tuple[Interpreter, TraceRecorder, FakeHost]:
    rec = TraceRecorder()
    host = FakeHost()
    interp = Interpreter(chart, host, data, rec)
    interp.start()
    return interp, rec, host


def log_to(log: list[str], text: str) -> Callable[[ActionContext, Event], None]:
    """An action appending `text` to `log`."""

    def act(ctx: ActionContext, event: Event) -> None:
        log.append(text)

    act.__name__ = f"log_{text.replace(':', '_').replace(' ', '_')}"
    return act


def entries_exits(rec: TraceRecorder) -> list[str]:
    return [f"{r.kind}:{r.state}" for r in rec.of_kind("entry", "exit")]
