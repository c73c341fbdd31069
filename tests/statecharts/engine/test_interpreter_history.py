"""`interpreter`, history (SCXML 3.10): shallow and deep history, their defaults."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from statecharts.engine import (
    Chart,
    Event,
    History,
    Parallel,
    State,
    on,
)

from ..helpers import interpreter, log_to


def test_shallow_history_restores_last_child() -> None:
    chart = Chart(
        "history",
        State(
            "root",
            State(
                "work",
                History("h"),
                State("w1", transitions=[on("next", "w2")]),
                State("w2", State("deep1", transitions=[on("deeper", "deep2")]), State("deep2"), initial="deep1",
                      transitions=[on("next", "w3")]),
                State("w3"),
                initial="w1",
                transitions=[on("pause", "paused")],
            ),
            State("paused", transitions=[on("resume", "h"), on("restart", "work")]),
            initial="work",
        ),
    )
    interp, _, _ = interpreter(chart)
    interp.process(Event("pause"))
    interp.process(Event("resume"))
    assert interp.is_active("w1")  # last child was the initial one
    interp.process(Event("next"))
    interp.process(Event("deeper"))
    interp.process(Event("pause"))
    interp.process(Event("resume"))
    # Shallow: w2 is restored, but its own default child, not deep2.
    assert interp.configuration == {"root", "work", "w2", "deep1"}
    interp.process(Event("pause"))
    interp.process(Event("restart"))
    assert interp.is_active("w1")


def test_history_default_used_before_first_visit() -> None:
    log: list[str] = []
    chart = Chart(
        "hdefault",
        State(
            "root",
            State("off", transitions=[on("on", "h")]),
            State("work", History("h", "w2", action=log_to(log, "default")), State("w1"), State("w2"), initial="w1"),
            initial="off",
        ),
    )
    interp, _, _ = interpreter(chart)
    interp.process(Event("on"))
    assert interp.is_active("w2") and log == ["default"]


def job_chart(log: list[str] | None = None) -> Chart:
    """work holds a shallow and a deep history; job is a parallel state with nested compounds."""
    log = log if log is not None else []

    def S(id: str, *children: State | History, **kw: object) -> State:
        return State(id, *children, on_entry=log_to(log, f"in:{id}"), **kw)  # type: ignore[arg-type]

    return Chart(
        "deep",
        State(
            "root",
            State(
                "work",
                History("hs"),
                History("hd", deep=True),
                S("prep", transitions=[on("go", "job")]),
                Parallel(
                    "job",
                    S(
                        "arm",
                        S("a1", transitions=[on("touch", "a2")]),
                        S("a2", S("a2x", transitions=[on("deeper", "a2y")]), S("a2y"), initial="a2x"),
                        initial="a1",
                        transitions=[on("reset_arm", "a1")],
                    ),
                    S(
                        "band",
                        S("closed", transitions=[on("open_band", "open")]),
                        S("open", transitions=[on("close_band", "closed")]),
                        initial="closed",
                    ),
                    on_entry=log_to(log, "in:job"),
                ),
                on_entry=log_to(log, "in:work"),
                initial="prep",
                transitions=[on("pause", "paused")],
            ),
            State("paused", transitions=[on("resume", "hd"), on("resume_shallow", "hs")]),
            initial="work",
        ),
    )


HELD = {"root", "work", "job", "arm", "a2", "a2y", "band", "open"}


def test_deep_history_resumes_each_region_of_a_parallel_state_in_its_exact_leaf() -> None:
    """SCXML 3.10: "If the 'type' is "deep", the state machine records all active atomic
    descendants of the parent" and a transition to the history re-enters them; entry goes
    outermost first through the nested compound and parallel states (Appendix D, exitStates
    records historyValue, addDescendantStatesToEnter restores it)."""
    log: list[str] = []
    interp, _, host = interpreter(job_chart(log))
    for name in ("go", "touch", "deeper", "open_band"):
        interp.process(Event(name))
    assert interp.configuration == HELD
    interp.process(Event("pause"))
    log.clear()
    host.started.clear()
    interp.process(Event("resume"))
    assert interp.configuration == HELD
    assert log == ["in:work", "in:job", "in:arm", "in:a2", "in:a2y", "in:band", "in:open"]
    assert set(host.started) == HELD - {"root"}  # the restored leaves' activities and timers start


def test_shallow_history_beside_a_deep_one_restores_children_only() -> None:
    """SCXML 3.10: shallow history records the parent's active children only, each re-entered
    by its own default ("shallow stays as it is")."""
    interp, _, _ = interpreter(job_chart())
    for name in ("go", "touch", "deeper", "open_band", "pause", "resume_shallow"):
        interp.process(Event(name))
    assert interp.configuration == {"root", "work", "job", "arm", "a1", "band", "closed"}


def test_deep_history_records_the_last_exit_not_moves_made_inside() -> None:
    """SCXML 3.10 / Appendix D exitStates: the history value is written when its parent is
    exited, and replaced by each later exit."""
    interp, _, _ = interpreter(job_chart())
    for name in ("go", "touch", "deeper", "pause", "resume", "reset_arm", "close_band", "pause", "resume"):
        interp.process(Event(name))
    assert interp.configuration == {"root", "work", "job", "arm", "a1", "band", "closed"}


def test_deep_history_restores_nested_compound_states() -> None:
    """SCXML 3.10: deep history restores an atomic state three compound levels down, entering
    each compound ancestor between it and the history's parent."""
    chart = Chart(
        "nested",
        State(
            "root",
            State(
                "outer",
                History("h", deep=True),
                State("o1", transitions=[on("in", "mid")]),
                State(
                    "mid",
                    State("m1", transitions=[on("in", "inner")]),
                    State("inner", State("i1", transitions=[on("in", "i2")]), State("i2"), initial="i1"),
                    initial="m1",
                ),
                initial="o1",
                transitions=[on("out", "away")],
            ),
            State("away", transitions=[on("back", "h"), on("restart", "outer")]),
            initial="outer",
        ),
    )
    interp, _, _ = interpreter(chart)
    for name in ("in", "in", "in", "out", "back"):
        interp.process(Event(name))
    assert interp.configuration == {"root", "outer", "mid", "inner", "i2"}
    interp.process(Event("out"))
    interp.process(Event("restart"))  # not through the history: default entry
    assert interp.configuration == {"root", "outer", "o1"}


