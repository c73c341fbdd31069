"""The statechart semantics (after the W3C SCXML algorithm), free of any I/O.

`Interpreter` keeps the configuration and runs macrosteps synchronously; `start()` and `process()`
return what each did as a `Macrostep`. Whatever takes time (activities, timers, delayed sends) is
delegated to a `Host`: `ChartRunner` (the async runtime) in production, `testing.FakeHost` in tests.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol

from .compiled import Chart, Edge, Node, transition_domain
from .context import Action, ActionContext, D
from .errors import ChartAlreadyStartedError, LivelockError
from .events import ERROR_EXECUTION, INIT, TIMER_PREFIX, Event, ExecutionFailure, done_state
from .model import callable_name
from .trace import TraceHook, TraceKind, TraceRecord

START_EVENT = Event(INIT)
TIMER_EVENT_PREFIX = TIMER_PREFIX + "."
MAX_MICROSTEPS = 10_000  # per macrostep: more means an eventless or internal-event cycle
_NO_HISTORY: dict[int, Edge] = {}  # no history default taken (never written to)


class Host(Protocol):
    """What the interpreter needs of its surroundings: time, queues, and the state lifecycle."""

    def now(self) -> float: ...

    def post(self, event: Event) -> None:
        """Queue an external event."""

    def schedule(self, event: Event, delay: float, send_id: str | None) -> None:
        """Queue `event` as an external event once `delay` (> 0) seconds have passed on the
        host's clock, behind earlier sends due at the same time. It outlives the state that
        sent it and dies with the chart (SCXML 6.2)."""

    def cancel(self, send_id: str) -> None:
        """Drop every pending scheduled event of `send_id`; none pending is no error (SCXML 6.3)."""

    def state_started(self, node: Node, generation: int) -> None:
        """`node` was entered and is still active at the end of the macrostep: start its
        activities and arm its timers (timer events carry `generation` as their data)."""

    def state_stopped(self, node: Node) -> None:
        """`node` is being exited: cancel its activities and timers."""


@dataclass(frozen=True, slots=True)
class Macrostep:
    """What one macrostep did (SCXML 3.13): returned by `Interpreter.start()` and `process()`.

    `event` is the external event processed (`init` for `start()`). `transitions` are the
    transitions taken, in the order they were taken (microstep after microstep, each microstep's
    in document order); `exited` the states exited, innermost first within each microstep;
    `entered` the states entered, outermost first within each microstep. A state may appear more
    than once (left and re-entered within the step). When the step ended the chart, `exited` ends
    with every state left active. `*_ids` give the same as state ids.
    """

    event: Event
    transitions: tuple[Edge, ...] = ()
    exited: tuple[Node, ...] = ()
    entered: tuple[Node, ...] = ()

    @property
    def entered_ids(self) -> tuple[str, ...]:
        return tuple(n.id for n in self.entered)

    @property
    def exited_ids(self) -> tuple[str, ...]:
        return tuple(n.id for n in self.exited)


_new = object.__new__
_slots = Macrostep.__dict__  # the slots' descriptors: set once each, as the frozen __init__ does
_set_event = _slots["event"].__set__
_set_transitions = _slots["transitions"].__set__
_set_exited = _slots["exited"].__set__
_set_entered = _slots["entered"].__set__


def _macrostep(event: Event, transitions: list[Edge], exited: list[Node], entered: list[Node]) -> Macrostep:
    """`Macrostep(event, tuple(transitions), ...)` at half the cost of a frozen dataclass's __init__
    (one per event: the hot path). Sets the slots as __init__ would, without its checks."""
    step: Macrostep = _new(Macrostep)
    _set_event(step, event)
    _set_transitions(step, tuple(transitions))
    _set_exited(step, tuple(exited))
    _set_entered(step, tuple(entered))
    return step


class Interpreter(Generic[D]):
    """Runs a chart's macrosteps; one instance per running chart.

    `data` is the chart's data, seen by guards, actions and activities as `ctx.data` (its type is
    the `D` of their `ActionContext[D]`). `trace`, if given, sees every step as it happens;
    `start()` and `process()` also return each macrostep as a value.
    """

    def __init__(self, chart: Chart, host: Host, data: D = None, trace: TraceHook | None = None) -> None:  # type: ignore[assignment]
        self.chart = chart
        self.host = host
        self.ctx: ActionContext[D] = ActionContext(self, data)
        self.internal: deque[Event] = deque()
        self.running = False
        self.final: str | None = None
        self.done_data: Any = None  # the top-level final state's donedata, once the chart ended
        self._trace = trace
        self._nodes = chart.states
        self._active: set[int] = set()
        self._atomics: list[Node] | None = None
        self._history: dict[int, list[Node]] = {}
        self._generation = [0] * len(chart.states)
        # What the running macrostep did (returned as its Macrostep); _entries: (state, generation) of each entry.
        self._entries: list[tuple[Node, int]] = []
        self._entered: list[Node] = []
        self._exited: list[Node] = []
        self._taken: list[Edge] = []
        self._candidates: dict[tuple[int, str | None], tuple[Edge, ...]] = {}
        self._failed_guards: set[int] = set()  # edges whose guard raised in this macrostep
        self._entry_order: dict[int, list[int]] = {}  # edge -> what it enters, for fixed_entry edges
        self._last_event = START_EVENT
        self._step_time = 0.0  # clock time of the running macrostep (stamps its trace records)

    # -- public -----------------------------------------------------------------------

    @property
    def configuration(self) -> frozenset[str]:
        return frozenset(self._nodes[i].id for i in self._active)

    def is_active(self, state_id: str) -> bool:
        node = self.chart.by_id.get(state_id)
        return node is not None and node.index in self._active

    def generation(self, node: Node) -> int:
        return self._generation[node.index]

    def start(self) -> Macrostep:
        """Enter the initial configuration and run to completion; what it did (event `init`)."""
        if self.running:
            raise ChartAlreadyStartedError(f"chart {self.chart.name!r} already started")
        self.running = True
        self._step_time = self.host.now()
        self._forget_step()  # what a stop() after the last macrostep exited
        to_enter: set[int] = set()
        history_content: dict[int, Edge] = {}
        self._add_descendants(self.chart.root, to_enter, history_content)
        self._enter(sorted(to_enter), history_content)
        return self._macrostep(START_EVENT)

    def process(self, event: Event) -> Macrostep:
        """Process one external event to completion (a macrostep) and return what it did.
        Once the chart has ended, nothing happens (an empty `Macrostep`)."""
        if not self.running:
            return Macrostep(event)
        if self._trace:
            self._step_time = self.host.now()
            self._emit("event", event=event.name)
        enabled = self._select(event.name, event)
        if enabled:
            self._microstep(enabled, event)
        return self._macrostep(event)

    def stop(self) -> None:
        """Exit every active state (innermost first) and stop."""
        self.running = False
        self._step_time = self.host.now()
        for i in sorted(self._active, reverse=True):
            node = self._nodes[i]
            self._exit_node(node, self._last_event)
            if node.donedata is not None and node.id == self.final:  # SCXML D: exitInterpreter
                self.done_data = self._done_data(node)
        self._active.clear()
        self._atomics = None

    # -- selection ----------------------------------------------------------------------

    def _atomic_nodes(self) -> list[Node]:
        if self._atomics is None:
            nodes = self._nodes
            self._atomics = [nodes[i] for i in sorted(self._active) if not nodes[i].children]
        return self._atomics

    def _candidates_for(self, atomic: Node, name: str | None) -> tuple[Edge, ...]:
        if name is not None and name.startswith(TIMER_EVENT_PREFIX):  # private to its after() transitions
            return tuple(e for s in (atomic, *atomic.ancestors) for e in s.transitions if e.event == name)
        found: list[Edge] = []
        for state in (atomic, *atomic.ancestors):
            for edge in state.transitions:
                if (edge.event is None and edge.delay is None) if name is None else edge.matches(name):
                    found.append(edge)
        return tuple(found)

    def _select(self, name: str | None, event: Event) -> list[Edge]:
        enabled: list[Edge] = []
        cache = self._candidates
        for atomic in self._atomic_nodes():
            key = (atomic.index, name)
            cands = cache.get(key)
            if cands is None:
                cands = cache[key] = self._candidates_for(atomic, name)
            for edge in cands:
                if edge.delay is not None and event.data != self._generation[edge.source.index]:
                    continue  # a timer armed by an earlier visit of its state
                if edge.guard is not None and not self._guard(edge, event):
                    continue
                if edge not in enabled:
                    enabled.append(edge)
                break
        if len(enabled) > 1:
            enabled = self._remove_conflicts(enabled)
        return enabled

    def _guard(self, edge: Edge, event: Event) -> bool:
        assert edge.guard is not None
        if edge.index in self._failed_guards:
            return False
        try:
            return bool(edge.guard(self.ctx, event))
        except Exception as exc:  # false and reported (once per macrostep), as in SCXML
            self._failed_guards.add(edge.index)
            self._fail(edge.source, f"guard {callable_name(edge.guard)}", exc)
            return False

    def _remove_conflicts(self, enabled: list[Edge]) -> list[Edge]:
        filtered: list[Edge] = []
        exits: dict[int, set[int]] = {}
        for t1 in enabled:
            exit1 = exits.setdefault(t1.index, self._exit_set((t1,)))
            preempted = False
            to_remove: list[Edge] = []
            for t2 in filtered:
                if exit1 & exits[t2.index]:
                    if t1.source.is_descendant_of(t2.source):
                        to_remove.append(t2)
                    else:
                        preempted = True
                        break
            if not preempted:
                for t in to_remove:
                    filtered.remove(t)
                filtered.append(t1)
        return filtered

    # -- exit / entry sets ------------------------------------------------------------------

    def _effective_targets(self, edge: Edge) -> Sequence[Node]:
        if not edge.has_history:
            return edge.targets
        out: list[Node] = []
        for node in edge.targets:
            if node.kind == "history":
                saved = self._history.get(node.index)
                if saved is not None:
                    out.extend(saved)
                else:
                    assert node.history_default is not None
                    out.extend(node.history_default.targets)
            else:
                out.append(node)
        return out

    def _domain(self, edge: Edge) -> Node | None:
        if not edge.has_history:
            return edge.domain
        return transition_domain(edge, self._effective_targets(edge), self.chart.root)

    def _exit_set(self, edges: Iterable[Edge]) -> set[int]:
        out: set[int] = set()
        nodes = self._nodes
        for edge in edges:
            if not edge.targets:
                continue
            domain = self._domain(edge)
            assert domain is not None
            d = domain.index
            out.update(i for i in self._active if d in nodes[i].ancestor_set)
        return out

    def _add_descendants(self, node: Node, to_enter: set[int], hist: dict[int, Edge]) -> None:
        parent = node.parent
        if node.kind == "history":
            assert parent is not None and node.history_default is not None
            saved = self._history.get(node.index)
            if saved is None:
                hist[parent.index] = node.history_default
                saved = list(node.history_default.targets)
            for s in saved:
                self._add_descendants(s, to_enter, hist)
            for s in saved:
                self._add_ancestors(s, parent, to_enter, hist)
            return
        to_enter.add(node.index)
        targets = node.initial_targets  # SCXML 3.3: a child, a deeper descendant, or several
        if targets:
            for t in targets:
                self._add_descendants(t, to_enter, hist)
            for t in targets:
                self._add_ancestors(t, node, to_enter, hist)
        elif node.kind == "parallel":
            self._enter_missing_regions(node, to_enter, hist)

    def _enter_missing_regions(self, node: Node, to_enter: set[int], hist: dict[int, Edge]) -> None:
        nodes = self._nodes
        for child in node.regions:
            c = child.index
            if not any(c in nodes[s].ancestor_set for s in to_enter):
                self._add_descendants(child, to_enter, hist)

    def _add_ancestors(self, node: Node, stop: Node | None, to_enter: set[int], hist: dict[int, Edge]) -> None:
        for anc in node.ancestors:
            if anc is stop:
                return
            to_enter.add(anc.index)
            if anc.kind == "parallel":
                self._enter_missing_regions(anc, to_enter, hist)

    def _entry_set(self, edges: list[Edge]) -> tuple[set[int], dict[int, Edge]]:
        to_enter: set[int] = set()
        hist: dict[int, Edge] = {}
        for edge in edges:
            for node in edge.targets:
                self._add_descendants(node, to_enter, hist)
            domain = self._domain(edge)
            for node in self._effective_targets(edge):
                self._add_ancestors(node, domain, to_enter, hist)
            if domain is not None and domain.kind == "parallel":  # only a parallel root
                self._enter_missing_regions(domain, to_enter, hist)
        return to_enter, hist

    # -- steps ----------------------------------------------------------------------------

    def _microstep(self, edges: list[Edge], event: Event) -> None:
        self._taken.extend(edges)
        if self._trace:
            for edge in edges:
                self._emit(
                    "transition", state=edge.source.id, event=event.name if edge.event else None,
                    target=tuple(t.id for t in edge.targets),
                )  # fmt: skip
        nodes = self._nodes
        exiting = sorted(self._exit_set(edges), reverse=True)
        for i in exiting:  # remember history before anything is exited (SCXML 3.10, exitStates)
            node = nodes[i]
            for h in node.histories:
                if h.deep:  # every active atomic descendant
                    self._history[h.index] = [a for a in self._atomic_nodes() if a.is_descendant_of(node)]
                else:  # the active children
                    self._history[h.index] = [c for c in node.regions if c.index in self._active]
        for i in exiting:
            self._exit_node(nodes[i], event)
        for edge in edges:
            self._run(edge.actions, event, edge.source, "transition action")
        if len(edges) == 1 and edges[0].fixed_entry:  # what it enters is fixed: computed once
            order = self._entry_order.get(edges[0].index)
            if order is None:
                order = self._entry_order[edges[0].index] = sorted(self._entry_set(edges)[0])
            self._enter(order, _NO_HISTORY, event)
        else:
            to_enter, hist = self._entry_set(edges)
            self._enter(sorted(to_enter), hist, event)

    def _exit_node(self, node: Node, event: Event) -> None:
        if self._trace:
            self._emit("exit", state=node.id)
        if node.on_exit:
            self._run(node.on_exit, event, node, "exit action")
        self.host.state_stopped(node)
        self._exited.append(node)
        self._active.discard(node.index)
        self._generation[node.index] += 1  # timers of this visit are now stale
        self._atomics = None

    def _enter(self, order: Iterable[int], hist: dict[int, Edge], event: Event = START_EVENT) -> None:
        """Enter the states `order` (indices, in document order); `hist`: the history defaults taken."""
        nodes = self._nodes
        for i in order:
            node = nodes[i]
            self._active.add(i)
            self._atomics = None
            self._generation[i] += 1
            self._entries.append((node, self._generation[i]))
            self._entered.append(node)
            if self._trace:
                self._emit("entry", state=node.id)
            if node.on_entry:
                self._run(node.on_entry, event, node, "entry action")
            if i in hist:
                self._run(hist[i].actions, event, node, "history default action")
            if node.kind == "final":
                self._completed(node)

    def _completed(self, final: Node) -> None:
        parent = final.parent
        assert parent is not None
        if parent.parent is None:
            self.running = False
            self.final = final.id
            if self._trace:
                self._emit("final", state=final.id)
            return
        data = self._done_data(final) if final.donedata is not None else None
        self.internal.append(Event(done_state(parent.id), data))
        grand = parent.parent
        if grand.kind == "parallel" and all(self._in_final(r) for r in grand.regions):
            self.internal.append(Event(done_state(grand.id)))

    def _done_data(self, final: Node) -> Any:
        """SCXML 5.5: a failing <donedata> queues error.execution, and the data is empty."""
        assert final.donedata is not None
        try:
            return final.donedata(self.ctx)
        except Exception as exc:
            self._fail(final, f"donedata {callable_name(final.donedata)}", exc)
            return None

    def _in_final(self, node: Node) -> bool:
        if node.kind == "parallel":
            return all(self._in_final(r) for r in node.regions)
        return any(c.kind == "final" and c.index in self._active for c in node.children)

    def _macrostep(self, event: Event) -> Macrostep:
        first = self._last_event = event
        steps = 0
        while self.running:
            steps += 1
            if steps > MAX_MICROSTEPS:
                self.internal.clear()
                self._forget_step()
                raise LivelockError(
                    f"chart {self.chart.name!r}: no stable configuration after {MAX_MICROSTEPS} microsteps "
                    f"(eventless transitions or internal events cycle; active: {sorted(self.configuration)})"
                )
            enabled = self._select(None, event)
            if not enabled:
                if not self.internal:
                    break
                event = self.internal.popleft()
                if self._trace:
                    self._emit("event", event=event.name, detail="internal")
                enabled = self._select(event.name, event)
                if not enabled:
                    continue
            self._microstep(enabled, event)
        self._failed_guards.clear()
        if not self.running:
            self.stop()
        else:
            active, generation = self._active, self._generation
            for node, gen in self._entries:
                if node.index in active and generation[node.index] == gen:
                    self.host.state_started(node, gen)
        taken, exited, entered = self._taken, self._exited, self._entered
        step = _macrostep(first, taken, exited, entered)
        taken.clear()
        exited.clear()
        entered.clear()
        self._entries.clear()
        return step

    def _forget_step(self) -> None:
        self._entries.clear()
        self._entered.clear()
        self._exited.clear()
        self._taken.clear()

    def _run(self, actions: Iterable[Action[D]], event: Event, node: Node, where: str) -> None:
        for fn in actions:
            try:
                fn(self.ctx, event)
            except Exception as exc:  # reported as error.execution, the chart goes on
                self._fail(node, f"{where} {callable_name(fn)}", exc)

    def _fail(self, node: Node, where: str, exc: Exception) -> None:
        if self._trace:
            self._emit("error", state=node.id, detail=f"{where}: {type(exc).__name__}: {exc}")
        self.internal.append(Event(ERROR_EXECUTION, ExecutionFailure(node.id, where, exc)))

    def _emit(self, kind: TraceKind, **fields: Any) -> None:
        assert self._trace is not None
        self._trace(TraceRecord(self._step_time, self.chart.name, kind, **fields))
