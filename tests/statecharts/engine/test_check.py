"""`check`: the static findings (unreachable, dead ends, unhandled activity events, done events never raised)."""

from __future__ import annotations

from statecharts import catalog
from statecharts.engine import (
    ERROR,
    ActivityContext,
    Chart,
    Final,
    Parallel,
    State,
    activity,
    after,
    done_state,
    on,
)
from statecharts.engine.check import check

from .test_interpreter_initial import deep_chart, regions_chart


@activity("arrived", "slipped")
async def move(ctx: ActivityContext) -> None:
    ctx.post("arrived")


def flawed_chart() -> Chart:
    return Chart(
        "flawed",
        State(
            "root",
            State("idle", transitions=[on("go", "moving")]),
            State("moving", activities=move, transitions=[on("arrived", "stuck")]),
            State("stuck"),
            State("orphan", transitions=[on("x", "idle")]),
            State("waiter", transitions=[on(done_state("idle"), "idle")]),
            initial="idle",
        ),
    )


def test_check_finds_unreachable_dead_end_and_unhandled_activity_events() -> None:
    found = {(f.kind, f.state, f.message.split(",")[0]) for f in check(flawed_chart())}
    assert ("unreachable", "orphan", "no transition or default entry leads here") in found
    assert ("unreachable", "waiter", "no transition or default entry leads here") in found
    assert ("dead-end", "stuck", "a non-final state with no transition out of it or its ancestors") in found
    assert ("unhandled-event", "moving", "activity move may post 'slipped'") in found
    assert ("unhandled-event", "moving", "activity move may post 'error.activity'") in found
    assert ("never-raised", "waiter", "'done.state.idle': 'idle' has no final state to complete") in found
    assert len(found) == 6


def test_check_accepts_ancestor_handlers_and_parallel_siblings() -> None:
    chart = Chart(
        "fine",
        State(
            "root",
            Parallel(
                "p",
                State("r1", State("a", activities=move, transitions=[on("arrived", "a_end")]), Final("a_end"),
                      initial="a"),
                State("r2", State("b", transitions=[after(1, "b_end")]), Final("b_end"), initial="b"),
                transitions=[on("slipped", "fault"), on(ERROR, "fault"), on(done_state("p"), "fault")],
            ),
            State("fault", transitions=[on("reset", "p")]),
            initial="p",
        ),
    )
    assert check(chart) == []


def test_shipped_charts_pass_the_check() -> None:
    for name in catalog.names():
        assert check(catalog.load(name)) == [], name


def test_check_follows_deep_and_multiple_initials() -> None:
    """SCXML 3.3: a child's own initial is skipped when the parent's initial names a deeper
    state, so the static check reports the skipped defaults as unreachable, and nothing that a
    deep or multiple initial enters."""
    found = {(f.kind, f.state) for f in check(deep_chart())}
    assert ("unreachable", "a1") in found and ("unreachable", "a2x") in found
    assert not {s for k, s in found if k == "unreachable"} & {"work", "a", "a2", "a2y"}
    found = {(f.kind, f.state) for f in check(regions_chart())}
    unreachable = {s for k, s in found if k == "unreachable"}
    assert unreachable == {"r1_first", "r2_first", "r3_second"}
