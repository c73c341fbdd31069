"""`interpreter`: the semantics (SCXML 3.13 and Appendix D) on a `FakeHost`, and each macrostep as a value."""

from __future__ import annotations

import dataclasses

import pytest

from statecharts.engine import (
    ERROR_EXECUTION,
    INIT,
    ActionContext,
    Chart,
    Event,
    Final,
    History,
    Interpreter,
    LivelockError,
    Macrostep,
    Parallel,
    State,
    always,
    done_state,
    on,
)
from statecharts.engine.testing import FakeHost

from ..helpers import entries_exits, interpreter, log_to


def arm_band_chart(log: list[str] | None = None) -> Chart:
    log = log if log is not None else []

    def S(id: str, *children: State | History, **kw: object) -> State:
        return State(id, *children, on_entry=log_to(log, f"in:{id}"), on_exit=log_to(log, f"out:{id}"), **kw)

    return Chart(
        "arm_band",
        State(
            "cell",
            S("idle", transitions=[on("start", "running")]),
            Parallel(
                "running",
                S(
                    "arm",
                    S("approach", transitions=[on("touch", "contact")]),
                    S("contact", transitions=[on("lift", "retract")]),
                    S("retract", transitions=[on("go", "approach")]),
                    initial="approach",
                ),
                S(
                    "band",
                    S("closed", transitions=[on("open_band", "open")]),
                    S("open", transitions=[on("close_band", "closed")]),
                    initial="closed",
                ),
                on_entry=log_to(log, "in:running"),
                on_exit=log_to(log, "out:running"),
                transitions=[on("stop", "idle")],
            ),
            initial="idle",
        ),
    )


def test_initial_configuration_enters_outermost_first() -> None:
    interp, rec, _ = interpreter(arm_band_chart())
    assert interp.configuration == {"cell", "idle"}
    assert entries_exits(rec) == ["entry:cell", "entry:idle"]


def test_parallel_entry_outermost_first_and_exit_innermost_first() -> None:
    log: list[str] = []
    interp, _rec, _ = interpreter(arm_band_chart(log))
    interp.process(Event("start"))
    assert log[-5:] == ["in:running", "in:arm", "in:approach", "in:band", "in:closed"]
    interp.process(Event("touch"))
    interp.process(Event("open_band"))
    log.clear()
    interp.process(Event("stop"))
    # Reverse document order: each region innermost-first, later region first, parent last.
    assert log == ["out:open", "out:band", "out:contact", "out:arm", "out:running", "in:idle"]
    assert interp.configuration == {"cell", "idle"}


def test_events_in_parallel_regions_each_take_their_transition() -> None:
    interp, rec, _ = interpreter(arm_band_chart())
    interp.process(Event("start"))
    interp.process(Event("touch"))
    interp.process(Event("open_band"))
    assert interp.configuration == {"cell", "running", "arm", "contact", "band", "open"}
    transitions = [(r.state, r.target, r.event) for r in rec.of_kind("transition")]
    assert transitions[-2:] == [("approach", ("contact",), "touch"), ("closed", ("open",), "open_band")]


def test_document_order_picks_first_enabled_transition_and_guards_filter() -> None:
    chart = Chart(
        "order",
        State(
            "root",
            State(
                "a",
                transitions=[
                    on("go", "b", guard=lambda ctx, ev: ev.data == "b"),
                    on("go", "c"),
                    on("go", "b"),
                ],
            ),
            State("b"),
            State("c"),
            initial="a",
            transitions=[on("reset", "a")],
        ),
    )
    interp, _, _ = interpreter(chart)
    interp.process(Event("go"))
    assert interp.is_active("c")
    interp.process(Event("reset"))
    interp.process(Event("go", "b"))
    assert interp.is_active("b")


def test_descendant_transition_preempts_ancestor_transition() -> None:
    chart = Chart(
        "preempt",
        State(
            "root",
            State("outer", State("inner", transitions=[on("e", "x")]), initial="inner", transitions=[on("e", "y")]),
            State("x"),
            State("y"),
            initial="outer",
        ),
    )
    interp, _, _ = interpreter(chart)
    interp.process(Event("e"))
    assert interp.is_active("x") and not interp.is_active("y")


