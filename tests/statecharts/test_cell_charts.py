"""The cell's charts (stow, pick, band, cell) against a scripted workcell, on virtual time."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import pytest

from cellctl.commands.chart import ScriptedEvent, simulate
from planning.retry import FailureKind
from statecharts import catalog, cell, pick, stow
from statecharts.engine import ChartRunner, TraceRecord, TraceRecorder, VirtualClock
from statecharts.engine.check import check
from statecharts.tasks import GUARDED, Starved, Step, TaskConfig, TaskKind, run_task
from statecharts.workcell import (
    Eligibility,
    EligibilityClass,
    Motion,
    MotionOutcome,
    MotionResult,
    PickPlan,
    Primitive,
    StowPlan,
    TaskOutcome,
    TaskReport,
)

from .fake_workcell import FakeWorkcell, candidate, item, order, stow_option

T = TypeVar("T")
Out = MotionOutcome
P = Primitive


def vrun(fn: Callable[[], Awaitable[T]]) -> T:
    return VirtualClock().run(fn)


def task(kind: TaskKind, wc: FakeWorkcell, config: TaskConfig | None = None) -> TaskReport | Starved:
    async def main() -> TaskReport | Starved:
        return await run_task(kind, wc, task_id=f"{kind}-000000", config=config)

    return vrun(main)


def assert_motions_guarded(wc: FakeWorkcell) -> None:
    assert wc.motions
    for motion in wc.motions:
        assert motion.timeout_s > 0
        if motion.primitive in GUARDED:
            assert motion.force_limit_n is not None, motion


# -- stow ----------------------------------------------------------------------------------------------------


def test_clean_stow_calls_the_port_in_order() -> None:
    wc = FakeWorkcell(items=[item()], stow_plans=[StowPlan(options=(stow_option("A1"),))])
    report = task("stow", wc)
    assert isinstance(report, TaskReport)
    assert (report.outcome, report.item_id, report.bin_id, report.attempts) == (TaskOutcome.DONE, "item-1", "A1", 1)
    assert report.task_id == "stow-000000" and report.ended_s > report.started_s
    assert wc.names() == [
        "next_item", "move grasp", "plan_stow", "hook down", "move approach", "move eject_item", "move retract",
        "hook up", "verify_stow A1", "report done",
    ]  # fmt: skip
    assert wc.reports == [report]
    assert_motions_guarded(wc)


def test_stow_with_a_sweep_extends_the_blade_and_sweeps_under_the_plans_limit() -> None:
    wc = FakeWorkcell(items=[item()], stow_plans=[StowPlan(options=(stow_option("A1", sweep=True),))])
    report = task("stow", wc)
    assert isinstance(report, TaskReport) and report.outcome is TaskOutcome.DONE
    moves = [n for n in wc.names() if n.startswith("move")]
    assert moves == [
        "move grasp", "move approach", "move extend_blade", "move sweep", "move eject_item", "move retract"
    ]  # fmt: skip
    sweep = next(m for m in wc.motions if m.primitive is P.SWEEP)
    assert sweep.force_limit_n == 25
    assert_motions_guarded(wc)


def test_force_limit_on_approach_tries_the_next_placement() -> None:
    plan = StowPlan(options=(stow_option("A1", 0), stow_option("A1", 1), stow_option("B2", 0)))
    wc = FakeWorkcell(items=[item()], stow_plans=[plan])
    wc.script(P.APPROACH, Out.FORCE_LIMIT)
    report = task("stow", wc)
    assert isinstance(report, TaskReport)
    assert (report.outcome, report.bin_id, report.attempts) == (TaskOutcome.DONE, "A1", 2)
    approaches = [m for m in wc.motions if m.primitive is P.APPROACH]
    assert len(approaches) == 2
    # the failed attempt retracted and let the band close before the next one
    names = wc.names()
    first = names.index("move approach")
    assert names[first + 1 : first + 4] == ["move retract", "hook up", "hook down"]
    assert names.count("plan_stow") == 1


def test_repeated_failures_hand_off_with_the_policys_reason() -> None:
    plan = StowPlan(options=(stow_option("A1", 0), stow_option("A1", 1)))
    wc = FakeWorkcell(items=[item()], stow_plans=[plan])
    wc.script(P.APPROACH, Out.FORCE_LIMIT, Out.FORCE_LIMIT)
    report = task("stow", wc)
    assert isinstance(report, TaskReport)
    assert report.outcome is TaskOutcome.HANDOFF
    assert report.reason == "contact_force, no untried placement left in A1: no untried bin left (1 tried)"
    assert report.attempts == 2
    assert wc.names()[-1] == "report handoff"


def test_next_bin_replans_excluding_the_tried_bins() -> None:
    wc = FakeWorkcell(
        items=[item()],
        stow_plans=[
            StowPlan(options=(stow_option("A1", 0), stow_option("B2", 0))),
            StowPlan(options=(stow_option("B2", 0, sweep=True),)),  # a fresh look at B2
        ],
    )
    wc.script(P.APPROACH, Out.FORCE_LIMIT)
    report = task("stow", wc)
    assert isinstance(report, TaskReport)
    assert (report.outcome, report.bin_id, report.attempts) == (TaskOutcome.DONE, "B2", 2)
    assert [n for n in wc.names() if n.startswith("plan_stow")] == ["plan_stow", "plan_stow A1"]
    assert "move sweep" in wc.names()  # the re-planned option was used


def test_failed_verification_retries_then_hands_off_on_a_suspected_tool_fault() -> None:
    wc = FakeWorkcell(items=[item()], verifications=[False, False])
    report = task("stow", wc)
    assert isinstance(report, TaskReport)
    assert report.outcome is TaskOutcome.HANDOFF
    assert "eject_failed 2 times in a row" in report.reason


def test_no_placement_hands_off_with_the_plans_reason() -> None:
    wc = FakeWorkcell(items=[item()], stow_plans=[StowPlan(reason="pod full")])
    report = task("stow", wc)
    assert isinstance(report, TaskReport)
    assert (report.outcome, report.reason) == (TaskOutcome.HANDOFF, "no placement: pod full")
    assert "hook down" not in wc.names()


def test_suction_lost_hands_off() -> None:
    wc = FakeWorkcell(items=[item()])
    wc.script(P.EJECT_ITEM, Out.SUCTION_LOST)
    report = task("stow", wc)
    assert isinstance(report, TaskReport)
    assert report.outcome is TaskOutcome.HANDOFF and report.reason.startswith("suction_lost")


@pytest.mark.parametrize("outcome", [Out.FAULT, Out.TIMEOUT, Out.UNAVAILABLE])
def test_robot_fault_retracts_then_reports_fault(outcome: MotionOutcome) -> None:
    wc = FakeWorkcell(items=[item()])
    wc.script(P.APPROACH, outcome)
    report = task("stow", wc)
    assert isinstance(report, TaskReport)
    assert report.outcome is TaskOutcome.FAULT
    assert report.reason.startswith(f"approach {outcome.value}")
    names = wc.names()
    assert names[names.index("move approach") + 1 :] == ["move retract", "hook up", "report fault"]


def test_hook_failure_ends_the_attempt_before_any_approach() -> None:
    wc = FakeWorkcell(items=[item()])
    wc.hook_outcomes.append(Out.FAULT)
    report = task("stow", wc)
    assert isinstance(report, TaskReport)
    assert report.outcome is TaskOutcome.FAULT and "band hook down failed: fault" in report.reason
    assert "move approach" not in wc.names()
    assert wc.names()[-3:] == ["move retract", "hook up", "report fault"]


def test_starved_after_the_configured_number_of_empty_waits() -> None:
    wc = FakeWorkcell()
    result = task("stow", wc, TaskConfig(starve_limit=2, arrival_timeout_s=5))
    assert result == Starved("stow", "stow-000000", 2)
    assert wc.names() == ["next_item", "next_item"] and not wc.reports


# -- pick ----------------------------------------------------------------------------------------------------


def test_clean_pick() -> None:
    wc = FakeWorkcell(orders=[order()], pick_plan=PickPlan(candidates=(candidate(0, release=True),)))
    report = task("pick", wc)
    assert isinstance(report, TaskReport)
    assert (report.outcome, report.item_id, report.bin_id, report.attempts) == (TaskOutcome.DONE, "item-1", "A1", 1)
    assert wc.names() == [
        "next_order", "check_pick", "plan_pick", "hook down", "move approach", "move attach", "move extract",
        "move place", "move release", "hook up", "report done",
    ]  # fmt: skip
    assert_motions_guarded(wc)


def test_ineligible_target_hands_off_naming_the_class() -> None:
    blocked = Eligibility(eligible=False, cls=EligibilityClass.BLOCKED, detail="behind item-7")
    wc = FakeWorkcell(orders=[order()], eligibility=blocked)
    report = task("pick", wc)
    assert isinstance(report, TaskReport)
    assert (report.outcome, report.reason) == (TaskOutcome.HANDOFF, "target blocked: behind item-7")
    assert not wc.motions


def test_no_vacuum_on_candidate_0_tries_candidate_1() -> None:
    wc = FakeWorkcell(orders=[order()])
    wc.script(P.ATTACH, Out.NO_VACUUM)
    report = task("pick", wc)
    assert isinstance(report, TaskReport)
    assert (report.outcome, report.attempts) == (TaskOutcome.DONE, 2)
    names = wc.names()
    assert names[names.index("move attach") + 1] == "move retract"
    assert names.count("move attach") == 2 and names.count("hook down") == 2


def test_suction_lost_on_every_candidate_hands_off() -> None:
    wc = FakeWorkcell(orders=[order()])
    wc.script(P.EXTRACT, Out.SUCTION_LOST, Out.SUCTION_LOST)
    report = task("pick", wc)
    assert isinstance(report, TaskReport)
    assert report.outcome is TaskOutcome.HANDOFF
    assert report.reason == "suction_lost: all 2 suction candidates tried"
    assert report.attempts == 2


def test_empty_pick_plan_hands_off() -> None:
    wc = FakeWorkcell(orders=[order()], pick_plan=PickPlan(reason="target not segmented"))
    report = task("pick", wc)
    assert isinstance(report, TaskReport)
    assert (report.outcome, report.reason) == (TaskOutcome.HANDOFF, "no suction candidate: target not segmented")


# -- no report lost ------------------------------------------------------------------------------------------


def test_a_cancelled_task_still_delivers_an_interrupted_report() -> None:
    wc = FakeWorkcell(items=[item()], move_s=5.0)

    async def main() -> None:
        with anyio.move_on_after(4.0):  # mid-grasp
            await run_task("stow", wc, task_id="stow-000042")

    vrun(main)
    assert len(wc.reports) == 1
    report = wc.reports[0]
    assert (report.task_id, report.outcome, report.item_id) == ("stow-000042", TaskOutcome.FAULT, "item-1")
    assert report.reason.startswith("interrupted: task stow-000042 cancelled")


def test_a_task_cancelled_before_taking_anything_reports_nothing() -> None:
    wc = FakeWorkcell()

    async def main() -> None:
        with anyio.move_on_after(1.0):
            await run_task("pick", wc, task_id="pick-000001")

    vrun(main)
    assert wc.reports == []


# -- cell ----------------------------------------------------------------------------------------------------


def cell_session(
    wc: FakeWorkcell,
    script: Callable[[ChartRunner, FakeWorkcell], Awaitable[None]],
    *,
    task: cell.TaskMix = "stow",
    max_cycles: int | None = None,
    trace: TraceRecorder | None = None,
    fault_repeat: cell.FaultRepeat | None = None,
) -> cell.CellData:
    hooks = (trace,) if trace else ()
    data = cell.CellData(wc, task=task, max_cycles=max_cycles, trace_hooks=hooks, fault_repeat=fault_repeat)

    async def main() -> None:
        runner = ChartRunner(cell.build(), data=data, trace=hooks)
        async with anyio.create_task_group() as tg:
            await tg.start(runner.run)
            with anyio.fail_after(100_000):
                await script(runner, wc)
            tg.cancel_scope.cancel()

    vrun(main)
    return data


async def start(runner: ChartRunner) -> None:
    await runner.wait_for("stopped")
    runner.post("cmd.reset")
    await runner.wait_for("idle")
    runner.post("cmd.start")
    await runner.wait_for("execute")


def test_cell_runs_n_cycles_to_complete_with_counts() -> None:
    wc = FakeWorkcell(items=[item(1), item(2), item(3)], verifications=[True, False, False, True])

    async def script(runner: ChartRunner, wc: FakeWorkcell) -> None:
        await start(runner)
        await runner.wait_for("complete")

    data = cell_session(wc, script, max_cycles=3)
    assert data.cycles == 3 and data.seq == 3
    assert dict(data.counts) == {"done": 2, "handoff": 1}
    assert [r.task_id for r in wc.reports] == ["stow-000000", "stow-000001", "stow-000002"]
    assert list(data.reports) == wc.reports


def test_cell_mixed_alternates_stow_and_pick() -> None:
    wc = FakeWorkcell(items=[item(1), item(2)], orders=[order(1), order(2)])

    async def script(runner: ChartRunner, wc: FakeWorkcell) -> None:
        await start(runner)
        await runner.wait_for("complete")

    data = cell_session(wc, script, task="mixed", max_cycles=4)
    assert [(r.task, r.outcome.value) for r in data.reports] == [("stow", "done"), ("pick", "done")] * 2
    assert [r.task_id for r in data.reports] == ["stow-000000", "pick-000001", "stow-000002", "pick-000003"]


def test_hold_mid_attempt_pauses_the_task_and_unhold_resumes_it_with_a_fresh_plan() -> None:
    """Issue 14, point 8: a hold pauses the task (arm retracted, band closed, no report) and unhold resumes the
    same task through its chart's history; held mid-attempt it plans again (the pod may have moved)."""
    wc = FakeWorkcell(items=[item(1), item(2)], move_s=3.0)

    async def script(runner: ChartRunner, wc: FakeWorkcell) -> None:
        await start(runner)
        await wc.called("move approach")
        runner.post("cmd.hold")
        await runner.wait_for("held")
        names = wc.names()
        held_at = names.index("move approach") + 1
        assert names[held_at:] == ["move retract", "hook up"]  # made safe, nothing reported
        assert wc.reports == []
        runner.post("cmd.unhold")
        await runner.wait_for("execute")
        await runner.wait_for("complete")
        resumed = wc.names()[held_at + 2 :]
        assert resumed[:2] == ["plan_stow", "hook down"], resumed  # the same item: planned again, not taken again
        assert "next_item" not in resumed

    data = cell_session(wc, script, max_cycles=1)
    assert [(r.task_id, r.item_id, r.outcome.value) for r in wc.reports] == [("stow-000000", "item-1", "done")]
    assert dict(data.counts) == {"done": 1} and (data.cycles, data.interrupted) == (1, 0)


