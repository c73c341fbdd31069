"""The Workcell port served from an event log: recorded replies for the charts' calls, compared as they come.

`ReplayLog` splits a log into calls, replies, commands and transitions; `ReplayWorkcell` answers each call
with the recorded reply after the recorded delay; `Comparator` holds the first divergence.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import ValidationError

from cellctl.workcells.recording import (
    CALL,
    COMMAND,
    PORT,
    REPLY,
    TRANSITION,
    canonical,
    encode_args,
    transition_payload,
)
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

if TYPE_CHECKING:
    from cellctl.eventlog import LogEnding

RUN_TIME_TOLERANCE_S = 0.5
TIMESTAMP_KEYS = frozenset({"started_s", "ended_s"})  # when a task began and ended (a report's clock readings)
END_SLACK_S = 1e-3  # an incomplete log's replay runs this far past its last record (plus the time tolerance)
RUN_END = "run.end"


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
    commands: list[tuple[float, str, str | None, str | None]]  # (t, command, after_state, data)
    records: int
    start_s: float
    last_s: float = 0.0  # the latest record's time
    end: dict[str, Any] | None = None  # the run.end record, if the log has one

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
        commands: list[tuple[float, str, str | None, str | None]] = []
        n = 0
        start: float | None = None
        last: float | None = None
        end: dict[str, Any] | None = None
        for e in entries:
            n += 1
            start = e.t_s if start is None else min(start, e.t_s)
            last = e.t_s if last is None else max(last, e.t_s)
            p = e.payload
            try:
                if e.topic == "run.meta":
                    meta = p
                elif e.topic == RUN_END:
                    end = p
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
                    commands.append((e.t_s, str(p["command"]), p.get("after_state"), p.get("data")))
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, ReplayError):
                    raise
                raise ReplayError(f"malformed {e.topic} record at {e.t_s:.3f} s: {exc!r}") from exc
        if meta is None:
            raise ReplayError("the log has no run.meta record: it was not written by cellctl run/sim")
        return cls(meta, calls, replies, transitions, commands, n, start or 0.0, last or 0.0, end)

    def incomplete(self, ending: LogEnding | None = None) -> bool:
        """The log ends before the run did: no run.end in a `cellctl run` log, or in a file that is not complete
        (a `cellctl sim` log has no run.end: its file's footer says it was finished)."""
        if self.end is not None:
            return False
        return self.meta.get("mode") == "run" or (ending is not None and ending.kind != "complete")

    @property
    def empty(self) -> bool:
        """Nothing to replay: no port call and no transition (the cell never ran)."""
        return not (self.calls or self.transitions)


@dataclass
class Comparator:
    """Compares replayed transitions and commands with the record; keeps the first divergence."""

    log: ReplayLog
    incomplete: bool = False  # the log ends before the run did: going beyond its end is no divergence
    first: Divergence | None = None
    transitions: int = 0
    stopped_s: float | None = None  # when the replay was stopped past an incomplete log's last record
    _next_call: int = 0
    scope: anyio.CancelScope | None = field(default=None, repr=False)

    def at_end(self, t_s: float) -> bool:
        """`t_s` is at the end of an incomplete log: within its time tolerance of the last record, or later.
        What the record lacks there may be what the kill (or the tear) cut off."""
        return self.incomplete and t_s >= self.log.last_s - self.log.time_tol_s

    def diverge(self, d: Divergence) -> None:
        if self.first is None:
            self.first = d
        if self.scope is not None:
            self.scope.cancel()

    def trace(self, record: TraceRecord) -> None:
        if record.kind != "transition" or self.first is not None or self.stopped_s is not None:
            return
        actual = canonical(transition_payload(record))
        i = self.transitions
        self.transitions += 1
        if i >= len(self.log.transitions):
            if not self.at_end(record.time):  # at the end of an incomplete log, the record stops before the run
                self.diverge(Divergence(record.time, "transition", "(end of record)", actual))
        elif self.log.transitions[i][1] != actual:
            self.diverge(Divergence(record.time, "transition", self.log.transitions[i][1], actual))

    def next_call(self, method: str, values: tuple[Any, ...]) -> _Call | None:
        actual = canonical({"method": method, "args": encode_args(method, values)})
        i = self._next_call
        self._next_call += 1
        now = anyio.current_time()
        if self.stopped_s is not None:  # the replay's own shutdown (an interrupted task's report), past the log
            return None
        if i >= len(self.log.calls):
            if not self.at_end(now):  # else the call waits forever: the recorded run was stopped before it
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
        assert replies
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
