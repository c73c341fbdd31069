"""One module per verb of the command line; `cli.py` parses, calls one of these, and maps errors to exit codes.

    run.py      `cellctl run`: the controller in real time; the one place that wires drivers, workcell,
                FC server and service together (its docstring draws the wiring)
    sim.py      `cellctl sim`: the charts and the simulated world on virtual time, from a seed
    replay.py   `cellctl replay`: a log's inputs through the current charts, compared with the record
    devices.py  `cellctl devices --sim`: the simulated cell's devices as standalone protocol servers
    chart.py    `cellctl chart simulate`: one chart against a script of timed events
    log.py      `cellctl log show`: an event log as a timeline
"""

from typing import TYPE_CHECKING

from cellctl._exports import lazy

if TYPE_CHECKING:
    from .chart import ScriptedEvent, simulate
    from .devices import SimDevices, SimDevicesConfig
    from .log import show
    from .replay import replay, replay_log
    from .run import run_cell
    from .sim import SimOptions, run_sim

_EXPORTS = {"run_cell": ".run", "SimOptions": ".sim", "run_sim": ".sim", "replay": ".replay", "replay_log": ".replay",
            "SimDevices": ".devices", "SimDevicesConfig": ".devices", "ScriptedEvent": ".chart", "simulate": ".chart",
            "show": ".log"}
__getattr__ = lazy(__name__, _EXPORTS)
__all__ = [
    "ScriptedEvent", "SimDevices", "SimDevicesConfig", "SimOptions", "replay", "replay_log", "run_cell",
    "run_sim", "show", "simulate",
]
