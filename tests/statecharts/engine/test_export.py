"""`export`: the Mermaid and SCXML exports (what other tools make of them: tests/interop/test_exports.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from statecharts import catalog
from statecharts.engine import (
    Chart,
    Final,
    History,
    Parallel,
    State,
    after,
    cancel,
    on,
    send,
)
from statecharts.engine.export import CELLCTL_NS, SCXML_NS, seconds, to_mermaid, to_scxml


def test_mermaid_export_has_regions_history_timers_and_finals() -> None:
    text = to_mermaid(catalog.load("stow_demo"))
    lines = [line.strip() for line in text.splitlines()]
    assert lines[1] == "stateDiagram-v2"
    assert "state cycle {" in lines and "--" in lines  # parallel regions separated
    assert 'state "H" as arm_resume' in lines
    assert "paused --> off : after 3600s" in lines
    assert "band_held --> band_closing : [In(arm_done)]" in lines
    assert "cycle --> idle : done.state.cycle / count_cycle" in lines
    assert "off --> [*]" in lines
    # Transitions inside a region are written inside that region's block.
    arm_block = text[text.index("state arm {"): text.index("--\n")]
    assert "approach --> insert : arrived" in arm_block
    # A leaf is a bare id (Mermaid took `state X` before `state Y {` for one name), or
    # declared with a label when its box lists activities, actions or a doc.
    assert "idle" in lines and "state idle" not in lines
    assert 'state "insert" as insert' in lines and "insert : do / guarded_insert" in lines
    assert "arm_stuck : insert took too long" in lines


def test_mermaid_keeps_states_in_their_blocks() -> None:
    """Mermaid moves a state into the last composite block that mentions it: an edge between
    states of different composites, a deep initial and a history default go to the top level."""
    chart = Chart(
        "blocks",
        State(
            "top",
            State("a", History("h", "a21", deep=True), State("a1", transitions=[on("x", "b1")]),
                  State("a2", State("a21"), initial="a21"), initial="a1", transitions=[on("y", "a1")]),
            State("b", State("b1"), State("b2"), initial="b2", on_entry=lambda ctx, ev: None),
            initial="a",
            on_entry=lambda ctx, ev: None,
        ),
    )
    text = to_mermaid(chart)
    top_level = [line[4:] for line in text.splitlines() if line.startswith("    ") and not line.startswith("     ")]
    assert "a1 --> b1 : x" in top_level and "a --> a1 : y" in top_level and "h --> a21 : default" in top_level
    assert top_level[:2] == ["[*] --> top", 'state "top · entry / lambda" as top {']  # the root has content
    assert 'state "b · entry / lambda" as b {' in text
    assert 'state "H*" as h' in text


def test_mermaid_aliases_reserved_ids_and_escapes_text() -> None:
    chart = Chart(
        "reserved",
        State(
            "root",
            State("note", doc='x; "y" #z <w> {v}'),
            State("state", State("constructor"), initial="constructor"),
            initial="note",
            transitions=[on("go", "state")],
        ),
        description="two\nlines",
    )
    lines = [line.strip() for line in to_mermaid(chart).splitlines()]
    assert lines[0] == "%% reserved: two lines"
    assert 'state "note" as note_' in lines and "note_ : x#59; #34;y#34; #35;z #60;w#62; #123;v#125;" in lines
    assert 'state "state" as state_ {' in lines and 'state "constructor" as constructor_' in lines
    assert "root_ --> state_ : go" in lines  # `root` itself is Mermaid's


def test_mermaid_box_lists_entry_exit_activities_and_targetless_transitions() -> None:
    chart = catalog.load("cell")
    lines = [line.strip() for line in to_mermaid(chart).splitlines()]
    assert 'state "producing · exit / release_hold · do / execute_cycles" as producing {' in lines
    assert "producing --> producing : cycle.done / check_repeats (targetless)" in lines
    assert "resetting : entry / new_run" in lines
    assert 'state "live · do / watch_interlocks" as live {' in lines
    assert "cell --> aborted : error / note_reason" in lines  # the root's own, outside its block


def _scxml(chart: Chart) -> ET.Element:
    return ET.fromstring(to_scxml(chart))


NS = {"s": SCXML_NS, "c": CELLCTL_NS}


ACTION = f"{{{CELLCTL_NS}}}action"


def test_scxml_export_is_well_formed_and_faithful() -> None:
    chart = catalog.load("stow_demo")
    root = _scxml(chart)
    ns = NS
    assert root.tag == f"{{{SCXML_NS}}}scxml" and root.get("initial") == "idle"
    assert root.get("datamodel") == "ecmascript"
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
    insert = root.find(".//s:state[@id='insert']", ns)
    assert insert.get(f"{{{CELLCTL_NS}}}activities") == "guarded_insert(inserted contact)"
    assert insert.find("s:invoke", ns) is None
    guarded = root.find(".//s:state[@id='band_held']/s:transition", ns)
    assert guarded.get("cond") == "In('arm_done')" and guarded.get("event") is None
    log = root.find(".//s:parallel[@id='cycle']/s:transition[@event='done.state.cycle']/s:log", ns)
    assert log.get("label") == "count_cycle" and log.get(ACTION) == "count_cycle"
    assert root.find("s:datamodel", ns) is None  # no Python guard to declare
    comment = "<!-- stow_demo: example stow cycle: parallel band arm, history on pause, timers -->"
    assert comment in to_scxml(chart)


def test_scxml_python_guards_are_declared_closed() -> None:
    chart = catalog.load("stow")
    root = _scxml(chart)
    data = root.find("s:datamodel/s:data", NS)
    assert data.get("id") == "guards" and data.get("expr").startswith("{") and ": false" in data.get("expr")
    conds = [el.get("cond") for el in root.iter(f"{{{SCXML_NS}}}transition") if el.get("cond")]
    assert "In('band_held')" in conds and "guards.has_sweep" in conds
    declared = {part.split(":")[0].strip() for part in data.get("expr").strip("{}").split(",")}
    assert {c.removeprefix("guards.") for c in conds if c.startswith("guards.")} == declared


def test_scxml_wraps_a_root_with_content_and_keeps_it_entered() -> None:
    """The cell's root has a transition of its own: it becomes a <state>, and its transitions are
    internal, since our root is never exited (SCXML 3.5: internal keeps the source active)."""
    root = _scxml(catalog.load("cell"))
    assert root.get("initial") == "cell"
    cell = root.find("s:state[@id='cell']", NS)
    assert cell.find("s:transition[@event='error']", NS).get("type") == "internal"
    assert root.find("s:transition", NS) is None  # <scxml> holds no transitions
    # A final child, which ends our chart, ends the session through a generated top-level final.
    chart = Chart(
        "ends",
        State("r", State("a", transitions=[on("go", "f")]), Final("f"), initial="a", transitions=[on("x", "a")]),
    )
    root = _scxml(chart)
    end = root.find("s:final[@id='r_end']", NS)
    assert end is not None and end.get(f"{{{CELLCTL_NS}}}generated") == "end"
    assert root.find("s:state[@id='r']/s:transition[@event='done.state.r']", NS).get("target") == "r_end"


def test_scxml_actions_send_cancel_deep_history_initials_and_delays() -> None:
    chart = Chart(
        "more",
        State(
            "top",
            State(
                "a",
                History("h", deep=True),
                State("a1"),
                Parallel(
                    "a2", State("p", State("p1"), State("p2"), initial="p1"), State("q", State("q1"), initial="q1")
                ),
                initial=("p2", "q1"),
                on_entry=[send("later", {"n": [1, "two"]}, delay=1e6, id="l"), send("now", object())],
                transitions=[on("x", action=cancel("l")), after(2.5e-7, "a1")],
            ),
            initial="a",
        ),
    )
    root = _scxml(chart)
    a = root.find("s:state[@id='a']", NS)
    assert a.get("initial") == "p2 q1"
    assert root.find(".//s:history[@id='h']", NS).get("type") == "deep"
    later, now = a.findall("s:onentry/s:send", NS)[:2]
    assert (later.get("event"), later.get("delay"), later.get("id")) == ("later", "1000000s", "l")
    assert later.find("s:content", NS).get("expr") == "{n: [1, 'two']}"
    assert now.get("delay") is None and now.get(f"{{{CELLCTL_NS}}}data").startswith("<object")
    assert a.find("s:transition[@event='x']/s:cancel", NS).get("sendid") == "l"
    assert a.find("s:onentry/s:send[@id='after.a.0']", NS).get("delay") == "0.00000025s"
    assert seconds(3600.0) == "3600" and seconds(0.5) == "0.5" and seconds(0) == "0"
