"""The builders of what every task chart (stow, pick) has in common; each chart passes only what differs.

    build_chart(name, *work): root(work(H, <work states>) -> recover -> report -> reported | starved;
                              work --task.hold--> pausing -> paused --task.unhold--> H, or replan_at)
    await_state(noun, ...):   await_<noun> (wait_<noun>; <noun>.arrived -> next, <noun>.none -> again | starved)
    plan_state(ask, then, ..): plan (ask the planner; a plan -> then, none -> report, no answer -> a fault)
    attempt_state(id, arm):   Parallel(arm || band_region), one attempt: -> report (fault) | decide | next
    arm_region(config, ...):  arm_wait_band (band_timeout_s) -> arm_<steps> ... -> arm_retract -> arm_done
    decide_state(decide, ..): decide (the retry policy: handoff -> report, else the next attempt)

A chart passes what is its own (its states between, such as stow's grasp and verify, the arm's steps, its guards
and actions); the builders fix the state ids the scaffolding shares (`recover`, `report`, `plan`, `decide`,
`arm_retract`, `arm_done`, `starved`), so a chart built with them has the structure it had when each chart
spelt it out. The actions they use are in `task_actions`. Delays are part of a chart (an `after` transition),
so ``band_timeout_s`` is fixed when the chart is built: `tasks.run_task` builds it with the task's config.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from .band import BAND_FAILED, band_is_held, band_region
from .engine import (
    ERROR,
    Activity,
    ActivityContext,
    Chart,
    Final,
    History,
    Parallel,
    State,
    Transition,
    after,
    always,
    done_state,
    on,
)
from .engine.model import Action, Guard
from .task_actions import (
    band_not_held,
    build_report,
    count_empty_wait,
    end_fault,
    failed,
    failed_fatally,
    handoff_by_policy,
    motion_activity,
    must_replan,
    note_hold,
    note_hold_in_attempt,
    pause_arm,
    record_attempt,
    record_fault,
    record_motion_failure,
    replan,
    retract_failed,
    safe_arm,
    send_report,
    start_attempt,
    starving,
)
from .task_base import TaskConfig, TaskData, TaskKind, bounded
from .workcell import Primitive, Workcell

__all__ = [
    "TASK_HOLD",
    "TASK_UNHOLD",
    "arm_region",
    "arm_step",
    "attempt_state",
    "await_state",
    "build_chart",
    "decide_state",
    "plan_state",
]


TASK_HOLD = "task.hold"  # from the cell (PackML Hold): pause where the task is, the arm made safe
TASK_UNHOLD = "task.unhold"  # from the cell (PackML Unhold): resume


def build_chart(name: TaskKind, *work: State, replan_at: str = "plan", description: str) -> Chart:
    """The task chart `name`: `work` (it starts in the first; an ``error`` in any of them recovers), the hold
    path `pausing` -> `paused`, then the fault path `recover` (arm safe), `report` (build, send, bounded) and
    the finals `reported`, `starved`.

    A hold (``task.hold``) in `work` pauses the task: `pausing` retracts the arm and lets the band close,
    `paused` waits for ``task.unhold``, which resumes it through the history `resume` in the phase it was in.
    The history is shallow, not deep, on purpose: while held the arm was retracted and the pod may have
    moved or rotated, so a phase is re-entered from its own beginning (a wait waits again, a plan perceives
    again), never in the middle of a primitive it was running; and a hold during an attempt (a Parallel of
    `work`) resumes at `replan_at`, because that attempt's plan was made from a frame of the pod before
    the hold (the attempt's own hold transition says so). A task held outside `work` (recovering or
    reporting) finishes instead.
    """
    return Chart(
        name,
        State(
            name,
            State(
                "work",
                History("resume"),
                *work,
                initial=work[0].id,
                transitions=[
                    on(ERROR, "recover", action=record_fault),
                    on(TASK_HOLD, "pausing", action=note_hold),
                ],
            ),
            State(
                "pausing",
                activities=pause_arm,
                transitions=[
                    on("safe", "paused"),
                    on("safe.failed", "report", action=[record_fault, end_fault]),
                    on(ERROR, "report", action=[record_fault, end_fault]),
                ],
                doc="a hold: retract, hook up (a failure ends the task with that fault)",
            ),
            State(
                "paused",
                transitions=[
                    on(TASK_UNHOLD, replan_at, guard=must_replan, action=replan),
                    on(TASK_UNHOLD, "resume"),
                ],
                doc="held: the arm out of the pod, the band closed; unhold resumes the phase (an attempt plans again)",
            ),
            State(
                "recover",
                activities=safe_arm,
                transitions=[on("safe", "report", action=end_fault), on(ERROR, "report", action=end_fault)],
                doc="retract, hook up, then report the fault",
            ),
            State(
                "report",
                on_entry=build_report,
                activities=send_report,
                transitions=[on("report.sent", "reported"), on("report.timeout", "reported"), on(ERROR, "reported")],
            ),
            Final("reported"),
            Final("starved"),
            initial="work",
        ),
        description=description,
    )


Fetch = Callable[[Workcell, float], Awaitable[object | None]]


def await_state(noun: str, fetch: Fetch, then: str, take: Action) -> State:
    """`await_<noun>`: `fetch` (the workcell's wait, given arrival_timeout_s) until one comes (`take` it, go
    to `then`); an empty wait waits again, and the last of ``starve_limit`` in a row ends the task `starved`."""
    state_id, arrived, none = f"await_{noun}", f"{noun}.arrived", f"{noun}.none"

    async def wait(ctx: ActivityContext) -> None:
        data: TaskData = ctx.data
        timeout = data.config.arrival_timeout_s
        _, got = await bounded(timeout + data.config.motion_grace_s, lambda: fetch(data.workcell, timeout))
        ctx.post(arrived, got) if got is not None else ctx.post(none)

    return State(
        state_id,
        activities=Activity(wait, (arrived, none), f"wait_{noun}"),
        transitions=[
            on(arrived, then, action=take),
            on(none, "starved", guard=starving, action=count_empty_wait),
            on(none, state_id, action=count_empty_wait),
        ],
    )


def plan_state(
    ask: Activity, then: str, has_plan: Guard, take: Action, no_plan: Action, *, timeout: Literal["recover", "report"]
) -> State:
    """`plan`: `ask` the planner; a plan with something to try (`has_plan`) is taken (`take`) into the attempt
    `then`, one without ends the task (`no_plan`: a handoff). A planner that did not answer is a fault, reported
    through `recover` (the arm made safe first) or straight from `report`, as `timeout` says."""
    fault = record_fault if timeout == "recover" else [record_fault, end_fault]
    return State(
        "plan",
        activities=ask,
        transitions=[
            on("plan.ready", then, guard=has_plan, action=take),
            on("plan.ready", "report", action=no_plan),
            on("plan.timeout", timeout, action=fault),
        ],
    )


def decide_state(decide: Action, handoff: Guard, *retries: Transition, doc: str) -> State:
    """`decide`: on entry the retry policy decides (`decide`, into ``data.decision``); when it says `handoff`
    the task ends with the policy's reason, else one of the eventless `retries` leads to the next attempt."""
    return State(
        "decide",
        on_entry=decide,
        transitions=[always("report", guard=handoff, action=handoff_by_policy), *retries],
        doc=doc,
    )


