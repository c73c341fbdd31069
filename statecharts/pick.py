"""`pick`: take one ordered item out of the pod by suction, with the band held open by the second arm.

    await_order -> eligibility -> plan -> attempt(arm || band) -> report -> reported
                                             ^        |
                                             +- decide (planning.retry: next candidate / handoff)

`attempt` runs the current suction candidate's steps: approach (guarded), attach (vacuum threshold),
extract (guarded and watched: suction, scene change, force), place (and release when the candidate has that
step); any failure retracts before the region ends, and the band region raises the hook after it. A robot
fault ends the task `fault`; an ineligible target or an empty plan is a handoff with the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field

from planning.retry import Action, FailureKind, PickAttempt, next_pick_action

from .engine import ActionContext, Chart, Event, State, always, on
from .task_actions import end_fault, end_with, perceive, record_fault
from .task_base import FATAL, Failure, Step, TaskConfig, TaskData, TaskKind, describe
from .task_chart import arm_region, arm_step, attempt_state, await_state, build_chart, decide_state, plan_state
from .workcell import Eligibility, Motion, MotionOutcome, PickCandidate, PickOrder, PickPlan, Primitive, TaskOutcome

__all__ = ["PickData", "build", "pick_failure"]


@dataclass
class PickData(TaskData):
    kind: TaskKind = "pick"
    order: PickOrder | None = None
    candidates: tuple[PickCandidate, ...] = ()
    index: int = 0  # the candidate being tried (position in `candidates`)
    history: list[PickAttempt] = field(default_factory=list)

    @property
    def taken(self) -> bool:
        return self.order is not None

    def subject(self) -> tuple[str, str]:
        return (self.order.item_id, self.order.bin_id) if self.order else ("", "")

    @property
    def candidate(self) -> PickCandidate:
        return self.candidates[self.index]

    def step(self, primitive: Primitive) -> Motion:
        steps = self.candidate.steps if self.candidates else ()
        for motion in steps:
            if motion.primitive is primitive:
                return motion
        return self.unplanned(primitive, f"suction candidate {self.index}")

    def failure_of(self, step: Step) -> Failure:
        return pick_failure(step)

    def remember(self, kind: FailureKind) -> None:
        self.history.append(PickAttempt(self.index, kind))


def pick_failure(step: Step) -> Failure:
    """Map a failed motion onto the retry policy's failure kinds (None: a fault, no retry)."""
    prim, outcome = step.motion.primitive, step.result.outcome
    reason = describe(step)
    if outcome in FATAL or prim is Primitive.RETRACT:
        return Failure(None, reason)
    kind = {
        MotionOutcome.NO_VACUUM: FailureKind.VACUUM_NOT_REACHED,
        MotionOutcome.SUCTION_LOST: FailureKind.SUCTION_LOST,
        MotionOutcome.FORCE_LIMIT: FailureKind.CONTACT_FORCE,
    }.get(outcome, FailureKind.ITEM_SLIPPED)  # scene changed: the item moved under the cup
    return Failure(kind, reason)


# -- activities ----------------------------------------------------------------------------------------------


def _check_pick(data: PickData) -> Awaitable[Eligibility]:
    assert data.order is not None
    return data.workcell.check_pick(data.order)


def _plan_pick(data: PickData) -> Awaitable[PickPlan]:
    assert data.order is not None
    return data.workcell.plan_pick(data.order)


check_pick = perceive("check_pick", _check_pick, "check.done", "check.timeout")
plan_pick = perceive("plan_pick", _plan_pick, "plan.ready", "plan.timeout")


# -- guards and actions --------------------------------------------------------------------------------------


def take_order(ctx: ActionContext, event: Event) -> None:
    ctx.data.order = event.data
    ctx.data.started_s = ctx.now()


def is_eligible(ctx: ActionContext, event: Event) -> bool:
    result: Eligibility = event.data
    return result.eligible


def ineligible(ctx: ActionContext, event: Event) -> None:
    result: Eligibility = event.data
    ctx.data.outcome = TaskOutcome.HANDOFF
    ctx.data.reason = f"target {result.cls.value}" + (f": {result.detail}" if result.detail else "")


def plan_has_candidate(ctx: ActionContext, event: Event) -> bool:
    plan: PickPlan = event.data
    return bool(plan.candidates)


def take_plan(ctx: ActionContext, event: Event) -> None:
    ctx.data.candidates = event.data.candidates
    ctx.data.index = 0


def no_plan(ctx: ActionContext, event: Event) -> None:
    plan: PickPlan = event.data
    ctx.data.outcome = TaskOutcome.HANDOFF
    ctx.data.reason = f"no suction candidate: {plan.reason or 'none found'}"


def has_release(ctx: ActionContext, event: Event) -> bool:
    return any(m.primitive is Primitive.RELEASE for m in ctx.data.candidate.steps)


def decide(ctx: ActionContext, event: Event) -> None:
    data: PickData = ctx.data
    data.decision = next_pick_action(data.history, len(data.candidates), data.config.budget)


def next_candidate(ctx: ActionContext, event: Event) -> bool:
    return ctx.data.decision is not None and ctx.data.decision.action is Action.NEXT_CANDIDATE


def handoff(ctx: ActionContext, event: Event) -> bool:
    return ctx.data.decision is not None and ctx.data.decision.action is Action.HANDOFF


def retarget(ctx: ActionContext, event: Event) -> None:
    ctx.data.index = ctx.data.decision.candidate_index


# -- the chart -----------------------------------------------------------------------------------------------


def build(config: TaskConfig | None = None) -> Chart:
    """The chart; `config` gives the timeouts fixed when it is built (`band_timeout_s`)."""
    arm = arm_region(
        config or TaskConfig(),
        arm_step(Primitive.APPROACH, on("motion.done", "arm_attach")),
        arm_step(Primitive.ATTACH, on("motion.done", "arm_extract")),
        arm_step(Primitive.EXTRACT, on("motion.done", "arm_place")),
        arm_step(Primitive.PLACE, on("motion.done", "arm_release", guard=has_release), on("motion.done", "arm_done")),
        arm_step(Primitive.RELEASE, on("motion.done", "arm_done")),
        retract_doc="after a failure: out of the bin before the band closes",
    )
    return build_chart(
        "pick",
        await_state("order", lambda workcell, timeout: workcell.next_order(timeout), "eligibility", take_order),
        State(
            "eligibility",
            activities=check_pick,
            transitions=[
                on("check.done", "plan", guard=is_eligible),
                on("check.done", "report", action=ineligible),
                on("check.timeout", "report", action=[record_fault, end_fault]),
            ],
        ),
        plan_state(plan_pick, "attempt", plan_has_candidate, take_plan, no_plan, timeout="report"),
        attempt_state("attempt", arm, then="report", action=end_with(TaskOutcome.DONE, "")),
        decide_state(
            decide,
            handoff,
            always("attempt", guard=next_candidate, action=retarget),
            doc="planning.retry picks the next candidate or hands off",
        ),
        replan_at="eligibility",  # held mid-attempt: the pod may have moved; check the target again
        description="pick one item: eligibility, suction candidates with the band held, retry by policy, report",
    )
