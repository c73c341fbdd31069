"""`stow_demo`: an example chart with a parallel region, history, timers and activities.

A simplified stow cycle: the main arm approaches, inserts under a force guard (backing
off on contact), ejects and retracts, while the band arm's hook holds the band open in
a parallel region. A pause keeps the arm's place (shallow history); an hour paused
shuts the cell down. Activities stand in for robot motions with fixed durations.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from .engine import (
    ERROR,
    ActionContext,
    ActivityContext,
    Chart,
    Event,
    Final,
    History,
    In,
    Parallel,
    State,
    activity,
    after,
    always,
    done_state,
    on,
)


@dataclass
class DemoData:
    """Motion durations (s) and how many insert attempts meet unexpected contact."""

    move_s: float = 1.5
    insert_s: float = 2.0
    contacts: int = 1
    cycles: int = 0


@activity("arrived")
async def move_to_bin(ctx: ActivityContext[DemoData]) -> None:
    await anyio.sleep(ctx.data.move_s)
    ctx.post("arrived")


@activity("inserted", "contact")
async def guarded_insert(ctx: ActivityContext[DemoData]) -> None:
    await anyio.sleep(ctx.data.insert_s)
    if ctx.data.contacts > 0:
        ctx.data.contacts -= 1
        ctx.post("contact")
    else:
        ctx.post("inserted")


def count_cycle(ctx: ActionContext[DemoData], event: Event) -> None:
    ctx.data.cycles += 1


def build() -> Chart:
    return Chart(
        "stow_demo",
        State(
            "demo",
            State("idle", transitions=[on("start", "cycle"), on("shutdown", "off")]),
            Parallel(
                "cycle",
                State(
                    "arm",
                    History("arm_resume"),
                    State("approach", activities=move_to_bin, transitions=[on("arrived", "insert")]),
                    State(
                        "insert",
                        activities=guarded_insert,
                        transitions=[on("inserted", "eject"), on("contact", "back_off"), after(30, "arm_stuck")],
                    ),
                    State("back_off", transitions=[after(0.5, "insert")]),
                    State("eject", transitions=[after(1.0, "retract")]),
                    State("retract", transitions=[after(1.2, "arm_done")]),
                    Final("arm_done"),
                    initial="approach",
                ),
                State(
                    "band",
                    State("band_closed", transitions=[after(0.4, "band_held")]),
                    State("band_held", transitions=[always("band_closing", guard=In("arm_done"))]),
                    State("band_closing", transitions=[after(0.6, "band_done")]),
                    Final("band_done"),
                    initial="band_closed",
                ),
                transitions=[
                    on(done_state("cycle"), "idle", action=count_cycle),
                    on("pause", "paused"),
                    on(ERROR, "fault"),
                ],
            ),
            State("arm_stuck", transitions=[on("reset", "idle")], doc="insert took too long"),
            State("paused", transitions=[on("resume", "arm_resume"), after(3600, "off")]),
            State("fault", transitions=[on("reset", "idle")]),
            Final("off"),
            initial="idle",
        ),
        description="example stow cycle: parallel band arm, history on pause, timers",
    )
