"""`runtime`, delayed and cancellable events from actions (SCXML 6.2, 6.3): `ctx.send(..., delay=,
id=)`, `ctx.cancel(id)` and `send(...)`/`cancel(...)` on the runner's clock."""

from __future__ import annotations

import time
from typing import Any

import anyio

from statecharts.engine import (
    ActionContext,
    Chart,
    ChartRunner,
    Event,
    Final,
    State,
    TraceRecorder,
    VirtualClock,
    after,
    cancel,
    on,
    running,
    send,
)


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


def test_disarmed_timers_and_cancelled_sends_do_not_pile_up_in_the_heap() -> None:
    """A long after() in a state entered again and again, and sends cancelled before they are due, leave dead
    entries behind; the runner rebuilds its heap once they are most of it, and the live ones still fire."""
    chart = Chart(
        "churn",
        State(
            "root",
            State("a", transitions=[on("flip", "b"), after(3600.0, "late")]),
            State("b", on_entry=send("ping", delay=3600.0, id="p"), transitions=[on("flip", "a", action=cancel("p"))]),
            State("late"),
            initial="a",
        ),
    )
    sizes: list[int] = []

    async def main() -> None:
        async with running(chart) as runner:
            for _ in range(5000):
                runner.post("flip")
                await runner.wait_idle()
                sizes.append(len(runner._timers))  # white box: the heap itself
            await anyio.sleep(3601.0)  # the last visit of `a` (or the last send) is still live
            assert runner.configuration & {"late", "b"}

    VirtualClock().run(main)
    assert max(sizes) < 200, max(sizes)
