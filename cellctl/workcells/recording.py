"""Recording the Workcell port: every call the charts make (an output) and every reply (an input).

`RecordingWorkcell` wraps any Workcell and writes `port.call` before the call and `port.reply` when it
returns, numbered by `seq`, on the caller's clock. These two channels are what `cellctl replay` feeds back
through the charts. `PORT` describes each method's arguments and result so both sides encode and decode
them the same way (and a recorded reply is validated before it is believed).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from pydantic import TypeAdapter

from cellctl.eventlog.recorder import Recorder
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
    Workcell,
)

T = TypeVar("T")

CALL, REPLY, TRANSITION, COMMAND = "port.call", "port.reply", "chart.transition", "cell.command"


@dataclass(frozen=True)
class Method:
    args: tuple[tuple[str, TypeAdapter[Any]], ...]
    result: TypeAdapter[Any]


def _m(result: Any, **args: Any) -> Method:  # type expressions (TypeAdapter's TypeForm): `ItemArrival | None`, `float`
    return Method(tuple((k, TypeAdapter(v)) for k, v in args.items()), TypeAdapter(result))


PORT: dict[str, Method] = {
    "next_item": _m(ItemArrival | None, timeout_s=float),
    "next_order": _m(PickOrder | None, timeout_s=float),
    "move": _m(MotionResult, motion=Motion),
    "set_hook": _m(MotionResult, down=bool, timeout_s=float),
    "plan_stow": _m(StowPlan, item=ItemArrival, exclude_bins=tuple[str, ...]),
    "verify_stow": _m(Verification, item=ItemArrival, option=StowOption),
    "check_pick": _m(Eligibility, order=PickOrder),
    "plan_pick": _m(PickPlan, order=PickOrder),
    "report": _m(None, report=TaskReport),
    "halt": _m(None),
    "interlocks": _m(Interlocks),
}


def encode_args(method: str, values: tuple[Any, ...]) -> dict[str, Any]:
    spec = PORT[method]
    return {name: adapter.dump_python(v, mode="json") for (name, adapter), v in zip(spec.args, values, strict=True)}


def canonical(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def transition_payload(record: TraceRecord) -> dict[str, Any]:
    return {"chart": record.chart, "state": record.state, "target": list(record.target), "event": record.event}


class RecordingWorkcell:
    """A Workcell that logs each call and reply of ``inner`` (and chart transitions via `trace`)."""

    def __init__(self, inner: Workcell, recorder: Recorder) -> None:
        self.inner = inner
        self.recorder = recorder
        self._seq = 0

    def trace(self, record: TraceRecord) -> None:
        """A chart trace hook: logs transitions (the record replay compares against)."""
        if record.kind == "transition":
            self.recorder.record(TRANSITION, record.time, transition_payload(record))

    def command(self, name: str) -> None:
        """Log a cell command (an input from the operator or the FC)."""
        self.recorder.record(COMMAND, anyio.current_time(), {"command": name})

    def _call(self, method: str, *values: Any) -> int:
        self._seq += 1
        self.recorder.record(CALL, anyio.current_time(), {"seq": self._seq, "method": method,
                                                          "args": encode_args(method, values)})
        return self._seq

    def _reply(self, seq: int, method: str, result: Any) -> None:
        payload = PORT[method].result.dump_python(result, mode="json")
        self.recorder.record(REPLY, anyio.current_time(), {"seq": seq, "method": method, "result": payload})

    async def _do(self, method: str, call: Callable[[], Awaitable[T]], *values: Any) -> T:
        seq = self._call(method, *values)
        result = await call()
        self._reply(seq, method, result)
        return result

    async def next_item(self, timeout_s: float) -> ItemArrival | None:
        return await self._do("next_item", lambda: self.inner.next_item(timeout_s), timeout_s)

    async def next_order(self, timeout_s: float) -> PickOrder | None:
        return await self._do("next_order", lambda: self.inner.next_order(timeout_s), timeout_s)

    async def move(self, motion: Motion) -> MotionResult:
        return await self._do("move", lambda: self.inner.move(motion), motion)

    async def set_hook(self, down: bool, timeout_s: float) -> MotionResult:
        return await self._do("set_hook", lambda: self.inner.set_hook(down, timeout_s), down, timeout_s)

    async def plan_stow(self, item: ItemArrival, exclude_bins: tuple[str, ...] = ()) -> StowPlan:
        return await self._do("plan_stow", lambda: self.inner.plan_stow(item, exclude_bins), item, exclude_bins)

    async def verify_stow(self, item: ItemArrival, option: StowOption) -> Verification:
        return await self._do("verify_stow", lambda: self.inner.verify_stow(item, option), item, option)

    async def check_pick(self, order: PickOrder) -> Eligibility:
        return await self._do("check_pick", lambda: self.inner.check_pick(order), order)

    async def plan_pick(self, order: PickOrder) -> PickPlan:
        return await self._do("plan_pick", lambda: self.inner.plan_pick(order), order)

    async def report(self, report: TaskReport) -> None:
        await self._do("report", lambda: self.inner.report(report), report)

    async def halt(self) -> None:
        await self._do("halt", self.inner.halt)

    def interlocks(self) -> AsyncIterator[Interlocks]:
        return self._interlocks()

    async def _interlocks(self) -> AsyncIterator[Interlocks]:
        seq = self._call("interlocks")
        async for value in self.inner.interlocks():
            self._reply(seq, "interlocks", value)
            yield value
