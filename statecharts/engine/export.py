"""Export a compiled chart to Mermaid `stateDiagram-v2` and to W3C SCXML."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .compiled import Chart, Edge, Node
from .model import callable_name

SCXML_NS = "http://www.w3.org/2005/07/scxml"
CELLCTL_NS = "urn:cellctl:statecharts"


def _label(edge: Edge) -> str:
    text = f"after {edge.delay:g}s" if edge.delay is not None else edge.event or ""
    if edge.guard is not None:
        text += f" [{callable_name(edge.guard)}]"
    if edge.actions:
        text += " / " + ", ".join(callable_name(a) for a in edge.actions)
    if edge.internal:
        text += " (internal)"
    return text.strip()


def to_mermaid(chart: Chart) -> str:
    """Mermaid `stateDiagram-v2`; parallel regions are separated by `--`, and each
    transition is written inside the innermost composite enclosing both its ends."""
    lines = [f"%% {chart.name}: {chart.description}"] if chart.description else []
    lines.append("stateDiagram-v2")
    scoped: dict[int, list[Edge]] = {}
    for edge in chart.transitions:
        scoped.setdefault(_scope(edge).index, []).append(edge)
    _mermaid_body(chart.root, lines, "    ", scoped)
    return "\n".join(lines) + "\n"


def _scope(edge: Edge) -> Node:
    for anc in edge.source.ancestors:
        if all(t.is_descendant_of(anc) for t in edge.targets):
            return anc
    return edge.source.ancestors[-1] if edge.source.ancestors else edge.source


def _mermaid_body(node: Node, lines: list[str], pad: str, scoped: dict[int, list[Edge]]) -> None:
    if node.initial is not None:
        lines.append(f"{pad}[*] --> {node.initial.id}")
    regions_done = 0
    for child in node.children:
        if node.kind == "parallel" and child.kind != "history":
            if regions_done:
                lines.append(f"{pad}--")
            regions_done += 1
        if child.kind == "history":
            lines.append(f'{pad}state "H" as {child.id}')
            assert child.history_default is not None
            for tgt in child.history_default.targets:
                lines.append(f"{pad}{child.id} --> {tgt.id} : default")
        elif child.children:
            lines.append(f"{pad}state {child.id} {{")
            _mermaid_body(child, lines, pad + "    ", scoped)
            lines.append(f"{pad}}}")
        elif child.kind == "final":
            lines.append(f"{pad}{child.id} --> [*]")
        else:
            lines.append(f"{pad}state {child.id}")
    for edge in scoped.get(node.index, ()):
        label = _label(edge)
        suffix = f" : {label}" if label else ""
        for tgt in edge.targets or (edge.source,):
            lines.append(f"{pad}{edge.source.id} --> {tgt.id}{suffix}")


def to_scxml(chart: Chart) -> str:
    """W3C SCXML. Guards and actions are Python callables, named in `cond` and in
    `cellctl:call` elements; activities become `<invoke>`, `after` timers a delayed
    `<send>` on entry and its `<cancel>` on exit, as SCXML itself expresses them."""
    ET.register_namespace("", SCXML_NS)
    ET.register_namespace("cellctl", CELLCTL_NS)
    root = ET.Element(
        f"{{{SCXML_NS}}}scxml", {"version": "1.0", "name": chart.name, "datamodel": "null"}
    )
    root_node = chart.root
    if root_node.kind == "parallel":
        _scxml_state(root_node, root)
        root.set("initial", root_node.id)
    else:
        assert root_node.initial is not None
        root.set("initial", root_node.initial.id)
        _scxml_content(root_node, root)
        for child in root_node.children:
            _scxml_state(child, root)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _q(tag: str, ns: str = SCXML_NS) -> str:
    return f"{{{ns}}}{tag}"


def _scxml_state(node: Node, parent: ET.Element) -> None:
    if node.kind == "history":
        el = ET.SubElement(parent, _q("history"), {"id": node.id, "type": "shallow"})
        assert node.history_default is not None
        tr = ET.SubElement(el, _q("transition"), {"target": " ".join(t.id for t in node.history_default.targets)})
        _calls(tr, node.history_default.actions)
        return
    tag = {"parallel": "parallel", "final": "final"}.get(node.kind, "state")
    el = ET.SubElement(parent, _q(tag), {"id": node.id})
    if node.initial is not None:
        el.set("initial", node.initial.id)
    _scxml_content(node, el)
    for child in node.children:
        _scxml_state(child, el)


def _scxml_content(node: Node, el: ET.Element) -> None:
    if node.on_entry or node.timers:
        onentry = ET.SubElement(el, _q("onentry"))
        _calls(onentry, node.on_entry)
        for delay, event in node.timers:
            ET.SubElement(onentry, _q("send"), {"event": event, "id": event, "delay": f"{delay:g}s"})
    if node.on_exit or node.timers:
        onexit = ET.SubElement(el, _q("onexit"))
        _calls(onexit, node.on_exit)
        for _, event in node.timers:
            ET.SubElement(onexit, _q("cancel"), {"sendid": event})
    for edge in node.transitions:
        attrs: dict[str, str] = {}
        if edge.event:
            attrs["event"] = edge.event
        if edge.guard is not None:
            attrs["cond"] = callable_name(edge.guard)
        if edge.targets:
            attrs["target"] = " ".join(t.id for t in edge.targets)
        if edge.internal:
            attrs["type"] = "internal"
        _calls(ET.SubElement(el, _q("transition"), attrs), edge.actions)
    for act in node.activities:
        inv = ET.SubElement(el, _q("invoke"), {"type": f"{CELLCTL_NS}#activity", "id": f"{node.id}.{act.label}"})
        for ev in act.posts:
            ET.SubElement(inv, _q("posts", CELLCTL_NS), {"event": ev})


def _calls(parent: ET.Element, actions: tuple[object, ...]) -> None:
    for fn in actions:
        ET.SubElement(parent, _q("call", CELLCTL_NS), {"name": callable_name(fn)})
