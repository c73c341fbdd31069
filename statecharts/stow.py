"""`stow`: put one conveyor item into the pod, with the band held open by the second arm.

    await_item -> grasp -> plan -> insert(arm || band) -> verify -> report -> reported
                                     ^      |
                                     +- decide (planning.retry: same / next placement / next bin -> plan / handoff)

`insert` runs the option's steps, one state per primitive: approach (guarded), extend_blade + sweep when the
option has a sweep, eject_item, retract; the arm region always ends with a retract and the band region with
the hook up, so every attempt leaves the arm out of the bin and the band closed. A robot fault (FAULT,
TIMEOUT, UNAVAILABLE) ends the task `fault` after that retract; `error.*` and band failures go through
`recover` (retract, hook up). ``starve_limit`` empty waits in a row end the chart in `starved`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from planning.retry import Action, FailureKind, RetryDecision, StowAttempt, next_stow_action

from .engine import ActionContext, ActivityContext, Chart, Event, State, activity, always, on
from .task_actions import end_fault, end_with, motion_activity, perceive, record_attempt, record_fault
from .task_base import FATAL, Failure, Step, TaskConfig, TaskData, TaskKind, bounded, describe
from .task_chart import arm_region, arm_step, attempt_state, await_state, build_chart, decide_state, plan_state
from .workcell import ItemArrival, Motion, MotionOutcome, Primitive, StowOption, StowPlan, TaskOutcome, Verification

__all__ = ["StowData", "build", "stow_failure"]


@dataclass
class StowData(TaskData):
    kind: TaskKind = "stow"
    item: ItemArrival | None = None
    bins: dict[str, list[StowOption]] = field(default_factory=dict)  # ranked options per bin, first seen first
    target: tuple[str, int] | None = None  # (bin_id, rank of the option within that bin)
    history: list[StowAttempt] = field(default_factory=list)

    @property
    def taken(self) -> bool:
        return self.item is not None

    def subject(self) -> tuple[str, str]:
        return (self.item.item_id if self.item else "", self.target[0] if self.target else "")

    @property
    def option(self) -> StowOption:
        assert self.target is not None, "no option chosen"
        bin_id, rank = self.target
        return self.bins[bin_id][rank]

    def step(self, primitive: Primitive) -> Motion:
        if primitive is Primitive.GRASP:
            return Motion(primitive=Primitive.GRASP, timeout_s=self.config.grasp_timeout_s)
        option = self.option if self.target is not None else None
        for motion in option.steps if option else ():
            if motion.primitive is primitive:
                if primitive is Primitive.SWEEP and motion.force_limit_n is None and option and option.sweep:
                    return motion.model_copy(update={"force_limit_n": option.sweep.force_limit_n})
                return motion
        return self.unplanned(primitive, f"stow option {self.target}")

    def failure_of(self, step: Step) -> Failure:
        return stow_failure(step)

    def remember(self, kind: FailureKind) -> None:
        assert self.target is not None
        self.history.append(StowAttempt(self.target[0], self.target[1], kind))


def stow_failure(step: Step) -> Failure:
    """Map a failed motion onto the retry policy's failure kinds (None: a fault, no retry)."""
    prim, outcome = step.motion.primitive, step.result.outcome
    reason = describe(step)
    if outcome in FATAL or prim in (Primitive.RETRACT, Primitive.GRASP):
        return Failure(None, reason)
    if outcome is MotionOutcome.SUCTION_LOST:
        return Failure(FailureKind.SUCTION_LOST, reason)
    if outcome is MotionOutcome.FORCE_LIMIT:  # an eject too: the item met something, the belts are not at fault
        return Failure(FailureKind.CONTACT_FORCE, reason)
    if prim is Primitive.EJECT_ITEM:
        return Failure(FailureKind.EJECT_FAILED, reason)
    return Failure(FailureKind.ITEM_SLIPPED, reason)  # scene changed / vacuum trouble: re-seat and retry


# -- activities ----------------------------------------------------------------------------------------------


def _plan_stow(data: StowData) -> Awaitable[StowPlan]:
    assert data.item is not None
    return data.workcell.plan_stow(data.item, tried_bins(data))


plan_stow = perceive("plan_stow", _plan_stow, "plan.ready", "plan.timeout")


@activity("verify.ok", "verify.failed", "verify.timeout")
async def verify_stow(ctx: ActivityContext) -> None:
    data: StowData = ctx.data
    assert data.item is not None
    item, option = data.item, data.option
    ok, result = await bounded(data.config.perception_timeout_s, lambda: data.workcell.verify_stow(item, option))
    if not ok or result is None:
        ctx.post("verify.timeout", "verify_stow timed out")
    else:
        ctx.post("verify.ok" if result.ok else "verify.failed", result)


# -- guards and actions --------------------------------------------------------------------------------------