def test_conflict_between_regions_leaving_parallel_keeps_first_in_document_order() -> None:
    chart = Chart(
        "conflict",
        State(
            "root",
            Parallel(
                "p",
                State("r1", State("a", transitions=[on("e", "x")]), initial="a"),
                State("r2", State("b", transitions=[on("e", "y")]), initial="b"),
            ),
            State("x"),
            State("y"),
            initial="p",
        ),
    )
    interp, _, _ = interpreter(chart)
    interp.process(Event("e"))
    assert interp.configuration == {"root", "x"}


def test_event_descriptors_match_prefix_tokens_and_wildcard() -> None:
    chart = Chart(
        "desc",
        State(
            "root",
            State("a", transitions=[on("error", "b")]),
            State("b", transitions=[on("error.x", "c"), on("*", "a")]),
            State("c", transitions=[on("errorx", "a")]),
            initial="a",
        ),
    )
    interp, _, _ = interpreter(chart)
    interp.process(Event("error.activity"))
    assert interp.is_active("b")
    interp.process(Event("error.xy"))  # "error.x" does not match "error.xy"
    assert interp.is_active("a")  # "*" did
    interp.process(Event("error.x.deep"))
    interp.process(Event("error.x.deep"))
    assert interp.is_active("c")
    interp.process(Event("error"))  # "errorx" is not a token prefix of "error"
    assert interp.is_active("c")


def test_internal_transition_does_not_exit_source_but_external_does() -> None:
    log: list[str] = []
    chart = Chart(
        "kinds",
        State(
            "root",
            State(
                "s",
                State("s1"),
                State("s2"),
                initial="s1",
                on_entry=log_to(log, "in:s"),
                on_exit=log_to(log, "out:s"),
                transitions=[on("internal", "s2", internal=True), on("external", "s2")],
            ),
            initial="s",
        ),
    )
    interp, _, _ = interpreter(chart)
    log.clear()
    interp.process(Event("internal"))
    assert log == [] and interp.is_active("s2")
    interp.process(Event("external"))
    assert log == ["out:s", "in:s"] and interp.is_active("s2")


def test_targetless_transition_runs_action_without_exit_or_entry() -> None:
    log: list[str] = []
    chart = Chart(
        "targetless",
        State("root", State("a", on_exit=log_to(log, "out:a"), transitions=[on("tick", action=log_to(log, "tick"))]),
              initial="a"),
    )
    interp, _, _ = interpreter(chart)
    interp.process(Event("tick"))
    assert log == ["tick"] and interp.is_active("a")


def test_transition_order_exit_then_action_then_entry() -> None:
    log: list[str] = []
    chart = Chart(
        "order",
        State(
            "root",
            State("a", on_exit=log_to(log, "out:a"), transitions=[on("go", "b", action=log_to(log, "act"))]),
            State("b", on_entry=log_to(log, "in:b")),
            initial="a",
        ),
    )
    interp, _, _ = interpreter(chart)
    interp.process(Event("go"))
    assert log == ["out:a", "act", "in:b"]


def test_eventless_transitions_and_internal_queue_before_external() -> None:
    seen: list[str] = []

    def raise_two(ctx: ActionContext, event: Event) -> None:
        ctx.raise_event("first")
        ctx.send("external_later")
        ctx.raise_event("second")

    def note(ctx: ActionContext, event: Event) -> None:
        seen.append(event.name)

    chart = Chart(
        "queues",
        State(
            "root",
            State("a", transitions=[on("go", "b", action=raise_two)]),
            State("b", transitions=[on("first", "c", action=note)]),
            State("c", transitions=[on("second", "d", action=note)]),
            State("d", transitions=[always("e", guard=lambda ctx, ev: True)]),
            State("e"),
            initial="a",
        ),
    )
    interp, _, host = interpreter(chart)
    interp.process(Event("go"))
    # Both internal events were handled within the macrostep; the external one waits.
    assert seen == ["first", "second"]
    assert interp.is_active("e")
    assert [e.name for e in host.external] == ["external_later"]


def test_eventless_transition_waits_for_its_guard() -> None:
    flag = {"ready": False}
    chart = Chart(
        "eventless",
        State(
            "root",
            State("wait", transitions=[always("go", guard=lambda ctx, ev: flag["ready"])]),
            State("go"),
            initial="wait",
            transitions=[on("poke", internal=True)],
        ),
    )
    interp, _, _ = interpreter(chart)
    assert interp.is_active("wait")
    flag["ready"] = True
    interp.process(Event("poke"))
    assert interp.is_active("go")


