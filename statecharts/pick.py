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

from dataclasses import dataclass, field

from planning.retry import Action, FailureKind, PickAttempt, RetryDecision, next_pick_action

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
    Eligibility,
    Motion,
    MotionOutcome,
    PickCandidate,
    PickOrder,
    PickPlan,
    Primitive,
    TaskOutcome,
)

__all__ = ["PickData", "build", "pick_failure"]


@dataclass
class PickData(TaskData):
    kind: TaskKind = "pick"
    order: PickOrder | None = None
    candidates: tuple[PickCandidate, ...] = ()
    index: int = 0  # the candidate being tried (position in `candidates`)
    history: list[PickAttempt] = field(default_factory=list)
    decision: RetryDecision | None = None
    tries: int = 0

    @property
    def taken(self) -> bool:
        return self.order is not None

    @property
    def attempts(self) -> int:
        return self.tries

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
        if primitive is Primitive.RETRACT:
            return self.retract()
        raise LookupError(f"suction candidate {self.index} has no {primitive.value} step")


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


@activity("order.arrived", "order.none")
async def wait_order(ctx: ActivityContext) -> None:
    data: PickData = ctx.data
    timeout = data.config.arrival_timeout_s
    _, order = await bounded(timeout + data.config.motion_grace_s, lambda: data.workcell.next_order(timeout))
    ctx.post("order.arrived", order) if order is not None else ctx.post("order.none")


@activity("check.done", "check.timeout")
async def check_pick(ctx: ActivityContext) -> None:
    data: PickData = ctx.data
    assert data.order is not None
    order = data.order
    ok, result = await bounded(data.config.perception_timeout_s, lambda: data.workcell.check_pick(order))
    ctx.post("check.done", result) if ok else ctx.post("check.timeout", "check_pick timed out")


@activity("plan.ready", "plan.timeout")
async def plan_pick(ctx: ActivityContext) -> None:
    data: PickData = ctx.data
    assert data.order is not None
    order = data.order
    ok, plan = await bounded(data.config.perception_timeout_s, lambda: data.workcell.plan_pick(order))
    ctx.post("plan.ready", plan) if ok else ctx.post("plan.timeout", "plan_pick timed out")


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


def start_attempt(ctx: ActionContext, event: Event) -> None:
    ctx.data.tries += 1
    ctx.data.failure = None


def has_release(ctx: ActionContext, event: Event) -> bool:
    return any(m.primitive is Primitive.RELEASE for m in ctx.data.candidate.steps)


def record_motion_failure(ctx: ActionContext, event: Event) -> None:
    ctx.data.failure = pick_failure(event.data)


def retract_failed(ctx: ActionContext, event: Event) -> None:
    ctx.data.failure = Failure(None, describe(event.data))  # a fault, whatever failed before it


def band_not_held(ctx: ActionContext, event: Event) -> None:
    ctx.data.failure = Failure(None, "band not held in time")


def failed_fatally(ctx: ActionContext, event: Event) -> bool:
    return ctx.data.failure is not None and ctx.data.failure.fatal


def failed(ctx: ActionContext, event: Event) -> bool:
    return ctx.data.failure is not None


def record_attempt(ctx: ActionContext, event: Event) -> None:
    data: PickData = ctx.data
    assert data.failure is not None
    assert data.failure.kind is not None  # a fatal failure (no kind) ends the task instead: see failed_fatally
    data.history.append(PickAttempt(data.index, data.failure.kind))


def decide(ctx: ActionContext, event: Event) -> None:
    data: PickData = ctx.data
    data.decision = next_pick_action(data.history, len(data.candidates), data.config.budget)


def next_candidate(ctx: ActionContext, event: Event) -> bool:
    return ctx.data.decision is not None and ctx.data.decision.action is Action.NEXT_CANDIDATE


def handoff(ctx: ActionContext, event: Event) -> bool:
    return ctx.data.decision is not None and ctx.data.decision.action is Action.HANDOFF


def retarget(ctx: ActionContext, event: Event) -> None:
    ctx.data.index = ctx.data.decision.candidate_index


def handoff_by_policy(ctx: ActionContext, event: Event) -> None:
    ctx.data.outcome = TaskOutcome.HANDOFF
    ctx.data.reason = ctx.data.decision.reason


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
        _arm_state(Primitive.APPROACH, on("motion.done", "arm_attach")),
        _arm_state(Primitive.ATTACH, on("motion.done", "arm_extract")),
        _arm_state(Primitive.EXTRACT, on("motion.done", "arm_place")),
        _arm_state(Primitive.PLACE, on("motion.done", "arm_release", guard=has_release), on("motion.done", "arm_done")),
        _arm_state(Primitive.RELEASE, on("motion.done", "arm_done")),
        State(
            "arm_retract",
            activities=motion_activity(Primitive.RETRACT),
            transitions=[on("motion.done", "arm_done"), on("motion.failed", "arm_done", action=retract_failed)],
            doc="after a failure: out of the bin before the band closes",
        ),
        Final("arm_done"),
        initial="arm_wait_band",
    )


def build(config: TaskConfig | None = None) -> Chart:
    """The chart; `config` gives the timeouts fixed when it is built (`band_timeout_s`)."""
    config = config or TaskConfig()
    return Chart(
        "pick",
        State(
            "pick",
            State(
                "work",
                State(
                    "await_order",
                    activities=wait_order,
                    transitions=[
                        on("order.arrived", "eligibility", action=take_order),
                        on("order.none", "starved", guard=starving, action=count_empty_wait),
                        on("order.none", "await_order", action=count_empty_wait),
                    ],
                ),
                State(
                    "eligibility",
                    activities=check_pick,
                    transitions=[
                        on("check.done", "plan", guard=is_eligible),
                        on("check.done", "report", action=ineligible),
                        on("check.timeout", "report", action=[record_fault, end_fault]),
                    ],
                ),
                State(
                    "plan",
                    activities=plan_pick,
                    transitions=[
                        on("plan.ready", "attempt", guard=plan_has_candidate, action=take_plan),
                        on("plan.ready", "report", action=no_plan),
                        on("plan.timeout", "report", action=[record_fault, end_fault]),
                    ],
                ),
                Parallel(
                    "attempt",
                    arm_region(config),
                    band_region("arm_done"),
                    on_entry=start_attempt,
                    transitions=[
                        on(BAND_FAILED, "recover", action=record_fault),
                        on("done.state.attempt", "report", guard=failed_fatally, action=end_fault),
                        on("done.state.attempt", "decide", guard=failed, action=record_attempt),
                        on("done.state.attempt", "report", action=end_with(TaskOutcome.DONE, "")),
                    ],
                ),
                State(
                    "decide",
                    on_entry=decide,
                    transitions=[
                        always("report", guard=handoff, action=handoff_by_policy),
                        always("attempt", guard=next_candidate, action=retarget),
                    ],
                    doc="planning.retry picks the next candidate or hands off",
                ),
                initial="await_order",
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
        description="pick one item: eligibility, suction candidates with the band held, retry by policy, report",
    )