def test_hold_while_waiting_resumes_the_wait_and_no_task_starts_while_held() -> None:
    """A hold outside an attempt resumes the phase it was in (shallow history: the wait waits again)."""
    wc = FakeWorkcell(items=[], orders=[])

    async def script(runner: ChartRunner, wc: FakeWorkcell) -> None:
        await start(runner)
        await wc.called("next_item")
        runner.post("cmd.hold")
        await runner.wait_for("held")
        waits = wc.names().count("next_item")
        await anyio.sleep(60)  # held: no wait, no new task
        assert wc.names().count("next_item") == waits and wc.names()[-2:] == ["move retract", "hook up"]
        wc.items.append(item(7))
        runner.post("cmd.unhold")
        await runner.wait_for("complete")

    data = cell_session(wc, script, max_cycles=1)
    assert [(r.task_id, r.item_id, r.outcome.value) for r in wc.reports] == [("stow-000000", "item-7", "done")]
    assert data.seq == 1


def test_stop_while_held_reports_the_paused_task_interrupted_and_the_next_run_is_not_held() -> None:
    wc = FakeWorkcell(items=[item(1), item(2)], move_s=3.0)

    async def script(runner: ChartRunner, wc: FakeWorkcell) -> None:
        await start(runner)
        await wc.called("move approach")
        runner.post("cmd.hold")
        await runner.wait_for("held")
        runner.post("cmd.stop")
        await runner.wait_for("stopped")
        assert wc.reports[-1].reason.startswith("interrupted: task stow-000000 cancelled (item item-1, bin A1)")
        await start(runner)
        await runner.wait_for("complete")

    cell_session(wc, script, max_cycles=1)
    assert [(r.task_id, r.outcome.value) for r in wc.reports] == [("stow-000000", "fault"), ("stow-000001", "done")]


