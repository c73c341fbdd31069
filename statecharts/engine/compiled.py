"""`Chart`: a validated, indexed chart ready for the interpreter."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .errors import (
    DuplicateStateError,
    FinalStateTransitionError,
    HistoryStateError,
    InitialConflictError,
    InitialHistoryError,
    InitialNotDescendantError,
    InvalidDoneDataError,
    InvalidInitialError,
    InvalidStateIdError,
    InvalidTransitionError,
    MissingInitialError,
    UnknownTargetError,
)
from .events import TIMER_PREFIX, is_timer_event, timer_event, valid_delay
from .guards import In
from .model import EVENT_DESCRIPTOR, STATE_ID, Action, Activity, DoneData, Guard, History, Kind, State, Transition


class Node:
    """One state of a compiled chart. `index` is its position in document order."""

    __slots__ = (
        "activities",
        "ancestor_set",
        "ancestors",
        "children",
        "deep",
        "depth",
        "doc",
        "donedata",
        "histories",
        "history_default",
        "id",
        "index",
        "initial",
        "initial_targets",
        "kind",
        "on_entry",
        "on_exit",
        "parent",
        "source",
        "timers",
        "transitions",
    )  # fmt: skip

    def __init__(self, spec: State | History, index: int, parent: Node | None) -> None:
        self.id: str = spec.id
        self.kind: Kind = spec.kind
        self.index = index
        self.parent = parent
        self.children: list[Node] = []
        self.initial: Node | None = None  # the child default entry goes through
        self.initial_targets: tuple[Node, ...] = ()  # what `initial` names (that child or deeper)
        self.transitions: list[Edge] = []
        self.on_entry: tuple[Action, ...] = getattr(spec, "on_entry", ())
        self.on_exit: tuple[Action, ...] = getattr(spec, "on_exit", ())
        self.activities: tuple[Activity, ...] = getattr(spec, "activities", ())
        self.ancestors: tuple[Node, ...] = (parent, *parent.ancestors) if parent else ()
        self.ancestor_set: frozenset[int] = frozenset(a.index for a in self.ancestors)
        self.depth = len(self.ancestors)
        self.histories: list[Node] = []
        self.history_default: Edge | None = None
        self.deep: bool = getattr(spec, "deep", False)  # a deep history pseudo-state
        self.donedata: DoneData | None = getattr(spec, "donedata", None)  # a final state's
        self.doc: str = getattr(spec, "doc", "")
        self.timers: list[tuple[float, str]] = []  # (delay, timer event name)
        self.source = spec

    @property
    def is_atomic(self) -> bool:
        return self.kind in ("state", "final") and not self.children

    @property
    def is_compound(self) -> bool:
        return self.kind == "state" and bool(self.children)

    @property
    def regions(self) -> list[Node]:
        """Children that are states (history pseudo-states excluded)."""
        return [c for c in self.children if c.kind != "history"]

    def is_descendant_of(self, other: Node) -> bool:
        return other.index in self.ancestor_set

    def __repr__(self) -> str:
        return f"<{self.kind} {self.id}>"


class Edge:
    """One compiled transition; `index` is its position in document order."""

    __slots__ = (
        "actions",
        "delay",
        "domain",
        "event",
        "fixed_entry",
        "guard",
        "has_history",
        "index",
        "internal",
        "source",
        "spec",
        "targets",
    )  # fmt: skip

    def __init__(self, index: int, source: Node, spec: Transition, event: str | None) -> None:
        self.index = index
        self.source = source
        self.event = event
        self.targets: tuple[Node, ...] = ()
        # Without a history target, what a transition enters is fixed, so is its domain (SCXML 3.13
        # getTransitionDomain): computed once here. With one, the interpreter computes it when taken.
        self.has_history = False
        # Whether what it enters is the same every time (the interpreter then computes it once): not
        # with a history target, nor in a chart where a state's initial is its history.
        self.fixed_entry = False
        self.domain: Node | None = None
        self.guard: Guard | None = spec.guard
        self.actions: tuple[Action, ...] = spec.actions
        self.internal = spec.internal
        self.delay = spec.delay
        self.spec = spec

    def matches(self, name: str) -> bool:
        """SCXML descriptor match: `a.b` matches `a.b` and `a.b.c`, `*` matches all."""
        d = self.event
        if d is None:
            return False
        if d == "*" or d == name:
            return True
        if d.endswith(".*"):
            d = d[:-2]
        return name.startswith(d) and (len(name) == len(d) or name[len(d)] == ".")

    def __repr__(self) -> str:
        tgt = ",".join(t.id for t in self.targets)
        return f"<{self.source.id} --{self.event or ''}--> {tgt}>"


class Chart:
    """A validated chart. Building it raises a `ChartDefinitionError` naming the state."""

    def __init__(self, name: str, root: State, *, description: str = "") -> None:
        self.name = name
        self.description = description
        if not isinstance(root, State) or root.kind in ("final", "history"):
            raise InvalidInitialError(getattr(root, "id", "?"), "the root must be a State or Parallel")
        self.states: list[Node] = []
        self.by_id: dict[str, Node] = {}
        self.root = self._add(root, None)
        self.transitions: list[Edge] = []
        for node in self.states:
            self._resolve(node)
        initial_history = any(n.initial is not None and n.initial.kind == "history" for n in self.states)
        for edge in self.transitions:
            edge.fixed_entry = not (edge.has_history or initial_history)

    @classmethod
    def from_scxml(cls, text: str, **bindings: Any) -> Chart:
        """The chart an SCXML document describes: `scxml_import.from_scxml(text, actions=...,
        guards=..., activities=..., donedata=..., placeholders=..., name=...)`."""
        from .scxml_import import from_scxml

        return from_scxml(text, **bindings)

    # -- construction -------------------------------------------------------------

    def _add(self, spec: State | History, parent: Node | None) -> Node:
        if not isinstance(spec, (State, History)):
            where = parent.id if parent else "<root>"
            raise InvalidStateIdError(where, f"child {spec!r} is not a State, Final, Parallel or History")
        if not isinstance(spec.id, str) or not STATE_ID.match(spec.id):
            raise InvalidStateIdError(str(spec.id), "state ids must be identifiers ([A-Za-z_][A-Za-z0-9_]*)")
        if spec.id in self.by_id:
            raise DuplicateStateError(spec.id, "this id is used by more than one state")
        node = Node(spec, len(self.states), parent)
        self.states.append(node)
        self.by_id[spec.id] = node
        if spec.kind == "final" and (spec.children or getattr(spec, "transitions", ()) or node.activities):
            raise FinalStateTransitionError(spec.id, "a final state cannot have transitions, children or activities")
        if node.donedata is not None and not callable(node.donedata):
            raise InvalidDoneDataError(spec.id, f"donedata {node.donedata!r} is not callable (fn(ctx) -> data)")
        if spec.kind == "final" and parent is not None and parent.kind == "parallel":
            raise FinalStateTransitionError(spec.id, "a final state cannot be a region of a parallel state")
        if spec.kind == "history" and (parent is None or parent.kind not in ("state", "parallel")):
            raise HistoryStateError(spec.id, "a history state must be a child of a compound or parallel state")
        for child in spec.children:
            child_node = self._add(child, node)
            node.children.append(child_node)
            if child_node.kind == "history":
                node.histories.append(child_node)
        if spec.kind == "parallel" and not node.regions:
            raise MissingInitialError(spec.id, "a parallel state needs at least one region")
        return node

    def _lookup(self, owner: Node, target: str, what: str) -> Node:
        node = self.by_id.get(target)
        if node is None:
            raise UnknownTargetError(owner.id, f"{what} names unknown state {target!r}")
        return node

    def _resolve(self, node: Node) -> None:
        spec = node.source
        if node.kind == "history":
            assert isinstance(spec, History) and node.parent is not None
            self._resolve_history(node, spec, node.parent)
            return
        assert isinstance(spec, State)
        if node.kind == "state" and node.children:
            self._resolve_initial(node, spec)
        elif spec.initial is not None and node.kind != "parallel":
            raise InvalidInitialError(node.id, "an atomic state cannot have an initial child")
        elif spec.initial is not None:
            raise InvalidInitialError(node.id, "a parallel state enters all its regions; drop initial")
        for act in node.activities:
            if not isinstance(act, Activity):
                raise InvalidTransitionError(node.id, f"activity {act!r} is not an Activity (use @activity(...))")
            for ev in act.posts:
                if not EVENT_DESCRIPTOR.match(ev) or "*" in ev:
                    raise InvalidTransitionError(node.id, f"activity {act.label} posts malformed event {ev!r}")
        delays: dict[float, str] = {}
        for spec_t in spec.transitions:
            node.transitions.append(self._edge(node, spec_t, delays))

    def _resolve_initial(self, node: Node, spec: State) -> None:
        """SCXML 3.3 `initial`: one or more descendants that can be active together."""
        names = _ids(spec.initial)
        if names is None:
            raise InvalidInitialError(node.id, f"initial {spec.initial!r} must be a state id or a tuple of ids")
        if not names:
            raise MissingInitialError(node.id, "a compound state needs an initial child")
        targets = tuple(self._lookup(node, t, "initial") for t in names)
        for tgt in targets:
            if not tgt.is_descendant_of(node):
                raise InitialNotDescendantError(
                    node.id, f"initial {tgt.id!r} is not a child (or deeper descendant) of {node.id!r}"
                )
            if tgt.kind == "history" and (tgt.parent is not node or len(targets) > 1):
                raise InitialHistoryError(
                    node.id, f"initial {tgt.id!r} is a history pseudo-state: only a history of {node.id!r} itself, "
                    "named alone, can be its initial"
                )
        clash = _clash(targets)
        if clash:
            raise InitialConflictError(node.id, f"initial {clash}")
        node.initial_targets = targets
        node.initial = next(a for a in (targets[0], *targets[0].ancestors) if a.parent is node)

    def _resolve_history(self, node: Node, spec: History, parent: Node) -> None:
        if not isinstance(spec.deep, bool):
            raise HistoryStateError(node.id, f"deep={spec.deep!r} must be True or False")
        # Parents are resolved before children (document order), so the parent's initial is known.
        names = _ids(spec.default)
        if names is None:
            raise HistoryStateError(node.id, f"default {spec.default!r} must be a state id or a tuple of ids")
        if names:
            targets = tuple(self._lookup(node, t, "history default") for t in names)
        elif parent.initial is node:
            raise HistoryStateError(node.id, f"{parent.id!r} starts in this history: give it a default to enter")
        else:
            targets = parent.initial_targets or (parent.regions[0],)
        for tgt in targets:
            if not (tgt.is_descendant_of(parent) and tgt.kind != "history"):
                raise HistoryStateError(node.id, f"default {tgt.id!r} is not inside {parent.id!r}")
        clash = _clash(targets)
        if clash:
            raise HistoryStateError(node.id, f"default {clash}")
        ids = tuple(t.id for t in targets)
        edge = Edge(-1, node, Transition(None, ids[0] if len(ids) == 1 else ids, None, spec.action), None)
        edge.targets = targets
        node.history_default = edge

    def _edge(self, node: Node, spec: Transition, delays: dict[float, str]) -> Edge:
        if not isinstance(spec, Transition):
            raise InvalidTransitionError(node.id, f"{spec!r} is not a Transition (use on/after/always)")
        event = spec.event
        if spec.delay is not None:
            if not valid_delay(spec.delay):
                raise InvalidTransitionError(node.id, f"after({spec.delay!r}): delay must be a finite number >= 0")
            if spec.delay not in delays:
                delays[spec.delay] = timer_event(node.id, len(delays))
                node.timers.append((float(spec.delay), delays[spec.delay]))
            event = delays[spec.delay]
        elif event is not None and (not isinstance(event, str) or not EVENT_DESCRIPTOR.match(event)):
            raise InvalidTransitionError(node.id, f"malformed event descriptor {event!r}")
        elif event is not None and (event == TIMER_PREFIX or is_timer_event(event)):
            reserved = f"event {event!r}: names starting '{TIMER_PREFIX}.' are reserved for after() timers"
            raise InvalidTransitionError(node.id, reserved)
        for fn, what in ((spec.guard, "guard"), *((a, "action") for a in spec.actions)):
            if fn is not None and not callable(fn):
                raise InvalidTransitionError(node.id, f"{what} {fn!r} is not callable")
        if isinstance(spec.guard, In) and spec.guard.state not in self.by_id:
            raise UnknownTargetError(node.id, f"guard In({spec.guard.state!r}) names unknown state")
        edge = Edge(len(self.transitions), node, spec, event)
        edge.targets = tuple(self._lookup(node, t, "transition target") for t in spec.targets)
        edge.has_history = any(t.kind == "history" for t in edge.targets)
        if not edge.has_history:
            edge.domain = transition_domain(edge, edge.targets, self.root)
        if self.root in edge.targets:
            raise InvalidTransitionError(node.id, f"a transition cannot target the root {self.root.id!r}")
        clash = _clash([t for t in edge.targets if t.kind != "history"])
        if clash:
            raise InvalidTransitionError(node.id, f"targets: {clash}")
        self.transitions.append(edge)
        return edge

    # -- queries -------------------------------------------------------------------

    def __getitem__(self, state_id: str) -> Node:
        return self.by_id[state_id]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.states)

    def __repr__(self) -> str:
        return f"Chart({self.name!r}, {len(self.states)} states)"

    def configuration_problems(self, active: Iterable[str]) -> list[str]:
        """Why a set of active state ids is not a legal configuration ([] if it is)."""
        ids = set(active)
        problems = [f"unknown state {s!r}" for s in sorted(ids - self.by_id.keys())]
        if self.root.id not in ids:
            problems.append(f"root {self.root.id!r} is not active")
        for sid in sorted(ids & self.by_id.keys()):
            node = self.by_id[sid]
            if node.kind == "history":
                problems.append(f"history pseudo-state {sid!r} is active")
                continue
            if node.parent is not None and node.parent.id not in ids:
                problems.append(f"{sid!r} is active but its parent {node.parent.id!r} is not")
            active_children = [c.id for c in node.regions if c.id in ids]
            if node.is_compound and len(active_children) != 1:
                problems.append(f"compound {sid!r} has {len(active_children)} active children {active_children}")
            if node.kind == "parallel":
                missing = [c.id for c in node.regions if c.id not in ids]
                if missing:
                    problems.append(f"parallel {sid!r} has inactive regions {missing}")
        return problems


def transition_domain(edge: Edge, targets: Sequence[Node], root: Node) -> Node | None:
    """The state whose descendants `edge` exits and enters when it leads to `targets` (SCXML 3.13
    getTransitionDomain): its source for an internal transition of a compound source that stays
    inside it, else the innermost compound ancestor of the source (or the root) containing every
    target. None for a targetless transition."""
    if not targets:
        return None
    src = edge.source
    if edge.internal and src.is_compound and all(t.is_descendant_of(src) for t in targets):
        return src
    for anc in src.ancestors:
        if (anc.is_compound or anc.parent is None) and all(t.is_descendant_of(anc) for t in targets):
            return anc
    return root


def _ids(value: object) -> tuple[str, ...] | None:
    """`initial`/`default` as a tuple of ids (() when unset), None when malformed."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _clash(targets: Sequence[Node]) -> str | None:
    """Why `targets` cannot be active together (SCXML 3.11), or None if they can."""
    for i, a in enumerate(targets):
        for b in targets[i + 1 :]:
            if a is b:
                return f"names {a.id!r} twice"
            if a.is_descendant_of(b) or b.is_descendant_of(a):
                outer, inner = (b, a) if a.is_descendant_of(b) else (a, b)
                return f"{outer.id!r} contains {inner.id!r}: name one of them"
            lca = next(x for x in a.ancestors if b.is_descendant_of(x))
            if lca.kind != "parallel":
                return f"{a.id!r} and {b.id!r} lie in one region ({lca.id!r} has one active child at a time)"
    return None
