"""`scxml_import`: SCXML written by hand or by an editor, loaded as a chart (issue 14, point 5).

The document below is written as Qt Creator's SCXML editor writes one (its `qt:editorinfo`
layout elements, no cellctl attributes), using the structural subset the importer reads. Each
refused construct is an error naming the element and its line.
"""

from __future__ import annotations

from typing import Any

import pytest

from statecharts.engine import (
    ERROR_EXECUTION,
    ActionContext,
    Chart,
    DoneValue,
    Event,
    ScxmlImportError,
    activity,
)
from statecharts.engine.scxml_import import read_scxml
from statecharts.engine.testing import advance, drive, start

QT_DOC = """<?xml version="1.0" encoding="UTF-8"?>
<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" binding="early"
       xmlns:qt="http://www.qt.io/2015/02/scxml-ext" name="stow_cell" qt:editorversion="4.11.1"
       initial="idle">
    <qt:editorinfo initialGeometry="40;40;-20;-20;40;40"/>
    <!-- stow_cell: a cell drawn in an editor -->
    <state id="idle">
        <qt:editorinfo geometry="100;100;-60;-50;120;100"/>
        <transition type="external" event="item.arrived go" target="working"/>
    </state>
    <state id="working">
        <!-- the arm and the band run together -->
        <initial>
            <transition target="resume"/>
        </initial>
        <history id="resume" type="deep">
            <transition target="arm_approach"/>
        </history>
        <parallel id="busy">
            <state id="arm" initial="arm_approach">
                <state id="arm_approach">
                    <onentry>
                        <log label="start_motion" xmlns:c="urn:cellctl:statecharts" c:action="start_motion"/>
                        <send event="watchdog" delay="1500ms" id="wd"/>
                    </onentry>
                    <transition event="motion.done" cond="band_is_down" target="arm_eject"/>
                    <transition event="motion.done" target="arm_approach" type="internal">
                        <raise event="band.retry"/>
                    </transition>
                </state>
                <state id="arm_eject">
                    <onentry><cancel sendid="wd"/></onentry>
                    <transition event="motion.done" target="stowed"/>
                </state>
            </state>
            <state id="band">
                <state id="band_up">
                    <transition event="band.down band.retry" target="band_down"/>
                </state>
                <state id="band_down"/>
            </state>
        </parallel>
        <transition event="watchdog" target="idle"/>
        <transition event="pause" target="idle" cond="In('arm_approach')"/>
    </state>
    <final id="stowed">
        <donedata><content expr="{bin: 'A1', tries: 2}"/></donedata>
    </final>
</scxml>
"""


def _actions(log: list[str]) -> dict[str, Any]:
    def start_motion(ctx: ActionContext[Any], event: Event) -> None:
        log.append(f"start_motion on {event.name}")

    def band_is_down(ctx: ActionContext[Any], event: Event) -> bool:
        return ctx.is_active("band_down")

    return {"actions": {"start_motion": start_motion}, "guards": {"band_is_down": band_is_down}}


def test_an_editor_drawn_document_builds_the_chart_it_draws() -> None:
    log: list[str] = []
    chart = Chart.from_scxml(QT_DOC, **_actions(log))
    assert chart.name == "stow_cell" and chart.description == "a cell drawn in an editor"
    assert chart.root.id == "root" and [n.id for n in chart.root.children] == ["idle", "working", "stowed"]
    assert chart["working"].doc == "the arm and the band run together"
    assert chart["working"].initial is chart["resume"] and chart["resume"].deep
    assert chart["band"].initial is chart["band_up"]  # SCXML 3.3: no initial -> the first child
    # `event="item.arrived go"`: one transition per descriptor, in order
    assert [(e.source.id, e.event) for e in chart.transitions[:2]] == [("idle", "item.arrived"), ("idle", "go")]
    assert chart["stowed"].donedata == DoneValue({"bin": "A1", "tries": 2})


