"""PackML (ISA-TR88.00.02, OPC 30050) names and numbers, and how the `cell` chart maps onto them.

PackTags number the states 0..17 (`PackMLState`). OPC 30050 models them as three nested state machines, each with
its own CurrentState, and adds two composite states that PackTags does not have (`RUNNING`, `CLEARED`):

    BaseStateMachine       Aborting 8, Aborted 9, Cleared 19
      MachineState           (inside Cleared)  Stopped 2, Stopping 7, Clearing 1, Running 18
        ExecuteState           (inside Running)  Idle 4, Starting 3, Execute 6, Completing 16, Complete 17,
                                                 Resetting 15, Holding 10, Held 11, Unholding 12,
                                                 Suspending 13, Suspended 5, Unsuspending 14

`levels(state)` says what each of the three CurrentStates shows for one PackTags state. The commands are the
nodeset's methods (Abort, Clear on BaseStateMachine; Stop, Reset on MachineState; Start, Hold, Unhold, Suspend,
Unsuspend, Reset, ToComplete on ExecuteState); `METHOD_EVENTS` maps their browse names to the chart's events.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

__all__ = [
    "CHART_STATES",
    "CLEARED",
    "COMMANDS",
    "METHOD_EVENTS",
    "RUNNING",
    "Levels",
    "PackMLState",
    "levels",
    "packml_state",
]


class PackMLState(IntEnum):
    """PackTags `StateCurrent` numbers, in PackTags order (the nodeset's StateNumber values)."""

    UNDEFINED = 0
    CLEARING = 1
    STOPPED = 2
    STARTING = 3
    IDLE = 4
    SUSPENDED = 5
    EXECUTE = 6
    STOPPING = 7
    ABORTING = 8
    ABORTED = 9
    HOLDING = 10
    HELD = 11
    UNHOLDING = 12
    SUSPENDING = 13
    UNSUSPENDING = 14
    RESETTING = 15
    COMPLETING = 16
    COMPLETE = 17

    @property
    def display(self) -> str:
        """The nodeset's browse name of the state: `Execute`, `Held`, ..."""
        return self.name.capitalize()


# OPC 30050's composite states (StateNumber in the nodeset): not PackTags states, never a cell's effective state.
RUNNING = ("Running", 18)
CLEARED = ("Cleared", 19)

# The cell chart's state ids (statecharts/cell.py) -> PackTags. Its compounds (cell, live, running, producing) are
# never the innermost active state; an id missing here is shown as UNDEFINED.
CHART_STATES: dict[str, PackMLState] = {
    "clearing": PackMLState.CLEARING,
    "stopped": PackMLState.STOPPED,
    "starting": PackMLState.STARTING,
    "idle": PackMLState.IDLE,
    "suspended": PackMLState.SUSPENDED,
    "execute": PackMLState.EXECUTE,
    "stopping": PackMLState.STOPPING,
    "aborting": PackMLState.ABORTING,
    "aborted": PackMLState.ABORTED,
    "holding": PackMLState.HOLDING,
    "held": PackMLState.HELD,
    "unholding": PackMLState.UNHOLDING,
    "suspending": PackMLState.SUSPENDING,
    "unsuspending": PackMLState.UNSUSPENDING,
    "resetting": PackMLState.RESETTING,
    "completing": PackMLState.COMPLETING,
    "complete": PackMLState.COMPLETE,
}

# PackML commands -> the cell chart's events.
COMMANDS: dict[str, str] = {
    "Start": "cmd.start",
    "Stop": "cmd.stop",
    "Hold": "cmd.hold",
    "Unhold": "cmd.unhold",
    "Suspend": "cmd.suspend",
    "Unsuspend": "cmd.unsuspend",
    "Reset": "cmd.reset",
    "Abort": "cmd.abort",
    "Clear": "cmd.clear",
    "Complete": "cmd.complete",
}

# The nodeset's method browse names -> chart events (the nodeset calls Complete `ToComplete`).
METHOD_EVENTS: dict[str, str] = {**{name: event for name, event in COMMANDS.items() if name != "Complete"},
                                 "ToComplete": COMMANDS["Complete"]}

_BASE = frozenset({PackMLState.ABORTING, PackMLState.ABORTED})
_MACHINE = frozenset({PackMLState.STOPPED, PackMLState.STOPPING, PackMLState.CLEARING})


class Levels(NamedTuple):
    """What the three CurrentStates show: (browse name, StateNumber) each; None where that machine is inactive."""

    base: tuple[str, int] | None
    machine: tuple[str, int] | None
    execute: tuple[str, int] | None


def packml_state(chart_state: str) -> PackMLState:
    """The PackTags state of the cell chart's innermost active state (UNDEFINED for an unknown id)."""
    return CHART_STATES.get(chart_state, PackMLState.UNDEFINED)


def levels(state: PackMLState) -> Levels:
    """The state of each of OPC 30050's three state machines when the cell is in `state`."""
    own = (state.display, int(state))
    if state is PackMLState.UNDEFINED:
        return Levels(None, None, None)
    if state in _BASE:
        return Levels(own, None, None)
    if state in _MACHINE:
        return Levels(CLEARED, own, None)
    return Levels(CLEARED, RUNNING, own)