def take_item(ctx: ActionContext, event: Event) -> None:
    ctx.data.item = event.data
    ctx.data.started_s = ctx.now()


def tried_bins(data: StowData) -> tuple[str, ...]:
    return tuple(dict.fromkeys(a.bin_id for a in data.history))


def new_options(plan: StowPlan, data: StowData) -> list[StowOption]:
    tried = tried_bins(data)
    return [o for o in plan.options if o.bin_id not in tried]


def plan_has_option(ctx: ActionContext, event: Event) -> bool:
    return bool(new_options(event.data, ctx.data))


def take_plan(ctx: ActionContext, event: Event) -> None:
    """Keep the tried bins (the policy counts them); untried bins take the fresh plan's options."""
    data: StowData = ctx.data
    fresh = new_options(event.data, data)
    data.bins = {b: data.bins[b] for b in tried_bins(data)}
    for option in fresh:
        data.bins.setdefault(option.bin_id, []).append(option)
    data.target = (fresh[0].bin_id, 0)


def no_plan(ctx: ActionContext, event: Event) -> None:
    plan: StowPlan = event.data
    ctx.data.outcome = TaskOutcome.HANDOFF
    ctx.data.reason = f"no placement: {plan.reason or 'no option fits'}"


def has_sweep(ctx: ActionContext, event: Event) -> bool:
    return ctx.data.option.sweep is not None


def record_eject_failed(ctx: ActionContext, event: Event) -> None:
    result: Verification = event.data
    detail = f": {result.detail}" if result.detail else ""
    ctx.data.failure = Failure(FailureKind.EJECT_FAILED, f"verify: item not in bin{detail}")
    record_attempt(ctx, event)


def decide(ctx: ActionContext, event: Event) -> None:
    data: StowData = ctx.data
    bins = [(bin_id, len(options)) for bin_id, options in data.bins.items()]
    data.decision = next_stow_action(data.history, bins, data.config.budget)


def _decided(*actions: Action) -> Callable[[ActionContext, Event], bool]:
    def guard(ctx: ActionContext, event: Event) -> bool:
        return ctx.data.decision is not None and ctx.data.decision.action in actions

    guard.__name__ = "decided_" + "_or_".join(a.value for a in actions)
    return guard


def retarget(ctx: ActionContext, event: Event) -> None:
    decision: RetryDecision = ctx.data.decision
    assert decision.bin_id is not None and decision.placement_index is not None
    ctx.data.target = (decision.bin_id, decision.placement_index)


def grasp_failed_fatally(ctx: ActionContext, event: Event) -> bool:
    return event.data.result.outcome in FATAL


def record_grasp(ctx: ActionContext, event: Event) -> None:
    ctx.data.failure = stow_failure(event.data)


# -- the chart -----------------------------------------------------------------------------------------------


def build(config: TaskConfig | None = None) -> Chart:
    """The chart; `config` gives the timeouts fixed when it is built (`band_timeout_s`)."""
    arm = arm_region(
        config or TaskConfig(),
        arm_step(
            Primitive.APPROACH,
            on("motion.done", "arm_extend_blade", guard=has_sweep),
            on("motion.done", "arm_eject_item"),
        ),
        arm_step(Primitive.EXTEND_BLADE, on("motion.done", "arm_sweep")),
        arm_step(Primitive.SWEEP, on("motion.done", "arm_eject_item")),
        arm_step(Primitive.EJECT_ITEM, on("motion.done", "arm_retract")),
    )
    return build_chart(
        "stow",
        await_state("item", lambda workcell, timeout: workcell.next_item(timeout), "grasp", take_item),
        State(
            "grasp",
            activities=motion_activity(Primitive.GRASP),
            transitions=[
                on("motion.done", "plan"),
                on("motion.failed", "recover", guard=grasp_failed_fatally, action=record_grasp),
                on("motion.failed", "report", action=[record_grasp, end_with(TaskOutcome.HANDOFF)]),
            ],
        ),
        plan_state(plan_stow, "insert", plan_has_option, take_plan, no_plan, timeout="recover"),
        attempt_state("insert", arm, then="verify"),
        State(
            "verify",
            activities=verify_stow,
            transitions=[
                on("verify.ok", "report", action=end_with(TaskOutcome.DONE, "")),
                on("verify.failed", "decide", action=record_eject_failed),
                on("verify.timeout", "report", action=[record_fault, end_fault]),
            ],
        ),
        decide_state(
            decide,
            _decided(Action.HANDOFF),
            always("plan", guard=_decided(Action.NEXT_BIN)),
            always("insert", guard=_decided(Action.RETRY_SAME, Action.NEXT_PLACEMENT), action=retarget),
            doc="planning.retry picks the next attempt",
        ),
        description="stow one item: grasp, plan, insert with the band held, verify, retry by policy, report",
    )
