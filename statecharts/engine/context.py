"""What actions, guards and activities see of the running chart, and their types.

Both contexts are generic over the chart's data, the object given as `Interpreter(..., data)` /
`ChartRunner(..., data=)` and seen as `ctx.data`. Annotate a guard, action or activity with the
chart's data type and the type checker checks what it does with it::

    def has_room(ctx: ActionContext[BinData], event: Event) -> bool:
        return ctx.data.free > 0          # checked: BinData has `free`

`Guard[D]`, `Action[D]`, `DoneData[D]` and `ActivityFn[D]` are the shapes the model takes (bare,
they mean `...[Any]`). The parameter exists for the type checker only: at run time a context is
the same object whatever its data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import InvalidSendError, UndeclaredEventError
from .events import TIMER_PREFIX, Event, is_timer_event, valid_delay

if TYPE_CHECKING:
    from .interpreter import Interpreter
    from .model import Activity

D = TypeVar("D")

__all__ = ["Action", "ActionContext", "ActivityContext", "ActivityFn", "D", "DoneData", "Guard"]


class ActionContext(Generic[D]):
    """Passed to guards, entry/exit/transition actions and donedata (synchronous, quick).

    One per running chart (`Interpreter.ctx`); `data` is the chart's data.
    """

    __slots__ = ("_interp", "data")

    def __init__(self, interp: Interpreter[D], data: D) -> None:
        self._interp = interp
        self.data = data

    @property
    def chart(self) -> str:
        return self._interp.chart.name

    def now(self) -> float:
        return self._interp.host.now()

    def raise_event(self, name: str, data: Any = None) -> None:
        """Queue an internal event: handled before any external one."""
        self._interp.internal.append(Event(name, data))

    def send(self, name: str, data: Any = None, *, delay: float = 0.0, id: str | None = None) -> None:
        """Send an external event (SCXML 6.2 <send> to the chart itself).

        With no delay it is queued now, behind the events already posted. With `delay`
        seconds (> 0, on the chart's clock: virtual under `VirtualClock`) it joins the
        external queue when due; sends due at the same time keep their send order. A delayed
        send belongs to the chart, not to the state that sent it: leaving that state keeps
        it pending (unlike `after()` timers), stopping the chart drops it. `id` names it
        for `cancel`. A bad delay or id raises `InvalidSendError` here (in an action:
        `error.execution`, and nothing is sent).
        """
        if id is not None and not isinstance(id, str):
            raise InvalidSendError(f"send({name!r}): id must be a string, not {id!r}")
        if name == TIMER_PREFIX or is_timer_event(name):
            raise InvalidSendError(f"send({name!r}): names starting '{TIMER_PREFIX}.' are after() timers")
        if not delay:  # 0: now (a later cancel(id) finds nothing pending)
            self._interp.host.post(Event(name, data))
        elif valid_delay(delay):
            self._interp.host.schedule(Event(name, data), float(delay), id)
        else:
            raise InvalidSendError(f"send({name!r}, delay={delay!r}): delay must be a finite number of seconds >= 0")

    def cancel(self, id: str) -> None:
        """Drop every pending delayed send named `id` (SCXML 6.3 <cancel>); nothing happens
        if it was already sent or no such send exists."""
        if not isinstance(id, str):
            raise InvalidSendError(f"cancel({id!r}): a send id is a string")
        self._interp.host.cancel(id)

    def is_active(self, state_id: str) -> bool:
        return self._interp.is_active(state_id)


class ActivityContext(Generic[D]):
    """Passed to an activity; `post` is how it reports back to the chart.

    One per started activity: `state` is the id of the state it runs in, `data` the chart's data,
    `live` false once that state was left (the activity is being cancelled; posts are dropped).
    """

    __slots__ = ("_interp", "_live", "activity", "data", "state")

    def __init__(self, interp: Interpreter[D], activity: Activity, state: str, data: D) -> None:
        self._interp = interp
        self._live = True
        self.activity = activity
        self.state = state
        self.data = data

    def now(self) -> float:
        return self._interp.host.now()

    @property
    def live(self) -> bool:
        """False once the state was left: later posts are dropped."""
        return self._live

    def post(self, name: str, data: Any = None) -> None:
        """Post an event the activity declared in `posts`; dropped after the state was left."""
        if name not in self.activity.posts:
            raise UndeclaredEventError(
                f"activity {self.activity.label} in state {self.state!r} posted {name!r}, "
                f"which it does not declare (posts={list(self.activity.posts)})"
            )
        if self._live:
            self._interp.host.post(Event(name, data))


Guard = Callable[[ActionContext[D], Event], bool]
"""A transition's condition: `guard(ctx, event) -> bool`. One that raises counts as false and queues
`error.execution` (once per macrostep)."""
Action = Callable[[ActionContext[D], Event], None]
"""An entry, exit, transition or history-default action: `action(ctx, event)`, quick and synchronous.
One that raises queues `error.execution`; the actions after it still run."""
DoneData = Callable[[ActionContext[D]], Any]
"""A final state's `donedata(ctx) -> data`, the data of its parent's `done.state.<id>` event."""
ActivityFn = Callable[[ActivityContext[D]], Awaitable[None]]
"""An activity's body: `async def fn(ctx)`, run while its state is active, reporting with `ctx.post`."""