def test_final_states_raise_done_events_for_compound_and_parallel() -> None:
    chart = Chart(
        "done",
        State(
            "root",
            Parallel(
                "p",
                State("r1", State("a", transitions=[on("fa", "a_end")]), Final("a_end"), initial="a"),
                State("r2", State("b", transitions=[on("fb", "b_end")]), Final("b_end"), initial="b"),
                transitions=[on(done_state("p"), "after_p")],
            ),
            State("after_p"),
            initial="p",
            transitions=[on(done_state("r1"), internal=True, action=lambda ctx, ev: ctx.data.append(ev.name))],
        ),
    )
    seen: list[str] = []
    interp, rec, _ = interpreter(chart, seen)
    interp.process(Event("fa"))
    assert seen == ["done.state.r1"] and interp.is_active("p")
    interp.process(Event("fb"))
    assert interp.configuration == {"root", "after_p"}
    internal = [r.event for r in rec.of_kind("event") if r.detail == "internal"]
    assert internal == ["done.state.r1", "done.state.r2", "done.state.p"]


def test_top_level_final_stops_the_chart_and_exits_everything() -> None:
    chart = Chart(
        "stop",
        State("root", State("a", State("a1"), initial="a1", transitions=[on("quit", "end")]), Final("end"),
              initial="a"),
    )
    interp, rec, _ = interpreter(chart)
    interp.process(Event("quit"))
    assert not interp.running and interp.final == "end"
    assert interp.configuration == frozenset()
    assert entries_exits(rec)[-2:] == ["exit:end", "exit:root"]
    interp.process(Event("anything"))  # ignored once stopped


def test_failing_guard_and_action_raise_error_execution_and_chart_goes_on() -> None:
    def boom(ctx: ActionContext, event: Event) -> None:
        raise RuntimeError("actuator table missing")

    def bad_guard(ctx: ActionContext, event: Event) -> bool:
        raise KeyError("sensor")

    chart = Chart(
        "errors",
        State(
            "root",
            State("a", transitions=[on("go", "x", guard=bad_guard), on("go", "b", action=boom)]),
            State("b", transitions=[on(ERROR_EXECUTION, "failed")]),
            State("x"),
            State("failed"),
            initial="a",
        ),
    )
    interp, rec, _ = interpreter(chart)
    interp.process(Event("go"))
    assert interp.is_active("failed")
    errors = rec.of_kind("error")
    assert [e.state for e in errors] == ["a", "a"]
    assert "bad_guard" in errors[0].detail and "KeyError" in errors[0].detail
    assert "boom" in errors[1].detail and "actuator table missing" in errors[1].detail


def test_start_twice_is_an_error() -> None:
    interp, _, _ = interpreter(arm_band_chart())
    with pytest.raises(RuntimeError, match="already started"):
        interp.start()


def test_host_is_told_which_states_remain_active_after_macrostep() -> None:
    chart = Chart(
        "transient",
        State("root", State("a", transitions=[always("b")]), State("b"), initial="a"),
    )
    _interp, _, host = interpreter(chart)
    # "a" was entered and left within the first macrostep: its work never starts.
    assert host.started == ["root", "b"]
    assert host.stopped == ["a"]


def test_transition_inside_a_parallel_root_keeps_every_region_active() -> None:
    chart = Chart(
        "proot",
        Parallel(
            "root",
            State("r1", State("a1", transitions=[on("x", "b2")]), initial="a1"),
            State("r2", State("b1"), State("b2"), initial="b1"),
        ),
    )
    interp, _, _ = interpreter(chart)
    interp.process(Event("x"))
    assert chart.configuration_problems(interp.configuration) == []
    assert interp.configuration == {"root", "r1", "a1", "r2", "b2"}


def test_eventless_transition_whose_guard_raises_does_not_livelock() -> None:
    def broken(ctx: ActionContext, event: Event) -> bool:
        raise ValueError("no reading")

    chart = Chart("g", State("root", State("a", transitions=[always("b", guard=broken)]), State("b"), initial="a"))
    interp, rec, _ = interpreter(chart)
    assert interp.configuration == {"root", "a"}
    assert len(rec.of_kind("error")) == 1  # reported once per macrostep


