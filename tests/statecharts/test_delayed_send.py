"""Delayed and cancellable events from actions: `ctx.send(..., delay=, id=)`, `ctx.cancel(id)`."""

from __future__ import annotations

import math
import time
from typing import Any

import anyio
import pytest

from statecharts.engine import (
    ActionContext,
    Chart,
    ChartRunner,
    Event,
    ExecutionError,
    Final,
    InvalidSendError,
    State,
    TraceRecorder,
    VirtualClock,
    after,
    cancel,
    on,
    running,
    send,
)

from .helpers import interpreter


def events_at(rec: TraceRecorder) -> list[tuple[str, float]]:
    """External events processed, with the (virtual) time each was processed at."""
    return [(r.event, r.time) for r in rec.of_kind("event") if r.detail != "internal" and r.event]


def sink(*names: str) -> list[Any]:
    """Targetless transitions that accept `names` in state `waiting`."""
    return [on(n, internal=True) for n in names]


def test_delayed_sends_go_when_due_after_immediate_ones_and_equal_delays_keep_send_order() -> None:
    """SCXML 6.2 <send>: without a delay the event is dispatched at once (to the external
    queue, behind what is there); with one, "the SCXML Processor MUST dispatch the message only
    when the delay interval elapses" and, as the processor dispatches events in the order it
    sends them, sends due at the same time keep their order."""

    def fire(ctx: ActionContext, event: Event) -> None:
        ctx.send("late", delay=2.0)
        ctx.send("now")
        ctx.send("due1_a", delay=1.0)
        ctx.send("due1_b", {"n": 2}, delay=1.0)
        ctx.send("zero", delay=0)  # a zero delay is an immediate send

    chart = Chart(
        "order",
        State("root", State("waiting", transitions=[on("go", action=fire),
                                                    *sink("late", "now", "due1_a", "due1_b", "zero", "posted")]),
              initial="waiting"),
    )
    rec = TraceRecorder()

    async def main() -> None:
        async with running(chart, trace=rec) as runner:
            runner.post("go")
            await anyio.sleep(0.5)
            runner.post("posted")  # an external event between the sends and their due time
            await anyio.sleep(5.0)

    VirtualClock().run(main)
    assert events_at(rec) == [
        ("go", 0.0), ("now", 0.0), ("zero", 0.0), ("posted", 0.5), ("due1_a", 1.0), ("due1_b", 1.0), ("late", 2.0)
    ]


def test_cancel_before_due_drops_the_send_and_after_sent_or_unknown_is_no_error() -> None:
    """SCXML 6.3 <cancel>: cancels the delayed send with that sendid if it is still pending;
    cancelling one already delivered (or never sent) has no effect and raises no error."""

    def arm_timeout(ctx: ActionContext, event: Event) -> None:
        ctx.send("timeout", delay=5.0, id="grasp")

    def cancel(ctx: ActionContext, event: Event) -> None:
        ctx.cancel("grasp")
        ctx.cancel("never_sent")

    chart = Chart(
        "cancel",
        State(
            "root",
            State("idle", transitions=[on("grasp", "waiting")]),
            State("waiting", on_entry=arm_timeout,
                  transitions=[on("gripped", "holding", action=cancel), on("timeout", "failed", action=cancel)]),
            State("holding", transitions=[on("release", "idle", action=cancel)]),
            State("failed", transitions=[on("reset", "idle")]),
            initial="idle",
        ),
    )
    rec = TraceRecorder()

    async def main() -> None:
        async with running(chart, trace=rec) as runner:
            runner.post("grasp")
            await anyio.sleep(2.0)
            assert [(t, i, e.name) for t, i, e in runner.pending_sends] == [(5.0, "grasp", "timeout")]
            runner.post("gripped")  # the awaited thing arrives: the timeout is cancelled
            await anyio.sleep(10.0)
            assert runner.is_active("holding") and runner.pending_sends == []
            runner.post("release")  # cancel of a send gone long ago: no error
            runner.post("grasp")
            await anyio.sleep(6.0)  # this time nothing arrives: the timeout fires (and is cancelled after)
            assert runner.is_active("failed")

    VirtualClock().run(main)
    assert ("timeout", 5.0) not in events_at(rec)
    assert ("timeout", 17.0) in events_at(rec)
    assert rec.of_kind("error") == []