def test_the_imported_chart_runs_as_drawn() -> None:
    """SCXML 3.3/3.10 (initial through a deep history, its default the first time), 3.12.1
    (events), 4.4 (<raise>: internal), 6.2/6.3 (<send delay id>, <cancel>), 5.5 (donedata)."""
    log: list[str] = []
    chart = Chart.from_scxml(QT_DOC, **_actions(log))
    interp, _, host = start(chart, [])
    drive(interp, "go")
    assert {"working", "busy", "arm_approach", "band_up"} <= interp.configuration
    assert log == ["start_motion on go"] and host.scheduled[0][1:] == (1.5, "wd")
    drive(interp, "motion.done")  # band not down: the internal retry raises band.retry -> band_down
    assert {"arm_approach", "band_down"} <= interp.configuration
    drive(interp, "motion.done")  # now the guard holds
    assert "arm_eject" in interp.configuration and host.cancelled == ["wd"]
    drive(interp, "pause")  # In('arm_approach') is false: stays
    assert "arm_eject" in interp.configuration
    drive(interp, "motion.done")
    assert interp.final == "stowed" and interp.done_data == {"bin": "A1", "tries": 2}


def test_the_watchdog_send_fires_and_deep_history_resumes() -> None:
    log: list[str] = []
    chart = Chart.from_scxml(QT_DOC, **_actions(log))
    interp, _, _ = start(chart, [])
    drive(interp, "go", "band.down")
    advance(interp, 1.5)  # the watchdog: back to idle, the history remembers arm_approach + band_down
    assert interp.configuration == {"root", "idle"}
    drive(interp, "go")
    assert {"arm_approach", "band_down"} <= interp.configuration


def test_placeholders_build_a_chart_to_check_and_export_and_fail_loudly_when_run() -> None:
    imported = read_scxml(QT_DOC, placeholders=True)
    assert imported.unbound == ("action start_motion", "guard band_is_down")
    interp, rec, _ = start(imported.chart, [])
    drive(interp, "go")
    errors = [r for r in rec.records if r.kind == "error"]
    assert errors and "start_motion" in errors[0].detail and "without a binding" in errors[0].detail
    assert any(r.event == ERROR_EXECUTION for r in rec.records if r.kind == "event")


def test_activities_bind_by_label_and_must_post_the_same_events() -> None:
    @activity("motion.done", "motion.failed")
    async def move(ctx: Any) -> None:
        ctx.post("motion.done")

    ns = 'xmlns:cellctl="urn:cellctl:statecharts"'
    doc = (f'<scxml xmlns="http://www.w3.org/2005/07/scxml" {ns} version="1.0">'
           '<state id="a" cellctl:activities="move(motion.done motion.failed)"/></scxml>')
    chart = Chart.from_scxml(doc, activities={"move": move})
    assert chart["a"].activities == (move,)
    with pytest.raises(ScxmlImportError, match=r"line 1: <state>: activity 'move' posts \['motion.done', "
                       r"'motion.failed'\] in Python, \['motion.done'\] in the document"):
        Chart.from_scxml(doc.replace(" motion.failed", ""), activities={"move": move})
    with pytest.raises(ScxmlImportError, match="activity 'move' is not bound"):
        Chart.from_scxml(doc)


HEAD = '<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0">\n'


def _in_state(body: str, attrs: str = "") -> str:
    return f'{HEAD}<state id="a"{attrs}>\n{body}\n</state>\n</scxml>\n'