def test_interlock_trip_aborts_halts_and_clear_returns_to_stopped() -> None:
    wc = FakeWorkcell(items=[item(1)], move_s=3.0)

    async def script(runner: ChartRunner, wc: FakeWorkcell) -> None:
        await start(runner)
        await anyio.sleep(5)
        wc.set_interlocks(False, "door open")
        await runner.wait_for("aborted")
        assert "halt" in wc.names()
        assert wc.reports[-1].outcome is TaskOutcome.FAULT and wc.reports[-1].reason.startswith("interrupted")
        wc.set_interlocks(True)
        runner.post("cmd.clear")
        await runner.wait_for("stopped")

    data = cell_session(wc, script)
    assert data.stop_reason == "interlock: door open"


def test_abort_command_and_stop_command() -> None:
    wc = FakeWorkcell()

    async def script(runner: ChartRunner, wc: FakeWorkcell) -> None:
        await start(runner)
        runner.post("cmd.stop")
        await runner.wait_for("stopped")
        assert wc.names()[-2:] == ["move retract", "hook up"]
        await start(runner)
        runner.post("cmd.abort")
        await runner.wait_for("aborted")
        runner.post("cmd.clear")
        await runner.wait_for("stopped")

    cell_session(wc, script)
    assert wc.names().count("halt") == 1