def test_cancel_drops_every_pending_send_with_that_id() -> None:
    """SCXML 6.3: the processor cancels the delayed events with the given sendid (ids need not
    be unique, 6.2 `id`)."""

    def two(ctx: ActionContext, event: Event) -> None:
        ctx.send("a", delay=1.0, id="x")
        ctx.send("b", delay=2.0, id="x")
        ctx.send("c", delay=3.0, id="y")

    chart = Chart(
        "ids",
        State("root", State("s", transitions=[on("go", action=two), on("stop", action=lambda c, e: c.cancel("x")),
                                              *sink("a", "b", "c")]), initial="s"),
    )
    rec = TraceRecorder()

    async def main() -> None:
        async with running(chart, trace=rec) as runner:
            runner.post("go")
            runner.post("stop")
            await anyio.sleep(5.0)

    VirtualClock().run(main)
    assert [e for e, _ in events_at(rec)] == ["go", "stop", "c"]


def test_a_delayed_send_outlives_the_state_that_sent_it_unlike_an_after_timer() -> None:
    """SCXML 6.2/6.3: a delayed <send> belongs to the session; leaving the sending state does
    not cancel it (only an explicit <cancel> does). An `after()` timer is the <send> in its
    state's onentry with the <cancel> in its onexit, so it dies with the state."""

    def ping_later(ctx: ActionContext, event: Event) -> None:
        ctx.send("ping", delay=3.0)

    chart = Chart(
        "outlives",
        State(
            "root",
            State("a", on_entry=ping_later, transitions=[on("leave", "b"), after(3.0, "timer_fired")]),
            State("b", transitions=[on("ping", "pinged")]),
            State("pinged"),
            State("timer_fired"),
            initial="a",
        ),
    )

    async def main() -> tuple[frozenset[str], float]:
        async with running(chart) as runner:
            await anyio.sleep(1.0)
            runner.post("leave")
            await runner.wait_for("pinged")
            return runner.configuration, anyio.current_time()

    assert VirtualClock().run(main) == ({"root", "pinged"}, 3.0)


def test_pending_sends_die_with_the_chart() -> None:
    """SCXML 6.2: if the session terminates before the delay elapses, the message is discarded.
    Both ways a chart ends drop them: reaching a top-level final state, and being cancelled."""

    def later(ctx: ActionContext, event: Event) -> None:
        ctx.send("too_late", delay=60.0, id="t")

    chart = Chart(
        "dies",
        State("root", State("a", on_entry=later, transitions=[on("quit", "end")]), Final("end"), initial="a"),
    )

    async def main() -> None:
        runner = ChartRunner(chart)
        async with anyio.create_task_group() as tg:
            await tg.start(runner.run)
            assert len(runner.pending_sends) == 1
            runner.post("quit")
            await runner.finished.wait()
        assert runner.final == "end" and runner.pending_sends == []

        cancelled = ChartRunner(chart)
        async with anyio.create_task_group() as tg:
            await tg.start(cancelled.run)
            await anyio.sleep(10.0)
            assert len(cancelled.pending_sends) == 1
            tg.cancel_scope.cancel()
        assert cancelled.finished.is_set() and cancelled.pending_sends == []

    VirtualClock().run(main)


