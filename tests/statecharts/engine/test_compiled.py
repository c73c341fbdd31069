"""`compiled`: `Chart(name, root)` validates a definition (each error names its state) and compiles it."""

from __future__ import annotations

import pytest

from statecharts.engine import (
    ActivityContext,
    Chart,
    ChartDefinitionError,
    DuplicateStateError,
    Final,
    FinalStateTransitionError,
    History,
    HistoryStateError,
    In,
    InitialConflictError,
    InitialHistoryError,
    InitialNotDescendantError,
    InvalidDoneDataError,
    InvalidInitialError,
    InvalidStateIdError,
    InvalidTransitionError,
    MissingInitialError,
    Parallel,
    State,
    UnknownTargetError,
    activity,
    after,
    on,
)


@activity("done")
async def noop(ctx: ActivityContext) -> None:
    ctx.post("done")


CASES = [
    (
        "unknown target",
        lambda: State("root", State("a", transitions=[on("go", "nowhere")]), initial="a"),
        UnknownTargetError, "a", "nowhere",
    ),
    (
        "missing initial",
        lambda: State("root", State("group", State("x"), State("y")), initial="group"),
        MissingInitialError, "group", "initial",
    ),
    (
        "duplicate id",
        lambda: State("root", State("a", State("b"), initial="b"), State("b"), initial="a"),
        DuplicateStateError, "b", "more than one",
    ),
    (
        "transition out of a final state",
        lambda: State("root", State("a"), Final("end", transitions=[on("again", "a")]), initial="a"),
        FinalStateTransitionError, "end", "final",
    ),
    (
        "activity in a final state",
        lambda: State("root", State("a"), Final("end", activities=noop), initial="a"),
        FinalStateTransitionError, "end", "activities",
    ),
    (
        "initial not a child",
        lambda: State("root", State("a", State("a1"), initial="b"), State("b"), initial="a"),
        InvalidInitialError, "a", "not a child",
    ),
    (
        "unknown initial",
        lambda: State("root", State("a"), initial="zzz"),
        UnknownTargetError, "root", "zzz",
    ),
    (
        "bad state id",
        lambda: State("root", State("has space"), initial="has space"),
        InvalidStateIdError, "has space", "identifier",
    ),
    (
        "negative delay",
        lambda: State("root", State("a", transitions=[after(-1, "a")]), initial="a"),
        InvalidTransitionError, "a", "delay",
    ),
    (
        "malformed event",
        lambda: State("root", State("a", transitions=[on("bad event!", "a")]), initial="a"),
        InvalidTransitionError, "a", "descriptor",
    ),
    (
        "history default outside parent",
        lambda: State("root", State("a", History("h", "b"), State("a1"), initial="a1"), State("b"), initial="a"),
        HistoryStateError, "h", "not inside",
    ),
    (
        "target is the root",
        lambda: State("root", State("a", transitions=[on("reset", "root")]), initial="a"),
        InvalidTransitionError, "a", "root",
    ),
    (
        "final state as a parallel region",
        lambda: State("root", Parallel("p", State("r1"), Final("f")), initial="p"),
        FinalStateTransitionError, "f", "region",
    ),
    (
        "timer event names are reserved",
        lambda: State("root", State("a", transitions=[on("after.a.0", "a")]), initial="a"),
        InvalidTransitionError, "a", "reserved",
    ),
    (
        "parallel with initial",
        lambda: State("root", Parallel("p", State("r1"), initial="r1"), initial="p"),
        InvalidInitialError, "p", "parallel",
    ),
]


