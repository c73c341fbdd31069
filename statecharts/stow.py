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

from collections.abc import Callable
from dataclasses import dataclass, field

from planning.retry import Action, FailureKind, RetryDecision, StowAttempt, next_stow_action

from .band import BAND_FAILED, band_is_held, band_region
from .engine import (
    ActionContext,
    ActivityContext,
    Chart,
    Event,
    Final,
    Parallel,
    State,
    Transition,
    activity,
    after,
    always,
    on,
)
from .task_base import FATAL, Failure, Step, TaskConfig, TaskData, TaskKind, bounded, describe
from .task_chart import (
    build_report,
    count_empty_wait,
    end_fault,
    end_with,
    motion_activity,
    record_fault,
    safe_arm,
    send_report,
    starving,
)
from .workcell import (
    ItemArrival,
    Motion,
    MotionOutcome,
    Primitive,
    StowOption,
    StowPlan,
    TaskOutcome,
    Verification,
)

__all__ = ["StowData", "build", "stow_failure"]


@dataclass
class StowData(TaskData):
    kind: TaskKind = "stow"
    item: ItemArrival | None = None
    bins: dict[str, list[StowOption]] = field(default_factory=dict)  # ranked options per bin, first seen first
    target: tuple[str, int] | None = None  # (bin_id, rank of the option within that bin)
    history: list[StowAttempt] = field(default_factory=list)
    decision: RetryDecision | None = None
    tries: int = 0

    @property
    def taken(self) -> bool:
        return self.item is not None

    @property
    def attempts(self) -> int:
        return self.tries

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
        if primitive is Primitive.RETRACT:
            return self.retract()
        raise LookupError(f"stow option {self.target} has no {primitive.value} step")


def stow_failure(step: Step) -> Failure:
    """Map a failed motion onto the retry policy's failure kinds (None: a fault, no retry)."""
    prim, outcome = step.motion.primitive, step.result.outcome
    reason = describe(step)
    if outcome in FATAL or prim in (Primitive.RETRACT, Primitive.GRASP):
        return Failure(None, reason)
    if outcome is MotionOutcome.SUCTION_LOST:
        return Failure(FailureKind.SUCTION_LOST, reason)
    if prim is Primitive.EJECT_ITEM:
        return Failure(FailureKind.EJECT_FAILED, reason)
    if outcome is MotionOutcome.FORCE_LIMIT:
        return Failure(FailureKind.CONTACT_FORCE, reason)
    return Failure(FailureKind.ITEM_SLIPPED, reason)  # scene changed / vacuum trouble: re-seat and retry


# -- activities ----------------------------------------------------------------------------------------------


@activity("item.arrived", "item.none")
async def wait_item(ctx: ActivityContext) -> None:
    data: StowData = ctx.data
    timeout = data.config.arrival_timeout_s
    _, item = await bounded(timeout + data.config.motion_grace_s, lambda: data.workcell.next_item(timeout))
    ctx.post("item.arrived", item) if item is not None else ctx.post("item.none")


@activity("plan.ready", "plan.timeout")
async def plan_stow(ctx: ActivityContext) -> None:
    data: StowData = ctx.data
    assert data.item is not None
    item, exclude = data.item, tried_bins(data)
    ok, plan = await bounded(data.config.perception_timeout_s, lambda: data.workcell.plan_stow(item, exclude))
    ctx.post("plan.ready", plan) if ok else ctx.post("plan.timeout", "plan_stow timed out")


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


def start_attempt(ctx: ActionContext, event: Event) -> None:
    ctx.data.tries += 1
    ctx.data.failure = None


def has_sweep(ctx: ActionContext, event: Event) -> bool:
    return ctx.data.option.sweep is not None


def record_motion_failure(ctx: ActionContext, event: Event) -> None:
    ctx.data.failure = stow_failure(event.data)


def band_not_held(ctx: ActionContext, event: Event) -> None:
    ctx.data.failure = Failure(None, "band not held in time")


def failed_fatally(ctx: ActionContext, event: Event) -> bool:
    return ctx.data.failure is not None and ctx.data.failure.fatal


def failed(ctx: ActionContext, event: Event) -> bool:
    return ctx.data.failure is not None


def record_attempt(ctx: ActionContext, event: Event) -> None:
    data: StowData = ctx.data
    assert data.target is not None and data.failure is not None
    assert data.failure.kind is not None  # a fatal failure (no kind) ends the task instead: see failed_fatally
    data.history.append(StowAttempt(data.target[0], data.target[1], data.failure.kind))


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


def handoff_by_policy(ctx: ActionContext, event: Event) -> None:
    ctx.data.outcome = TaskOutcome.HANDOFF
    ctx.data.reason = ctx.data.decision.reason


