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
    """A compound state's initial names something other than one of its children."""


class FinalStateTransitionError(ChartDefinitionError):
    """A final state has transitions, children or activities, or is a parallel region."""


class InvalidStateIdError(ChartDefinitionError):
    """A state id is not an identifier."""


class InvalidTransitionError(ChartDefinitionError):
    """A transition is malformed: bad event descriptor, negative delay, ..."""


class HistoryStateError(ChartDefinitionError):
    """A history state is misplaced or its default target is outside its parent."""


class UndeclaredEventError(RuntimeError):
    """An activity posted an event it did not declare in `posts`."""