def test_delays_run_on_virtual_time_and_repeat_exactly() -> None:
    """SCXML 6.2 `delay` is a time interval on the processor's clock; ours is the runner's
    injected clock, so under `VirtualClock` an hour passes at once and two runs give the same
    trace (what replay relies on)."""

    def chain(ctx: ActionContext, event: Event) -> None:
        n = (event.data or 0) + 1
        if n <= 5:
            ctx.send("tick", n, delay=600.0 * n)
            ctx.send("tock", n, delay=600.0 * n)

    chart = Chart(
        "virtual",
        State("root", State("s", transitions=[on("go", action=chain), on("tick", action=chain), *sink("tock")]),
              initial="s"),
    )

    def run_once() -> TraceRecorder:
        rec = TraceRecorder()

        async def main() -> None:
            async with running(chart, trace=rec) as runner:
                runner.post("go")
                await anyio.sleep(10_000.0)

        VirtualClock().run(main)
        return rec

    wall = time.perf_counter()
    first = run_once()
    assert time.perf_counter() - wall < 5.0
    assert first.lines() == run_once().lines()
    ticks = [t for e, t in events_at(first) if e == "tick"]
    assert ticks == [600.0, 1800.0, 3600.0, 6000.0, 9000.0]
    assert [e for e, _ in events_at(first)][:3] == ["go", "tick", "tock"]


@pytest.mark.parametrize("delay", [-1.0, math.nan, math.inf, "5s"])
def test_invalid_delay_is_an_action_error_and_nothing_is_sent(delay: Any) -> None:
    """SCXML 6.2: if the delay cannot be interpreted as a time interval the processor raises
    error.execution (and the message is not sent); the error names the call."""

    def bad(ctx: ActionContext, event: Event) -> None:
        ctx.send("x", delay=delay)

    chart = Chart(
        "bad",
        State("root", State("s", transitions=[on("go", action=bad), on("error.execution", "failed")]),
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
    seen: list[ExecutionError] = []

    def bad(ctx: ActionContext, event: Event) -> None:
        ctx.send("x", delay=1.0, id=7)  # type: ignore[arg-type]

    chart = Chart(
        "badid",
        State("root", State("s", transitions=[on("go", action=bad),
                                              on("error.execution", action=lambda c, e: seen.append(e.data))]),
              initial="s"),
    )
    interp, _, host = interpreter(chart)
    interp.process(Event("go"))
    assert host.scheduled == [] and isinstance(seen[0].error, InvalidSendError)


def test_declarative_send_and_cancel_actions_behave_as_the_context_calls() -> None:
    """SCXML 6.2 <send event delay id> and 6.3 <cancel sendid>, as action values a chart (and
    an export) can see: a timeout armed on entry and cancelled when the awaited event comes."""
    chart = Chart(
        "declarative",
        State(
            "root",
            State("waiting", on_entry=send("timeout", {"why": "no grip"}, delay=5.0, id="t"),
                  transitions=[on("gripped", "holding", action=cancel("t")), on("timeout", "failed")]),
            State("holding", transitions=[on("again", "waiting")]),
            State("failed"),
            initial="waiting",
        ),
    )
    rec = TraceRecorder()

    async def main() -> None:
        async with running(chart, trace=rec) as runner:
            await anyio.sleep(1.0)
            runner.post("gripped")
            await anyio.sleep(10.0)
            assert runner.is_active("holding")
            runner.post("again")
            await runner.wait_for("failed")
            assert anyio.current_time() == 16.0

    VirtualClock().run(main)
    assert [e for e, _ in events_at(rec)] == ["gripped", "again", "timeout"]


@pytest.mark.parametrize(
    "build", [lambda: send("x", delay=-1), lambda: send("bad name"), lambda: send("x", id=3), lambda: cancel(None)]
)
def test_declarative_send_with_bad_arguments_fails_when_built(build: Any) -> None:
    """SCXML 6.2: a <send> whose delay is not a time interval, or whose event is no event
    name, is an error; a declarative one is caught when the chart is written."""
    with pytest.raises(InvalidSendError):
        build()