def test_starved_task_suspends_and_unsuspend_resumes() -> None:
    wc = FakeWorkcell()

    async def script(runner: ChartRunner, wc: FakeWorkcell) -> None:
        await start(runner)
        await runner.wait_for("suspended")
        wc.items.append(item(9))
        runner.post("cmd.unsuspend")
        await runner.wait_for("complete")

    data = cell_session(wc, script, max_cycles=1)
    assert data.last_starved == Starved("stow", "stow-000000", 3)
    assert [r.task_id for r in data.reports] == ["stow-000001"]


# -- determinism, trace, static check, catalog --------------------------------------------------------------


def _traced_session() -> list[TraceRecord]:
    trace = TraceRecorder()
    wc = FakeWorkcell(items=[item(1), item(2)], orders=[order(1)], verifications=[False])
    wc.script(P.ATTACH, Out.NO_VACUUM)

    async def script(runner: ChartRunner, wc: FakeWorkcell) -> None:
        await start(runner)
        await runner.wait_for("complete")

    cell_session(wc, script, task="mixed", max_cycles=3, trace=trace)
    return trace.records


def test_same_inputs_same_trace_covering_cell_and_tasks() -> None:
    first, second = _traced_session(), _traced_session()
    assert first == second
    assert {r.chart for r in first} == {"cell", "stow", "pick"}