@pytest.mark.parametrize(("label", "build", "error", "state", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_definition_raises_named_error(label, build, error, state, words) -> None:
    with pytest.raises(error) as info:
        Chart("bad", build())
    assert isinstance(info.value, ChartDefinitionError)
    assert info.value.state == state
    assert repr(state) in str(info.value)
    assert words in str(info.value)


def test_valid_chart_compiles_in_document_order() -> None:
    chart = Chart(
        "ok",
        State("root", State("a", State("a1"), initial="a1", transitions=[on("x", "b")]), State("b"), initial="a"),
    )
    assert [n.id for n in chart] == ["root", "a", "a1", "b"]
    assert chart["a1"].is_descendant_of(chart["root"])
    assert chart.configuration_problems({"root", "a", "a1"}) == []
    assert chart.configuration_problems({"root", "a", "b"}) == [
        "compound 'a' has 0 active children []",
        "compound 'root' has 2 active children ['a', 'b']",
    ]


def _nest(initial: object, extra: tuple[State | History, ...] = ()) -> State:
    return State(
        "root",
        State(
            "cell",
            *extra,
            Parallel(
                "p",
                State("r1", State("x1"), State("x2"), initial="x1"),
                State("r2", State("y1"), initial="y1"),
            ),
            initial=initial,  # type: ignore[arg-type]
        ),
        State("elsewhere"),
        initial="cell",
    )


BAD_INITIALS = [
    ("not a descendant", lambda: _nest("elsewhere"), InitialNotDescendantError, "cell", "not a child"),
    ("itself", lambda: _nest("cell"), InitialNotDescendantError, "cell", "descendant"),
    ("same region", lambda: _nest(("x1", "x2")), InitialConflictError, "cell", "one region"),
    ("one contains the other", lambda: _nest(("r1", "x2")), InitialConflictError, "cell", "contains"),
    ("named twice", lambda: _nest(("x1", "x1")), InitialConflictError, "cell", "twice"),
    ("a history and a state", lambda: _nest(("h", "y1"), (History("h", "p"),)), InitialHistoryError, "cell",
     "named alone"),
    ("its history, no default", lambda: _nest("h", (History("h"),)), HistoryStateError, "h", "give it a default"),
    ("not ids", lambda: _nest(3), InvalidInitialError, "cell", "state id"),
    ("empty tuple", lambda: _nest(()), MissingInitialError, "cell", "needs an initial"),
]


@pytest.mark.parametrize(("label", "build", "error", "state", "words"), BAD_INITIALS, ids=[c[0] for c in BAD_INITIALS])
def test_bad_initial_targets_raise_named_errors(label, build, error, state, words) -> None:
    """SCXML 3.3: `initial` MUST name descendants of the state forming a legal state
    specification (3.11: at most one active child per compound state); a history is no state."""
    with pytest.raises(error) as info:
        Chart("bad", build())
    assert isinstance(info.value, ChartDefinitionError)
    assert info.value.state == state and repr(state) in str(info.value)
    assert words in str(info.value)


def test_transition_targets_that_cannot_be_active_together_are_rejected() -> None:
    """SCXML 3.5/3.11: a transition's `target` MUST be a legal state specification."""
    with pytest.raises(InvalidTransitionError, match="one region") as info:
        Chart("bad", State("root", State("a", transitions=[on("go", ("b", "c"))]), State("b"), State("c"),
                           initial="a"))
    assert info.value.state == "a"


def test_deep_history_default_must_lie_inside_its_parent() -> None:
    """SCXML 3.10.2: the default transition's targets are descendants of the history's parent."""
    bad = State("root", State("a", History("h", "b", deep=True), State("a1"), initial="a1"), State("b"), initial="a")
    with pytest.raises(HistoryStateError, match="not inside") as info:
        Chart("bad", bad)
    assert info.value.state == "h"


def test_donedata_must_be_callable() -> None:
    """SCXML 5.5: donedata is an expression of the data model; ours a function of the context."""
    with pytest.raises(InvalidDoneDataError, match="not callable") as info:
        Chart("bad", State("root", State("a"), Final("end", donedata=42), initial="a"))  # type: ignore[arg-type]
    assert info.value.state == "end"


def test_a_transition_without_history_targets_knows_its_domain_when_compiled() -> None:
    """SCXML 3.13 getTransitionDomain, fixed unless a target is a history (then computed when taken)."""
    chart = Chart(
        "domains",
        State(
            "root",
            State("p", History("h"), State("a", transitions=[on("x", "b"), on("out", "q"), on("stay")]),
                  State("b"), initial="a", transitions=[on("in", "b", internal=True), on("back", "h")]),
            State("q", transitions=[on("resume", "h")]),
            initial="p",
        ),
    )
    x, out, stay = chart["a"].transitions
    internal, back = chart["p"].transitions
    assert (x.domain, out.domain, stay.domain, internal.domain) == (chart["p"], chart["root"], None, chart["p"])
    assert not any(e.has_history for e in (x, out, stay, internal))
    assert back.has_history and back.domain is None and chart["q"].transitions[0].has_history


def test_an_in_guard_naming_no_state_is_refused_where_it_is_written() -> None:
    """SCXML 5.9.1: In(stateID) names a state of the document; a typo would be a guard that never holds."""
    with pytest.raises(UnknownTargetError, match=r"state 'a': guard In\('nowhere'\) names unknown state"):
        Chart("typo", State("root", State("a", transitions=[on("go", "b", guard=In("nowhere"))]), State("b"),
                            initial="a"))
