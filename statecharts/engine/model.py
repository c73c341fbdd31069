"""Chart definitions in plain, typed Python.

A chart is written as nested `State`, `Parallel`, `Final` and `History` nodes with
`on(...)`, `after(...)` and `always(...)` transitions, and actions that are functions or
the declarative `send(...)`/`cancel(...)`/`raise_event(...)`; `Chart(name, root)` validates and compiles it
(see `compiled.py`). `State` documents when each part of a state runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .context import Action, ActionContext, ActivityFn, DoneData, Guard
from .errors import InvalidSendError
from .events import TIMER_PREFIX, Event, is_timer_event, valid_delay

__all__ = [
    "EVENT_DESCRIPTOR",
    "STATE_ID",
    "Action",
    "Activity",
    "ActivityFn",
    "Cancel",
    "DoneData",
    "DoneValue",
    "Event",
    "Final",
    "Guard",
    "History",
    "Kind",
    "Parallel",
    "Raise",
    "Send",
    "State",
    "Transition",
    "activity",
    "after",
    "always",
    "callable_name",
    "cancel",
    "on",
    "raise_event",
    "send",
    "valid_delay",
]

STATE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# SCXML event descriptors: dotted tokens, optional trailing ".*", or "*".
EVENT_DESCRIPTOR = re.compile(r"^(\*|[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(\.\*)?)$")

Kind = Literal["state", "parallel", "final", "history"]


def callable_name(fn: object) -> str:
    """A readable name for a guard, action or activity (for traces and exports)."""
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return "lambda" if name == "<lambda>" else name


@dataclass(frozen=True, slots=True)
class Transition:
    """A transition as written; `target=None` means targetless (actions only)."""

    event: str | None = None
    target: str | tuple[str, ...] | None = None
    guard: Guard | None = None
    action: Action | Sequence[Action] | None = None
    internal: bool = False
    delay: float | None = None

    @property
    def targets(self) -> tuple[str, ...]:
        if self.target is None:
            return ()
        return (self.target,) if isinstance(self.target, str) else tuple(self.target)

    @property
    def actions(self) -> tuple[Action, ...]:
        if self.action is None:
            return ()
        if callable(self.action):
            return (self.action,)
        return tuple(self.action)


def on(
    event: str,
    target: str | tuple[str, ...] | None = None,
    *,
    guard: Guard | None = None,
    action: Action | Sequence[Action] | None = None,
    internal: bool = False,
) -> Transition:
    """A transition taken on `event` (an SCXML descriptor: `a.b` also matches `a.b.c`)."""
    return Transition(event, target, guard, action, internal)


def after(
    seconds: float,
    target: str | tuple[str, ...] | None = None,
    *,
    guard: Guard | None = None,
    action: Action | Sequence[Action] | None = None,
) -> Transition:
    """A transition taken `seconds` after its source state was entered (while still in it)."""
    return Transition(None, target, guard, action, False, seconds)


def always(
    target: str | tuple[str, ...] | None = None,
    *,
    guard: Guard | None = None,
    action: Action | Sequence[Action] | None = None,
) -> Transition:
    """An eventless transition, taken as soon as its guard holds."""
    return Transition(None, target, guard, action)


@dataclass(frozen=True, slots=True)
class Send:
    """A declarative action: `ctx.send(event, data, delay=delay, id=id)` (SCXML 6.2 <send>).

    The same as calling `ctx.send` from an action, but visible to exports as a <send>. Build
    it with `send(...)`; a malformed event, delay or id raises `InvalidSendError` at once.
    """

    event: str
    data: Any = None
    delay: float = 0.0
    id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.event, str) or not EVENT_DESCRIPTOR.match(self.event) or "*" in self.event:
            raise InvalidSendError(f"send({self.event!r}): not an event name")
        if self.event == TIMER_PREFIX or is_timer_event(self.event):
            raise InvalidSendError(f"send({self.event!r}): names starting '{TIMER_PREFIX}.' are after() timers")
        if not valid_delay(self.delay):
            raise InvalidSendError(f"send({self.event!r}, delay={self.delay!r}): delay must be finite and >= 0")
        if self.id is not None and not isinstance(self.id, str):
            raise InvalidSendError(f"send({self.event!r}): id must be a string, not {self.id!r}")

    def __call__(self, ctx: ActionContext, event: Event) -> None:
        ctx.send(self.event, self.data, delay=self.delay, id=self.id)


@dataclass(frozen=True, slots=True)
class Cancel:
    """A declarative action: `ctx.cancel(id)` (SCXML 6.3 <cancel>). Build it with `cancel(id)`."""

    id: str

    def __post_init__(self) -> None:
        if not isinstance(self.id, str):
            raise InvalidSendError(f"cancel({self.id!r}): a send id is a string")

    def __call__(self, ctx: ActionContext, event: Event) -> None:
        ctx.cancel(self.id)


@dataclass(frozen=True, slots=True)
class Raise:
    """A declarative action: `ctx.raise_event(event)` (SCXML 4.4 <raise>): an internal event,
    handled before any external one. Build it with `raise_event(event)`."""

    event: str

    def __post_init__(self) -> None:
        if not isinstance(self.event, str) or not EVENT_DESCRIPTOR.match(self.event) or "*" in self.event:
            raise InvalidSendError(f"raise_event({self.event!r}): not an event name")

    def __call__(self, ctx: ActionContext, event: Event) -> None:
        ctx.raise_event(self.event)


@dataclass(frozen=True, slots=True)
class DoneValue:
    """Done data that is a constant (SCXML 5.5 <donedata><content expr="..."/>): `Final(...,
    donedata=DoneValue({"bin": "A1"}))` puts that value on the done event."""

    value: Any

    def __call__(self, ctx: ActionContext) -> Any:
        return self.value


def send(event: str, data: Any = None, *, delay: float = 0.0, id: str | None = None) -> Send:
    """An action sending `event` to the chart, after `delay` seconds (see `ActionContext.send`)."""
    return Send(event, data, delay, id)


def cancel(id: str) -> Cancel:
    """An action cancelling the pending delayed sends named `id` (see `ActionContext.cancel`)."""
    return Cancel(id)


def raise_event(event: str) -> Raise:
    """An action raising the internal event `event` (see `ActionContext.raise_event`)."""
    return Raise(event)


@dataclass(frozen=True, slots=True)
class Activity:
    """An async function run while its state is active; it ends by posting an event.

    Declared with `@activity("event", ...)`, naming every event it may `ctx.post`, and given to a
    state's `activities`. Its lifecycle, under `ChartRunner` (a `Host` decides; see `State`):

    - **started** once per visit of its state, at the end of the macrostep that entered the state
      (after every entry action and eventless transition of that step; a state entered and left
      within one macrostep starts nothing), as a task in the runner's task group, with a fresh
      `ActivityContext` (`ctx.state`, `ctx.data`, `ctx.live`);
    - it **reports** with `ctx.post(name, data)`: an external event, queued behind those already
      posted. Posting an event not in `posts` raises `UndeclaredEventError` in the activity;
    - it **returns**: nothing else happens (the state stays active; the event it posted moves on);
    - it **raises** an `Exception`: the runner posts `error.activity` with an `ActivityFailure`
      (the chart goes on; `check` flags an activity whose state handles no `error.activity`);
    - it is **cancelled** when its state is exited: `ctx.live` turns false, its cancel scope is
      cancelled (its `finally` blocks run at its next await), and whatever it posts from then on
      is dropped. A state left before the activity first ran never runs its body.
    """

    fn: ActivityFn
    posts: tuple[str, ...] = ()
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or callable_name(self.fn)


def activity(*posts: str, name: str = "") -> Callable[[ActivityFn], Activity]:
    """Decorator declaring an activity and the events it may post."""

    def wrap(fn: ActivityFn) -> Activity:
        return Activity(fn, tuple(posts), name)

    return wrap


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    if callable(value) and not isinstance(value, Activity):
        return (value,)
    if isinstance(value, Activity):
        return (value,)
    return tuple(value)


class State:
    """A state: atomic when it has no children, compound otherwise.

    Lifecycle of a state (SCXML 3.13 and Appendix D, as `Interpreter` runs it):

    1. **Entry.** A transition (or `start()`) enters states outermost first, in document order.
       Each is added to the configuration, then its `on_entry` actions run in order, given the
       event that caused the entry (`init` on start); when a history of the state takes its
       default transition, that transition's action runs next. A `Final` then completes its parent
       (`done.state.<parent>`, with its donedata, on the internal queue); a top-level final ends
       the chart.
    2. **Start.** When the macrostep is over (no eventless transition enabled, the internal queue
       empty), every state entered in it and still active is started (`Host.state_started`): its
       activities begin (see `Activity`) and its `after()` timers are armed, counting from then.
       A state entered and exited within one macrostep starts nothing.
    3. **Active.** Its transitions (and its ancestors') are candidates for each event; an `after(s)`
       timer fires `s` seconds after the start, as a private external event that only this visit's
       after() transitions see.
    4. **Exit.** A transition whose domain contains it exits it, innermost first, after the
       histories of the exited states were recorded: its `on_exit` actions run, then its activities
       are cancelled and its timers disarmed (`Host.state_stopped`; a timer event of this visit
       already queued is ignored). Stopping the chart exits every active state the same way.

    A delayed send (`ctx.send(..., delay=)`, `send(...)`) belongs to the chart, not to the state
    that sent it: exiting that state keeps it pending; it dies with the chart. An action or guard
    that raises does not stop any of this: it queues `error.execution`.

    `initial` (compound states only) names what entering the state by default enters, as
    SCXML's `initial` attribute (3.3): a child, a deeper descendant (its ancestors up to this
    state are entered too, each other one with its own default), or a tuple of descendants in
    different regions of a parallel state (`initial=("r1_leaf", "r2_leaf")`); a region that
    no target lies in is entered by default.
    """

    kind: Kind = "state"

    def __init__(
        self,
        id: str,
        *children: State | History,
        initial: str | tuple[str, ...] | None = None,
        transitions: Sequence[Transition] = (),
        on_entry: Action | Sequence[Action] = (),
        on_exit: Action | Sequence[Action] = (),
        activities: Activity | Sequence[Activity] = (),
        doc: str = "",
    ) -> None:
        self.id = id
        self.children: tuple[State | History, ...] = tuple(children)
        self.initial = initial
        self.transitions: tuple[Transition, ...] = tuple(transitions)
        self.on_entry: tuple[Action, ...] = _as_tuple(on_entry)
        self.on_exit: tuple[Action, ...] = _as_tuple(on_exit)
        self.activities: tuple[Activity, ...] = _as_tuple(activities)
        self.doc = doc

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"


class Parallel(State):
    """A state whose children (regions) are all active together."""

    kind: Kind = "parallel"


class Final(State):
    """A final state: entering it completes its parent (`done.state.<parent>`).

    `donedata(ctx)` (SCXML 3.7 and 5.5 <donedata>) is evaluated when the state is entered,
    after its entry actions; its value is the `data` of the `done.state.<parent>` event. If it
    raises, `error.execution` is queued first and the done event goes with data None. On a
    top-level final state, whose completion ends the chart, it is evaluated as the chart stops
    (after the state's exit actions) and kept as `Interpreter.done_data` / `ChartRunner.done_data`.
    """

    kind: Kind = "final"

    def __init__(
        self,
        id: str,
        *,
        on_entry: Action | Sequence[Action] = (),
        on_exit: Action | Sequence[Action] = (),
        donedata: DoneData | None = None,
        doc: str = "",
        transitions: Sequence[Transition] = (),
        activities: Activity | Sequence[Activity] = (),
    ) -> None:
        # transitions/activities are accepted only so that Chart() can reject them by name.
        super().__init__(
            id, on_entry=on_entry, on_exit=on_exit, doc=doc, transitions=transitions, activities=activities
        )
        self.donedata = donedata


class History:
    """A history pseudo-state (SCXML 3.10): a transition targeting it re-enters what its parent
    held when last exited.

    Shallow (the default) remembers the parent's active children, each re-entered by its own
    default. `deep=True` remembers every active atomic descendant, so nested compound and
    parallel states resume in the exact leaf of each region. Before the parent was ever exited,
    the default history transition is taken: to `default` (an id or a tuple of ids in
    different regions; the parent's initial when None) running `action` after the parent's
    entry actions (SCXML 3.10.2 and Appendix D, defaultHistoryContent).
    """

    kind: Kind = "history"

    def __init__(
        self,
        id: str,
        default: str | tuple[str, ...] | None = None,
        *,
        deep: bool = False,
        action: Action | Sequence[Action] | None = None,
    ) -> None:
        self.id = id
        self.default = default
        self.deep = deep
        self.action = action
        self.children: tuple[State | History, ...] = ()

    def __repr__(self) -> str:
        return f"History({self.id!r}{', deep=True' if self.deep else ''})"