BAD = [
    ("not well-formed", HEAD + "<state id='a'>\n</scxml>", 3, "", "not well-formed XML: mismatched tag"),
    ("doctype", '<?xml version="1.0"?>\n<!DOCTYPE scxml [<!ENTITY x "y">]>\n' + HEAD + "</scxml>", 2, "",
     "document type declaration"),
    ("not scxml", "<statechart/>", 1, "statechart", "not an SCXML document"),
    ("no namespace", "<scxml version='1.0'><state id='a'/></scxml>", 1, "scxml", "namespace"),
    ("no states", HEAD + "</scxml>", 1, "scxml", "no state"),
    ("version", HEAD.replace('"1.0"', '"2.0"') + "<state id='a'/></scxml>", 1, "scxml", "only SCXML 1.0"),
    ("datamodel", HEAD.replace("version", 'datamodel="xpath" version') + "<state id='a'/></scxml>", 1, "scxml",
     "datamodel 'xpath'"),
    ("script", _in_state("<onentry><script>x = 1</script></onentry>"), 3, "script", "outside the structural"),
    ("assign", _in_state("<onexit><assign location='x' expr='1'/></onexit>"), 3, "assign", "outside"),
    ("if", _in_state("<transition event='e'><if cond='x'/></transition>"), 3, "if", "outside"),
    ("invoke", _in_state("<invoke type='http://x'/>"), 3, "invoke", "activities are cellctl:activities"),
    ("data", HEAD + "<datamodel><data id='x' expr='1'/></datamodel><state id='a'/></scxml>", 2, "data",
     "no data model"),
    ("expression cond", _in_state("<transition event='e' cond='x &gt; 1'/>"), 3, "transition", "not expressions"),
    ("unbound guard", _in_state("<transition event='e' cond='guards.ready'/>"), 3, "transition",
     "guard 'ready' is not bound: the bindings have no guard of that name (guards=)"),
    ("unbound action", _in_state("<onentry><log xmlns:c='urn:cellctl:statecharts' c:action='go'/></onentry>"), 3,
     "log", "action 'go' is not bound: the bindings have no action"),
    ("plain log", _in_state("<onentry><log label='hi' expr=\"'x'\"/></onentry>"), 3, "log",
     "attribute 'expr' is outside"),
    ("log without action", _in_state("<onentry><log label='hi'/></onentry>"), 3, "log", "without cellctl:action"),
    ("send target", _in_state("<onentry><send event='x' target='#_parent'/></onentry>"), 3, "send",
     "only sends to the chart itself"),
    ("send eventexpr", _in_state("<onentry><send eventexpr='x'/></onentry>"), 3, "send", "'eventexpr' is outside"),
    ("send no event", _in_state("<onentry><send id='x'/></onentry>"), 3, "send", "needs an event"),
    ("send param", _in_state("<onentry><send event='x'><param name='a' expr='1'/></send></onentry>"), 3, "param",
     "outside the structural subset"),
    ("send python data", _in_state("<onentry><send event='x' xmlns:c='urn:cellctl:statecharts' c:data='obj'/>"
                                   "</onentry>"), 3, "send", "Python data SCXML could not hold"),
    ("bad delay", _in_state("<onentry><send event='x' delay='soon'/></onentry>"), 3, "send", "delay 'soon'"),
    ("bad content", _in_state("<onentry><send event='x'><content expr='f(1)'/></send></onentry>"), 3, "content",
     "not a literal"),
    ("unknown attribute", _in_state("", " src='other.scxml'"), 2, "state", "attribute 'src'"),
    ("foreign element", _in_state("<x:thing xmlns:x='urn:other'/>"), 3, "thing", "not SCXML"),
    ("no id", HEAD + "<state>\n<state id='b'/></state></scxml>", 2, "state", "needs an id"),
    ("bad id", HEAD + "<state id='a-b'/></scxml>", 2, "state", "must be identifiers"),
    ("duplicate id", HEAD + "<state id='a'/>\n<state id='a'/></scxml>", 3, "state", "first at line 2"),
    ("history type", _in_state("<history id='h' type='deepest'/><state id='b'/>"), 3, "history", "'deepest'"),
    ("initial content", _in_state("<initial><transition target='b'><raise event='x'/></transition></initial>"
                                  "<state id='b'/>"), 3, "transition", "executable content on an <initial>"),
    ("initial twice", _in_state("<initial><transition target='b'/></initial><state id='b'/>", " initial='b'"), 3,
     "initial", "one initial"),
    ("unknown target", HEAD + "<state id='a'>\n<transition event='e' target='nowhere'/>\n</state></scxml>", 2,
     "state", "transition target names unknown state 'nowhere'"),
    ("timer of another state", _in_state("<onentry><send event='after.b.0' id='after.b.0' delay='1s'/></onentry>"),
     3, "send", "after() timers of state"),
    ("timer not cancelled", _in_state("<onentry><send event='after.a.0' id='after.a.0' delay='1s'/></onentry>"
                                      "<transition event='after.a.0' target='a'/>"), 2, "state", "must be cancelled"),
    ("text", _in_state("stray words"), 2, "state", "text inside <state>"),
]


@pytest.mark.parametrize(("label", "doc", "line", "element", "words"), BAD, ids=[c[0] for c in BAD])
def test_outside_the_subset_is_an_error_naming_the_element_and_line(label, doc, line, element, words) -> None:
    with pytest.raises(ScxmlImportError) as info:
        Chart.from_scxml(doc)
    err = info.value
    assert (err.line, err.element) == (line, element), str(err)
    assert words in str(err)
    assert str(err).startswith(f"line {line}")
