"""`events`: the names the engine reserves, spelt once, and the helpers that build them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import statecharts
from statecharts.engine import (
    DONE_STATE,
    ERROR,
    ERROR_ACTIVITY,
    ERROR_EXECUTION,
    INIT,
    TIMER_PREFIX,
    Chart,
    Event,
    Final,
    InvalidTransitionError,
    State,
    after,
    done_state,
    on,
)
from statecharts.engine.events import done_state_id, is_timer_event, timer_event

from ..helpers import interpreter

PACKAGE = Path(statecharts.__file__).parent
RESERVED = ("done.state", "error.execution", "error.activity", "after.")


def test_the_reserved_names_are_scxmls() -> None:
    """SCXML 3.7 (done.state.<id>), 5.10/B.2 (error.execution), ours: error.activity, after.<id>.<n>."""
    assert (INIT, ERROR, ERROR_EXECUTION, ERROR_ACTIVITY, DONE_STATE, TIMER_PREFIX) == (
        "init", "error", "error.execution", "error.activity", "done.state", "after"
    )
    assert done_state("cycle") == "done.state.cycle"
    assert done_state_id("done.state.cycle") == "cycle" and done_state_id("done.statex") is None
    assert timer_event("insert", 0) == "after.insert.0"
    assert is_timer_event("after.insert.0") and not is_timer_event("afterwards")


def test_compiled_timers_use_the_timer_names() -> None:
    chart = Chart("t", State("root", State("a", transitions=[after(1, "b"), after(2, "b"), after(1, "a")]), State("b"),
                             initial="a"))
    assert chart["a"].timers == [(1.0, timer_event("a", 0)), (2.0, timer_event("a", 1))]


@pytest.mark.parametrize("descriptor", [TIMER_PREFIX, timer_event("a", 0), f"{TIMER_PREFIX}.*"])
def test_a_chart_cannot_write_a_timers_name(descriptor: str) -> None:
    with pytest.raises(InvalidTransitionError, match="reserved"):
        Chart("t", State("root", State("a", transitions=[on(descriptor, "a")]), initial="a"))


def test_entry_actions_see_init_on_start() -> None:
    seen: list[str] = []
    chart = Chart("i", State("root", State("a", on_entry=lambda ctx, ev: seen.append(ev.name)), initial="a"))
    interpreter(chart)
    assert seen == [INIT]


def test_done_state_names_the_event_the_interpreter_raises() -> None:
    seen: list[Event] = []
    chart = Chart(
        "d",
        State(
            "root",
            State("c", State("work", transitions=[on("go", "end")]), Final("end"), initial="work",
                  transitions=[on(done_state("c"), action=lambda ctx, ev: seen.append(ev))]),
            initial="c",
        ),
    )
    interp, _, _ = interpreter(chart)
    interp.process(Event("go"))
    assert [e.name for e in seen] == [done_state("c")]


def _string_constants(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module, docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)
    }
    return [
        (n.lineno, n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    ]


@pytest.mark.parametrize(
    "module",
    sorted(p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / "engine").glob("*.py") if p.name != "events.py"),
)
def test_no_engine_module_spells_a_reserved_name_itself(module: str) -> None:
    """Each reserved name is written once, in events.py; the rest of the engine uses its constants."""
    found = [(line, s) for line, s in _string_constants(PACKAGE / module) if s.startswith(RESERVED)]
    assert found == []
