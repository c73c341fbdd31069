"""Issue 12, point 5: the controller against devices in another process (`cell.devices = "external"`).

`cellctl devices --sim --json` runs as a subprocess on free ports and prints its endpoints once everything listens;
`open_devices` points at them from a configuration file, and the sim-service client (`RemoteSim`) serves the
world's stow plans, frames and pick orders over loopback TCP. Bad requests get clear errors and the service
survives a client sending garbage. The client's own mechanics (timeout, reconnect, bad replies, a service that is
not there) run against small in-test servers. Everything on 127.0.0.1, every wait bounded.
"""

from __future__ import annotations

import io
import json
import select
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from cellctl.commands.run import run_cell
from cellctl.config import CellSection, ConfigError, RunConfig, load_config
from cellctl.workcells.remote_sim import RemoteSim, RemoteSimError, RemoteSimTimeout, RemoteSimUnavailable
from cellctl.workcells.sim_service import Frame
from cellctl.workcells.sources import CellDevices, open_devices
from perception.change import depth_change
from statecharts.workcell import Eligibility, ItemArrival, PickOrder, PickPlan, StowPlan, Verification

pytestmark = pytest.mark.anyio

LOCAL = "127.0.0.1"
START_S = 90.0  # `cellctl devices --sim` up: asyncua builds its address space (about 10 s on a loaded machine)
WAIT_S = 20.0  # anything that should take a second or two
FAST = 0.05  # the devices' time scale: a stow cycle in about a second
ITEM = ItemArrival(item_id="900001", width_mm=100.0, height_mm=80.0, depth_mm=60.0, mass_kg=0.3)
HELLO = {"service": "cellctl.sim-service", "protocol": 1, "noise_k": 0.0025, "seed": 0, "faults": "none"}


# -- `cellctl devices --sim` in a subprocess ------------------------------------------------------------------
class DevicesProcess:
    def __init__(self, tmp: Path, *args: str) -> None:
        self.err_path = tmp / "devices.stderr"
        self._err = self.err_path.open("w")
        cmd = [sys.executable, "-m", "cellctl", "devices", "--sim", "--json", "--opcua-port", "0", "--modbus-port",
               "0", "--ft-port", "0", "--service-port", "0", "--time-scale", str(FAST), *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._err, text=True)
        self.info: dict[str, Any] = json.loads(self._line(START_S))

    def _line(self, timeout_s: float) -> str:
        """The JSON line printed once everything listens (a bounded wait; a process that died says why)."""
        out = self.proc.stdout
        assert out is not None
        ready, _, _ = select.select([out], [], [], timeout_s)
        line = out.readline() if ready else ""
        if not line:
            self.stop()
            pytest.fail(f"`cellctl devices --sim` printed no endpoints within {timeout_s:.0f} s:\n"
                        f"{self.err_path.read_text()[-3000:]}")
        return line

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            self._err.close()

    def toml(self, tmp: Path, *, task: str = "stow", cycles: int = 0, log_dir: Path | None = None) -> RunConfig:
        """A run configuration pointing at these devices, loaded like `cellctl run --config` loads it."""
        i = self.info
        text = (f'[cell]\ndevices = "external"\ntask = "{task}"\ncycles = {cycles}\nstatus_period_s = 0.2\n'
                f'[log]\ndir = "{log_dir or tmp}"\n'
                f'[plc]\nurl = "{i["opcua"]}"\nresume_after_seq = 0\n'  # the item already waiting at the pick-up
                f'[robot]\nhost = "{i["modbus"][0]}"\nport = {i["modbus"][1]}\n'
                f'[ft]\nhost = "{i["ft"][0]}"\nport = {i["ft"][1]}\n'
                f'[camera]\nkind = "sim-service"\nhost = "{i["service"][0]}"\nport = {i["service"][1]}\n'
                '[fc]\nport = 0\n')  # the FC server on a free port: 4841 may be another run's
        path = tmp / "external.toml"
        path.write_text(text, encoding="utf-8")
        return load_config(path)


