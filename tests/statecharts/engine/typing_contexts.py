"""Checked by mypy (pyproject.toml's [tool.mypy] files), imported by test_context.py: the contexts are
generic over the chart's data, so guards, actions and activities are typed by it.

Each `# type: ignore[...]` below marks a line mypy MUST reject; `warn_unused_ignores` is on for this
module, so if mypy ever accepted one of them (the data type lost on the way), mypy fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_type

from statecharts.engine import (
    Action,
    ActionContext,
    ActivityContext,
    Chart,
    ChartRunner,
    Event,
    Guard,
    Interpreter,
    State,
    activity,
    on,
)
from statecharts.engine.testing import FakeHost, start


@dataclass
class Bin:
    free: int = 1


def has_room(ctx: ActionContext[Bin], event: Event) -> bool:
    assert_type(ctx.data, Bin)
    return ctx.data.free > 0


def take(ctx: ActionContext[Bin], event: Event) -> None:
    ctx.data.free -= 1


def misread(ctx: ActionContext[Bin], event: Event) -> bool:
    return ctx.data.colour == "red"  # type: ignore[attr-defined]


@activity("placed")
async def place(ctx: ActivityContext[Bin]) -> None:
    assert_type(ctx.data, Bin)
    ctx.data.free -= 1
    ctx.post("placed")


guard: Guard[Bin] = has_room
action: Action[Bin] = take
wrong_shape: Guard[Bin] = take  # type: ignore[assignment]


def chart() -> Chart:
    return Chart(
        "typed",
        State(
            "root",
            State("empty", transitions=[on("item", "full", guard=has_room, action=take)]),
            State("full", activities=place),
            initial="empty",
        ),
    )


def data_types_flow_to_the_contexts() -> tuple[Interpreter[Bin], ChartRunner[Bin]]:
    interp, _, _ = start(chart(), Bin())
    assert_type(interp.ctx.data, Bin)
    runner = ChartRunner(chart(), data=Bin(2))
    assert_type(runner.interpreter.ctx.data, Bin)
    direct = Interpreter(chart(), FakeHost(), Bin(3))
    assert_type(direct.ctx, ActionContext[Bin])
    return interp, runner
