"""Events: the `Event` value, the names the engine reserves, and the payloads of its own events.

The engine raises these events itself (SCXML 3.7, 3.4, 5.10, 6.4); a chart reacts to them by name,
and should spell the names with the constants and helpers here, never as literals:

    INIT                  "init": the event entry actions see while `Interpreter.start()` enters the
                          initial configuration (never queued, no transition takes it).
    ERROR                 "error": the descriptor matching every error event below.
    ERROR_EXECUTION       "error.execution": a guard, action or donedata raised (internal queue);
                          data: `ExecutionFailure`. A guard that raises counts as false.
    ERROR_ACTIVITY        "error.activity": an activity raised instead of posting an event
                          (external queue, from `ChartRunner`); data: `ActivityFailure`.
    done_state(id)        "done.state.<id>": the compound state `id` entered a final child (data: that
                          final's donedata), or every region of the parallel state `id` is final.
                          DONE_STATE ("done.state") is the descriptor matching them all.
    timer_event(id, n)    "after.<id>.<n>": the n-th distinct delay of state `id`'s `after()`
                          transitions (TIMER_PREFIX "after"). These names are private: a chart may not
                          write a descriptor "after" or "after.<...>" (`InvalidTransitionError`), only
                          after() does, and a timer event is seen by its own transitions only (not by "*").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DONE_STATE",
    "ERROR",
    "ERROR_ACTIVITY",
    "ERROR_EXECUTION",
    "INIT",
    "TIMER_PREFIX",
    "ActivityFailure",
    "Event",
    "ExecutionFailure",
    "done_state",
    "done_state_id",
    "is_timer_event",
    "timer_event",
    "valid_delay",
]

INIT = "init"
ERROR = "error"
ERROR_EXECUTION = "error.execution"
ERROR_ACTIVITY = "error.activity"
DONE_STATE = "done.state"
TIMER_PREFIX = "after"

_DONE_STATE_DOT = DONE_STATE + "."
_TIMER_DOT = TIMER_PREFIX + "."


@dataclass(frozen=True, slots=True)
class Event:
    """An event: a dotted name and optional payload."""

    name: str
    data: Any = None


@dataclass(frozen=True, slots=True)
class ExecutionFailure:
    """The data of `error.execution` (a value, not an exception): in state `state`, the guard,
    action or donedata described by `where` (e.g. "entry action open_valve") raised `error`."""

    state: str
    where: str
    error: BaseException


@dataclass(frozen=True, slots=True)
class ActivityFailure:
    """The data of `error.activity` (a value, not an exception): the activity `activity` of state
    `state` raised `error` instead of posting an event."""

    state: str
    activity: str
    error: BaseException


def done_state(state_id: str) -> str:
    """The name of the completion event of state `state_id`: ``done.state.<state_id>``."""
    return _DONE_STATE_DOT + state_id


def done_state_id(name: str) -> str | None:
    """The state a ``done.state.<id>`` event (or descriptor) names; None for any other name."""
    return name[len(_DONE_STATE_DOT) :] if name.startswith(_DONE_STATE_DOT) else None


def timer_event(state_id: str, n: int) -> str:
    """The private event of the `n`-th distinct delay among state `state_id`'s after() transitions."""
    return f"{_TIMER_DOT}{state_id}.{n}"


def is_timer_event(name: str) -> bool:
    """True for an after() timer's event name (``after.<...>``)."""
    return name.startswith(_TIMER_DOT)


def valid_delay(seconds: object) -> bool:
    """A delay an `after()` timer or a delayed send accepts: a finite number of seconds >= 0."""
    return isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds >= 0
