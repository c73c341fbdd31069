"""`context`: what actions and guards can do through `ActionContext` (send, cancel, checked at the call),
and the contexts' data type."""

from __future__ import annotations

import math
from typing import Any

import pytest

from statecharts.engine import (
    ERROR_EXECUTION,
    ActionContext,
    ActivityContext,
    Chart,
    Event,
    ExecutionFailure,
    InvalidSendError,
    State,
    on,
)

from ..helpers import interpreter


@pytest.mark.parametrize("delay", [-1.0, math.nan, math.inf, "5s"])
def test_invalid_delay_is_an_action_error_and_nothing_is_sent(delay: Any) -> None:
    """SCXML 6.2: if the delay cannot be interpreted as a time interval the processor raises
    error.execution (and the message is not sent); the error names the call."""

    def bad(ctx: ActionContext, event: Event) -> None:
        ctx.send("x", delay=delay)

    chart = Chart(
        "bad",
        State("root", State("s", transitions=[on("go", action=bad), on(ERROR_EXECUTION, "failed")]),
              State("failed"), initial="s"),
    )
    interp, rec, host = interpreter(chart)
    interp.process(Event("go"))
    assert interp.is_active("failed")
    assert host.scheduled == [] and host.external == []
    error = rec.of_kind("error")[0]
    assert "InvalidSendError" in error.detail and "delay" in error.detail


def test_send_and_cancel_reach_the_host() -> None:
    """SCXML 6.2/6.3: the interpreter hands a delayed send (with its delay and id) and a cancel
    to its host, which owns time; an immediate send stays a plain post."""

    def act(ctx: ActionContext, event: Event) -> None:
        ctx.send("now", 1)
        ctx.send("later", 2, delay=1.5, id="l")
        ctx.cancel("l")

    chart = Chart("host", State("root", State("s", transitions=[on("go", action=act)]), initial="s"))
    interp, _, host = interpreter(chart)
    interp.process(Event("go"))
    assert host.external == [Event("now", 1)]
    assert host.scheduled == [(Event("later", 2), 1.5, "l")]
    assert host.cancelled == ["l"]


def test_bad_send_id_is_an_invalid_send_error() -> None:
    """SCXML 6.2 `id` and 6.3 `sendid` are ids (strings)."""
    seen: list[ExecutionFailure] = []

    def bad(ctx: ActionContext, event: Event) -> None:
        ctx.send("x", delay=1.0, id=7)  # type: ignore[arg-type]

    chart = Chart(
        "badid",
        State("root", State("s", transitions=[on("go", action=bad),
                                              on(ERROR_EXECUTION, action=lambda c, e: seen.append(e.data))]),
              initial="s"),
    )
    interp, _, host = interpreter(chart)
    interp.process(Event("go"))
    assert host.scheduled == [] and isinstance(seen[0].error, InvalidSendError)


def test_contexts_generic_over_the_data_are_the_same_objects_at_run_time() -> None:
    """`ActionContext[D]` / `ActivityContext[D]` exist for the type checker (typing_contexts.py, checked
    by mypy): at run time a context is a plain slotted object, whatever its data."""
    from . import typing_contexts as typed

    interp, runner = typed.data_types_flow_to_the_contexts()
    assert type(interp.ctx) is ActionContext and not hasattr(interp.ctx, "__dict__")
    assert ActionContext.__slots__ == ("_interp", "data") and "__dict__" not in ActivityContext.__slots__
    assert runner.interpreter.ctx.data == typed.Bin(2)
    interp.process(Event("item"))
    assert interp.is_active("full") and interp.ctx.data.free == 0
    assert not typed.has_room(interp.ctx, Event("item"))


def test_ctx_send_of_a_timer_name_is_an_execution_error_and_sends_nothing() -> None:
    def forge(ctx: ActionContext, event: Event) -> None:
        ctx.send("after.a.0", delay=1.0)

    chart = Chart("forge", State("root", State("a", transitions=[on("go", action=forge)]), initial="a"))
    interp, rec, host = interpreter(chart)
    interp.process(Event("go"))
    assert [r for r in rec.records if r.kind == "event" and r.event == ERROR_EXECUTION] and host.scheduled == []
    failure = next(r for r in rec.records if r.kind == "error")
    assert "are after() timers" in failure.detail