def retract_failed(ctx: ActionContext, event: Event) -> None:
    ctx.data.failure = Failure(None, describe(event.data))  # a fault, whatever failed before it


def grasp_failed_fatally(ctx: ActionContext, event: Event) -> bool:
    return event.data.result.outcome in FATAL


def record_grasp(ctx: ActionContext, event: Event) -> None:
    ctx.data.failure = stow_failure(event.data)


# -- the chart -----------------------------------------------------------------------------------------------


def _arm_state(primitive: Primitive, *transitions: Transition) -> State:
    return State(
        f"arm_{primitive.value}",
        activities=motion_activity(primitive),
        transitions=[*transitions, on("motion.failed", "arm_retract", action=record_motion_failure)],
    )


def arm_region(config: TaskConfig) -> State:
    return State(
        "arm",
        State(
            "arm_wait_band",
            transitions=[
                always("arm_approach", guard=band_is_held),
                after(config.band_timeout_s, "arm_done", action=band_not_held),
            ],
            doc="never approach before the band is held",
        ),
        _arm_state(
            Primitive.APPROACH,
            on("motion.done", "arm_extend_blade", guard=has_sweep),
            on("motion.done", "arm_eject_item"),
        ),
        _arm_state(Primitive.EXTEND_BLADE, on("motion.done", "arm_sweep")),
        _arm_state(Primitive.SWEEP, on("motion.done", "arm_eject_item")),
        _arm_state(Primitive.EJECT_ITEM, on("motion.done", "arm_retract")),
        State(
            "arm_retract",
            activities=motion_activity(Primitive.RETRACT),
            transitions=[on("motion.done", "arm_done"), on("motion.failed", "arm_done", action=retract_failed)],
        ),
        Final("arm_done"),
        initial="arm_wait_band",
    )


def build(config: TaskConfig | None = None) -> Chart:
    """The chart; `config` gives the timeouts fixed when it is built (`band_timeout_s`)."""
    config = config or TaskConfig()
    return Chart(
        "stow",
        State(
            "stow",
            State(
                "work",
                State(
                    "await_item",
                    activities=wait_item,
                    transitions=[
                        on("item.arrived", "grasp", action=take_item),
                        on("item.none", "starved", guard=starving, action=count_empty_wait),
                        on("item.none", "await_item", action=count_empty_wait),
                    ],
                ),
                State(
                    "grasp",
                    activities=motion_activity(Primitive.GRASP),
                    transitions=[
                        on("motion.done", "plan"),
                        on("motion.failed", "recover", guard=grasp_failed_fatally, action=record_grasp),
                        on("motion.failed", "report", action=[record_grasp, end_with(TaskOutcome.HANDOFF)]),
                    ],
                ),
                State(
                    "plan",
                    activities=plan_stow,
                    transitions=[
                        on("plan.ready", "insert", guard=plan_has_option, action=take_plan),
                        on("plan.ready", "report", action=no_plan),
                        on("plan.timeout", "recover", action=record_fault),
                    ],
                ),
                Parallel(
                    "insert",
                    arm_region(config),
                    band_region("arm_done"),
                    on_entry=start_attempt,
                    transitions=[
                        on(BAND_FAILED, "recover", action=record_fault),
                        on("done.state.insert", "report", guard=failed_fatally, action=end_fault),
                        on("done.state.insert", "decide", guard=failed, action=record_attempt),
                        on("done.state.insert", "verify"),
                    ],
                ),
                State(
                    "verify",
                    activities=verify_stow,
                    transitions=[
                        on("verify.ok", "report", action=end_with(TaskOutcome.DONE, "")),
                        on("verify.failed", "decide", action=record_eject_failed),
                        on("verify.timeout", "report", action=[record_fault, end_fault]),
                    ],
                ),
                State(
                    "decide",
                    on_entry=decide,
                    transitions=[
                        always("report", guard=_decided(Action.HANDOFF), action=handoff_by_policy),
                        always("plan", guard=_decided(Action.NEXT_BIN)),
                        always("insert", guard=_decided(Action.RETRY_SAME, Action.NEXT_PLACEMENT), action=retarget),
                    ],
                    doc="planning.retry picks the next attempt",
                ),
                initial="await_item",
                transitions=[on("error", "recover", action=record_fault)],
            ),
            State(
                "recover",
                activities=safe_arm,
                transitions=[on("safe", "report", action=end_fault), on("error", "report", action=end_fault)],
                doc="retract, hook up, then report the fault",
            ),
            State(
                "report",
                on_entry=build_report,
                activities=send_report,
                transitions=[on("report.sent", "reported"), on("report.timeout", "reported"), on("error", "reported")],
            ),
            Final("reported"),
            Final("starved"),
            initial="work",
        ),
        description="stow one item: grasp, plan, insert with the band held, verify, retry by policy, report",
    )
