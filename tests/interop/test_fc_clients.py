"""Independent clients as the FC: node-opcua, and asyncua's command-line tools (uals, uaread, uacall), against the
FC-facing OPC UA server with the real `cell` chart behind it (on the scripted workcell).

They browse the FC namespace, read the PackML state and call Start. The server runs in the test's event loop; the
clients are child processes (`anyio.run_process`), so the server keeps serving while they talk to it. `make test`
installs node-opcua and fetches the nodeset; outside CI a missing tool skips these tests.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from cellctl.fc.config import FcConfig
from cellctl.fc.control import ChartControl
from cellctl.fc.server import FcServer
from cellctl.fc.store import CellStore
from cellctl.runtime.cell import CellRun, start_cell
from statecharts import cell
from statecharts.engine import ChartRunner
from statecharts.tasks import TaskConfig
from tests.statecharts.fake_workcell import FakeWorkcell

from .test_independent_clients import HERE, require

pytestmark = pytest.mark.anyio

BIN = Path(sys.executable).parent  # the venv's uals, uaread, uacall
EXECUTE_SM = "ns=2;s=Cell.BaseStateMachine.MachineState.ExecuteState"


@asynccontextmanager
async def fc_server(tmp_path: Path) -> AsyncIterator[tuple[str, CellRun]]:
    """An FC server on an ephemeral port before the real cell chart, brought to Idle (Start is allowed)."""
    store = CellStore.open(tmp_path / "fc.sqlite")
    data = cell.CellData(FakeWorkcell(move_s=0.05), config=TaskConfig(arrival_timeout_s=60.0))
    try:
        async with anyio.create_task_group() as tg:
            run = await start_cell(tg, ChartRunner(cell.build(), data=data), data)
            url = await tg.start(FcServer(FcConfig(port=0), ChartControl.of(run), store).run)
            run.runner.post("cmd.reset")
            with anyio.fail_after(10):
                await run.runner.wait_for("idle")
            yield url, run
            tg.cancel_scope.cancel()
    finally:
        store.close()


async def started(run: CellRun) -> None:
    with anyio.fail_after(10):
        await run.runner.wait_for("execute")


async def test_node_opcua_browses_the_fc_namespace_reads_the_packml_state_and_calls_start(tmp_path: Path) -> None:
    node = shutil.which("node")
    require("node-opcua (npm ci in tests/interop)", node is not None and (HERE / "node_modules").is_dir())
    assert node is not None
    async with fc_server(tmp_path) as (url, run):
        with anyio.fail_after(60):
            done = await anyio.run_process([node, str(HERE / "fc_client.mjs"), url, "Start"], cwd=HERE, check=False)
        out, err = done.stdout.decode(), done.stderr.decode()
        assert done.returncode == 0, out + err
        seen = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
        assert {"Cell", "Cellctl"} <= set(seen["objects"])
        assert {"BaseStateMachine", "Status", "Admin", "PackMLVersion"} <= set(seen["cell"])
        assert {"StateCurrent", "Counters", "CurrentTask", "PendingReports", "AcknowledgeReports",
                "RequestPick"} <= set(seen["cellctl"])
        assert {"Start", "Hold", "ToComplete"} <= set(seen["execute_methods"])
        assert seen["state"] == {
            "base": {"status": "Good", "value": "Cleared"},
            "effective": {"status": "Good", "value": "Idle"},
            "machine": {"status": "Good", "value": "Running"},
            "execute": {"status": "Good", "value": "Idle"},
            "number": {"status": "Good", "value": 4},
        }
        assert seen["call"] == {"method": "Start", "status": "Good"}
        await started(run)


async def test_uals_uaread_and_uacall_browse_read_the_state_and_call_start(tmp_path: Path) -> None:
    require("asyncua's tools (uals, uaread, uacall)", all((BIN / tool).exists() for tool in ("uals", "uaread",
                                                                                            "uacall")))

    async def tool(*args: str) -> str:
        with anyio.fail_after(60):
            done = await anyio.run_process([str(BIN / args[0]), *args[1:]], check=False)
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
        return done.stdout.decode()  # asyncua's warnings go to stderr

    async with fc_server(tmp_path) as (url, run):
        listing = await tool("uals", "-u", url, "-n", "ns=2;s=Cell")
        for name in ("3:BaseStateMachine", "3:Status", "3:Admin", "3:SetUnitMode"):
            assert name in listing, listing
        methods = await tool("uals", "-u", url, "-n", EXECUTE_SM)
        for name in ("3:Start", "3:Hold", "3:Unhold", "3:ToComplete", "0:CurrentState"):
            assert name in methods, methods
        assert "Text='Idle'" in await tool("uaread", "-u", url, "-n", f"{EXECUTE_SM}.CurrentState")
        assert (await tool("uaread", "-u", url, "-n", "ns=2;s=Cellctl.StateCurrent")).strip().endswith("4")
        assert "result_variants=None" in await tool("uacall", "-u", url, "-n", EXECUTE_SM, "-m", "3:Start")
        await started(run)
        # Start again, now in Execute: refused, and the reason is readable.
        with anyio.fail_after(60):
            refused = await anyio.run_process([str(BIN / "uacall"), "-u", url, "-n", EXECUTE_SM, "-m", "3:Start"],
                                              check=False)
        assert refused.returncode == 1 and b"BadInvalidState" in refused.stdout + refused.stderr
        reason = await tool("uaread", "-u", url, "-n", "ns=2;s=Cellctl.LastCommandResult")
        assert "Start refused: the cell is in Execute (6)" in reason, reason