@pytest.fixture(scope="module")
def devices(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevicesProcess]:
    d = DevicesProcess(tmp_path_factory.mktemp("devices"), "--seed", "5")
    try:
        yield d
    finally:
        rc = d.stop()
    assert rc == 0, f"Ctrl-C did not stop `cellctl devices --sim` cleanly:\n{d.err_path.read_text()[-3000:]}"


@asynccontextmanager
async def opened(cfg: RunConfig) -> AsyncIterator[CellDevices]:
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(WAIT_S):
            cd = await open_devices(cfg, tg)
        yield cd
        tg.cancel_scope.cancel()


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """As DriverWorkcell calls perception and frames: in a worker thread."""
    with anyio.fail_after(WAIT_S):
        return await anyio.to_thread.run_sync(fn, *args)


# -- against the subprocess ---------------------------------------------------------------------------------
def test_devices_print_every_endpoint_as_one_json_line(devices: DevicesProcess) -> None:
    i = devices.info
    assert i["kind"] == "cell" and i["opcua"].startswith(f"opc.tcp://{LOCAL}:")
    for key in ("modbus", "ft", "service"):
        assert i[key][0] == LOCAL and 0 < i[key][1] < 65536
    assert i["world"] == {"seed": 5, "faults": "none", "time_scale": FAST}


async def test_open_devices_external_plans_a_stow_and_serves_frames(devices: DevicesProcess, tmp_path: Path) -> None:
    cfg = devices.toml(tmp_path)
    async with opened(cfg) as cd:
        assert cd.kind == "external" and cd.sim is None and cd.orders is None  # a stow run takes no orders
        assert cd.endpoints.opcua_url == devices.info["opcua"]
        assert list(cd.endpoints.modbus) == devices.info["modbus"] and list(cd.endpoints.ft) == devices.info["ft"]
        assert cd.describe()["camera"] == "sim-service {}:{}".format(*devices.info["service"])
        assert cd.frames.noise_k == pytest.approx(0.0025)  # the simulated camera's, from the service's hello
        assert cd.describe()["perception"] == "sim-service (learned)"  # `cellctl devices --sim`'s default

        plan = await in_thread(cd.perception.stow_plan, ITEM)
        assert isinstance(plan, StowPlan) and plan.options, plan.reason
        assert all(o.bin_id.startswith("P1-") and o.steps for o in plan.options)
        v = await in_thread(cd.perception.verify, ITEM, plan.options[0])
        assert isinstance(v, Verification) and not v.ok and "item 900001" in v.detail  # never stowed

        a, b = await in_thread(cd.frames.frame, 0), await in_thread(cd.frames.frame, 0)
        assert a.shape == (240, 320) and a.dtype == np.float32 and np.isfinite(a).any()
        assert not np.array_equal(a, b)  # each frame has its own noise
        assert depth_change(a, b, noise_k=cd.frames.noise_k).fraction < 0.01  # a still bin: no scene change


async def test_pick_orders_and_pick_perception_come_from_the_service(devices: DevicesProcess,
                                                                     tmp_path: Path) -> None:
    async with opened(devices.toml(tmp_path, task="pick")) as cd:
        remote = cd.remote
        assert remote is not None and cd.orders is remote
        with anyio.fail_after(WAIT_S + 10):
            order = await remote.next_order(10.0)
        assert isinstance(order, PickOrder) and order.bin_id.startswith("P1-")
        e = await in_thread(cd.perception.eligibility, order)
        assert isinstance(e, Eligibility) and e.detail
        p = await in_thread(cd.perception.pick_plan, order)
        assert isinstance(p, PickPlan) and (p.candidates or p.reason)


