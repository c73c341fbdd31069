"""The `Workcell` port's implementations (the Protocol is `statecharts.workcell.Workcell`), and where their devices are.

    drivers.py         DriverWorkcell: the real drivers (PLC over OPC UA, robot over Modbus TCP, F/T over UDP)
    sim.py             SimWorkcell: the in-process simulated cell on the loop's (virtual) clock
    planning_perception.py  PlanningPerception: the planners every perception shares, on a PodLayout
    pod_layout.py      PodLayout: the presented pod's bins (the simulated cell's, or the PLC's PodId and BinLayout)
    learned_perception.py  LearnedPerception: perception from camera frames alone (the learned models)
    sim_perception.py  WorldPerception (the oracle: the simulated world's labels), SimScene (the sim's depth camera)
    sim_frames.py      the simulated cell's EOAT camera and FC catalogue for learned perception
    recording.py       RecordingWorkcell: wraps any workcell and logs every call and reply
    replay.py          ReplayWorkcell: serves the charts' calls from a recorded log
    sources.py         open_devices -> CellDevices: a run's endpoints, camera + perception and orders (sim/external)
    sim_sources.py     WorldCamera, SimOrders: the simulated world's camera and the simulated FC's orders
    sim_service.py     SimService: that world's camera, perception and orders over TCP (`cellctl devices --sim`)
    remote_sim.py      RemoteSim: its client, the camera of `devices = "external"` ([camera] kind = "sim-service")
"""

from typing import TYPE_CHECKING

from cellctl._exports import lazy

if TYPE_CHECKING:
    from .drivers import DriverWorkcell
    from .recording import RecordingWorkcell
    from .remote_sim import RemoteSim
    from .replay import ReplayWorkcell
    from .sim import SimWorkcell
    from .sim_perception import WorldPerception
    from .sim_service import SimService
    from .sim_sources import SimOrders, WorldCamera
    from .sources import CellDevices, open_devices

_EXPORTS = {"DriverWorkcell": ".drivers", "SimWorkcell": ".sim", "WorldPerception": ".sim_perception",
            "RecordingWorkcell": ".recording", "ReplayWorkcell": ".replay", "CellDevices": ".sources",
            "open_devices": ".sources", "WorldCamera": ".sim_sources", "SimOrders": ".sim_sources",
            "SimService": ".sim_service", "RemoteSim": ".remote_sim"}
__getattr__ = lazy(__name__, _EXPORTS)
__all__ = [
    "CellDevices", "DriverWorkcell", "RecordingWorkcell", "RemoteSim", "ReplayWorkcell", "SimOrders", "SimService",
    "SimWorkcell", "WorldCamera", "WorldPerception", "open_devices",
]