def attempt_state(state_id: str, arm: State, then: str, action: Action | None = None) -> Parallel:
    """One attempt: the main `arm` region beside the band region. A band failure recovers; when both regions
    are done, a fatal failure reports the fault, another is recorded for `decide`, and success goes to `then`."""
    done = done_state(state_id)
    return Parallel(
        state_id,
        arm,
        band_region("arm_done"),
        on_entry=start_attempt,
        transitions=[
            on(TASK_HOLD, "pausing", action=note_hold_in_attempt),  # before work's own: this one replans
            on(BAND_FAILED, "recover", action=record_fault),
            on(done, "report", guard=failed_fatally, action=end_fault),
            on(done, "decide", guard=failed, action=record_attempt),
            on(done, then, action=action),
        ],
    )


def arm_step(primitive: Primitive, *transitions: Transition) -> State:
    """`arm_<primitive>`: the move, then `transitions` (on ``motion.done``); a failed move retracts."""
    return State(
        f"arm_{primitive.value}",
        activities=motion_activity(primitive),
        transitions=[*transitions, on("motion.failed", "arm_retract", action=record_motion_failure)],
    )


def arm_region(config: TaskConfig, *steps: State, retract_doc: str = "") -> State:
    """The main arm in an attempt: wait for the band (at most ``band_timeout_s``, fixed when built), the `steps`
    (the first is `arm_approach`), `arm_retract` (after a failure, or as a step) and the final `arm_done`."""
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
        *steps,
        State(
            "arm_retract",
            activities=motion_activity(Primitive.RETRACT),
            transitions=[on("motion.done", "arm_done"), on("motion.failed", "arm_done", action=retract_failed)],
            doc=retract_doc,
        ),
        Final("arm_done"),
        initial="arm_wait_band",
    )
