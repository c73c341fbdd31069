"""Static check findings and the Mermaid / SCXML exports."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from statecharts import catalog
from statecharts.engine import ActivityContext, Chart, Final, Parallel, State, activity, after, on
from statecharts.engine.check import check
from statecharts.engine.export import CELLCTL_NS, SCXML_NS, to_mermaid, to_scxml


@activity("arrived", "slipped")
async def move(ctx: ActivityContext) -> None:
    ctx.post("arrived")


def flawed_chart() -> Chart:
    return Chart(
        "flawed",
        State(
            "root",
            State("idle", transitions=[on("go", "moving")]),
            State("moving", activities=move, transitions=[on("arrived", "stuck")]),
            State("stuck"),
            State("orphan", transitions=[on("x", "idle")]),
            State("waiter", transitions=[on("done.state.idle", "idle")]),
            initial="idle",
        ),
    )


def test_check_finds_unreachable_dead_end_and_unhandled_activity_events() -> None:
    found = {(f.kind, f.state, f.message.split(",")[0]) for f in check(flawed_chart())}
    assert ("unreachable", "orphan", "no transition or default entry leads here") in found
    assert ("unreachable", "waiter", "no transition or default entry leads here") in found
    assert ("dead-end", "stuck", "a non-final state with no transition out of it or its ancestors") in found
    assert ("unhandled-event", "moving", "activity move may post 'slipped'") in found
    assert ("unhandled-event", "moving", "activity move may post 'error.activity'") in found
    assert ("never-raised", "waiter", "'done.state.idle': 'idle' has no final state to complete") in found
    assert len(found) == 6


def test_check_accepts_ancestor_handlers_and_parallel_siblings() -> None:
    chart = Chart(
        "fine",
        State(
            "root",
            Parallel(
                "p",
                State("r1", State("a", activities=move, transitions=[on("arrived", "a_end")]), Final("a_end"),
                      initial="a"),
                State("r2", State("b", transitions=[after(1, "b_end")]), Final("b_end"), initial="b"),
                transitions=[on("slipped", "fault"), on("error", "fault"), on("done.state.p", "fault")],
            ),
            State("fault", transitions=[on("reset", "p")]),
            initial="p",
        ),
    )
    assert check(chart) == []


def test_shipped_charts_pass_the_check() -> None:
    for name in catalog.names():
        assert check(catalog.load(name)) == [], name


def test_mermaid_export_has_regions_history_timers_and_finals() -> None:
    text = to_mermaid(catalog.load("stow_demo"))
    lines = [line.strip() for line in text.splitlines()]
    assert lines[1] == "stateDiagram-v2"
    assert "state cycle {" in lines and "--" in lines  # parallel regions separated
    assert 'state "H" as arm_resume' in lines
    assert "paused --> off : after 3600s" in lines
    assert "band_held --> band_closing : [arm_finished]" in lines
    assert "cycle --> idle : done.state.cycle / count_cycle" in lines
    assert "off --> [*]" in lines
    # Transitions inside a region are written inside that region's block.
    arm_block = text[text.index("state arm {"): text.index("--\n")]
    assert "approach --> insert : arrived" in arm_block


def test_scxml_export_is_well_formed_and_faithful() -> None:
    chart = catalog.load("stow_demo")
    root = ET.fromstring(to_scxml(chart))
    ns = {"s": SCXML_NS, "c": CELLCTL_NS}
    assert root.tag == f"{{{SCXML_NS}}}scxml" and root.get("initial") == "idle"
    ids = {el.get("id") for el in root.iter() if el.get("id") and el.tag.split("}")[1] in
           ("state", "parallel", "final", "history")}
    assert ids == {n.id for n in chart.states} - {chart.root.id}
    assert root.find(".//s:parallel[@id='cycle']", ns) is not None
    assert root.find(".//s:history[@id='arm_resume']", ns).get("type") == "shallow"
    paused = root.find(".//s:state[@id='paused']", ns)
    send = paused.find("s:onentry/s:send", ns)
    assert send.get("delay") == "3600s"
    assert paused.find("s:onexit/s:cancel", ns).get("sendid") == send.get("id")
    assert paused.find(f"s:transition[@event='{send.get('event')}']", ns).get("target") == "off"
    invoke = root.find(".//s:state[@id='insert']/s:invoke", ns)
    assert [p.get("event") for p in invoke.findall("c:posts", ns)] == ["inserted", "contact"]
    guarded = root.find(".//s:state[@id='band_held']/s:transition", ns)
    assert guarded.get("cond") == "arm_finished" and guarded.get("event") is None
