"""The `Workcell` port's implementations (the Protocol is `statecharts.workcell.Workcell`).

    drivers.py         DriverWorkcell: the real drivers (PLC over OPC UA, robot over Modbus TCP, F/T over UDP)
    sim.py             SimWorkcell: the in-process simulated cell on the loop's (virtual) clock
    sim_perception.py  WorldPerception: perception and planning on frames rendered from the simulated world
    recording.py       RecordingWorkcell: wraps any workcell and logs every call and reply
    replay.py          ReplayWorkcell: serves the charts' calls from a recorded log
"""

from typing import TYPE_CHECKING

from cellctl._exports import lazy

if TYPE_CHECKING:
    from .drivers import DriverWorkcell
    from .recording import RecordingWorkcell
    from .replay import ReplayWorkcell
    from .sim import SimWorkcell
    from .sim_perception import WorldPerception

_EXPORTS = {"DriverWorkcell": ".drivers", "SimWorkcell": ".sim", "WorldPerception": ".sim_perception",
            "RecordingWorkcell": ".recording", "ReplayWorkcell": ".replay"}
__getattr__ = lazy(__name__, _EXPORTS)
__all__ = ["DriverWorkcell", "RecordingWorkcell", "ReplayWorkcell", "SimWorkcell", "WorldPerception"]