def test_eventless_cycle_raises_livelock_error() -> None:
    chart = Chart(
        "cycle",
        State("root", State("idle", transitions=[on("go", "a")]), State("a", transitions=[always("b")]),
              State("b", transitions=[always("a")]), initial="idle"),
    )
    interp, _, _ = interpreter(chart)
    with pytest.raises(LivelockError, match="no stable configuration"):
        interp.process(Event("go"))


# -- the macrostep as a value --------------------------------------------------------------------------


def test_start_returns_the_initial_macrostep() -> None:
    chart = arm_band_chart()
    interp = Interpreter(chart, FakeHost())
    step = interp.start()
    assert step.event == Event(INIT)
    assert step.transitions == () and step.exited == ()
    assert step.entered_ids == ("cell", "idle")


def test_process_returns_transitions_exits_and_entries_in_order() -> None:
    """SCXML 3.13: a macrostep is the microsteps an external event causes, through the eventless
    transitions and internal events that follow it, until the configuration is stable."""
    chart = Chart(
        "chain",
        State(
            "root",
            State("a", State("a1", transitions=[on("go", "b")]), initial="a1"),
            State("b", transitions=[always("c", action=lambda ctx, ev: ctx.raise_event("poke"))]),
            State("c", transitions=[on("poke", "d")]),
            State("d"),
            initial="a",
        ),
    )
    interp, rec, _ = interpreter(chart)
    step = interp.process(Event("go"))
    assert step.event == Event("go")
    assert [(e.source.id, tuple(t.id for t in e.targets)) for e in step.transitions] == [
        ("a1", ("b",)), ("b", ("c",)), ("c", ("d",))
    ]
    assert step.exited_ids == ("a1", "a", "b", "c")  # innermost first
    assert step.entered_ids == ("b", "c", "d")
    assert [n.id for n in step.entered] == [r.state for r in rec.of_kind("entry")][-3:]


def test_a_macrostep_is_a_frozen_value() -> None:
    chart = Chart("v", State("root", State("a", transitions=[on("go", "b")]), State("b"), initial="a"))
    interp, _, _ = interpreter(chart)
    step = interp.process(Event("go"))
    by_hand = Macrostep(Event("go"), (chart["a"].transitions[0],), (chart["a"],), (chart["b"],))
    assert step == by_hand and hash(step) == hash(by_hand)
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.entered = ()  # type: ignore[misc]
    assert interp.process(Event("nothing")) == Macrostep(Event("nothing"))


def test_a_step_that_ends_the_chart_lists_every_state_it_left() -> None:
    chart = Chart("end", State("root", State("p", State("a", transitions=[on("quit", "end")]), initial="a"),
                               Final("end"), initial="p"))
    interp, _, _ = interpreter(chart)
    step = interp.process(Event("quit"))
    assert step.exited_ids == ("a", "p", "end", "root") and step.entered_ids == ("end",)
    assert interp.process(Event("again")) == Macrostep(Event("again"))  # ended: nothing happens


def test_macrosteps_say_what_the_trace_says() -> None:
    """Entries and exits, step after step, are the trace's, in the same order."""
    interp, rec, _ = interpreter(arm_band_chart())
    steps = [interp.process(Event(e)) for e in
             ["start", "touch", "open_band", "lift", "go", "close_band", "stop", "start", "bogus", "stop"]]
    entered = [n.id for s in steps for n in s.entered]
    exited = [n.id for s in steps for n in s.exited]
    assert entered == [r.state for r in rec.of_kind("entry")][2:]  # after the initial cell, idle
    assert exited == [r.state for r in rec.of_kind("exit")]
    assert [e.source.id for s in steps for e in s.transitions] == [r.state for r in rec.of_kind("transition")]


def test_a_livelocked_step_leaves_nothing_behind_for_the_next() -> None:
    chart = Chart(
        "cycle",
        State("root", State("idle", transitions=[on("go", "a"), on("ping", "idle")]),
              State("a", transitions=[always("b"), on("ping", "idle")]),
              State("b", transitions=[always("a"), on("ping", "idle")]), initial="idle"),
    )
    interp = Interpreter(chart, FakeHost())
    interp.start()
    with pytest.raises(LivelockError):
        interp.process(Event("go"))
    step = interp.process(Event("ping"))
    assert len(step.transitions) == 1 and len(step.exited) == 1 and step.entered_ids == ("idle",)
