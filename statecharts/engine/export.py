"""Export a compiled chart to Mermaid `stateDiagram-v2` and to W3C SCXML that standard tools load.

Both exports are checked against independent tools (tests/interop/test_exports.py): mermaid-cli
(`mmdc`) renders every shipped chart's Mermaid, and SCION (`@scion-scxml/scxml`, an SCXML
interpreter) runs the exported SCXML through the same configurations as our interpreter for the
same events and timers, with the same actions in the same order. docs/statecharts-export.md has
the mapping with examples; in short:

SCXML 1.0, `datamodel="ecmascript"`. What SCXML cannot say is carried in attributes of the
`urn:cellctl:statecharts` namespace (`cellctl:`), which SCXML's schema admits on every element
(`scxml.extra.attribs`) and interpreters ignore, or in XML comments; never in elements of that
namespace, which SCION rejects as unknown executable content.

- State, Parallel, Final, History -> <state>, <parallel>, <final>, <history type="shallow|deep">
  with its default <transition>; `initial` (a child, a deeper descendant or several) ->
  `initial="a b"`, or `<initial><transition target="h"/></initial>` when it is the state's history.
- The root state's id -> `cellctl:root` on <scxml>, so an import gets it back.
- The root is the <scxml> element itself, unless it has transitions, entry/exit actions,
  activities or history of its own: then it is a <state> (or <parallel>) under <scxml>, its own
  transitions are `type="internal"` (our root is never exited), and a final child, which ends
  our chart, ends the session through a generated `done.state.<root>` transition to a top-level
  <final id="<root>_end" cellctl:generated="end">.
- on / always / internal transitions -> <transition event cond target type="internal">.
- after(s) -> on entry <send event="after.<state>.<n>" id="after.<state>.<n>" delay="<s>s"/>, on
  exit its <cancel>, and the transition on that event.
- guard `In("s")` -> `cond="In('s')"`, evaluated by the interpreter itself.
- any other guard (a Python function) -> `cond="guards.<name>"`, declared once as
  `<data id="guards" expr="{<name>: false, ...}"/>`: opaque to a standard interpreter, so there
  every Python guard is closed unless the host sets it, and nothing raises error.execution.
- action `send(...)` / `cancel(...)` / `raise_event(...)` -> <send event delay id> (data as an
  ECMAScript literal in <content expr>, or named in `cellctl:data` if it has none) / <cancel
  sendid> / <raise event>.
- any other action (a Python function) -> `<log label="<name>" cellctl:action="<name>"/>`:
  standard executable content that changes nothing, so an interpreter logs the name where our
  engine calls the function.
- activities -> `cellctl:activities="<label>(<event it posts> ...) ..."` on their state: no
  SCXML meaning (an <invoke> of a type the interpreter lacks raises error.execution); the events
  they post come from outside.
- Final donedata -> `cellctl:donedata="<name>"`, a constant `DoneValue(v)` -> <donedata><content
  expr="v"/></donedata>; state docs and the chart's description -> comments.

`scxml_import.py` reads all of this back (`Chart.from_scxml`).

Known differences in a standard interpreter: Python guards are closed; timer events
(`after.<state>.<n>`) are private to their transitions here, while an SCXML `*` descriptor sees
them too; a transition of a parallel root exits and re-enters the root there (its entry and exit
actions run), ours keeps it entered.

Mermaid (UML notation where Mermaid has it): a state with entry/exit actions, activities,
targetless transitions, done data or a doc lists them in its box (`entry / a, b`, `exit / c`,
`do / move`, `event [guard] / action`, `donedata / fn`); a composite state puts the same in its
title, and its doc in a `%%` comment. Transitions are labelled `event [guard] / actions`,
`after 2s`, `(internal)`; targetless ones from composites are self-loops marked `(targetless)`.
History is `H` (shallow) or `H*` (deep); a final state points to `[*]`; an initial arrow names
deeper targets in its label. Ids Mermaid cannot take (`note`, `state`, `class`, `style`, `root`,
`constructor`, ...) are drawn under an alias with the id as their label, and text it would parse
(`;`, `#`, `<`, `>`, quotes, braces) is written as entity codes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from decimal import Decimal

from .compiled import Chart, Edge, Node
from .ecmascript import JS_NAME, js_key, js_literal, js_string
from .events import done_state
from .guards import In
from .model import Cancel, DoneValue, Raise, Send, callable_name

SCXML_NS = "http://www.w3.org/2005/07/scxml"
CELLCTL_NS = "urn:cellctl:statecharts"
GUARDS = "guards"  # the SCXML datamodel object holding the Python guards (all false)



# -- shared naming --------------------------------------------------------------------------------


def seconds(delay: float) -> str:
    """A delay in plain decimal seconds (no exponent), as SCXML's `delay="<n>s"` wants it."""
    text = format(Decimal(repr(float(delay))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def guard_cond(guard: object) -> str:
    """The SCXML `cond` of a guard: `In('s')`, or `guards.<name>` for a Python guard."""
    if isinstance(guard, In):
        return f"In({js_string(guard.state)})"
    name = callable_name(guard)
    return f"{GUARDS}.{name}" if JS_NAME.match(name) else f"{GUARDS}[{js_string(name)}]"


def _action_text(fn: object) -> str:
    if isinstance(fn, Send):
        text = f"send {fn.event}"
        if fn.delay:
            text += f" after {seconds(fn.delay)}s"
        return text + (f" as {fn.id}" if fn.id else "")
    if isinstance(fn, Cancel):
        return f"cancel {fn.id}"
    if isinstance(fn, Raise):
        return f"raise {fn.event}"
    return callable_name(fn)


def _donedata_text(fn: object) -> str:
    if isinstance(fn, DoneValue):
        return js_literal(fn.value) or repr(fn.value)
    return callable_name(fn)


def _label(edge: Edge) -> str:
    text = f"after {seconds(edge.delay)}s" if edge.delay is not None else edge.event or ""
    if edge.guard is not None:
        text += f" [{callable_name(edge.guard)}]"
    if edge.actions:
        text += " / " + ", ".join(_action_text(a) for a in edge.actions)
    if edge.internal and edge.source.parent is not None:  # the root is never exited: no difference there
        text += " (internal)"
    return text.strip()


def _has_own_content(node: Node) -> bool:
    """Whether the root needs to be drawn / written as a state of its own."""
    return bool(node.transitions or node.on_entry or node.on_exit or node.activities or node.histories)


# -- Mermaid --------------------------------------------------------------------------------------

# Words Mermaid's stateDiagram grammar takes as keywords wherever a state id stands (any case), and ids
# its renderer cannot hold: its own `root` and the names of JavaScript's Object.prototype (exact case).
_MERMAID_KEYWORDS = frozenset({"class", "classdef", "click", "default", "note", "state", "statediagram", "style"})
_MERMAID_TAKEN = frozenset({
    "root", "constructor", "__proto__", "toString", "toLocaleString", "valueOf", "hasOwnProperty", "isPrototypeOf",
    "propertyIsEnumerable", "__defineGetter__", "__defineSetter__", "__lookupGetter__", "__lookupSetter__",
})  # fmt: skip


def _mermaid_reserved(name: str) -> bool:
    return name.lower() in _MERMAID_KEYWORDS or name in _MERMAID_TAKEN


_MERMAID_ESCAPES = {"#": "#35;", ";": "#59;", "<": "#60;", ">": "#62;", '"': "#34;", "{": "#123;", "}": "#125;"}


def _mm_text(text: str) -> str:
    """Free text made safe for a Mermaid label or description (one line, entity codes)."""
    text = " ".join(text.split())
    return "".join(_MERMAID_ESCAPES.get(c, c) for c in text)


class _Mermaid:
    def __init__(self, chart: Chart) -> None:
        self.chart = chart
        self.lines: list[str] = []
        self.names: dict[str, str] = {}
        taken = set(chart.by_id)
        for node in chart.states:
            name = node.id
            if _mermaid_reserved(name):
                while name in taken or _mermaid_reserved(name):
                    name += "_"
                taken.add(name)
            self.names[node.id] = name
        root = chart.root
        self.wrapped = root.kind == "parallel" or _has_own_content(root)
        # Mermaid puts a state in the last composite block that mentions it: an edge goes in the
        # block of its ends' parent when both are children of it, else at the top level (None),
        # where a mention moves nothing.
        self.edges: dict[int | None, list[str]] = {}
        for node in chart.states:
            if node.history_default is not None:
                default = node.history_default
                acts = ", ".join(_action_text(a) for a in default.actions)
                self._edge(node, default.targets, f"default / {acts}" if acts else "default")
        for edge in chart.transitions:
            if edge.targets:
                self._edge(edge.source, edge.targets, _label(edge))
            elif edge.source.children:  # an atomic state lists its targetless ones in its box
                self._edge(edge.source, (edge.source,), f"{_label(edge)} (targetless)")

    def _edge(self, source: Node, targets: Sequence[Node], label: str) -> None:
        parent = source.parent
        inside = parent is not None and all(t.parent is parent for t in targets)
        block = parent.index if inside and parent is not None and (parent.parent or self.wrapped) else None
        suffix = f" : {_mm_text(label)}" if label else ""
        lines = self.edges.setdefault(block, [])
        lines.extend(f"{self.names[source.id]} --> {self.names[t.id]}{suffix}" for t in targets)

    def render(self) -> str:
        chart = self.chart
        if chart.description:
            self.lines.append(f"%% {chart.name}: {' '.join(chart.description.split())}")
        self.lines.append("stateDiagram-v2")
        root = chart.root
        if self.wrapped:
            self.lines.append(f"    [*] --> {self.names[root.id]}")
            self._composite(root, "    ")
        else:
            self._body(root, "    ")
        self.lines.extend(f"    {line}" for line in self.edges.get(None, ()))
        return "\n".join(self.lines) + "\n"

    def _extras(self, node: Node) -> list[str]:
        """What UML writes in a state's box: entry/exit actions, activities, internal transitions."""
        out: list[str] = []
        if node.on_entry:
            out.append("entry / " + ", ".join(_action_text(a) for a in node.on_entry))
        if node.on_exit:
            out.append("exit / " + ", ".join(_action_text(a) for a in node.on_exit))
        out.extend(f"do / {act.label}" for act in node.activities)
        if node.donedata is not None:
            out.append(f"donedata / {_donedata_text(node.donedata)}")
        if not node.children:
            out.extend(_label(e) for e in node.transitions if not e.targets)
        return out

    def _composite(self, node: Node, pad: str) -> None:
        name = self.names[node.id]
        if node.doc:
            self.lines.append(f"{pad}%% {node.id}: {' '.join(node.doc.split())}")
        extras = self._extras(node)
        if extras or name != node.id:
            title = " · ".join([node.id, *extras])
            self.lines.append(f'{pad}state "{_mm_text(title)}" as {name} {{')
        else:
            self.lines.append(f"{pad}state {name} {{")
        self._body(node, pad + "    ")
        self.lines.append(f"{pad}}}")

    def _leaf(self, node: Node, pad: str) -> None:
        name = self.names[node.id]
        described = ([node.doc] if node.doc else []) + self._extras(node)
        if described or name != node.id:
            self.lines.append(f'{pad}state "{_mm_text(node.id)}" as {name}')
            self.lines.extend(f"{pad}{name} : {_mm_text(text)}" for text in described)
        elif node.kind != "final":
            self.lines.append(f"{pad}{name}")
        if node.kind == "final":
            self.lines.append(f"{pad}{name} --> [*]")

    def _body(self, node: Node, pad: str) -> None:
        names = self.names
        if node.initial is not None:
            # The arrow goes to the child default entry passes; deeper targets are its label.
            deeper = "" if node.initial_targets == (node.initial,) else " : " + ", ".join(
                t.id for t in node.initial_targets
            )
            self.lines.append(f"{pad}[*] --> {names[node.initial.id]}{deeper}")
        regions_done = 0
        for child in node.children:
            if node.kind == "parallel" and child.kind != "history":
                if regions_done:
                    self.lines.append(f"{pad}--")
                regions_done += 1
            if child.kind == "history":
                self.lines.append(f'{pad}state "{"H*" if child.deep else "H"}" as {names[child.id]}')
            elif child.children:
                self._composite(child, pad)
            else:
                self._leaf(child, pad)
        self.lines.extend(f"{pad}{line}" for line in self.edges.get(node.index, ()))


def to_mermaid(chart: Chart) -> str:
    """Mermaid `stateDiagram-v2`; parallel regions are separated by `--`. A transition between
    two children of one composite is written inside it, any other one at the top level."""
    return _Mermaid(chart).render()


# -- SCXML ----------------------------------------------------------------------------------------


def _q(tag: str, ns: str = SCXML_NS) -> str:
    return f"{{{ns}}}{tag}"


def _comment(parent: ET.Element, text: str) -> None:
    text = " ".join(text.split()).replace("--", "- -").rstrip("-")
    parent.append(ET.Comment(f" {text} "))


def to_scxml(chart: Chart) -> str:
    """W3C SCXML 1.0 (ecmascript datamodel) that SCXML interpreters load and run as written;
    the module docstring gives the mapping of guards, actions and activities."""
    ET.register_namespace("", SCXML_NS)
    ET.register_namespace("cellctl", CELLCTL_NS)
    root = ET.Element(_q("scxml"), {"version": "1.0", "name": chart.name, "datamodel": "ecmascript"})
    root.set(_q("root", CELLCTL_NS), chart.root.id)
    if chart.description:
        _comment(root, f"{chart.name}: {chart.description}")
    guards = _python_guards(chart)
    if guards:
        datamodel = ET.SubElement(root, _q("datamodel"))
        _comment(datamodel, "Python guards, opaque to SCXML: each is false unless the host sets it")
        expr = "{" + ", ".join(f"{js_key(name)}: false" for name in guards) + "}"
        ET.SubElement(datamodel, _q("data"), {"id": GUARDS, "expr": expr})
    top = chart.root
    if top.kind == "parallel" or _has_own_content(top):
        root.set("initial", top.id)
        el = _scxml_state(top, root)
        finals = [c for c in top.children if c.kind == "final"]
        if finals and top.kind != "parallel":
            end = _unique(f"{top.id}_end", chart)
            tr = ET.SubElement(el, _q("transition"), {"event": done_state(top.id), "target": end})
            tr.set(_q("generated", CELLCTL_NS), "end")
            ET.SubElement(root, _q("final"), {"id": end, _q("generated", CELLCTL_NS): "end"})
    else:
        root.set("initial", " ".join(t.id for t in top.initial_targets))
        for child in top.children:
            _scxml_state(child, root)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _unique(name: str, chart: Chart) -> str:
    while name in chart.by_id:
        name += "_"
    return name


def _python_guards(chart: Chart) -> list[str]:
    names: dict[str, None] = {}
    for edge in chart.transitions:
        if edge.guard is not None and not isinstance(edge.guard, In):
            names.setdefault(callable_name(edge.guard))
    return list(names)


def _scxml_state(node: Node, parent: ET.Element) -> ET.Element:
    if node.kind == "history":
        el = ET.SubElement(parent, _q("history"), {"id": node.id, "type": "deep" if node.deep else "shallow"})
        assert node.history_default is not None
        tr = ET.SubElement(el, _q("transition"), {"target": " ".join(t.id for t in node.history_default.targets)})
        _actions(tr, node.history_default.actions)
        return el
    tag = {"parallel": "parallel", "final": "final"}.get(node.kind, "state")
    el = ET.SubElement(parent, _q(tag), {"id": node.id})
    initial = " ".join(t.id for t in node.initial_targets)
    through_history = node.initial is not None and node.initial.kind == "history"
    if initial and not through_history:
        el.set("initial", initial)
    if node.activities:
        el.set(_q("activities", CELLCTL_NS), _activities(node))
    value = js_literal(node.donedata.value) if isinstance(node.donedata, DoneValue) else None
    if node.donedata is not None and value is None:
        el.set(_q("donedata", CELLCTL_NS), callable_name(node.donedata))
    if node.doc:
        _comment(el, node.doc)
    if through_history:  # SCXML 3.3: the attribute form cannot name a history; the element can
        ET.SubElement(ET.SubElement(el, _q("initial")), _q("transition"), {"target": initial})
    if node.on_entry or node.timers:
        onentry = ET.SubElement(el, _q("onentry"))
        _actions(onentry, node.on_entry)
        for delay, event in node.timers:
            ET.SubElement(onentry, _q("send"), {"event": event, "id": event, "delay": f"{seconds(delay)}s"})
    if node.on_exit or node.timers:
        onexit = ET.SubElement(el, _q("onexit"))
        _actions(onexit, node.on_exit)
        for _, event in node.timers:
            ET.SubElement(onexit, _q("cancel"), {"sendid": event})
    for edge in node.transitions:
        attrs: dict[str, str] = {}
        if edge.event:
            attrs["event"] = edge.event
        if edge.guard is not None:
            attrs["cond"] = guard_cond(edge.guard)
        if edge.targets:
            attrs["target"] = " ".join(t.id for t in edge.targets)
        if edge.internal or (node.parent is None and node.kind == "state" and edge.targets):
            attrs["type"] = "internal"  # the root's own: our root is never exited (SCXML 3.5)
        _actions(ET.SubElement(el, _q("transition"), attrs), edge.actions)
    for child in node.children:
        _scxml_state(child, el)
    if value is not None:
        ET.SubElement(ET.SubElement(el, _q("donedata")), _q("content"), {"expr": value})
    return el


def _activities(node: Node) -> str:
    return " ".join(f"{act.label}({' '.join(act.posts)})" for act in node.activities)


def _actions(parent: ET.Element, actions: Iterable[object]) -> None:
    for fn in actions:
        if isinstance(fn, Send):
            attrs = {"event": fn.event}
            if fn.delay:
                attrs["delay"] = f"{seconds(fn.delay)}s"
            if fn.id is not None:
                attrs["id"] = fn.id
            send = ET.SubElement(parent, _q("send"), attrs)
            if fn.data is not None:
                _send_data(send, fn.data)
        elif isinstance(fn, Cancel):
            ET.SubElement(parent, _q("cancel"), {"sendid": fn.id})
        elif isinstance(fn, Raise):
            ET.SubElement(parent, _q("raise"), {"event": fn.event})
        else:
            name = callable_name(fn)
            ET.SubElement(parent, _q("log"), {"label": name, _q("action", CELLCTL_NS): name})


def _send_data(send: ET.Element, data: object) -> None:
    """Data JSON can hold travels as the event's content (an ECMAScript literal); anything else
    is only named."""
    expr = js_literal(data)
    if expr is None:
        send.set(_q("data", CELLCTL_NS), repr(data))
    else:
        ET.SubElement(send, _q("content"), {"expr": expr})
