"""The sim-service: the simulated cell's camera, perception and pick orders over loopback TCP.

`cellctl devices --sim` serves the simulated cell's PLC, robot and F/T sensor behind their real protocols; its
EOAT camera and the perception on its frames have none (a camera driver and frame-only perception belong to the
perception-from-frames issue), nor have the FC's pick orders. This service gives a controller in another process
(`cell.devices = "external"`, `[camera] kind = "sim-service"`) what `cellctl run` takes from the world in-process:
the `Perception`, `FrameSource` and `OrderSource` of `cellctl.workcells.drivers`. The client is `remote_sim`.

The protocol: JSON lines, one UTF-8 JSON object per line, over TCP (try it: `nc 127.0.0.1 4850`, then type
`{"id": 1, "op": "hello"}`)::

    request  {"id": 7, "op": "stow_plan", "args": {"item": {...ItemArrival}, "exclude_bins": ["P1-0A"]}}
    reply    {"id": 7, "ok": true, "result": {...StowPlan}}
    error    {"id": 7, "ok": false, "error": {"kind": "bad_request", "message": "args.item.width_mm: ..."}}

    op           args                                    result
    hello        {}                                      Hello (protocol version, camera noise_k, world seed)
    stow_plan    item: ItemArrival, exclude_bins: [str]  StowPlan
    verify       item: ItemArrival, option: StowOption   Verification
    eligibility  order: PickOrder                        Eligibility
    pick_plan    order: PickOrder                        PickPlan
    frame        bin_index: int                          Frame (float32 depth in m, little-endian, base64)
    next_order   timeout_s: float                        PickOrder, or null when none came within timeout_s

Messages are the pydantic models of `statecharts.workcell` (`model_dump(mode="json")` / `model_validate`), checked
on both sides. An error's kind: `bad_request` (not JSON, no such op, arguments that do not validate: the
connection stays open), `too_large` (a line over MAX_REQUEST_BYTES: the connection is closed, there is no telling
where the next message starts), `failed` (the world refused: no such bin), `busy` (too many connections). A reply
carries the request's id (null when the request had none); replies to one connection may come in any order.
Perception and frames run one at a time in a worker thread (the world's renderer and noise generator are shared).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import anyio
import numpy as np
import structlog
from anyio.abc import SocketAttribute, SocketStream, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from cellctl.workcells.planning_perception import PlanningPerception
from cellctl.workcells.sim_perception import WorldPerception, scene_of
from cellctl.workcells.sim_sources import SimOrders, WorldCamera
from drivers.sim.cell_devices import SimCellDevices
from statecharts.workcell import ItemArrival, PickOrder, StowOption

__all__ = [
    "MAX_REPLY_BYTES", "MAX_REQUEST_BYTES", "OPS", "PROTOCOL", "SERVICE", "Frame", "Hello", "SimService",
    "decode_line", "encode", "error_text",
]

log = structlog.get_logger("sim.service")

SERVICE = "cellctl.sim-service"
PROTOCOL = 1
MAX_REQUEST_BYTES = 1 << 20  # a stow option with its motions is a few kB
MAX_REPLY_BYTES = 64 << 20  # a 1280x720 float32 frame in base64 is 4.9 MB
MAX_CONNECTIONS = 16
LINGER_S, LINGER_BYTES = 1.0, 64 << 20  # closing on a client: how long and how much it may still send
MAX_IN_FLIGHT = 8  # requests of one connection being served at once; the next waits for one to finish


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Request(_Strict):
    id: StrictInt = Field(ge=0, le=(1 << 53) - 1)  # exact in any JSON reader
    op: StrictStr = Field(min_length=1, max_length=32)
    args: dict[str, Any] = {}


class HelloArgs(_Strict):
    pass


class StowPlanArgs(_Strict):
    item: ItemArrival
    exclude_bins: tuple[str, ...] = Field((), max_length=1024)


class VerifyArgs(_Strict):
    item: ItemArrival
    option: StowOption


class EligibilityArgs(_Strict):
    order: PickOrder


class PickPlanArgs(_Strict):
    order: PickOrder


class FrameArgs(_Strict):
    bin_index: int = Field(ge=0, le=4095)


class NextOrderArgs(_Strict):
    timeout_s: float = Field(gt=0, le=3600)


class Hello(_Strict):
    service: Literal["cellctl.sim-service"]
    protocol: int
    noise_k: float = Field(ge=0, le=1)
    seed: int
    faults: str
    perception: Literal["learned", "oracle"] = "oracle"  # how the service perceives (older services: the oracle)


_Side = Annotated[int, Field(ge=1, le=8192)]


class Frame(_Strict):
    """A depth frame: float32 metres (NaN: no return), row-major, little-endian, base64."""

    shape: tuple[_Side, _Side]
    dtype: Literal["<f4"] = "<f4"
    data: str

    @classmethod
    def of(cls, depth: np.ndarray) -> Frame:
        a = np.ascontiguousarray(depth, dtype="<f4")
        if a.ndim != 2:
            raise ValueError(f"a depth frame is 2-D, got shape {a.shape}")
        return cls(shape=(a.shape[0], a.shape[1]), data=base64.b64encode(a.tobytes()).decode("ascii"))

    def array(self) -> np.ndarray:
        h, w = self.shape
        raw = base64.b64decode(self.data, validate=True)
        if len(raw) != h * w * 4:
            raise ValueError(f"frame data is {len(raw)} bytes, shape {self.shape} float32 needs {h * w * 4}")
        return np.frombuffer(raw, dtype="<f4").reshape(h, w).astype(np.float32)  # native order, writable


# op -> its arguments' model
OPS: dict[str, type[_Strict]] = {
    "hello": HelloArgs, "stow_plan": StowPlanArgs, "verify": VerifyArgs, "eligibility": EligibilityArgs,
    "pick_plan": PickPlanArgs, "frame": FrameArgs, "next_order": NextOrderArgs,
}


class BadRequest(ValueError):
    """A request that cannot be served as sent (the message says why)."""

    def __init__(self, message: str, request_id: int | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


def encode(message: dict[str, Any]) -> bytes:
    """One message as a line (json.dumps never writes a raw line break; NaN/inf are refused, not sent as NaN)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def decode_line(line: bytes) -> dict[str, Any]:
    """A line's JSON object; BadRequest when it is not one (NaN, Infinity and duplicate keys are refused)."""
    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):
            raise ValueError("duplicate key")
        return out

    try:
        value = json.loads(line.decode("utf-8"), parse_constant=no_constants, object_pairs_hook=unique)
    except UnicodeDecodeError as exc:
        raise BadRequest(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"a message is a JSON object, got {type(value).__name__}")
    return value


