"""What a running controller is made of, whichever workcell it drives.

    cell.py            CellRun: the cell chart's runner, the commands posted to it, the trace hash
    reflex.py          ForceGuard: the in-loop force check (the sim's reflex)
    reflex_process/    ReflexProcess: the force reflex in a process of its own (cellctl run)
    signals.py         SIGINT/SIGTERM with their sender, and the stop-or-abort policy
    logging.py         structlog set-up

Importing this package imports none of them (`entry.py` blocks signals before any thread starts).
"""

from typing import TYPE_CHECKING

from cellctl._exports import lazy

if TYPE_CHECKING:
    from .cell import CellRun, Command, TraceHasher, cell_runner, start_cell
    from .reflex import ForceGuard
    from .reflex_process import ReflexProcess
    from .signals import SignalListener, StopPolicy

_EXPORTS = {"CellRun": ".cell", "Command": ".cell", "TraceHasher": ".cell", "cell_runner": ".cell",
            "start_cell": ".cell", "ForceGuard": ".reflex", "ReflexProcess": ".reflex_process",
            "SignalListener": ".signals", "StopPolicy": ".signals"}
__getattr__ = lazy(__name__, _EXPORTS)
__all__ = [
    "CellRun", "Command", "ForceGuard", "ReflexProcess", "SignalListener", "StopPolicy", "TraceHasher",
    "cell_runner", "start_cell",
]
