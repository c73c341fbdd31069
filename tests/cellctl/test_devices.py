"""`cellctl devices`: refuses without --sim, names a busy port clearly."""

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
    assert done.returncode == 1
    assert f"error: robot (Modbus TCP): cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
