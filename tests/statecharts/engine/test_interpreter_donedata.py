"""`interpreter`, done data (SCXML 3.7, 5.5): a final state's `donedata(ctx)` travels on its
`done.state.<parent>` event."""

from __future__ import annotations

from typing import Any

from statecharts.engine import (
    DONE_STATE,
    ERROR_EXECUTION,
    ActionContext,
    Chart,
    Event,
    ExecutionFailure,
    Final,
    Parallel,
    State,
    VirtualClock,
    done_state,
    on,
    running,
)

from ..helpers import interpreter


def record(ctx: ActionContext, event: Event) -> None:
    ctx.data["seen"].append((event.name, event.data))


def test_done_event_carries_the_final_states_donedata_evaluated_after_its_entry_actions() -> None:
    """SCXML 3.7 <final>: on entry the processor generates done.state.<parent id> "with
    _event.data set to the value of <donedata>"; 5.5: <donedata> is evaluated then, so it sees
    what the final state's own onentry did (Appendix D, enterStates)."""

    def stamp(ctx: ActionContext, event: Event) -> None:
        ctx.data["bin"] = "B7"

    chart = Chart(
        "donedata",
        State(
            "root",
            State(
                "stow",
                State("placing", transitions=[on("placed", "stowed")]),
                Final("stowed", on_entry=stamp, donedata=lambda ctx: {"bin": ctx.data["bin"], "ok": True}),
                initial="placing",
                transitions=[on(done_state("stow"), "idle", action=record)],
            ),
            State("idle"),
            initial="stow",
        ),
    )
    data: dict[str, Any] = {"seen": []}
    interp, _, _ = interpreter(chart, data)
    interp.process(Event("placed"))
    assert interp.is_active("idle")
    assert data["seen"] == [("done.state.stow", {"bin": "B7", "ok": True})]


def test_failing_donedata_raises_error_execution_first_and_the_done_event_has_no_data() -> None:
    """SCXML 5.5/5.6 (and W3C tests 343/528): if evaluating <donedata> fails, the processor
    places error.execution in the internal queue, then the done event goes with empty data."""

    def broken(ctx: ActionContext) -> Any:
        raise LookupError("no bin")

    chart = Chart(
        "broken",
        State(
            "root",
            State(
                "s0",
                State("s01", transitions=[on("go", "s02")]),
                Final("s02", donedata=broken),
                initial="s01",
                transitions=[on(ERROR_EXECUTION, action=record), on(done_state("s0"), "end", action=record)],
            ),
            State("end"),
            initial="s0",
        ),
    )
    data: dict[str, Any] = {"seen": []}
    interp, rec, _ = interpreter(chart, data)
    interp.process(Event("go"))
    (error, payload), done = data["seen"]
    assert error == "error.execution" and isinstance(payload, ExecutionFailure)
    assert payload.state == "s02" and "donedata broken" in payload.where and isinstance(payload.error, LookupError)
    assert done == ("done.state.s0", None)
    assert interp.is_active("end")
    assert "donedata broken" in rec.of_kind("error")[0].detail


def test_each_region_done_event_has_its_data_and_the_parallel_done_event_none() -> None:
    """SCXML 3.7: done.state.<region> carries the final's donedata; the parallel state's own
    done.state.<id>, raised when every region is final (3.4), has no data."""
    chart = Chart(
        "regions",
        State(
            "root",
            Parallel(
                "p",
                State("r1", State("a", transitions=[on("fa", "a_end")]), Final("a_end", donedata=lambda c: 1),
                      initial="a"),
                State("r2", State("b", transitions=[on("fb", "b_end")]), Final("b_end", donedata=lambda c: 2),
                      initial="b"),
                transitions=[on(DONE_STATE, internal=True, action=record)],
            ),
            initial="p",
        ),
    )
    data: dict[str, Any] = {"seen": []}
    interp, _, _ = interpreter(chart, data)
    interp.process(Event("fa"))
    interp.process(Event("fb"))
    assert data["seen"] == [("done.state.r1", 1), ("done.state.r2", 2), ("done.state.p", None)]


def test_top_level_final_donedata_is_the_charts_result() -> None:
    """SCXML 3.7: a top-level <final> ends the session, and its <donedata> is what the session
    returns (Appendix D, exitInterpreter: returnDoneEvent(s.donedata)); ours keeps it as
    `done_data` on the interpreter and the runner."""
    chart = Chart(
        "result",
        State(
            "root",
            State("work", transitions=[on("finish", "end")]),
            Final("end", donedata=lambda ctx: ("stowed", ctx.data)),
            initial="work",
        ),
    )

    async def main() -> tuple[str | None, Any]:
        async with running(chart, data=42) as runner:
            assert runner.done_data is None
            runner.post("finish")
            await runner.finished.wait()
            return runner.final, runner.done_data

    assert VirtualClock().run(main) == ("end", ("stowed", 42))
