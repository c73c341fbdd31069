"""Every exception the engine raises, under one root: `StatechartError`.

    StatechartError
    ├── ChartDefinitionError (also a ValueError)    Chart(...) refuses a definition; `.state` names where
    │   ├── DuplicateStateError, InvalidStateIdError, UnknownTargetError, MissingInitialError
    │   ├── InvalidInitialError
    │   │   └── InitialNotDescendantError, InitialConflictError, InitialHistoryError
    │   └── FinalStateTransitionError, InvalidDoneDataError, InvalidTransitionError, HistoryStateError
    ├── ScxmlImportError (also a ValueError)        Chart.from_scxml() refuses a document; `.line` and
    │                                               `.element` say where
    ├── LiteralSyntaxError (also a ValueError)      ecmascript.parse_literal() on text that is no literal
    ├── InvalidSendError (also a ValueError)        send(...)/cancel(...) built, or ctx.send/ctx.cancel
    │                                               called, with a bad event, delay or id
    ├── UnboundNameError (also a RuntimeError)      a placeholder of an SCXML import run (placeholders=True)
    ├── UndeclaredEventError (also a RuntimeError)  an activity posted an event it did not declare
    ├── LivelockError (also a RuntimeError)         a macrostep found no stable configuration
    ├── ChartAlreadyStartedError (a RuntimeError)   Interpreter.start() on a running chart
    ├── ChartFinishedError (also a RuntimeError)    ChartRunner.wait_for() on a chart that has ended
    ├── UnknownStateError (also a KeyError)         ChartRunner.wait_for() on a state the chart lacks
    └── UnknownClockError (also a ValueError)       clock_named() with a name other than real/virtual

Each also derives from the built-in exception it used to be, so `except ValueError` (and the like)
around the engine keeps working. A failing guard, action or donedata is no exception of the
engine's: the interpreter catches it and queues `error.execution` with an `ExecutionFailure`
payload (see `events`), as an activity that raises posts `error.activity` with an
`ActivityFailure`; those payloads are values, not exceptions.
"""

from __future__ import annotations


class StatechartError(Exception):
    """The root of every exception the engine raises (`except StatechartError` catches them all)."""


# -- chart definitions: raised by Chart(name, root) while it validates and compiles ------------------


class ChartDefinitionError(StatechartError, ValueError):
    """Raised by `Chart(name, root)` when the definition is invalid; `state` names the offending
    state (the one whose id, child, initial, transition or history default is wrong)."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(f"state {state!r}: {message}")
        self.state = state


class DuplicateStateError(ChartDefinitionError):
    """Raised by `Chart(...)` when two states share one id."""


class UnknownTargetError(ChartDefinitionError):
    """Raised by `Chart(...)` when a transition, an initial or a history default names a state
    that does not exist."""


class MissingInitialError(ChartDefinitionError):
    """Raised by `Chart(...)` when a compound state has children but no initial child, or a
    parallel state has no region."""


class InvalidInitialError(ChartDefinitionError):
    """Raised by `Chart(...)` when a state's `initial` is malformed or given where no initial
    belongs (an atomic or parallel state), or when the root is not a State or Parallel."""


class InitialNotDescendantError(InvalidInitialError):
    """Raised by `Chart(...)` when a compound state's initial names a state that is not one of
    its descendants."""


class InitialConflictError(InvalidInitialError):
    """Raised by `Chart(...)` when a compound state's initial names states that cannot be active
    together (one contains the other, or both lie in one region: SCXML 3.11, a legal state
    configuration)."""


class InitialHistoryError(InvalidInitialError):
    """Raised by `Chart(...)` when a compound state's initial names a history pseudo-state
    (target a state instead)."""


class FinalStateTransitionError(ChartDefinitionError):
    """Raised by `Chart(...)` when a final state has transitions, children or activities, or is
    a region of a parallel state."""


class InvalidDoneDataError(ChartDefinitionError):
    """Raised by `Chart(...)` when a final state's `donedata` is not callable (it must be
    `fn(ctx) -> Any`)."""


class InvalidStateIdError(ChartDefinitionError):
    """Raised by `Chart(...)` when a state id is not an identifier, or a child is not a State,
    Final, Parallel or History."""


class InvalidTransitionError(ChartDefinitionError):
    """Raised by `Chart(...)` when a transition is malformed (a bad or reserved event descriptor,
    a bad delay, a guard or action that is not callable, targets that cannot be active together,
    the root as a target), or an activity is not an `Activity` or declares a malformed event."""


class HistoryStateError(ChartDefinitionError):
    """Raised by `Chart(...)` when a history state is misplaced, its `deep` is not a bool, or its
    default target is malformed or outside its parent."""


class ScxmlImportError(StatechartError, ValueError):
    """Raised by `Chart.from_scxml` (statecharts/engine/scxml_import.py) when a document is not
    well-formed XML, uses SCXML outside the structural subset, names a guard, action, activity or
    donedata the bindings lack, or describes a chart `Chart(...)` refuses. `line` is the line of
    the offending element (0 when the document could not be read at all), `element` its tag."""

    def __init__(self, line: int, element: str, message: str) -> None:
        where = f"line {line}: <{element}>" if element else f"line {line}"
        super().__init__(f"{where}: {message}")
        self.line = line
        self.element = element
        self.reason = message


class LiteralSyntaxError(StatechartError, ValueError):
    """Raised by `ecmascript.parse_literal` (so by `Chart.from_scxml`, which reports it as a
    `ScxmlImportError`) on text that is not an ECMAScript literal of JSON's data; the message
    says at which character."""


# -- while a chart runs -----------------------------------------------------------------------------


class InvalidSendError(StatechartError, ValueError):
    """Raised by `send(...)`/`cancel(...)` when built with a malformed event, delay or id, and by
    `ActionContext.send`/`cancel` at the call when given a bad delay (negative, nan, inf, not a
    number) or id. Inside an action, as any action's error, it becomes `error.execution`."""


class UnboundNameError(StatechartError, RuntimeError):
    """Raised by the placeholder `Chart.from_scxml(..., placeholders=True)` put where a guard,
    action, activity or donedata could not be bound, when it is run: in a running chart,
    `error.execution` (or `error.activity`) names it."""


class UndeclaredEventError(StatechartError, RuntimeError):
    """Raised by `ActivityContext.post` when an activity posts an event it did not declare in
    `posts`; the activity then fails, and the runner posts `error.activity` for it."""


class LivelockError(StatechartError, RuntimeError):
    """Raised by `Interpreter.start`/`process` (so out of `ChartRunner.run`) when a macrostep did
    not complete within `MAX_MICROSTEPS`: eventless transitions or internal events cycle."""


class ChartAlreadyStartedError(StatechartError, RuntimeError):
    """Raised by `Interpreter.start` when the chart is already running."""


class ChartFinishedError(StatechartError, RuntimeError):
    """Raised by `ChartRunner.wait_for` when the chart ended (or ends while waiting) before the
    state it waits for became active."""


class UnknownStateError(StatechartError, KeyError):
    """Raised by `ChartRunner.wait_for` when the chart has no state of that id."""


class UnknownClockError(StatechartError, ValueError):
    """Raised by `clock.clock_named` for a name other than 'real' or 'virtual'."""
