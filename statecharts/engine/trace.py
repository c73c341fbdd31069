"""Trace records: every event, transition, entry/exit and activity start/stop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

TraceKind = Literal[
    "event", "transition", "exit", "entry", "activity.start", "activity.stop", "error", "final"
]


class TraceRecord(NamedTuple):
    """One traced step. `time` is the chart clock's time in seconds (a tuple: cheap to make)."""

    time: float
    chart: str
    kind: TraceKind
    state: str | None = None
    event: str | None = None
    target: tuple[str, ...] = ()
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self._asdict().items() if v not in (None, (), "")}

    def __str__(self) -> str:
        parts = [f"{self.time:12.6f}", self.kind]
        if self.state:
            parts.append(self.state)
        if self.target:
            parts.append("-> " + ",".join(self.target))
        if self.event:
            parts.append(f"[{self.event}]")
        if self.detail:
            parts.append(self.detail)
        return " ".join(parts)


TraceHook = Callable[[TraceRecord], None]


class TraceRecorder:
    """A trace hook that keeps every record (for tests, replay and comparison)."""

    def __init__(self) -> None:
        self.records: list[TraceRecord] = []

    def __call__(self, record: TraceRecord) -> None:
        self.records.append(record)

    def of_kind(self, *kinds: str) -> list[TraceRecord]:
        return [r for r in self.records if r.kind in kinds]

    def lines(self) -> list[str]:
        return [str(r) for r in self.records]