@pytest.mark.parametrize("name", ["cell", "stow", "pick"])
def test_charts_have_no_static_findings(name: str) -> None:
    assert check(catalog.load(name)) == []


@pytest.mark.parametrize(
    ("name", "events", "final_state"),
    [("cell", ["0:cmd.reset", "1:cmd.start"], "suspended"), ("stow", [], "starved"), ("pick", [], "starved")],
)
def test_chart_simulate_runs_against_the_idle_workcell(name: str, events: list[str], final_state: str) -> None:
    entry = catalog.entry(name)
    trace = TraceRecorder()
    simulate(entry.build(), entry.data(), [ScriptedEvent.parse(e) for e in events], 500, trace)
    entered = [r.state for r in trace.of_kind("entry", "final")]
    assert final_state in entered


def test_task_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="starve_limit"):
        TaskConfig(starve_limit=0)
    with pytest.raises(ValueError, match="hook_timeout_s"):
        TaskConfig(hook_timeout_s=0)
    with pytest.raises(ValueError, match="band_timeout_s"):
        TaskConfig(band_timeout_s=0)


@pytest.mark.parametrize("kind", ["stow", "pick"])
def test_the_arm_waits_band_timeout_s_for_the_band_then_ends_the_attempt_as_a_fault(kind: TaskKind) -> None:
    wc = FakeWorkcell(items=[item()], orders=[order()], stow_plans=[StowPlan(options=(stow_option("A1"),))])
    report = task(kind, wc, TaskConfig(band_timeout_s=0.2))  # the fake hook takes 0.5 s to come down
    assert isinstance(report, TaskReport) and report.outcome is TaskOutcome.FAULT
    assert report.reason == "band not held in time" and "move approach" not in wc.names()
    assert stow.build(TaskConfig(band_timeout_s=0.2))["arm_wait_band"].transitions[1].delay == 0.2
    assert pick.build()["arm_wait_band"].transitions[1].delay == 30.0  # the default


