"""Static checks of a compiled chart: what a reviewer would flag before it runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .compiled import Chart, Node
from .events import ERROR_ACTIVITY, done_state_id

FindingKind = Literal["unreachable", "dead-end", "unhandled-event", "never-raised"]


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    state: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.state}: {self.message}"


def check(chart: Chart) -> list[Finding]:
    """All findings, in document order of the state concerned."""
    findings = [*_unreachable(chart), *_dead_ends(chart), *_unhandled_activity_events(chart), *_never_raised(chart)]
    order = {n.id: n.index for n in chart.states}
    return sorted(findings, key=lambda f: (order.get(f.state, -1), f.kind, f.message))


def _default_entry(node: Node) -> list[Node]:
    """`node` and the descendants entered by default with it (a history: its default)."""
    if node.kind == "history":
        assert node.history_default is not None and node.parent is not None
        return [node, *_entered_within(node.history_default.targets, node.parent)]
    out = [node]
    if node.initial_targets:
        out.extend(_entered_within(node.initial_targets, node))
    elif node.kind == "parallel":
        for region in node.regions:
            out.extend(_default_entry(region))
    return out


def _entered_within(targets: tuple[Node, ...], stop: Node | None) -> list[Node]:
    """States entered with `targets` below `stop` (as the interpreter's entry set): their default
    entries, the states between them and `stop`, and parallel regions no target lies in."""
    out: list[Node] = []
    for tgt in targets:
        out.extend(_default_entry(tgt))
    for tgt in targets:
        for anc in tgt.ancestors:
            if anc is stop:
                break
            out.append(anc)
            if anc.kind == "parallel":
                for region in anc.regions:
                    if not any(t is region or t.is_descendant_of(region) for t in targets):
                        out.extend(_default_entry(region))
    return out


def _unreachable(chart: Chart) -> list[Finding]:
    reached: set[int] = set()
    todo: list[tuple[Node, ...]] = [(chart.root,)]
    while todo:
        for node in _entered_within(todo.pop(), None):  # a transition's targets enter together
            if node.index not in reached:
                reached.add(node.index)
                todo.extend(edge.targets for edge in node.transitions if edge.targets)
    return [
        Finding("unreachable", n.id, "no transition or default entry leads here")
        for n in chart.states
        if n.index not in reached and n.kind != "history"
    ]


def _dead_ends(chart: Chart) -> list[Finding]:
    out = []
    for node in chart.states:
        if node.children or node.kind in ("final", "history"):
            continue
        if not any(s.transitions for s in (node, *node.ancestors)):
            out.append(Finding("dead-end", node.id, "a non-final state with no transition out of it or its ancestors"))
    return out


def _handles(node: Node, event: str) -> bool:
    """Some transition that can be active while `node` is could take `event`."""
    scope = [node, *node.ancestors]
    stack = list(node.children)
    while stack:
        child = stack.pop()
        scope.append(child)
        stack.extend(child.children)
    return any(edge.matches(event) for s in scope for edge in s.transitions)


def _unhandled_activity_events(chart: Chart) -> list[Finding]:
    out = []
    for node in chart.states:
        for act in node.activities:
            for event in (*act.posts, ERROR_ACTIVITY):
                if not _handles(node, event):
                    message = f"activity {act.label} may post {event!r}, which no transition handles"
                    out.append(Finding("unhandled-event", node.id, message))
    return out


def _never_raised(chart: Chart) -> list[Finding]:
    out = []
    for edge in chart.transitions:
        ev = edge.event
        state_id = None if ev is None else done_state_id(ev)
        if state_id is None:
            continue
        target = chart.by_id.get(state_id)
        if target is None:
            out.append(Finding("never-raised", edge.source.id, f"{ev!r} names no state"))
        elif not _can_complete(target):
            out.append(Finding("never-raised", edge.source.id, f"{ev!r}: {target.id!r} has no final state to complete"))
    return out


def _can_complete(node: Node) -> bool:
    if node.kind == "parallel":
        return all(_can_complete(r) for r in node.regions)
    return any(c.kind == "final" for c in node.children)
