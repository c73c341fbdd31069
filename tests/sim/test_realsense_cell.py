"""Issue 13, points 7 and 8: `cellctl run` on external devices with a RealSense camera and learned perception.

The simulated cell serves its PLC (OPC UA), robot (Modbus TCP) and F/T sensor (UDP) on 127.0.0.1, and its EOAT
camera is the RealSense SDK's software device fed what the tool faces (`drivers.sim.eoat_camera`). The controller
is configured as for a real cell (`devices = "external"`, `[camera] kind = "realsense"`): the driver runs on the
SDK, perception runs on the frames alone over the pod the PLC presents, and every bin's frame is taken after the
robot moved the camera in front of it. Nothing of the simulated world reaches the controller but through those
protocols and the camera.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import anyio
import pytest

from cellctl.commands.replay import Entry, replay
from cellctl.commands.run import run_cell
from cellctl.config import RunConfig, load_config
from cellctl.eventlog import read_log
from drivers.sim.cell_devices import Endpoints, SimCellConfig, SimCellDevices
from drivers.sim.eoat_camera import SimEoatCamera

pytestmark = pytest.mark.anyio

FAST = 0.05
SERIAL = "SIM-RS-0001"


def _config(tmp_path: Path, ep: Endpoints, *, cycles: int) -> RunConfig:
    text = (f'[cell]\ndevices = "external"\ntask = "stow"\ncycles = {cycles}\nstatus_period_s = 0.2\n'
            f'[log]\ndir = "{tmp_path}"\n[fc]\nport = 0\n'
            f'[plc]\nurl = "{ep.opcua_url}"\nresume_after_seq = 0\n'
            f'[robot]\nhost = "{ep.modbus[0]}"\nport = {ep.modbus[1]}\n'
            f'[ft]\nhost = "{ep.ft[0]}"\nport = {ep.ft[1]}\n'
            f'[camera]\nkind = "realsense"\nserial = "{SERIAL}"\ndepth_width = 320\ndepth_height = 240\nfps = 15\n'
            'color = true\ncolor_width = 320\ncolor_height = 240\nstandoff_mm = 350\n')
    path = tmp_path / "cell.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


async def test_cellctl_run_stows_on_a_realsense_camera_with_learned_perception(tmp_path: Path) -> None:
    devices = SimCellDevices(SimCellConfig(seed=5, time_scale=FAST))
    async with anyio.create_task_group() as tg:
        ep: Endpoints = await tg.start(devices.serve)
        camera = SimEoatCamera(devices, fps=15)
        await tg.start(camera.run)
        with anyio.fail_after(150):
            summary = await run_cell(_config(tmp_path, ep, cycles=2), out=io.StringIO(), camera_device=camera.device)
        tg.cancel_scope.cancel()
    assert summary["end_state"] == "complete", summary
    assert summary["perception"] == "learned"
    assert sum(summary["outcomes"].values()) == 2 and summary["outcomes"]["done"] >= 1, summary
    records = list(read_log(Path(summary["log"])))
    run_devices = next(r.payload for r in records if r.topic == "run.devices")
    assert run_devices["camera"].startswith("realsense ") and SERIAL in run_devices["camera"]
    assert run_devices["perception"] == "learned"
    views = [r.payload for r in records if r.topic == "camera.view"]
    pod_bins = {b.bin_id for b in devices.cell.pod.bins}
    # every stow plan views every bin of the pod (from its own view pose), verify views the chosen bin again
    assert len(views) >= 2 * len(pod_bins) and all(v["ok"] for v in views), views[:3]
    assert {v["bin"] for v in views} == pod_bins
    assert camera.rendered >= len(pod_bins)  # a frame per view pose: what the tool faced, not a fixed picture
    moves = Counter(r.payload["args"]["motion"]["primitive"] for r in records
                    if r.topic == "port.call" and r.payload["method"] == "move")
    assert moves["eject_item"] >= 1
    assert devices.model.ended["approach"] >= moves["approach"] + len(views)  # the views are the robot's moves
    entries = [Entry(r.t_s, r.topic, r.payload) for r in records]
    result = await anyio.to_thread.run_sync(replay, entries)  # the charts' calls replay as recorded
    assert not result["diverged"], result["first_divergence"]