def test_unknown_task_kind() -> None:
    with pytest.raises(ValueError, match="unknown task kind"):
        task("sort", FakeWorkcell())  # type: ignore[arg-type]


def test_a_guarded_step_without_a_limit_gets_the_configured_default() -> None:
    option = stow_option("A1")
    bare = tuple(m.model_copy(update={"force_limit_n": None}) for m in option.steps)
    wc = FakeWorkcell(items=[item()], stow_plans=[StowPlan(options=(option.model_copy(update={"steps": bare}),))])
    report = task("stow", wc, TaskConfig(default_force_limit_n=33))
    assert isinstance(report, TaskReport) and report.outcome is TaskOutcome.DONE
    assert next(m for m in wc.motions if m.primitive is P.APPROACH).force_limit_n == 33
    assert_motions_guarded(wc)


def test_a_report_that_hangs_is_bounded_and_sent_again() -> None:
    wc = FakeWorkcell(items=[item()])
    wc.report_hangs = 1
    report = task("stow", wc)
    assert isinstance(report, TaskReport) and report.outcome is TaskOutcome.DONE
    assert wc.names()[-2:] == ["report done", "report done"]  # same report (same task id): the outbox dedups
    assert wc.reports == [report]


def test_pick_robot_fault_retracts_and_reports_fault() -> None:
    wc = FakeWorkcell(orders=[order()])
    wc.script(P.EXTRACT, Out.FAULT)
    report = task("pick", wc)
    assert isinstance(report, TaskReport)
    assert report.outcome is TaskOutcome.FAULT and report.reason == "extract fault (code 17)"
    assert wc.names()[-3:] == ["move retract", "hook up", "report fault"]


@pytest.mark.parametrize(
    ("outcome", "kind"),
    [
        (Out.NO_VACUUM, FailureKind.VACUUM_NOT_REACHED),
        (Out.SUCTION_LOST, FailureKind.SUCTION_LOST),
        (Out.SCENE_CHANGED, FailureKind.ITEM_SLIPPED),
        (Out.FORCE_LIMIT, FailureKind.CONTACT_FORCE),
        (Out.FAULT, None),
    ],
)
def test_pick_failure_mapping(outcome: MotionOutcome, kind: FailureKind | None) -> None:
    step = Step(candidate(0).steps[2], MotionResult(outcome=outcome, elapsed_s=1))
    assert pick.pick_failure(step).kind == kind


@pytest.mark.parametrize(
    ("primitive", "outcome", "kind"),
    [
        (P.APPROACH, Out.FORCE_LIMIT, FailureKind.CONTACT_FORCE),
        (P.SWEEP, Out.FORCE_LIMIT, FailureKind.CONTACT_FORCE),
        (P.EJECT_ITEM, Out.FORCE_LIMIT, FailureKind.CONTACT_FORCE),  # met an item: the next placement
        (P.EJECT_ITEM, Out.SCENE_CHANGED, FailureKind.EJECT_FAILED),
        (P.EJECT_ITEM, Out.SUCTION_LOST, FailureKind.SUCTION_LOST),
        (P.APPROACH, Out.TIMEOUT, None),
        (P.RETRACT, Out.FORCE_LIMIT, None),
    ],
)
def test_stow_failure_mapping(primitive: Primitive, outcome: MotionOutcome, kind: FailureKind | None) -> None:
    step = Step(Motion(primitive=primitive, timeout_s=1), MotionResult(outcome=outcome, elapsed_s=1))
    assert stow.stow_failure(step).kind == kind


