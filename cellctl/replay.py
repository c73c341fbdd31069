"""Replay: recorded port replies fed back through the current charts on virtual time, compared with the record.

The log's `port.call`/`port.reply` records stand in for the cell: each call the charts make now must equal
the next recorded call (method and arguments), and gets the recorded reply after the recorded delay.
Chart transitions are compared one by one with `chart.transition` records. The first difference, in a
command or a transition, is the divergence; replay stops there.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
from pydantic import ValidationError

from statecharts.engine import TraceRecord
from statecharts.workcell import (
    Eligibility,
    Interlocks,
    ItemArrival,
    Motion,
    MotionResult,
    PickOrder,
    PickPlan,
    StowOption,
    StowPlan,
    TaskReport,
    Verification,
)

from .recording import CALL, COMMAND, PORT, REPLY, TRANSITION, canonical, encode_args, transition_payload

RUN_TIME_TOLERANCE_S = 0.5
TIMESTAMP_KEYS = frozenset({"started_s", "ended_s"})  # when a task began and ended (a report's clock readings)


class ReplayError(ValueError):
    """The log cannot be replayed (missing or malformed records)."""


@dataclass(frozen=True, slots=True)
class Entry:
    t_s: float
    topic: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Divergence:
    time_s: float
    kind: str  # "command" or "transition"
    expected: str
    actual: str

    def as_dict(self) -> dict[str, Any]:
        return {"time": round(self.time_s, 6), "kind": self.kind, "expected": self.expected, "actual": self.actual}


@dataclass(frozen=True, slots=True)
class _Call:
    t_s: float
    seq: int
    method: str
    key: str  # canonical method + args


class Diverged(Exception):
    """Raised inside the replay to stop it at the first divergence."""


@dataclass
class ReplayLog:
    """A log split into what replay needs; built by `ReplayLog.of(entries)`."""

    meta: dict[str, Any]
    calls: list[_Call]
    replies: dict[int, list[tuple[float, Any]]]
    transitions: list[tuple[float, str]]
    commands: list[tuple[float, str, str | None]]
    records: int
    start_s: float

    @property
    def time_tol_s(self) -> float:
        """Real-time logs (`cellctl run`) compare times within this tolerance; virtual-time logs exactly."""
        return RUN_TIME_TOLERANCE_S if self.meta.get("mode") == "run" else 0.0

    @classmethod
    def of(cls, entries: Iterable[Entry]) -> ReplayLog:
        meta: dict[str, Any] | None = None
        calls: list[_Call] = []
        replies: dict[int, list[tuple[float, Any]]] = {}
        transitions: list[tuple[float, str]] = []
        commands: list[tuple[float, str, str | None]] = []
        n = 0
        start: float | None = None
        for e in entries:
            n += 1
            start = e.t_s if start is None else min(start, e.t_s)
            p = e.payload
            try:
                if e.topic == "run.meta":
                    meta = p
                elif e.topic == CALL:
                    method = p["method"]
                    if method not in PORT:
                        raise ReplayError(f"record at {e.t_s:.3f} s calls unknown port method {method!r}")
                    calls.append(_Call(e.t_s, int(p["seq"]), method, canonical({"method": method, "args": p["args"]})))
                elif e.topic == REPLY:
                    replies.setdefault(int(p["seq"]), []).append((e.t_s, p["result"]))
                elif e.topic == TRANSITION:
                    transitions.append((e.t_s, canonical(p)))
                elif e.topic == COMMAND:
                    commands.append((e.t_s, str(p["command"]), p.get("after_state")))
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, ReplayError):
                    raise
                raise ReplayError(f"malformed {e.topic} record at {e.t_s:.3f} s: {exc!r}") from exc
        if meta is None:
            raise ReplayError("the log has no run.meta record: it was not written by cellctl run/sim")
        return cls(meta, calls, replies, transitions, commands, n, start or 0.0)


@dataclass
class Comparator:
    """Compares replayed transitions and commands with the record; keeps the first divergence."""

    log: ReplayLog
    first: Divergence | None = None
    transitions: int = 0
    _next_call: int = 0
    scope: anyio.CancelScope | None = field(default=None, repr=False)

    def diverge(self, d: Divergence) -> None:
        if self.first is None:
            self.first = d
        if self.scope is not None:
            self.scope.cancel()

    def trace(self, record: TraceRecord) -> None:
        if record.kind != "transition" or self.first is not None:
            return
        actual = canonical(transition_payload(record))
        i = self.transitions
        self.transitions += 1
        if i >= len(self.log.transitions):
            self.diverge(Divergence(record.time, "transition", "(end of record)", actual))
        elif self.log.transitions[i][1] != actual:
            self.diverge(Divergence(record.time, "transition", self.log.transitions[i][1], actual))

    def next_call(self, method: str, values: tuple[Any, ...]) -> _Call | None:
        actual = canonical({"method": method, "args": encode_args(method, values)})
        i = self._next_call
        self._next_call += 1
        now = anyio.current_time()
        if i >= len(self.log.calls):
            self.diverge(Divergence(now, "command", "(end of record)", actual))
            return None
        expected = self.log.calls[i]
        tol = self.log.time_tol_s
        if expected.key != actual and not (tol > 0 and same_within(json.loads(expected.key), json.loads(actual), tol)):
            self.diverge(Divergence(now, "command", expected.key, actual))
            return None
        return expected


def same_within(expected: Any, actual: Any, tol_s: float, key: str = "") -> bool:
    """Equal, except that timestamps (`TIMESTAMP_KEYS`) may differ by `tol_s`.

    A real-time run takes wall time between a reply and the chart's next call that virtual-time replay does
    not, so the times a report carries (started_s, ended_s) drift by that much.
    """
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            same_within(expected[k], actual[k], tol_s, k) for k in expected)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            same_within(e, a, tol_s, key) for e, a in zip(expected, actual, strict=True))
    numbers = (int, float)
    if (tol_s > 0 and key in TIMESTAMP_KEYS and isinstance(expected, numbers) and isinstance(actual, numbers)
            and not isinstance(expected, bool) and not isinstance(actual, bool)):
        return abs(expected - actual) <= tol_s
    return bool(expected == actual)


class ReplayWorkcell:
    """The Workcell port served from a log."""

    def __init__(self, comparator: Comparator) -> None:
        self.c = comparator

    async def _serve(self, method: str, *values: Any) -> Any:
        call = self.c.next_call(method, values)
        if call is None:
            await anyio.sleep_forever()
        assert call is not None
        replies = self.c.log.replies.get(call.seq)
        if not replies:
            await anyio.sleep_forever()  # the recorded call never returned (cancelled)
        t_reply, result = replies[0]
        # At the recorded time: the real run's own processing time between calls does not accumulate here.
        await anyio.sleep(max(0.0, t_reply - anyio.current_time()))
        try:
            return PORT[method].result.validate_python(result)
        except ValidationError as exc:
            raise ReplayError(f"recorded reply to {method} (seq {call.seq}) is invalid: {exc}") from exc

    async def next_item(self, timeout_s: float) -> ItemArrival | None:
        return await self._serve("next_item", timeout_s)

    async def next_order(self, timeout_s: float) -> PickOrder | None:
        return await self._serve("next_order", timeout_s)

    async def move(self, motion: Motion) -> MotionResult:
        return await self._serve("move", motion)

    async def set_hook(self, down: bool, timeout_s: float) -> MotionResult:
        return await self._serve("set_hook", down, timeout_s)

    async def plan_stow(self, item: ItemArrival, exclude_bins: tuple[str, ...] = ()) -> StowPlan:
        return await self._serve("plan_stow", item, exclude_bins)

    async def verify_stow(self, item: ItemArrival, option: StowOption) -> Verification:
        return await self._serve("verify_stow", item, option)

    async def check_pick(self, order: PickOrder) -> Eligibility:
        return await self._serve("check_pick", order)

    async def plan_pick(self, order: PickOrder) -> PickPlan:
        return await self._serve("plan_pick", order)

    async def report(self, report: TaskReport) -> None:
        await self._serve("report", report)

    async def halt(self) -> None:
        await self._serve("halt")

    def interlocks(self) -> AsyncIterator[Interlocks]:
        return self._interlocks()

    async def _interlocks(self) -> AsyncIterator[Interlocks]:
        call = self.c.next_call("interlocks", ())
        if call is None:
            await anyio.sleep_forever()
        assert call is not None
        for t, value in self.c.log.replies.get(call.seq, []):
            await anyio.sleep(max(0.0, t - anyio.current_time()))
            yield Interlocks.model_validate(value)
        await anyio.sleep_forever()


async def _replay(log: ReplayLog) -> tuple[Comparator, float]:
    from .cellrun import Command, cell_runner, start_cell  # cellrun imports the charts: keep this module light

    comparator = Comparator(log)
    port = ReplayWorkcell(comparator)
    task = log.meta.get("task", "stow")
    cycles = log.meta.get("cycles")
    runner, data = cell_runner(port, task=task, max_cycles=cycles, hooks=[comparator.trace])
    with anyio.CancelScope() as scope:
        comparator.scope = scope
        async with anyio.create_task_group() as tg:
            run = await start_cell(tg, runner, data)
            for t, name, after in log.commands:
                await run.command(Command(name, after_state=after, at_s=t))
            await run.wait_end()
            await runner.wait_idle()
            tg.cancel_scope.cancel()
    if comparator.first is None and comparator.transitions < len(log.transitions):
        t, expected = log.transitions[comparator.transitions]
        comparator.first = Divergence(t, "transition", expected, "(replay ended)")
    return comparator, anyio.current_time() - log.start_s


def replay(entries: Iterable[Entry]) -> dict[str, Any]:
    """Replay a log; the summary `cellctl replay --json` prints."""
    import time

    from statecharts.engine import VirtualClock

    log = ReplayLog.of(entries)
    t0 = time.perf_counter()
    comparator, virtual = VirtualClock(start=log.start_s).run(_replay, log)
    wall = time.perf_counter() - t0
    first = comparator.first
    return {
        "records": log.records,
        "transitions": comparator.transitions,
        "recorded_transitions": len(log.transitions),
        "diverged": first is not None,
        "first_divergence": first.as_dict() if first is not None else None,
        "virtual_s": round(virtual, 3),
        "wall_s": round(wall, 3),
        "speedup": round(virtual / wall, 1) if wall > 0 else None,
    }
