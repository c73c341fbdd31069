"""A domain-free async statechart engine (Harel/SCXML semantics on anyio).

Imports nothing of the project; charts are plain Python. The modules, in the order they build on
each other:

    errors       every exception, under `StatechartError` (who raises each, and when)
    events       `Event`, the names the engine reserves (`done_state(id)`, `ERROR_EXECUTION`, ...)
                 and the payloads of its own events (`ExecutionFailure`, `ActivityFailure`)
    context      what guards, actions and activities see (`ActionContext[D]`, `ActivityContext[D]`)
                 and their types (`Guard[D]`, `Action[D]`, ...)
    model        the chart as written: `State`, `Parallel`, `Final`, `History`, `on`/`after`/`always`,
                 `send`/`cancel`, `@activity`; `State` and `Activity` tell their lifecycle
    guards       declarative guards the exports understand: `In(state)`
    compiled     `Chart(name, root)`: validated and indexed (`Node`, `Edge`)
    interpreter  the semantics, free of I/O: `Interpreter` runs macrosteps (each returned as a
                 `Macrostep`) and hands time and tasks to a `Host`
    runtime      `ChartRunner` / `running(chart)`: the `Host` on anyio, with activities and timers
    clock        `RealClock`, `VirtualClock` (looptime): which loop, so how time passes
    trace        `TraceRecord`, `TraceRecorder`: every step as it happens
    check        static checks (`check(chart)`); export: Mermaid and SCXML (`to_mermaid`, `to_scxml`)
    scxml_import `Chart.from_scxml(text, ...)`: SCXML back to a chart (on `xmltree`, `ecmascript`)
    testing      for chart authors' tests: `FakeHost`, `start`, `drive`, configuration predicates

What is re-exported here is the API a chart and its runner need; `check`, `export` and `testing` are
imported by name.
"""

from .clock import Clock, RealClock, VirtualClock, now
from .compiled import Chart, Edge, Node
from .context import Action, ActionContext, ActivityContext, ActivityFn, DoneData, Guard
from .errors import (
    ChartAlreadyStartedError,
    ChartDefinitionError,
    ChartFinishedError,
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
    LiteralSyntaxError,
    LivelockError,
    MissingInitialError,
    ScxmlImportError,
    StatechartError,
    UnboundNameError,
    UndeclaredEventError,
    UnknownClockError,
    UnknownStateError,
    UnknownTargetError,
)
from .events import (
    DONE_STATE,
    ERROR,
    ERROR_ACTIVITY,
    ERROR_EXECUTION,
    INIT,
    TIMER_PREFIX,
    ActivityFailure,
    Event,
    ExecutionFailure,
    done_state,
)
from .guards import In
from .interpreter import Host, Interpreter, Macrostep
from .model import (
    Activity,
    Cancel,
    DoneValue,
    Final,
    History,
    Parallel,
    Raise,
    Send,
    State,
    Transition,
    activity,
    after,
    always,
    cancel,
    on,
    raise_event,
    send,
)
from .runtime import ChartRunner, running
from .trace import TraceHook, TraceRecord, TraceRecorder

__all__ = [
    "DONE_STATE",
    "ERROR",
    "ERROR_ACTIVITY",
    "ERROR_EXECUTION",
    "INIT",
    "TIMER_PREFIX",
    "Action",
    "ActionContext",
    "Activity",
    "ActivityContext",
    "ActivityFailure",
    "ActivityFn",
    "Cancel",
    "Chart",
    "ChartAlreadyStartedError",
    "ChartDefinitionError",
    "ChartFinishedError",
    "ChartRunner",
    "Clock",
    "DoneData",
    "DoneValue",
    "DuplicateStateError",
    "Edge",
    "Event",
    "ExecutionFailure",
    "Final",
    "FinalStateTransitionError",
    "Guard",
    "History",
    "HistoryStateError",
    "Host",
    "In",
    "InitialConflictError",
    "InitialHistoryError",
    "InitialNotDescendantError",
    "Interpreter",
    "InvalidDoneDataError",
    "InvalidInitialError",
    "InvalidSendError",
    "InvalidStateIdError",
    "InvalidTransitionError",
    "LiteralSyntaxError",
    "LivelockError",
    "Macrostep",
    "MissingInitialError",
    "Node",
    "Parallel",
    "Raise",
    "RealClock",
    "ScxmlImportError",
    "Send",
    "State",
    "StatechartError",
    "TraceHook",
    "TraceRecord",
    "TraceRecorder",
    "Transition",
    "UnboundNameError",
    "UndeclaredEventError",
    "UnknownClockError",
    "UnknownStateError",
    "UnknownTargetError",
    "VirtualClock",
    "activity",
    "after",
    "always",
    "cancel",
    "done_state",
    "now",
    "on",
    "raise_event",
    "running",
    "send",
]  # fmt: skip
