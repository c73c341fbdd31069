"""`testing`: the kit chart authors test with (a fake host, drivers, predicates) behaves as the runtime."""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from statecharts.engine import (
    ActionContext,
    ActivityContext,
    Chart,
    Event,
    Final,
    Parallel,
    State,
    activity,
    after,
    cancel,
    done_state,
    on,
    send,
)
from statecharts.engine.testing import (
    FakeHost,
    advance,
    configuration_contains,
    configuration_equals,
    drive,
    run_script,
    start,
    state_entered,
    state_exited,
    transition_taken,
)


@dataclass
class Grip:
    tries: int = 0


def grip_chart() -> Chart:
    def count(ctx: ActionContext[Grip], event: Event) -> None:
        ctx.data.tries += 1

    return Chart(
        "grip",
        State(
            "root",
            State("idle", transitions=[on("go", "gripping")]),
            State(
                "gripping",
                State("closing", transitions=[after(0.5, "holding")]),
                State("holding"),
                initial="closing",
                on_entry=[count, send("timeout", delay=2.0, id="t")],
                transitions=[on("gripped", "held", action=cancel("t")), on("timeout", "idle"), after(5, "idle")],
            ),
            State("held", transitions=[on("release", "idle")]),
            initial="idle",
        ),
    )


def test_start_and_drive_return_the_macrosteps_and_the_predicates_read_them() -> None:
    interp, rec, host = start(grip_chart(), Grip())
    assert configuration_equals(interp, {"root", "idle"})
    steps = drive(interp, "go", "gripped")
    assert state_entered(steps, "closing") and state_exited(steps[1], "gripping")
    assert transition_taken(steps, "idle", "gripping", event="go")
    assert not transition_taken(steps, "idle", "held") and not transition_taken(steps, "held")
    assert configuration_contains(interp, "held") and not configuration_contains(interp, "held", "idle")
    assert interp.ctx.data.tries == 1
    assert host.started == ["root", "idle", "gripping", "closing", "held"]
    assert host.stopped == ["idle", "closing", "gripping"]
    assert host.scheduled == [(Event("timeout"), 2.0, "t")] and host.cancelled == ["t"]
    assert len(rec.of_kind("transition")) == 2


def test_advance_fires_timers_and_delayed_sends_when_due_and_drops_stale_ones() -> None:
    interp, _, host = start(grip_chart(), Grip())
    drive(interp, "go")
    steps = advance(interp, 1.0)  # closing's 0.5 s timer
    assert [s.event.name for s in steps] == ["after.closing.0"] and host.t == 1.0
    assert configuration_contains(interp, "holding")
    steps = advance(interp, 5.0)  # the 2 s send (at 2.0), which leaves gripping: its 5 s timer is stale
    assert [(s.event.name, s.entered_ids) for s in steps] == [("timeout", ("idle",))]
    assert host.t == 6.0 and configuration_contains(interp, "idle")


def test_advance_skips_a_cancelled_send() -> None:
    interp, _, _ = start(grip_chart(), Grip())
    drive(interp, "go", "gripped")
    assert advance(interp, 10.0) == []
    assert configuration_contains(interp, "held")


def test_fake_host_and_runner_agree_on_a_timed_script() -> None:
    """The same script through `advance` (synchronous) and `run_script` (the runtime, virtual time)."""
    interp, _, _ = start(grip_chart(), Grip())
    sync = [interp.configuration]
    for step in ["go", 1.0, 0.6, "release", "go", 0.2, "gripped", 3.0]:
        if isinstance(step, str):
            drive(interp, step)
        else:
            advance(interp, step)
        sync.append(interp.configuration)
    run = run_script(grip_chart(), ["go", 1.0, 0.6, "release", "go", 0.2, "gripped", 3.0], data=Grip())
    assert run.configurations == sync


def test_run_script_runs_activities_and_reports_the_end() -> None:
    @activity("arrived")
    async def move(ctx: ActivityContext[Grip]) -> None:
        await anyio.sleep(1.5)
        ctx.data.tries += 1
        ctx.post("arrived")

    chart = Chart(
        "move",
        State(
            "root",
            Parallel("p", State("arm", State("moving", activities=move, transitions=[on("arrived", "there")]),
                                Final("there"), initial="moving"),
                     transitions=[on(done_state("p"), "end")]),
            Final("end", donedata=lambda ctx: ctx.data.tries),
            initial="p",
        ),
    )
    run = run_script(chart, [1.0, 1.0, "never processed"], data=Grip())
    assert [set(c) for c in run.configurations] == [{"root", "p", "arm", "moving"}, {"root", "p", "arm", "moving"},
                                                    set()]  # ended at 1.5 s: the rest of the script is not run
    assert run.final == "end" and run.done_data == 1
    assert [r.kind for r in run.trace.of_kind("activity.start", "activity.stop")] == ["activity.start", "activity.stop"]


def test_fake_host_is_a_host() -> None:
    host = FakeHost(t=3.0)
    assert host.now() == 3.0
    host.post(Event("x"))
    assert host.external == [Event("x")]