def test_the_same_fault_three_times_in_a_row_holds_the_cell_with_an_alarm_until_unhold() -> None:
    wc = FakeWorkcell(items=[item(n) for n in range(1, 6)])
    wc.outcomes[P.APPROACH] = deque([MotionOutcome.UNAVAILABLE] * 3)

    async def script(runner: ChartRunner, wc: FakeWorkcell) -> None:
        await start(runner)
        await runner.wait_for("held")
        assert [r.outcome.value for r in wc.reports] == ["fault"] * 3
        assert runner.interpreter.ctx.data.alarm.startswith("the same fault 3 times in a row: ")
        items_taken = wc.names().count("next_item")
        await anyio.sleep(120)  # held: no new item is taken
        assert wc.names().count("next_item") == items_taken
        runner.post("cmd.unhold")  # the operator acknowledges the alarm
        await runner.wait_for("complete")

    data = cell_session(wc, script, max_cycles=5, fault_repeat=cell.FaultRepeat(limit=3, window_s=600))
    assert data.alarm == ""
    assert dict(data.counts) == {"fault": 3, "done": 2}


def test_different_faults_or_a_success_between_them_do_not_hold() -> None:
    wc = FakeWorkcell(items=[item(n) for n in range(1, 6)])
    wc.outcomes[P.APPROACH] = deque([MotionOutcome.UNAVAILABLE, MotionOutcome.UNAVAILABLE, MotionOutcome.DONE,
                                     MotionOutcome.UNAVAILABLE, MotionOutcome.UNAVAILABLE])

    async def script(runner: ChartRunner, wc: FakeWorkcell) -> None:
        await start(runner)
        await runner.wait_for("complete")

    data = cell_session(wc, script, max_cycles=5, fault_repeat=cell.FaultRepeat(limit=3, window_s=600))
    assert dict(data.counts) == {"fault": 4, "done": 1} and data.alarm == ""


def test_fault_key_ignores_numbers() -> None:
    assert cell.fault_key("approach fault: stuck after 2.5 s") == cell.fault_key("approach fault: stuck after 3.2 s")
    assert cell.fault_key("approach fault (code 3): F/T stream stale: x") == \
        cell.fault_key("eject_item unavailable: F/T stream stale: x")
    assert cell.fault_key("approach fault: F/T stream stale") != cell.fault_key("approach fault: heartbeat lost")


def test_the_counters_are_totals_and_the_reports_kept_are_bounded() -> None:
    data = cell.CellData(FakeWorkcell())
    for n in range(cell.REPORTS_KEPT + 500):
        data.count(TaskReport(task_id=f"stow-{n:06d}", task="stow", outcome=TaskOutcome.HANDOFF,
                              reason="no_space: nothing fits", started_s=0.0, ended_s=1.0))
    assert data.cycles == cell.REPORTS_KEPT + 500 and data.counts["handoff"] == cell.REPORTS_KEPT + 500
    assert data.handoff_reasons == {"no_space": cell.REPORTS_KEPT + 500}
    assert len(data.reports) == cell.REPORTS_KEPT and data.reports[-1].task_id == f"stow-{cell.REPORTS_KEPT + 499:06d}"


def test_a_pick_held_mid_attempt_checks_its_target_again_on_unhold() -> None:
    """The pick chart resumes a held attempt at eligibility: the target may have moved with the pod."""
    wc = FakeWorkcell(orders=[order(1)], move_s=3.0)

    async def script(runner: ChartRunner, wc: FakeWorkcell) -> None:
        await start(runner)
        await wc.called("move approach")
        runner.post("cmd.hold")
        await runner.wait_for("held")
        held_at = len(wc.names())
        runner.post("cmd.unhold")
        await runner.wait_for("complete")
        assert wc.names()[held_at : held_at + 2] == ["check_pick", "plan_pick"]

    data = cell_session(wc, script, task="pick", max_cycles=1)
    assert [(r.task, r.outcome.value) for r in wc.reports] == [("pick", "done")] and data.interrupted == 0
