"""Run a chart on virtual time against a script of timed events."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import anyio

from statecharts.engine import Chart, ChartRunner, TraceHook, VirtualClock


@dataclass(frozen=True, order=True)
class ScriptedEvent:
    at: float
    name: str

    @classmethod
    def parse(cls, text: str) -> ScriptedEvent:
        """`SECONDS:EVENT`, e.g. `12.5:pause`."""
        at, sep, name = text.partition(":")
        try:
            seconds = float(at)
        except ValueError:
            seconds = math.nan
        if not sep or not name or not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"bad scripted event {text!r}: expected SECONDS:EVENT with SECONDS >= 0, e.g. 12.5:pause")
        return cls(seconds, name)


def simulate(chart: Chart, data: Any, script: list[ScriptedEvent], until: float, trace: TraceHook) -> str | None:
    """Post `script` at its times, stop at `until` virtual seconds or when the chart ends."""

    async def main() -> str | None:
        runner = ChartRunner(chart, data=data, trace=trace)
        async with anyio.create_task_group() as tg:
            await tg.start(runner.run)
            start = anyio.current_time()
            with anyio.move_on_after(until):
                for item in sorted(script):
                    await anyio.sleep_until(start + item.at)
                    runner.post(item.name)
                await runner.finished.wait()
            tg.cancel_scope.cancel()
        return runner.final

    return VirtualClock().run(main)
