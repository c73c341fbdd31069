"""The band region: the second arm's hook holds the pod's band open while the main arm works in the bin.

`band_region(arm_done)` returns a State to put beside the main arm in a Parallel:

    band_lowering --band.held--> band_held --(main arm in `arm_done`)--> band_raising --band.raised--> band_done

The main arm waits for `band_held` to be active (a guard: `band_is_held`) before it approaches. The region
posts ``band.failed`` (payload: the reason) when the hook fails either way; the enclosing Parallel must handle
it (end the attempt): the region itself has no way out, so the arm never approaches without the band held.
"""

from __future__ import annotations

from .engine import Activity, ActivityContext, Final, In, State, always, on
from .task_base import bounded

__all__ = ["BAND_FAILED", "band_is_held", "band_region"]

BAND_FAILED = "band.failed"


def _hook(down: bool, ok_event: str) -> Activity:
    async def set_hook(ctx: ActivityContext) -> None:
        data = ctx.data
        timeout = data.config.hook_timeout_s
        ok, result = await bounded(timeout + data.config.motion_grace_s, lambda: data.workcell.set_hook(down, timeout))
        if ok and result is not None and result.ok:
            ctx.post(ok_event, result)
            return
        what = result.outcome.value if result is not None else "no reply"
        detail = f": {result.detail}" if result is not None and result.detail else ""
        ctx.post(BAND_FAILED, f"band hook {'down' if down else 'up'} failed: {what}{detail}")

    return Activity(set_hook, (ok_event, BAND_FAILED), "hook_down" if down else "hook_up")


hook_down = _hook(True, "band.held")
hook_up = _hook(False, "band.raised")


band_is_held = In("band_held")  # SCXML's In(): the exports write it as such


def band_region(arm_done: str) -> State:
    """The band region; it raises the hook once the main arm's region is in its final state `arm_done`."""
    return State(
        "band",
        State("band_lowering", activities=hook_down, transitions=[on("band.held", "band_held")]),
        State("band_held", transitions=[always("band_raising", guard=In(arm_done))]),
        State("band_raising", activities=hook_up, transitions=[on("band.raised", "band_done")]),
        Final("band_done"),
        initial="band_lowering",
        doc="second arm: hook down, hold the band while the main arm works, hook up",
    )
