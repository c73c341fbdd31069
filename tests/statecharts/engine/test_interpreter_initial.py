"""`interpreter`, initial targets (SCXML 3.3): a deeper descendant, or states in several regions."""

from __future__ import annotations

from statecharts.engine import (
    Chart,
    Event,
    History,
    Parallel,
    State,
    on,
)

from ..helpers import entries_exits, interpreter


def deep_chart() -> Chart:
    return Chart(
        "deep_initial",
        State(
            "root",
            State("off", transitions=[on("start", "work")]),
            State(
                "work",
                State(
                    "a",
                    State("a1"),
                    State("a2", State("a2x"), State("a2y"), initial="a2x"),
                    initial="a1",
                ),
                State("b"),
                initial="a2y",
                transitions=[on("stop", "off")],
            ),
            initial="off",
        ),
    )


def regions_chart() -> Chart:
    def region(name: str) -> State:
        return State(name, State(f"{name}_first"), State(f"{name}_second"), initial=f"{name}_first")

    return Chart(
        "multi_initial",
        State(
            "root",
            State("off", transitions=[on("start", "cell")]),
            State(
                "cell",
                Parallel("p", region("r1"), region("r2"), region("r3")),
                initial=("r1_second", "r2_second"),
                transitions=[on("stop", "off")],
            ),
            initial="off",
        ),
    )


def test_initial_naming_a_deeper_descendant_enters_the_states_between_outermost_first() -> None:
    """SCXML 3.3 (`initial` attribute: "the id of the default initial state (or states)", any
    descendant) and 3.6: entering the state enters the target and every state between, each
    ancestor before its descendants; their own initials are not used on the way down."""
    interp, rec, _ = interpreter(deep_chart())
    interp.process(Event("start"))
    assert interp.configuration == {"root", "work", "a", "a2", "a2y"}
    assert entries_exits(rec)[-5:] == ["exit:off", "entry:work", "entry:a", "entry:a2", "entry:a2y"]


def test_deep_initial_applies_on_every_default_entry() -> None:
    """SCXML 3.3/3.6: the initial transition is taken whenever the state is entered by default
    (a transition targeting it), not only at start."""
    interp, _, _ = interpreter(deep_chart())
    for _ in range(2):
        interp.process(Event("start"))
        assert interp.is_active("a2y") and not interp.is_active("a1")
        interp.process(Event("stop"))
        assert interp.configuration == {"root", "off"}


def test_several_initial_targets_enter_each_region_with_untargeted_regions_by_default() -> None:
    """SCXML 3.3 (`initial` holds several ids, a legal state specification, 3.11) and the entry
    algorithm (Appendix D, addAncestorStatesToEnter): a region of the parallel state that holds
    no target is entered by its own default."""
    interp, _, _ = interpreter(regions_chart())
    interp.process(Event("start"))
    assert interp.configuration == {"root", "cell", "p", "r1", "r1_second", "r2", "r2_second", "r3", "r3_first"}
    assert interp.chart.configuration_problems(interp.configuration) == []


def test_history_default_follows_the_parents_deep_initial() -> None:
    """SCXML 3.10: a history never visited takes its default transition; ours, when no default
    is given, is the parent's initial (here a deep one, SCXML 3.3)."""
    chart = Chart(
        "hist_initial",
        State(
            "root",
            State("off", transitions=[on("resume", "h")]),
            State("work", History("h"), State("w1"), State("w2", State("w2a"), State("w2b"), initial="w2a"),
                  initial="w2b"),
            initial="off",
        ),
    )
    interp, _, _ = interpreter(chart)
    interp.process(Event("resume"))
    assert interp.configuration == {"root", "work", "w2", "w2b"}


def resuming_chart() -> Chart:
    return Chart(
        "initial_history",
        State(
            "root",
            State("off", transitions=[on("start", "work")]),
            State(
                "work",
                History("h", "w2a", deep=True),
                State("w1", transitions=[on("next", "w2")]),
                State("w2", State("w2a", transitions=[on("next", "w2b")]), State("w2b"), initial="w2a"),
                initial="h",
                transitions=[on("stop", "off")],
            ),
            initial="off",
        ),
    )


def test_initial_naming_its_own_history_resumes_and_takes_the_default_the_first_time() -> None:
    """SCXML 3.3 (<initial>: its transition's target is "a legal state specification consisting
    solely of descendants of the containing state", which a history child is) and 3.10: entering
    the state by default goes through its history, so the first entry takes the history's default
    transition and a later one restores what the state held when it was left."""
    interp, _, _ = interpreter(resuming_chart())
    interp.process(Event("start"))
    assert interp.configuration == {"root", "work", "w2", "w2a"}  # the history's default, not w1
    interp.process(Event("next"))
    interp.process(Event("stop"))
    interp.process(Event("start"))
    assert interp.configuration == {"root", "work", "w2", "w2b"}  # deep history: where it was