async def test_a_bad_request_gets_a_clear_error_and_the_connection_stays(devices: DevicesProcess) -> None:
    remote = RemoteSim(*devices.info["service"], request_timeout_s=WAIT_S)
    async with anyio.create_task_group() as tg:
        await tg.start(remote.run)
        with pytest.raises(RemoteSimError, match=r"bad_request: frame: args\.bin_index: Input should be greater"):
            await remote.request("frame", {"bin_index": -1})
        with pytest.raises(RemoteSimError, match=r"failed: frame: WorldError: no bin with index 99 \(pod has 12\)"):
            await remote.request("frame", {"bin_index": 99})
        with pytest.raises(RemoteSimError, match=r"bad_request: no op 'focus' \(ops: hello, stow_plan"):
            await remote.request("focus", {})
        with pytest.raises(RemoteSimError, match=r"stow_plan: args\.item\.width_mm: Input should be greater"):
            await remote.request("stow_plan", {"item": {**ITEM.model_dump(mode="json"), "width_mm": -1}})
        with pytest.raises(RuntimeError, match="for worker threads"):
            remote.frame(0)  # the synchronous methods block: never on the loop
        assert (await remote.aframe(1)).shape == (240, 320)
        assert remote.connects == 1  # all of it on the first connection
        tg.cancel_scope.cancel()


async def _replies(buf: BufferedByteReceiveStream, n: int) -> list[dict[str, Any]]:
    return [json.loads(await buf.receive_until(b"\n", 1 << 20)) for _ in range(n)]


async def test_the_service_survives_a_client_sending_garbage(devices: DevicesProcess) -> None:
    host, port = devices.info["service"]
    with anyio.fail_after(WAIT_S):
        stream: SocketStream = await anyio.connect_tcp(host, port)
        async with stream:
            buf = BufferedByteReceiveStream(stream)
            garbage = [b"not json", b"[1, 2]", b"\xff\xfe{", b'{"id": 3, "op": "hello", "args": {}, "id": 4}',
                       b'{"id": 5, "op": "frame", "args": {"bin_index": NaN}}', b'{"op": "hello"}',
                       b'{"id": true, "op": "hello"}', b'{"id": 6, "op": "frame", "args": [0]}',
                       b'{"id": 7, "op": "hello", "args": {"x": 1}}']
            await stream.send(b"\n".join(garbage) + b"\n\n")
            got = await _replies(buf, len(garbage))
            assert all(r["ok"] is False and r["error"]["kind"] == "bad_request" for r in got), got
            texts = [r["error"]["message"] for r in got]
            assert texts[0].startswith("not JSON") and "a JSON object, got list" in texts[1]
            assert texts[2].startswith("not UTF-8") and "duplicate key" in texts[3] and "NaN is not JSON" in texts[4]
            assert texts[5].startswith("id: Field required") and texts[6].startswith("id: Input should be")
            assert "args: Input should be a valid dictionary" in texts[7]
            assert "args.x: Extra inputs are not permitted" in texts[8]
            assert [r["id"] for r in got] == [None] * 7 + [6, 7]  # the id, where the request had a usable one
            await stream.send(b'{"id": 8, "op": "hello"}\n')  # the same connection still serves
            (hello,) = await _replies(buf, 1)
            assert hello["id"] == 8 and hello["ok"] is True and hello["result"]["service"] == "cellctl.sim-service"
            await stream.send(b"x" * (2 << 20))  # a line that never ends: no telling where the next one starts
            await stream.send_eof()
            (big,) = await _replies(buf, 1)
            assert big["error"]["kind"] == "too_large"
            with pytest.raises(anyio.IncompleteRead):
                await buf.receive_until(b"\n", 1 << 20)  # closed by the service
        async with anyio.create_task_group() as tg:  # and the service serves the next client
            remote = RemoteSim(host, port, request_timeout_s=WAIT_S)
            await tg.start(remote.run)
            assert (await remote.aframe(0)).shape == (240, 320)
            tg.cancel_scope.cancel()


def test_a_busy_service_port_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind((LOCAL, 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "cellctl", "devices", "--sim", "--opcua-port", "0",
                               "--modbus-port", "0", "--ft-port", "0", "--service-port", str(port)],
                              capture_output=True, text=True, timeout=START_S)
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr
    assert f"error: camera + perception (sim-service, TCP): cannot listen on {LOCAL}:{port}: the port is in use" \
        in done.stderr.splitlines()


