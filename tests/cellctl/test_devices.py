"""`cellctl devices`: refuses without --sim, names a busy port clearly (one line, exit 2)."""

from __future__ import annotations

import socket
import subprocess
import sys

from typer.testing import CliRunner

from cellctl.cli import app


def test_devices_requires_sim() -> None:
    result = CliRunner().invoke(app, ["devices"])
    assert result.exit_code == 2 and "only --sim is supported" in result.output


def test_busy_port_is_reported_by_device_and_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "cellctl", "devices", "--sim", "--opcua-port", "0", "--ft-port", "0",
             "--modbus-port", str(port)],
            capture_output=True, text=True, timeout=60,
        )
    assert done.returncode == 2
    assert f"error: robot (Modbus TCP): cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_busy_opcua_port_gives_one_line_error_without_asyncua_traceback() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "cellctl", "devices", "--sim", "--opcua-port", str(port), "--modbus-port", "0",
             "--ft-port", "0", "--arrival-period", "0"],
            capture_output=True, text=True, timeout=60,
        )
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    # the PLC starts first: nothing of asyncua's (traceback, security warnings) comes before the error
    assert done.stderr.strip() == f"error: PLC (OPC UA): cannot listen on 127.0.0.1:{port}: the port is in use"
