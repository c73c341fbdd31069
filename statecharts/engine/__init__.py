"""A domain-free async statechart engine (Harel/SCXML semantics on anyio).

Imports nothing of the project; charts are plain Python (see `model`).
"""

from .clock import Clock, RealClock, VirtualClock, now
from .compiled import Chart, Edge, Node
from .context import ActionContext, ActivityContext
from .errors import (
    ChartDefinitionError,
    DuplicateStateError,
    FinalStateTransitionError,
    HistoryStateError,
    InitialConflictError,
    InitialHistoryError,
    InitialNotDescendantError,
    InvalidDoneDataError,
    InvalidInitialError,
    InvalidSendError,
    InvalidStateIdError,
    InvalidTransitionError,
    MissingInitialError,
    UndeclaredEventError,
    UnknownTargetError,
)
from .interpreter import ExecutionError, Host, Interpreter, LivelockError
from .model import Activity, Event, Final, History, Parallel, State, Transition, activity, after, always, on
from .runtime import ACTIVITY_ERROR, ActivityFailure, ChartFinishedError, ChartRunner, running
from .trace import TraceHook, TraceRecord, TraceRecorder

__all__ = [
    "ACTIVITY_ERROR",
    "ActionContext",
    "Activity",
    "ActivityContext",
    "ActivityFailure",
    "Chart",
    "ChartDefinitionError",
    "ChartFinishedError",
    "ChartRunner",
    "Clock",
    "DuplicateStateError",
    "Edge",
    "Event",
    "ExecutionError",
    "Final",
    "FinalStateTransitionError",
    "History",
    "HistoryStateError",
    "Host",
    "InitialConflictError",
    "InitialHistoryError",
    "InitialNotDescendantError",
    "Interpreter",
    "InvalidDoneDataError",
    "InvalidInitialError",
    "InvalidSendError",
    "InvalidStateIdError",
    "InvalidTransitionError",
    "LivelockError",
    "MissingInitialError",
    "Node",
    "Parallel",
    "RealClock",
    "State",
    "TraceHook",
    "TraceRecord",
    "TraceRecorder",
    "Transition",
    "UndeclaredEventError",
    "UnknownTargetError",
    "VirtualClock",
    "activity",
    "after",
    "always",
    "now",
    "on",
    "running",
]  # fmt: skip