def test_deep_history_default_is_used_before_the_parent_was_ever_exited() -> None:
    """SCXML 3.10.2: the default history transition's target may be any descendant(s) of the
    parent for a deep history; it is taken when no history was recorded, and its content runs
    after the parent's onentry (Appendix D, defaultHistoryContent)."""
    log: list[str] = []
    chart = Chart(
        "default",
        State(
            "root",
            State("off", transitions=[on("on", "h")]),
            State(
                "work",
                History("h", ("x2", "y2"), deep=True, action=log_to(log, "default")),
                Parallel(
                    "p",
                    State("rx", State("x1"), State("x2", on_entry=log_to(log, "in:x2")), initial="x1"),
                    State("ry", State("y1"), State("y2"), initial="y1"),
                ),
                on_entry=log_to(log, "in:work"),
                initial="p",
            ),
            initial="off",
        ),
    )
    interp, _, _ = interpreter(chart)
    interp.process(Event("on"))
    assert interp.configuration == {"root", "work", "p", "rx", "x2", "ry", "y2"}
    assert log == ["in:work", "default", "in:x2"]


EVENTS = ["go", "touch", "deeper", "open_band", "close_band", "reset_arm", "pause", "resume"]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from([*EVENTS, "pause", "resume"]), max_size=40))
def test_deep_history_restores_exactly_the_leaves_held_at_the_last_exit(events: list[str]) -> None:
    """SCXML 3.10 (deep): after any event sequence, resuming re-enters exactly the atomic
    states active when `work` was last exited, and the configuration stays legal (3.11)."""
    chart = job_chart()
    interp, _, _ = interpreter(chart)
    held: set[str] | None = None
    for name in events:
        before = interp.configuration
        interp.process(Event(name))
        after = interp.configuration
        assert chart.configuration_problems(after) == []
        if "work" in before and "work" not in after:
            held = {s for s in before if not chart[s].children}
        if name == "resume" and "paused" in before:
            leaves = {s for s in after if not chart[s].children}
            assert leaves == (held if held is not None else {"prep"})
