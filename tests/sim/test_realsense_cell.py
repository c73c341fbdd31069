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
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest

from cellctl.commands.replay import Entry, replay
from cellctl.commands.run import run_cell
from cellctl.config import RunConfig, load_config
from cellctl.eventlog import read_log
from cellctl.fc.simclient import SimFc
from cellctl.workcells.sim_sources import SimOrders
from drivers.sim.cell_devices import Endpoints, SimCellConfig, SimCellDevices
from drivers.sim.eoat_camera import SimEoatCamera

pytestmark = pytest.mark.anyio

FAST = 0.05
SERIAL = "SIM-RS-0001"


def _config(tmp_path: Path, ep: Endpoints, *, cycles: int, task: str = "stow", extra: str = "") -> RunConfig:
    text = (f'[cell]\ndevices = "external"\ntask = "{task}"\ncycles = {cycles}\nstatus_period_s = 0.2\n'
            f'[log]\ndir = "{tmp_path}"\n[fc]\nport = 0\n{extra}'
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
    # every stow plan sees every bin of the pod, each from its own view pose; verify views the chosen bin anew
    assert len(views) >= 2 * len(pod_bins) and all(v["ok"] for v in views), views[:3]
    assert {v["bin"] for v in views} == pod_bins
    taken = [v for v in views if not v.get("kept")]
    stowed = [r.payload["args"]["option"]["bin_id"] for r in records
              if r.topic == "port.call" and r.payload["method"] == "verify_stow"]
    # the first plan viewed every bin, each verify the bin just stowed in; the second plan moved nowhere: every
    # view was current (the first stow's bin was last seen by its verify, after the cell's last move there)
    assert len(taken) == len(pod_bins) + len(stowed), (len(taken), stowed)
    assert sum(1 for v in views if v.get("kept")) >= len(pod_bins)
    # a frame per view pose, from where the tool stood off (the approach's z reached the robot): what it faced
    assert camera.from_views >= len(pod_bins)
    moves = Counter(r.payload["args"]["motion"]["primitive"] for r in records
                    if r.topic == "port.call" and r.payload["method"] == "move")
    assert moves["eject_item"] >= 1
    assert devices.model.ended["approach"] == moves["approach"] + len(taken)  # the views are the robot's moves
    entries = [Entry(r.t_s, r.topic, r.payload) for r in records]
    result = await anyio.to_thread.run_sync(replay, entries)  # the charts' calls replay as recorded
    assert not result["diverged"], result["first_divergence"]


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated FC's catalogue of seed 5's first pod, as `cellctl catalogue export` writes it."""
    out = tmp_path_factory.mktemp("catalogue")
    done = subprocess.run([sys.executable, "-m", "cellctl", "catalogue", "export", "--out", str(out), "--seed", "5"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads(done.stdout)
    assert info["pod"] == "P1" and info["products"] > 20 and (out / "catalogue.json").is_file()
    return out


async def test_cellctl_run_picks_on_a_realsense_camera_by_the_fcs_catalogue(tmp_path: Path, catalogue: Path) -> None:
    devices = SimCellDevices(SimCellConfig(seed=5, time_scale=FAST))
    extra = f'[sim]\nfc_client = false\n[perception]\ncatalogue = "{catalogue}"\n'  # the test is the FC
    async with anyio.create_task_group() as tg:
        ep: Endpoints = await tg.start(devices.serve)
        camera = SimEoatCamera(devices, fps=15)
        await tg.start(camera.run)
        fc: list[SimFc] = []

        def fc_up(url: str) -> None:
            fc.append(SimFc(url, orders=SimOrders(devices)))  # pick requests of items the world holds
            tg.start_soon(fc[0].run)

        with anyio.fail_after(150):
            summary = await run_cell(_config(tmp_path, ep, cycles=3, task="pick", extra=extra), out=io.StringIO(),
                                     camera_device=camera.device, on_fc=fc_up)
        tg.cancel_scope.cancel()
    assert summary["end_state"] == "complete" and summary["perception"] == "learned", summary
    assert sum(summary["outcomes"].values()) == 3, summary
    records = list(read_log(Path(summary["log"])))
    reports = [r.payload["args"]["report"] for r in records
               if r.topic == "port.call" and r.payload["method"] == "report"]
    assert len(reports) == 3 and all(r["outcome"] == "done" or r["reason"] for r in reports)
    # no view failed (a stall of the loop at the first pick, importing open3d, once lapsed the robot's heartbeat)
    assert not any("perception failed" in r["reason"] for r in reports), reports
    checks = [r.payload for r in records if r.topic == "port.reply" and r.payload["method"] == "check_pick"]
    assert len(checks) == 3
    # each decision was made on the frames and the FC's photographs: a match score, or not recognised
    assert all("similarity" in c["result"]["detail"] or "recognis" in c["result"]["detail"] for c in checks), checks
    views = [r.payload for r in records if r.topic == "camera.view"]
    assert len(views) >= 3 and all(v["ok"] for v in views)
    assert devices.cell.wrong_items == 0


def test_a_realsense_that_is_not_connected_stops_cellctl_run_with_one_line(tmp_path: Path) -> None:
    ep = Endpoints("opc.tcp://127.0.0.1:1/none", ("127.0.0.1", 1), ("127.0.0.1", 1), 1000.0)  # never reached
    _config(tmp_path, ep, cycles=1)
    text = (tmp_path / "cell.toml").read_text().replace(f'serial = "{SERIAL}"', 'serial = "000000000000"')
    (tmp_path / "cell.toml").write_text(text)
    done = subprocess.run([sys.executable, "-m", "cellctl", "run", "--config", str(tmp_path / "cell.toml")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "error: RealSense: no camera with serial '000000000000'" in done.stderr, done.stderr[-2000:]
