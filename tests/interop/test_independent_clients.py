"""Independent clients read the simulated peers started by `cellctl devices --sim`.

mbpoll (Debian) is an independent Modbus master; node-opcua an independent OPC UA
stack. `make test` installs both; outside CI a missing tool skips these tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
NODE_CLIENT = HERE / "opcua_read.mjs"
NS = "nsu=urn:cellctl:sim:plc;s=StowStation."


def require(tool: str, ready: bool) -> None:
    if not ready:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing: `make test` installs it")
        pytest.skip(f"{tool} not installed (`make test` installs it)")


@pytest.fixture(scope="module")
def devices() -> Iterator[dict[str, str]]:
    """`cellctl devices --sim` on free ports; yields the endpoints it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cellctl", "devices", "--sim", "--opcua-port", "0", "--modbus-port", "0",
         "--ft-port", "0", "--arrival-period", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(4)]  # blocks until printed (the module timeout bounds it)
    text = "".join(lines)
    found = {
        "opcua": re.search(r"(opc\.tcp://\S+)", text),
        "modbus": re.search(r"Modbus TCP\s+([\d.]+):(\d+)", text),
        "ft": re.search(r"UDP \(RDT\)\s+([\d.]+):(\d+)", text),
    }
    if not all(found.values()):
        proc.kill()
        pytest.fail(f"unexpected `cellctl devices --sim` output:\n{text}")
    try:
        yield {
            "opcua": found["opcua"].group(1),
            "modbus_host": found["modbus"].group(1),
            "modbus_port": found["modbus"].group(2),
            "ft_port": found["ft"].group(2),
        }
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=10) == 0, "Ctrl-C did not stop cellctl devices cleanly"
        finally:
            if proc.poll() is None:
                proc.kill()


def mbpoll(devices: dict[str, str], *args: str, write: tuple[str, ...] = ()) -> str:
    cmd = ["mbpoll", "-m", "tcp", "-a", "1", "-p", devices["modbus_port"], "-0", "-1", *args, devices["modbus_host"],
           *write]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def registers(output: str) -> dict[int, str]:
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^\[(\d+)\]:\s+(\S+)", output, re.M)}


def test_mbpoll_reads_and_writes_the_simulated_robot(devices: dict[str, str]) -> None:
    require("mbpoll", shutil.which("mbpoll") is not None)
    inputs = registers(mbpoll(devices, "-t", "3", "-r", "0", "-c", "13"))
    assert sorted(inputs) == list(range(13))
    assert inputs[0] == "0"  # STATUS = IDLE
    assert inputs[5] == "0"  # HALT_ACTIVE
    width = registers(mbpoll(devices, "-t", "3:float", "-B", "-r", "8", "-c", "1"))
    assert float(width[8]) == pytest.approx(80.0)  # GRIPPER_WIDTH, float32 high word first
    mbpoll(devices, "-t", "4", "-r", "23", write=("1500",))  # BLADE_EXT_SP = 150.0 mm
    assert registers(mbpoll(devices, "-t", "4", "-r", "23", "-c", "1"))[23] == "1500"


def test_node_opcua_reads_the_simulated_plc(devices: dict[str, str]) -> None:
    node = shutil.which("node")
    require("node-opcua (npm ci in tests/interop)", node is not None and (HERE / "node_modules").is_dir())
    nodes = [NS + "Pod.PodId", NS + "Pod.Face", NS + "Interlocks.EStopActive", NS + "Conveyor.ArrivalSeq"]
    done = subprocess.run([node, str(NODE_CLIENT), devices["opcua"], *nodes], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    values = {}
    for line in (row for row in done.stdout.splitlines() if row.count("\t") == 2):  # node-opcua also logs here
        node_id, status, value = line.split("\t")
        assert status == "Good", line
        values[node_id.removeprefix(NS)] = json.loads(value)
    assert values == {"Pod.PodId": "POD-0001", "Pod.Face": "A", "Interlocks.EStopActive": False,
                      "Conveyor.ArrivalSeq": 0}