# -- the client against in-test servers ---------------------------------------------------------------------
Handler = Callable[[SocketStream, BufferedByteReceiveStream, int], Awaitable[None]]


@asynccontextmanager
async def fake_service(handler: Handler) -> AsyncIterator[int]:
    """A TCP server on a free port that answers hello like the sim-service, then runs `handler` (connection n)."""
    count = 0

    async def serve(stream: SocketStream) -> None:
        nonlocal count
        count += 1
        n = count
        async with stream:
            buf = BufferedByteReceiveStream(stream)
            req = json.loads(await buf.receive_until(b"\n", 1 << 20))
            assert req["op"] == "hello"
            await stream.send(json.dumps({"id": req["id"], "ok": True, "result": HELLO}).encode() + b"\n")
            with anyio.CancelScope() as scope:
                try:
                    await handler(stream, buf, n)
                except (anyio.IncompleteRead, anyio.BrokenResourceError):
                    scope.cancel()

    listener = await anyio.create_tcp_listener(local_host=LOCAL, local_port=0)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        yield listener.extra(SocketAttribute.local_port)
        tg.cancel_scope.cancel()


async def _request(buf: BufferedByteReceiveStream) -> dict[str, Any]:
    return json.loads(await buf.receive_until(b"\n", 1 << 20))  # type: ignore[no-any-return]


async def _send(stream: SocketStream, message: dict[str, Any]) -> None:
    await stream.send(json.dumps(message).encode() + b"\n")


async def test_a_request_without_a_reply_times_out_with_a_clear_error() -> None:
    async def silent(stream: SocketStream, buf: BufferedByteReceiveStream, n: int) -> None:
        await anyio.sleep_forever()

    async with fake_service(silent) as port, anyio.create_task_group() as tg:
        remote = RemoteSim(LOCAL, port, request_timeout_s=0.3)
        await tg.start(remote.run)
        with anyio.fail_after(WAIT_S), pytest.raises(RemoteSimTimeout, match=r"no reply to frame within 0\.3 s"):
            await remote.aframe(0)
        tg.cancel_scope.cancel()


async def test_the_client_reconnects_after_the_service_drops_it() -> None:
    depth = np.arange(6, dtype=np.float32).reshape(2, 3)

    async def drops_first(stream: SocketStream, buf: BufferedByteReceiveStream, n: int) -> None:
        while True:
            req = await _request(buf)
            if n == 1:
                return  # the first connection dies with a request in flight
            await _send(stream, {"id": req["id"], "ok": True, "result": Frame.of(depth).model_dump(mode="json")})

    async with fake_service(drops_first) as port, anyio.create_task_group() as tg:
        remote = RemoteSim(LOCAL, port, request_timeout_s=WAIT_S)
        await tg.start(remote.run)
        with anyio.fail_after(WAIT_S):
            with pytest.raises(RemoteSimUnavailable, match="frame: connection lost"):
                await remote.aframe(0)
            assert np.array_equal(await remote.aframe(0), depth)  # waits for the reconnect, then served
        assert remote.connects == 2 and remote.connected
        tg.cancel_scope.cancel()


async def test_a_bad_reply_is_an_error_not_a_crash() -> None:
    async def wrong(stream: SocketStream, buf: BufferedByteReceiveStream, n: int) -> None:
        while True:
            req = await _request(buf)
            if req["op"] == "frame":
                result: Any = {"shape": [2, 2], "dtype": "<f4", "data": "AAAA"}  # 3 bytes for 4 floats
            elif req["op"] == "stow_plan":
                result = {"options": "everywhere"}
            else:
                await stream.send(b"{not json\n")  # the link is dropped and made again
                continue
            await _send(stream, {"id": req["id"], "ok": True, "result": result})

    async with fake_service(wrong) as port, anyio.create_task_group() as tg:
        remote = RemoteSim(LOCAL, port, request_timeout_s=WAIT_S)
        await tg.start(remote.run)
        with anyio.fail_after(WAIT_S):
            with pytest.raises(RemoteSimError, match="frame: bad reply: frame data is 3 bytes, shape"):
                await remote.aframe(0)
            with pytest.raises(RemoteSimError, match=r"stow_plan: bad reply: result\.options"):
                await remote.astow_plan(ITEM)
            with pytest.raises(RemoteSimUnavailable, match=r"pick_plan: connection lost .*no JSON object"):
                await remote.apick_plan(PickOrder(order_id="O1", item_id="1", bin_id="P1-0A"))
            with pytest.raises(RemoteSimError, match="frame: bad reply"):
                await remote.aframe(0)  # served again, on the new connection
        assert remote.connects == 2
        tg.cancel_scope.cancel()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOCAL, 0))
        return int(s.getsockname()[1])