def error_text(exc: ValidationError, prefix: str = "") -> str:
    """A pydantic error as `dotted.key: message; ...` (the first 5)."""
    parts = []
    for e in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "")
        parts.append(f"{where or '(message)'}: {e['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_request(message: dict[str, Any]) -> tuple[Request, _Strict]:
    """The request and its validated arguments; BadRequest naming the key that is wrong."""
    raw_id = message.get("id")
    request_id = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
    try:
        req = Request.model_validate(message)
    except ValidationError as exc:
        raise BadRequest(error_text(exc), request_id) from None
    model = OPS.get(req.op)
    if model is None:
        raise BadRequest(f"no op {req.op!r} (ops: {', '.join(OPS)})", req.id)
    try:
        return req, model.model_validate(req.args)
    except ValidationError as exc:
        raise BadRequest(f"{req.op}: {error_text(exc, 'args')}", req.id) from None


@dataclass
class ServiceStats:
    connections: int = 0
    refused: int = 0  # over MAX_CONNECTIONS
    requests: int = 0
    bad_requests: int = 0
    failed: int = 0
    handler_errors: int = 0  # a bug of this module's, caught at the connection (the service goes on)
    by_op: dict[str, int] = field(default_factory=dict)


class SimService:
    """Serves the world of `devices` (a started `SimCellDevices`): camera frames, perception, pick orders."""

    def __init__(self, devices: SimCellDevices, host: str = "127.0.0.1", port: int = 4850, *,
                 perception: PlanningPerception | None = None) -> None:
        self.devices, self.host, self.port = devices, host, port
        self.perception = perception if perception is not None else WorldPerception(devices.cell)
        self.camera = WorldCamera(scene_of(self.perception, devices.cell))
        self.orders = SimOrders(devices)
        self.stats = ServiceStats()
        self._world = anyio.Lock()  # one perception or frame call at a time: renderer and noise are shared
        self._open = 0
        self._ids = itertools.count(1)

    async def serve(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen on host:port (0: any free port), report the port, serve until cancelled."""
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        async with listener:
            self.port = listener.extra(SocketAttribute.local_port)
            log.info("sim-service listening", host=self.host, port=self.port)
            task_status.started(self.port)
            await listener.serve(self._connection)

    # -- one connection ------------------------------------------------------------------------------------
    async def _connection(self, stream: SocketStream) -> None:
        """One client; whatever it sends or does, only its connection ends (never the service)."""
        conn = next(self._ids)
        async with stream:
            if self._open >= MAX_CONNECTIONS:
                self.stats.refused += 1
                with contextlib.suppress(anyio.BrokenResourceError, OSError):
                    await stream.send(encode(_error(None, "busy", f"{MAX_CONNECTIONS} connections already open")))
                return
            self._open += 1
            self.stats.connections += 1
            log.info("sim-service client connected", conn=conn,
                     peer=str(stream.extra(SocketAttribute.remote_address, None)))
            try:
                await self._serve(conn, stream)
            except* (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as group:
                log.info("sim-service client gone", conn=conn, error=repr(group.exceptions[0]))
            except* Exception:
                self.stats.handler_errors += 1
                log.exception("sim-service connection failed: closing it", conn=conn)
            finally:
                self._open -= 1
        log.info("sim-service client disconnected", conn=conn)

    async def _serve(self, conn: int, stream: SocketStream) -> None:
        receive = BufferedByteReceiveStream(stream)
        send_lock = anyio.Lock()
        in_flight = anyio.Semaphore(MAX_IN_FLIGHT)
        warned = False

        async def reply(line: bytes) -> None:
            async with send_lock:
                await stream.send(line)

        async def answer(req: Request, args: _Strict) -> None:
            try:
                line = await self._answer(req, args)
            finally:
                in_flight.release()
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                await reply(line)  # the client may have gone meanwhile

        # On the client's end of stream the answers still pending are sent (a one-shot `nc` gets its reply).
        async with anyio.create_task_group() as tg:
            while True:
                try:
                    line = await receive.receive_until(b"\n", MAX_REQUEST_BYTES)
                except anyio.IncompleteRead:
                    return  # the client closed (a partial last line is dropped)
                except anyio.DelimiterNotFound:
                    self.stats.bad_requests += 1
                    log.warning("sim-service request too large: closing the connection", conn=conn,
                                limit=MAX_REQUEST_BYTES)
                    await reply(encode(_error(None, "too_large", f"a request line is at most {MAX_REQUEST_BYTES} "
                                                                 "bytes: closing the connection")))
                    await _linger(stream)
                    return
                if not line.strip():
                    continue  # a blank line (an interactive client's extra Enter)
                try:
                    req, args = parse_request(decode_line(line))
                except BadRequest as exc:
                    self.stats.bad_requests += 1
                    if not warned:  # once per connection: a client sending garbage does not flood the log
                        warned = True
                        log.warning("sim-service bad request", conn=conn, error=str(exc)[:300])
                    await reply(encode(_error(exc.request_id, "bad_request", str(exc))))
                    continue
                self.stats.requests += 1
                self.stats.by_op[req.op] = self.stats.by_op.get(req.op, 0) + 1
                await in_flight.acquire()
                tg.start_soon(answer, req, args)

    # -- the ops ------------------------------------------------------------------------------------------
    async def _answer(self, req: Request, args: _Strict) -> bytes:
        try:
            return encode({"id": req.id, "ok": True, "result": await self._call(args)})
        except Exception as exc:  # the world refused (no such bin, an item id that is no number): an answer
            self.stats.failed += 1
            log.info("sim-service request failed", op=req.op, error=f"{type(exc).__name__}: {exc}")
            return encode(_error(req.id, "failed", f"{req.op}: {type(exc).__name__}: {exc}"))

    async def _call(self, args: _Strict) -> Any:
        p = self.perception
        if isinstance(args, HelloArgs):
            cfg = self.devices.config
            return Hello(service=SERVICE, protocol=PROTOCOL, noise_k=self.camera.noise_k, seed=cfg.seed,
                         faults=cfg.faults, perception=p.kind).model_dump(mode="json")
        if isinstance(args, NextOrderArgs):
            order = await self.orders.next_order(args.timeout_s)
            return None if order is None else order.model_dump(mode="json")
        if isinstance(args, FrameArgs):
            return Frame.of(await self._in_world(self.camera.frame, args.bin_index)).model_dump(mode="json")
        result: BaseModel
        if isinstance(args, StowPlanArgs):
            result = await self._in_world(p.stow_plan, args.item, args.exclude_bins)
        elif isinstance(args, VerifyArgs):
            result = await self._in_world(p.verify, args.item, args.option)
        elif isinstance(args, EligibilityArgs):
            result = await self._in_world(p.eligibility, args.order)
        elif isinstance(args, PickPlanArgs):
            result = await self._in_world(p.pick_plan, args.order)
        else:
            raise TypeError(f"no handler for {type(args).__name__}")
        return result.model_dump(mode="json")

    async def _in_world(self, fn: Callable[..., Any], *args: Any) -> Any:
        async with self._world:
            return await anyio.to_thread.run_sync(fn, *args)


async def _linger(stream: SocketStream) -> None:
    """Close without a reset: stop sending, then read what the client still sends (bounded), so that the last
    reply is not thrown away by the client's kernel (a close with unread data sends RST)."""
    with contextlib.suppress(Exception):
        await stream.send_eof()
        with anyio.move_on_after(LINGER_S):
            drained = 0
            while drained < LINGER_BYTES:
                drained += len(await stream.receive())


def _error(request_id: int | None, kind: str, message: str) -> dict[str, Any]:
    return {"id": request_id, "ok": False, "error": {"kind": kind, "message": message[:2000]}}
