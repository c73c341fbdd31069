"""Building a chart validates it; each bad definition raises its named error."""

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
