"""The force reflex in a process of its own: its latency does not depend on the controller's interpreter.

`ReflexProcess` (the main process's façade, anyio) starts and supervises `child.py` (standard library only),
which reads the F/T stream itself, checks every sample against the armed limit, writes HALT on its own Modbus
connection, then tells the main process; it relays the stream to the main process's `FTSensor`.
"""

from .facade import (
    ForceReading,
    ReflexConfig,
    ReflexError,
    ReflexProcess,
    ReflexRefused,
    ReflexTimeout,
    ReflexTrip,
    ReflexUnavailable,
)

__all__ = [
    "ForceReading", "ReflexConfig", "ReflexError", "ReflexProcess", "ReflexRefused", "ReflexTimeout", "ReflexTrip",
    "ReflexUnavailable",
]
