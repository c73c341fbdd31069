"""`runtime`, property: any event sequence keeps the configuration legal; history restores."""

from __future__ import annotations

import anyio
from hypothesis import example, given, settings
from hypothesis import strategies as st

from statecharts.engine import Chart, ChartRunner, History, Parallel, State, VirtualClock, after, on

EVENTS = ["power", "suspend", "resume", "touch", "lift", "go", "open", "close", "reset_arm", "vac", "blade", "tick"]


# Suspend/resume and arm moves repeated so that history round trips are common.
WEIGHTED = [*EVENTS, "suspend", "resume", "resume", "touch", "lift"]


def chart() -> Chart:
    return Chart(
        "prop",
        State(
            "root",
            State("off", transitions=[on("power", "on")]),
            Parallel(
                "on",
                State(
                    "arm",
                    History("arm_h"),
                    State("a1", transitions=[on("touch", "a2")]),
                    State("a2", transitions=[on("lift", "a3"), after(2.0, "a1")]),
                    State(
                        "a3",
                        State("a3x", transitions=[on("go", "a3y")]),
                        State("a3y"),
                        initial="a3x",
                        transitions=[on("go", "a1")],
                    ),
                    initial="a1",
                    transitions=[on("reset_arm", "a1")],
                ),
                State(
                    "band",
                    State("closed", transitions=[on("open", "open")]),
                    State("open", transitions=[on("close", "closed"), after(1.0, "closed")]),
                    initial="closed",
                ),
                Parallel(
                    "tool",
                    State("vacuum", State("vac_off", transitions=[on("vac", "vac_on")]),
                          State("vac_on", transitions=[on("vac", "vac_off")]), initial="vac_off"),
                    State("blade", State("retracted", transitions=[on("blade", "extended")]),
                          State("extended", transitions=[on("blade", "retracted")]), initial="retracted"),
                ),
                transitions=[on("power", "off"), on("suspend", "suspended")],
            ),
            State("suspended", transitions=[on("resume", "arm_h"), on("power", "off")]),
            initial="off",
        ),
    )


CHART = chart()


ARM_CHILDREN = ("a1", "a2", "a3")


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(WEIGHTED), max_size=60))
@example(["power", "touch", "suspend", "resume"])
@example(["power", "touch", "lift", "go", "suspend", "power", "power", "suspend", "resume"])
def test_random_event_sequences_keep_configuration_legal(events: list[str]) -> None:
    async def main() -> None:
        runner = ChartRunner(CHART)
        async with anyio.create_task_group() as tg:
            await tg.start(runner.run)
            last_arm: str | None = None
            for name in events:
                before = runner.configuration
                if name == "tick":
                    await anyio.sleep(0.6)  # lets after() timers fire
                else:
                    runner.post(name)
                    await runner.wait_idle()
                config = runner.configuration
                assert CHART.configuration_problems(config) == [], (name, sorted(config))
                if "arm" in before and "arm" not in config:
                    last_arm = next(c for c in ARM_CHILDREN if c in before)
                if name == "resume" and "suspended" in before:
                    restored = next(c for c in ARM_CHILDREN if c in config)
                    assert restored == (last_arm or "a1")
                    assert {"closed", "vac_off", "retracted"} <= config  # regions without history restart
            tg.cancel_scope.cancel()

    VirtualClock().run(main)
