"""`cellctl run` fails safe on device trouble, over the real protocols: a HALT someone else latched aborts the
cell and stays latched; the same fault on every cycle (an F/T stream stolen by a forged RDT start request)
holds the cell with an alarm instead of taking a new item each cycle."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import anyio
import pytest
from pymodbus.client import AsyncModbusTcpClient

from cellctl.commands.run import run_cell
from cellctl.config import load_config
from cellctl.runtime.cell import CellRun, Command
from drivers import robot_map as rm
from drivers.ft import Command as RdtCommand
from drivers.ft import encode_request

pytestmark = pytest.mark.anyio
FAST = 0.05


def _config(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "cell.toml"
    cfg.write_text(f'[cell]\ncycles = 0\nstatus_period_s = 0.2\n{extra}\n[log]\ndir = "{tmp_path}"\n[fc]\nport = 0\n'
                   f'[sim]\ntime_scale = {FAST}\nseed = 5\n')
    return cfg


async def test_a_foreign_halt_aborts_the_cell_and_the_controller_never_releases_it(tmp_path: Path) -> None:
    writes: list[tuple[str, int]] = []  # HALT writes of the controller, and the panel's

    async def operator_panel(run: CellRun) -> None:
        robot = run.data.workcell.inner.inner.robot  # reporting -> recording -> driver port
        write_halt = robot._write_halt

        async def recorded(value: int, what: str) -> bool:
            writes.append(("controller", value))
            return await write_halt(value, what)

        robot._write_halt = recorded
        panel = AsyncModbusTcpClient("127.0.0.1", port=robot.config.port, timeout=1.0)
        assert await panel.connect()
        await run.runner.wait_for("execute")
        while robot.state is None or robot.state.status is not rm.Status.BUSY:
            await robot.read_tool()  # until a primitive runs
        writes.append(("panel", 1))
        await panel.write_register(rm.HALT.address, 1, device_id=1)
        panel.close()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            summary = await run_cell(load_config(_config(tmp_path)), out=io.StringIO(),
                                     on_ready=lambda run: tg.start_soon(operator_panel, run))
    assert summary["end_state"] == "aborted", summary
    assert "halted externally" in summary["stop_reason"]
    after = writes[writes.index(("panel", 1)) + 1:]
    assert ("controller", 0) not in after, writes  # the abort halts (1) but never releases the panel's stop


async def test_the_same_fault_every_cycle_holds_the_cell_with_an_alarm(tmp_path: Path) -> None:
    held: list[str] = []

    async def forge_rdt_start(run: CellRun) -> None:
        # reporting -> recording -> driver port; the reflex reads the sensor itself (and relays to the FTSensor)
        reflex = run.data.workcell.inner.inner.reflex
        sensor = (reflex.config.sensor_host, reflex.config.sensor_port)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as thief:
            thief.bind(("127.0.0.1", 0))
            thief.setblocking(False)
            with anyio.move_on_after(45):
                async with anyio.create_task_group() as tg:

                    async def steal() -> None:
                        while True:  # the sensor streams to whoever asked last
                            thief.sendto(encode_request(RdtCommand.START), sensor)
                            await anyio.sleep(0.01)

                    tg.start_soon(steal)
                    await run.runner.wait_for("held")
                    held.append(run.data.alarm)
                    tg.cancel_scope.cancel()
        await run.command(Command("cmd.stop"))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            summary = await run_cell(load_config(_config(tmp_path, "fault_repeat_limit = 3")), out=io.StringIO(),
                                     on_ready=lambda run: tg.start_soon(forge_rdt_start, run))
    assert held and held[0].startswith("the same fault 3 times in a row"), held
    assert "no force-guarded motion without it" in held[0]
    assert summary["end_state"] == "stopped"
    # It held on the 3rd fault in a row: on its way there a guarded motion may have slipped through.
    assert summary["outcomes"]["fault"] >= 3, summary
    assert summary["cycles"] == sum(summary["outcomes"].values()) == summary["reports"], summary
