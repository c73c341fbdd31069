"""PackML numbering and the map from the cell chart's states and commands."""

from __future__ import annotations

from cellctl.fc.packml import CHART_STATES, CLEARED, COMMANDS, METHOD_EVENTS, RUNNING, PackMLState, levels
from statecharts import cell


def test_packtags_numbers_follow_packtags_order() -> None:
    names = [s.display for s in sorted(PackMLState)]
    assert names == ["Undefined", "Clearing", "Stopped", "Starting", "Idle", "Suspended", "Execute", "Stopping",
                     "Aborting", "Aborted", "Holding", "Held", "Unholding", "Suspending", "Unsuspending", "Resetting",
                     "Completing", "Complete"]


def test_every_leaf_state_of_the_cell_chart_has_a_packml_state_and_back() -> None:
    chart = cell.build()
    leaves = {node.id for node in chart if not node.children}
    assert leaves == set(CHART_STATES)
    assert set(CHART_STATES.values()) == set(PackMLState) - {PackMLState.UNDEFINED}


def test_every_command_is_an_event_the_cell_chart_takes_somewhere() -> None:
    chart = cell.build()
    events = {edge.event for edge in chart.transitions}
    assert set(COMMANDS.values()) <= events
    assert METHOD_EVENTS["ToComplete"] == "cmd.complete" and "Complete" not in METHOD_EVENTS


def test_levels_nest_as_opc_30050_draws_them() -> None:
    assert levels(PackMLState.EXECUTE) == (CLEARED, RUNNING, ("Execute", 6))
    assert levels(PackMLState.STOPPED) == (CLEARED, ("Stopped", 2), None)
    assert levels(PackMLState.ABORTED) == (("Aborted", 9), None, None)
    assert levels(PackMLState.UNDEFINED) == (None, None, None)
