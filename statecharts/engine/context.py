"""What actions, guards and activities see of the running chart."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import UndeclaredEventError
from .model import Activity, Event

if TYPE_CHECKING:
    from .interpreter import Interpreter


class ActionContext:
    """Passed to guards and entry/exit/transition actions (synchronous, quick)."""

    __slots__ = ("_interp", "data")

    def __init__(self, interp: Interpreter, data: Any) -> None:
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

    def send(self, name: str, data: Any = None) -> None:
        """Queue an external event (behind those already posted)."""
        self._interp.host.post(Event(name, data))

    def is_active(self, state_id: str) -> bool:
        return self._interp.is_active(state_id)


class ActivityContext:
    """Passed to an activity; `post` is how it reports back to the chart."""

    __slots__ = ("_interp", "_live", "activity", "data", "state")

    def __init__(self, interp: Interpreter, activity: Activity, state: str, data: Any) -> None:
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
