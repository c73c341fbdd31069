"""Errors raised when a chart definition is invalid."""

from __future__ import annotations


class ChartDefinitionError(ValueError):
    """A chart definition is invalid; `state` names the offending state."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(f"state {state!r}: {message}")
        self.state = state


class DuplicateStateError(ChartDefinitionError):
    """Two states share one id."""


class UnknownTargetError(ChartDefinitionError):
    """A transition (or initial, or history default) names a state that does not exist."""


class MissingInitialError(ChartDefinitionError):
    """A compound state has children but no initial child."""


class InvalidInitialError(ChartDefinitionError):
    """A state's `initial` is malformed, or given where no initial belongs (atomic, parallel)."""


class InitialNotDescendantError(InvalidInitialError):
    """A compound state's initial names a state that is not one of its descendants."""


class InitialConflictError(InvalidInitialError):
    """A compound state's initial names states that cannot be active together (one contains
    the other, or both lie in one region: SCXML 3.11, a legal state configuration)."""


class InitialHistoryError(InvalidInitialError):
    """A compound state's initial names a history pseudo-state (target a state instead)."""


class FinalStateTransitionError(ChartDefinitionError):
    """A final state has transitions, children or activities, or is a parallel region."""


class InvalidDoneDataError(ChartDefinitionError):
    """A final state's `donedata` is not callable (it must be `fn(ctx) -> Any`)."""


class InvalidStateIdError(ChartDefinitionError):
    """A state id is not an identifier."""


class InvalidTransitionError(ChartDefinitionError):
    """A transition is malformed: bad event descriptor, negative delay, ..."""


class HistoryStateError(ChartDefinitionError):
    """A history state is misplaced or its default target is outside its parent."""


class InvalidSendError(ValueError):
    """`ActionContext.send`/`cancel` got a bad delay (negative, nan, inf, not a number) or id.
    Raised at the call; inside an action it becomes `error.execution`, as any action error."""


class UndeclaredEventError(RuntimeError):
    """An activity posted an event it did not declare in `posts`."""