async def test_a_service_that_is_not_there_is_an_error_naming_it(tmp_path: Path) -> None:
    port = _free_port()
    cfg = RunConfig.model_validate({"cell": {"devices": "external"},
                                    "camera": {"port": port, "request_timeout_s": 0.3}})
    with anyio.fail_after(WAIT_S), pytest.raises(ExceptionGroup) as err:
        async with opened(cfg):
            pass
    (leaf,) = _leaves(err.value)
    assert isinstance(leaf, RemoteSimUnavailable) and isinstance(leaf, OSError)  # `cellctl run`: error, exit 2
    assert str(leaf).startswith(f"sim-service at {LOCAL}:{port}: not reachable within 0.3 s (")
    assert "is `cellctl devices --sim` running with that --service-port?" in str(leaf)


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


async def test_external_without_a_camera_is_refused_by_open_devices_too() -> None:
    cfg = RunConfig.model_construct(cell=CellSection(devices="external"))  # past the validators
    async with anyio.create_task_group() as tg:
        with pytest.raises(ConfigError, match=r"cell\.devices: 'external' needs a \[camera\] section"):
            await open_devices(cfg, tg)


def test_external_without_a_camera_is_a_one_line_error_from_cellctl_run(tmp_path: Path) -> None:
    path = tmp_path / "cell.toml"
    path.write_text('[cell]\ndevices = "external"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "cellctl", "run", "--config", str(path), "--log-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: {path}: cell.devices: 'external' needs a [camera] section: kind = "
                                  "'realsense'"), done.stderr
    assert "kind = 'sim-service' (the simulated cell's camera and perception" in done.stderr


# -- in-process, as `cellctl run` has always run ------------------------------------------------------------
async def test_open_devices_sim_starts_the_simulated_cell_in_process(tmp_path: Path) -> None:
    cfg = RunConfig.model_validate({"cell": {"task": "pick"}, "sim": {"time_scale": FAST, "seed": 5}})
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(START_S):
            cd = await open_devices(cfg, tg)
        assert cd.kind == "sim" and cd.sim is not None and cd.remote is None and cd.orders is not None
        assert cd.endpoints.modbus[1] > 0 and cd.endpoints.ft[1] > 0 and cd.endpoints.ft_rate_hz == 1000.0
        assert cd.describe()["camera"] == "simulated world (in process)"
        plan = await in_thread(cd.perception.stow_plan, ITEM)
        assert plan.options and all(o.bin_id.startswith("P1-") for o in plan.options)
        assert (await in_thread(cd.frames.frame, 0)).shape == (240, 320)
        tg.cancel_scope.cancel()


# -- end to end ------------------------------------------------------------------------------------------------
async def test_run_cell_stows_against_external_devices(tmp_path: Path) -> None:
    d = DevicesProcess(tmp_path, "--seed", "7")
    try:
        with anyio.fail_after(120):
            summary = await run_cell(d.toml(tmp_path, cycles=2), out=io.StringIO())
    finally:
        rc = d.stop()
    assert summary["end_state"] == "complete", summary
    assert sum(summary["outcomes"].values()) == 2 and summary["outcomes"]["done"] >= 1
    assert rc == 0, d.err_path.read_text()[-3000:]
    assert Path(summary["log"]).name.startswith("cellctl-run-stow-")
