"""`cellctl chart import FILE`: load an SCXML document as a chart, show what it built, export it back."""

from __future__ import annotations

from pathlib import Path

from statecharts import catalog
from statecharts.engine import Chart, Node
from statecharts.engine.model import callable_name
from statecharts.engine.scxml_import import Bindings, Imported, read_scxml

MAX_BYTES = 4 * 1024 * 1024  # a chart is kilobytes; a file this large is not one


class ImportFailed(Exception):
    """The file could not be read or imported; the message is one line naming the file."""


def load(path: Path, bind: str | None) -> Imported:
    """Import `path`; with `bind`, its names resolve to that shipped chart's Python (and must)."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ImportFailed(f"{path}: {size} bytes: larger than any chart ({MAX_BYTES} bytes at most)")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportFailed(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ImportFailed(f"{path}: cannot read: {exc.strerror or exc}") from None
    bindings = Bindings.of_chart(catalog.load(bind)) if bind else None
    try:
        return read_scxml(text, bindings=bindings, placeholders=bind is None, name=path.stem)
    except ValueError as exc:  # ScxmlImportError, and a chart Chart() refuses
        raise ImportFailed(f"{path}: {exc}") from None


def _edge_text(chart: Chart, node: Node) -> list[str]:
    out = []
    for edge in node.transitions:
        trigger = f"after {edge.delay:g}s" if edge.delay is not None else edge.event or "(eventless)"
        guard = f" [{callable_name(edge.guard)}]" if edge.guard is not None else ""
        target = ", ".join(t.id for t in edge.targets) or "(targetless)"
        extra = " internal" if edge.internal else ""
        acts = f" / {', '.join(callable_name(a) for a in edge.actions)}" if edge.actions else ""
        out.append(f"{trigger}{guard} -> {target}{extra}{acts}")
    return out


def describe(chart: Chart) -> list[str]:
    """The chart as an indented tree: each state with its kind, initial, actions and transitions."""
    kinds: dict[str, int] = {}
    for node in chart.states:
        kinds[node.kind] = kinds.get(node.kind, 0) + 1
    counts = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    lines = [f"chart {chart.name}: {len(chart.states)} states ({counts}), {len(chart.transitions)} transitions"]
    if chart.description:
        lines.append(f"  {chart.description}")

    def walk(node: Node, pad: str) -> None:
        parts: list[str] = [node.kind if node.kind != "history" else ("deep history" if node.deep else "history")]
        if node.initial_targets:
            parts.append("initial " + " ".join(t.id for t in node.initial_targets))
        if node.history_default is not None:
            parts.append("default " + " ".join(t.id for t in node.history_default.targets))
        if node.on_entry:
            parts.append("entry " + ", ".join(callable_name(a) for a in node.on_entry))
        if node.on_exit:
            parts.append("exit " + ", ".join(callable_name(a) for a in node.on_exit))
        if node.activities:
            parts.append("do " + ", ".join(a.label for a in node.activities))
        if node.donedata is not None:
            parts.append(f"donedata {callable_name(node.donedata)}")
        lines.append(f"{pad}{node.id} ({'; '.join(parts)})")
        lines.extend(f"{pad}  {text}" for text in _edge_text(chart, node))
        for child in node.children:
            walk(child, pad + "  ")

    walk(chart.root, "  ")
    return lines
