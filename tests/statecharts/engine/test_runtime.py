"""`runtime`: `ChartRunner` runs a chart as an anyio task, with activities, timers and a trace."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from statecharts.engine import (
    ERROR_ACTIVITY,
    ActivityContext,
    ActivityFailure,
    Chart,
    ChartFinishedError,
    ChartRunner,
    Final,
    Parallel,
    State,
    TraceRecorder,
    UndeclaredEventError,
    VirtualClock,
    activity,
    after,
    always,
    on,
    running,
)
from statecharts.engine.events import timer_event


def test_activity_is_cancelled_on_exit_and_its_finally_runs() -> None:
    events: list[str] = []

    @activity("finished")
    async def slow_motion(ctx: ActivityContext) -> None:
        events.append("started")
        try:
            await anyio.sleep(10)
            ctx.post("finished")
        finally:
            events.append(f"finally at {anyio.current_time():.1f}")

    chart = Chart(
        "cancel",
        State(
            "root",
            State("moving", activities=slow_motion, transitions=[on("stop", "stopped"), on("finished", "arrived")]),
            State("stopped"),
            State("arrived"),
            initial="moving",
        ),
    )
    rec = TraceRecorder()

    async def main() -> None:
        async with running(chart, trace=rec) as runner:
            await anyio.sleep(2)
            runner.post("stop")
            await runner.wait_idle()
            await anyio.sleep(20)  # the cancelled activity never posts "finished"
            assert runner.is_active("stopped")

    VirtualClock().run(main)
    assert events == ["started", "finally at 2.0"]
    stops = rec.of_kind("activity.stop")
    assert [(r.state, r.detail, r.time) for r in stops] == [("moving", "slow_motion (cancelled)", 2.0)]


def test_activity_ends_by_posting_an_event() -> None:
    @activity("arrived")
    async def move(ctx: ActivityContext) -> None:
        await anyio.sleep(1.5)
        ctx.post("arrived", {"pose": 3})

    chart = Chart(
        "post",
        State(
            "root",
            State("moving", activities=move, transitions=[on("arrived", "there", guard=lambda c, e: e.data["pose"])]),
            State("there"),
            initial="moving",
        ),
    )
    rec = TraceRecorder()

    async def main() -> float:
        async with running(chart, trace=rec) as runner:
            await runner.wait_for("there")
            return anyio.current_time()

    assert VirtualClock().run(main) == 1.5
    assert [r.detail for r in rec.of_kind("activity.stop")] == ["move (done)"]


def test_activity_that_raises_posts_error_activity_instead_of_killing_the_chart() -> None:
    @activity("never")
    async def broken(ctx: ActivityContext) -> None:
        await anyio.sleep(0.5)
        raise ConnectionError("robot controller refused")

    failures: list[ActivityFailure] = []
    chart = Chart(
        "raise",
        State(
            "root",
            State("working", activities=broken, transitions=[on("never", "x"), on(ERROR_ACTIVITY, "failed",
                  action=lambda ctx, ev: failures.append(ev.data))]),
            State("x"),
            State("failed"),
            initial="working",
        ),
    )

    async def main() -> frozenset[str]:
        async with running(chart) as runner:
            await anyio.sleep(1)
            return runner.configuration

    assert VirtualClock().run(main) == {"root", "failed"}
    assert len(failures) == 1
    assert failures[0].state == "working" and failures[0].activity == "broken"
    assert isinstance(failures[0].error, ConnectionError)


def test_activity_posting_an_undeclared_event_is_an_activity_error() -> None:
    @activity("ok")
    async def sloppy(ctx: ActivityContext) -> None:
        ctx.post("surprise")

    seen: list[BaseException] = []
    chart = Chart(
        "undeclared",
        State("root", State("a", activities=sloppy, transitions=[on(ERROR_ACTIVITY, "b",
              action=lambda c, e: seen.append(e.data.error))]), State("b"), initial="a"),
    )

    async def main() -> None:
        async with running(chart) as runner:
            await anyio.sleep(0.1)
            assert runner.is_active("b")

    VirtualClock().run(main)
    assert isinstance(seen[0], UndeclaredEventError) and "surprise" in str(seen[0])


def test_after_timer_fires_at_its_deadline() -> None:
    rec = TraceRecorder()
    chart = Chart(
        "timer",
        State("root", State("a", transitions=[after(2.5, "b")]), State("b", transitions=[after(1, "c")]), State("c"),
              initial="a"),
    )

    async def main() -> None:
        async with running(chart, trace=rec) as runner:
            await anyio.sleep(10)
            assert runner.is_active("c")

    VirtualClock().run(main)
    assert [(r.state, r.time) for r in rec.of_kind("transition")] == [("a", 2.5), ("b", 3.5)]


def test_timer_armed_in_a_state_that_was_left_never_fires() -> None:
    rec = TraceRecorder()
    chart = Chart(
        "stale",
        State(
            "root",
            State("waiting", transitions=[after(5, "timed_out"), on("ok", "working")]),
            State("working", transitions=[on("again", "waiting")]),
            State("timed_out"),
            initial="waiting",
        ),
    )

    async def main() -> None:
        async with running(chart, trace=rec) as runner:
            await anyio.sleep(4)
            runner.post("ok")  # leave at t=4: the t=5 timer must not fire
            await anyio.sleep(3)
            runner.post("again")  # re-enter at t=7: a fresh timer for t=12
            await anyio.sleep(4.5)
            assert runner.is_active("waiting")
            await anyio.sleep(1)
            assert runner.is_active("timed_out")

    VirtualClock().run(main)
    timed = [r.time for r in rec.of_kind("transition") if r.target == ("timed_out",)]
    assert timed == [12.0]


def test_stale_timer_event_already_queued_is_ignored() -> None:
    """A timer event queued behind an event that leaves its state does nothing."""
    chart = Chart(
        "queued",
        State(
            "root",
            State("a", transitions=[after(1, "timed_out"), on("leave", "b")]),
            State("b", transitions=[on("back", "a")]),
            State("timed_out"),
            initial="a",
        ),
    )

    async def main() -> None:
        runner = ChartRunner(chart)
        async with anyio.create_task_group() as tg:
            await tg.start(runner.run)
            await anyio.sleep(0.5)
            runner.post("leave")
            runner.post("back")
            # The first visit's timer event (generation 1) arrives after "a" was re-entered.
            runner.post(timer_event("a", 0), 1)
            await runner.wait_idle()
            assert runner.is_active("a")
            tg.cancel_scope.cancel()

    VirtualClock().run(main)


def hour_chart() -> Chart:
    @activity("reading")
    async def sample(ctx: ActivityContext) -> None:
        while True:
            await anyio.sleep(60)
            ctx.post("reading")

    return Chart(
        "shift",
        State(
            "root",
            Parallel(
                "shift",
                State(
                    "work",
                    State("busy", transitions=[after(1800, "rest")]),
                    State("rest", transitions=[after(600, "busy")]),
                    initial="busy",
                ),
                State("monitor", State("watch", activities=sample, transitions=[on("reading", internal=True)]),
                      initial="watch"),
                transitions=[after(8 * 3600, "end")],
            ),
            Final("end"),
            initial="shift",
        ),
    )


def test_hour_long_timers_finish_fast_under_virtual_time_and_repeat_identically() -> None:
    def one_run() -> tuple[list[str], str | None]:
        rec = TraceRecorder()

        async def main() -> str | None:
            return await ChartRunner(hour_chart(), trace=rec).run()

        final = VirtualClock().run(main)
        return rec.lines(), final

    t0 = time.perf_counter()
    first, final = one_run()
    wall = time.perf_counter() - t0
    second, _ = one_run()
    assert final == "end"
    assert wall < 1.0, f"an 8-hour virtual shift took {wall:.2f} s of wall time"
    assert first == second
    assert first[-1].split()[0] == f"{8 * 3600:.6f}"
    readings = sum(line.split()[1:3] == ["event", "[reading]"] for line in first)
    assert readings in (8 * 60 - 1, 8 * 60)  # one a minute; the one at exactly 8 h races the end


def test_trace_records_every_kind_with_clock_time() -> None:
    rec = TraceRecorder()

    @activity("tick")
    async def ticker(ctx: ActivityContext) -> None:
        await anyio.sleep(1)
        ctx.post("tick")

    chart = Chart(
        "kinds",
        State(
            "root",
            State("a", activities=ticker, transitions=[on("tick", "b")]),
            State("b", transitions=[after(2, "c")]),
            Final("c"),
            initial="a",
        ),
    )

    async def main() -> None:
        await ChartRunner(chart, trace=rec).run()

    VirtualClock().run(main)
    kinds = {r.kind for r in rec.records}
    assert kinds == {"entry", "exit", "event", "transition", "activity.start", "activity.stop", "final"}
    assert rec.records[-1].time == 3.0
    assert all(r.chart == "kinds" for r in rec.records)


def test_posts_are_processed_in_order_and_wait_idle_drains() -> None:
    seen: list[int] = []
    chart = Chart(
        "order",
        State("root", State("a", transitions=[on("n", action=lambda c, e: seen.append(e.data))]), initial="a"),
    )

    async def main() -> None:
        async with running(chart) as runner:
            for i in range(500):
                runner.post("n", i)
            await runner.wait_idle()
            assert seen == list(range(500))

    VirtualClock().run(main)


@pytest.mark.anyio
async def test_real_clock_runner_with_pytest_async() -> None:
    """The same runner on a plain asyncio loop (real time); no sleeps, only events."""
    chart = Chart("real", State("root", State("a", transitions=[on("go", "b")]), Final("b"), initial="a"))
    runner = ChartRunner(chart)
    async with anyio.create_task_group() as tg:
        await tg.start(runner.run)
        runner.post("go")
        with anyio.fail_after(5):
            await runner.finished.wait()
    assert runner.final == "b"


def test_wait_for_unknown_state_is_an_error() -> None:
    chart = Chart("w", State("root", State("a"), initial="a"))

    async def main() -> None:
        async with running(chart) as runner:
            with pytest.raises(KeyError, match="no state 'zz'"):
                await runner.wait_for("zz")

    VirtualClock().run(main)


def test_timer_of_a_state_left_for_good_never_fires_even_into_a_wildcard() -> None:
    rec = TraceRecorder()
    chart = Chart(
        "stale",
        State(
            "root",
            State("p", State("a", transitions=[after(1, "x"), on("go", "b")]), State("b"), initial="a",
                  transitions=[on("*", "other")]),
            State("x"),
            State("other"),
            initial="p",
        ),
    )

    async def main() -> None:
        async with running(chart, trace=rec) as runner:
            runner.post("go")
            await anyio.sleep(5)
            assert runner.configuration == {"root", "p", "b"}

    VirtualClock().run(main)
    assert [r.event for r in rec.of_kind("event")] == ["go"]


def test_wait_for_fails_instead_of_hanging_when_the_chart_ends() -> None:
    chart = Chart("w", State("root", State("a", transitions=[on("quit", "end")]), State("b"), Final("end"),
                             initial="a", transitions=[on("never", "b")]))

    async def main() -> None:
        runner = ChartRunner(chart)
        async with anyio.create_task_group() as tg:
            await tg.start(runner.run)

            async def quit_soon() -> None:
                await anyio.sleep(1)
                runner.post("quit")

            tg.start_soon(quit_soon)
            with pytest.raises(ChartFinishedError, match="ended in 'end' before 'b'"):
                await runner.wait_for("b")
            with pytest.raises(ChartFinishedError):  # and at once when already ended
                await runner.wait_for("b")

    VirtualClock().run(main)


def test_activity_of_a_state_left_before_the_activity_ran_never_starts() -> None:
    ran: list[str] = []

    @activity("done")
    async def work(ctx: ActivityContext) -> None:
        ran.append(ctx.state)
        ctx.post("done")

    chart = Chart(
        "burst",
        State("root", State("idle", transitions=[on("go", "s")]),
              State("s", activities=work, transitions=[on("stop", "idle"), on("done", "idle")]), initial="idle"),
    )

    async def main() -> None:
        async with running(chart) as runner:
            runner.post("go")
            runner.post("stop")  # same burst: "s" is entered and left before `work` is scheduled
            await runner.wait_idle()
            await anyio.sleep(1)

    VirtualClock().run(main)
    assert ran == []


def test_state_lifecycle_runs_as_model_state_documents_it() -> None:
    """Entry actions first; activities and timers start when the macrostep is over, only for states
    still active then; on exit the exit actions run, then the activity is cancelled (its `finally`
    runs) and the timer disarmed."""
    log: list[str] = []

    def note(text: str) -> Any:
        return lambda ctx, event: log.append(text)

    @activity()
    async def work(ctx: ActivityContext) -> None:
        log.append(f"work starts in {ctx.state}")
        try:
            await anyio.sleep_forever()
        finally:
            log.append(f"work cancelled, live={ctx.live}")

    chart = Chart(
        "life",
        State(
            "root",
            State("idle", transitions=[on("go", "passing")]),
            State("passing", activities=work, on_entry=note("entry passing"), on_exit=note("exit passing"),
                  transitions=[always("s")]),
            State("s", activities=work, on_entry=note("entry s"), on_exit=note("exit s"),
                  transitions=[on("stop", "idle"), after(10, "idle", action=note("timer"))]),
            initial="idle",
        ),
    )
    rec = TraceRecorder()

    async def main() -> None:
        async with running(chart, trace=rec) as runner:
            runner.post("go")
            await anyio.sleep(1)
            runner.post("stop")
            await anyio.sleep(20)  # s's 10 s timer died with its visit

    VirtualClock().run(main)
    assert log == ["entry passing", "exit passing", "entry s", "work starts in s", "exit s",
                   "work cancelled, live=False"]
    kinds = [(r.kind, r.state) for r in rec.records if r.kind in ("entry", "exit", "activity.start", "activity.stop")]
    assert kinds == [
        ("entry", "root"), ("entry", "idle"),
        ("exit", "idle"), ("entry", "passing"), ("exit", "passing"), ("entry", "s"), ("activity.start", "s"),  # go
        ("exit", "s"), ("activity.stop", "s"), ("entry", "idle"),  # stop
        ("exit", "idle"), ("exit", "root"),  # the chart stops at the block's end
    ]
    assert not any(r.kind == "event" and r.event == timer_event("s", 0) for r in rec.records)
