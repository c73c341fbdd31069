"""The client of the sim-service (`sim_service`): the simulated cell's camera, perception and pick orders.

`RemoteSim` is the `Perception`, `FrameSource` and `OrderSource` of `cellctl.workcells.drivers` for a controller
whose devices run in another process (`cell.devices = "external"`, `[camera] kind = "sim-service"`). One TCP
connection carries every request (each with an id: replies may come in any order); `run` keeps it up: it connects
and says hello at start (bounded: a service that is not there is an error naming host and port), then reconnects
with backoff whenever the connection is lost. A request waits for the connection and its reply within its timeout
(`request_timeout_s`; next_order: its own wait on top); requests in flight when the connection drops fail at once.
Every reply is validated; whatever goes wrong comes back as a `RemoteSimError` (a perception failure is a plan
with a reason to `DriverWorkcell`, a failed frame stops the watched motion), never a hang.

The Perception and FrameSource methods are synchronous, as the protocols say: `DriverWorkcell` calls them in a
worker thread (`anyio.to_thread.run_sync`), and they hand the request to the event loop (`anyio.from_thread`).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import numpy as np
import structlog
from anyio.abc import SocketStream, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream
from pydantic import BaseModel, ValidationError

from cellctl.workcells.sim_service import MAX_REPLY_BYTES, PROTOCOL, Frame, Hello, decode_line, encode, error_text
from statecharts.workcell import (
    Eligibility,
    ItemArrival,
    Motion,
    MotionResult,
    PickOrder,
    PickPlan,
    StowOption,
    StowPlan,
    Verification,
)

__all__ = ["RemoteSim", "RemoteSimError", "RemoteSimTimeout", "RemoteSimUnavailable"]

log = structlog.get_logger("sim.remote")
M = TypeVar("M", bound=BaseModel)

RECONNECT_INITIAL_S = 0.05
RECONNECT_MAX_S = 2.0
ORDER_MARGIN_S = 1.0  # next_order: the service waits up to timeout_s, then up to 0.5 s for the pod to come down


class RemoteSimError(RuntimeError):
    """A sim-service request that did not give a valid result (the message names the service and the request)."""


class RemoteSimTimeout(RemoteSimError, TimeoutError):
    """No reply within the request's timeout."""


class RemoteSimUnavailable(RemoteSimError, ConnectionError):
    """The service cannot be reached (at start: not listening; later: connection lost and not back yet)."""


class _ProtocolError(Exception):
    """The service sent something that is no reply: the connection is dropped and made again."""


@dataclass(frozen=True)
class _Link:
    stream: SocketStream
    receive: BufferedByteReceiveStream


@dataclass
class _Pending:
    op: str
    done: anyio.Event = field(default_factory=anyio.Event)
    reply: dict[str, Any] | None = None
    error: RemoteSimError | None = None


class RemoteSim:
    """Perception, depth frames and pick orders of the simulated world served by `cellctl devices --sim`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4850, *, request_timeout_s: float = 10.0) -> None:
        self.host, self.port, self.request_timeout_s = host, port, request_timeout_s
        self.noise_k = 0.0  # FrameSource: the camera's depth noise (from the service's hello)
        self.hello: Hello | None = None
        self.connects = 0  # connections made (1 + reconnects)
        self._link: _Link | None = None
        self._up = anyio.Event()  # set while connected (or closed); replaced by a fresh one when the link drops
        self._closed = False
        self._last_error = "not connected yet"
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._send_lock = anyio.Lock()
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._loop_thread: int | None = None

    @property
    def where(self) -> str:
        return f"sim-service at {self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._link is not None

    def describe(self) -> dict[str, Any]:
        h = self.hello
        return {"kind": "sim-service", "address": f"{self.host}:{self.port}", "connected": self.connected,
                "connects": self.connects, "seed": h.seed if h else None, "faults": h.faults if h else None,
                "perception": h.perception if h else None}

    @property
    def kind(self) -> str:
        """The service's perception (learned or oracle), once it has said hello."""
        return f"sim-service ({self.hello.perception})" if self.hello else "sim-service"

    # -- the connection ------------------------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect and say hello (within request_timeout_s, retrying), start; then keep the connection up."""
        self._token = anyio.lowlevel.current_token()
        self._loop_thread = threading.get_ident()
        try:
            try:
                with anyio.fail_after(self.request_timeout_s):
                    link = await self._connect_retrying()
            except TimeoutError:
                raise RemoteSimUnavailable(
                    f"{self.where}: not reachable within {self.request_timeout_s:g} s ({self._last_error}); "
                    "is `cellctl devices --sim` running with that --service-port?") from None
            task_status.started()
            while True:
                try:
                    await self._read_replies(link)
                    self._last_error = "the service closed the connection"
                except (OSError, anyio.BrokenResourceError, anyio.IncompleteRead, anyio.DelimiterNotFound,
                        _ProtocolError) as exc:
                    self._last_error = _why(exc)
                self._down()
                log.warning("sim-service connection lost: reconnecting", service=self.where, error=self._last_error)
                with contextlib.suppress(OSError):
                    await link.stream.aclose()
                link = await self._connect_retrying()
                log.info("sim-service reconnected", service=self.where, connects=self.connects)
        finally:
            self._closed = True
            self._down("client closed")
            self._up.set()  # wake waiting requests: they fail as closed
            if self._link is not None:
                with anyio.CancelScope(shield=True), contextlib.suppress(OSError):
                    await self._link.stream.aclose()
            self._link = None

    async def _connect_retrying(self) -> _Link:
        delay = RECONNECT_INITIAL_S
        while True:
            try:
                return await self._connect()
            except (OSError, anyio.BrokenResourceError, anyio.IncompleteRead, anyio.DelimiterNotFound,
                    _ProtocolError, TimeoutError) as exc:
                self._last_error = _why(exc)
            await anyio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def _connect(self) -> _Link:
        """A connection that has answered hello (before any other request may use it)."""
        with anyio.fail_after(self.request_timeout_s):
            stream = await anyio.connect_tcp(self.host, self.port)
            try:
                await stream.send(encode({"id": 0, "op": "hello", "args": {}}))
                receive = BufferedByteReceiveStream(stream)
                reply = decode_line(await receive.receive_until(b"\n", MAX_REPLY_BYTES))
                hello = self._hello(reply)
            except BaseException:
                with anyio.CancelScope(shield=True), contextlib.suppress(OSError):
                    await stream.aclose()
                raise
        if self.hello is not None and (hello.seed, hello.faults) != (self.hello.seed, self.hello.faults):
            log.warning("sim-service restarted with another world: the cell's state is not the one planned on",
                        service=self.where, seed=hello.seed, faults=hello.faults)
        self.hello, self.noise_k = hello, hello.noise_k
        self.connects += 1
        self._link = link = _Link(stream, receive)
        self._up.set()
        return link

    def _hello(self, reply: dict[str, Any]) -> Hello:
        if reply.get("ok") is not True:
            raise _ProtocolError(f"hello refused: {reply.get('error')}")
        try:
            hello = Hello.model_validate(reply.get("result"))
        except ValidationError as exc:
            raise _ProtocolError(f"not a sim-service (hello: {error_text(exc, 'result')})") from None
        if hello.protocol != PROTOCOL:
            raise _ProtocolError(f"sim-service protocol {hello.protocol}, this client speaks {PROTOCOL}")
        return hello

    async def _read_replies(self, link: _Link) -> None:
        while True:
            try:
                line = await link.receive.receive_until(b"\n", MAX_REPLY_BYTES)
            except anyio.IncompleteRead:
                return
            try:
                reply = decode_line(line)
            except ValueError as exc:
                raise _ProtocolError(f"a reply that is no JSON object: {exc}") from None
            rid = reply.get("id")
            pending = self._pending.get(rid) if isinstance(rid, int) else None
            if pending is None:  # late (its request timed out) or about no request (a refusal): logged only
                error = reply.get("error")
                if error is not None:
                    log.warning("sim-service error not about a pending request", service=self.where, error=error)
                    if isinstance(error, dict) and error.get("kind") in ("busy", "too_large"):
                        raise _ProtocolError(f"the service closes the connection: {error.get('message')}")
                continue
            pending.reply = reply
            pending.done.set()

    def _down(self, why: str | None = None) -> None:
        """The connection is gone: fail what is in flight, make new requests wait for the next one."""
        self._link = None
        if self._up.is_set() and not self._closed:
            self._up = anyio.Event()
        text = why or self._last_error
        for pending in self._pending.values():
            if not pending.done.is_set():
                pending.error = RemoteSimUnavailable(f"{self.where}: {pending.op}: connection lost ({text})")
                pending.done.set()

    # -- requests ------------------------------------------------------------------------------------------
    async def request(self, op: str, args: dict[str, Any], *, timeout_s: float | None = None) -> Any:
        """One request's result (JSON); RemoteSimError (Timeout, Unavailable) when there is none."""
        timeout = self.request_timeout_s if timeout_s is None else timeout_s
        rid = next(self._ids)
        pending = _Pending(op)
        try:
            with anyio.fail_after(timeout):
                link = await self._connection(op)
                self._pending[rid] = pending
                try:
                    async with self._send_lock:
                        await link.stream.send(encode({"id": rid, "op": op, "args": args}))
                except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                    raise RemoteSimUnavailable(f"{self.where}: {op}: not sent ({_why(exc)})") from None
                await pending.done.wait()
        except TimeoutError:
            state = "" if self.connected else f"; not connected: {self._last_error}"
            raise RemoteSimTimeout(f"{self.where}: no reply to {op} within {timeout:g} s{state}") from None
        finally:
            self._pending.pop(rid, None)
        if pending.error is not None:
            raise pending.error
        reply = pending.reply
        assert reply is not None
        if reply.get("ok") is True:
            return reply.get("result")
        error = reply.get("error")
        if isinstance(error, dict):
            raise RemoteSimError(f"{self.where}: {error.get('kind')}: {error.get('message')}")  # names the op
        raise RemoteSimError(f"{self.where}: {op}: a reply neither ok nor an error: {str(reply)[:200]}")

    async def _connection(self, op: str) -> _Link:
        while True:
            if self._closed:
                raise RemoteSimUnavailable(f"{self.where}: {op}: the client is closed")
            if self._link is not None:
                return self._link
            if self._token is None:
                raise RemoteSimUnavailable(f"{self.where}: {op}: not started (RemoteSim.run)")
            await self._up.wait()

    async def call(self, op: str, args: dict[str, Any], result: type[M], *, timeout_s: float | None = None) -> M:
        """A request whose result is one model, validated."""
        raw = await self.request(op, args, timeout_s=timeout_s)
        try:
            return result.model_validate(raw)
        except ValidationError as exc:
            raise RemoteSimError(f"{self.where}: {op}: bad reply: {error_text(exc, 'result')}") from None

    def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` (a coroutine function) on the loop from a worker thread; the Perception methods."""
        if self._token is None:
            raise RemoteSimUnavailable(f"{self.where}: not started (RemoteSim.run)")
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError("RemoteSim's synchronous methods are for worker threads "
                               "(anyio.to_thread.run_sync); on the loop use its async ones")
        return anyio.from_thread.run(fn, *args, token=self._token)

    # -- Perception (synchronous, from a worker thread) and its async twins ----------------------------------
    async def astow_plan(self, item: ItemArrival, exclude_bins: tuple[str, ...] = ()) -> StowPlan:
        args = {"item": item.model_dump(mode="json"), "exclude_bins": list(exclude_bins)}
        return await self.call("stow_plan", args, StowPlan)

    async def averify(self, item: ItemArrival, option: StowOption) -> Verification:
        args = {"item": item.model_dump(mode="json"), "option": option.model_dump(mode="json")}
        return await self.call("verify", args, Verification)

    async def aeligibility(self, order: PickOrder) -> Eligibility:
        return await self.call("eligibility", {"order": order.model_dump(mode="json")}, Eligibility)

    async def apick_plan(self, order: PickOrder) -> PickPlan:
        return await self.call("pick_plan", {"order": order.model_dump(mode="json")}, PickPlan)

    async def aframe(self, bin_index: int) -> np.ndarray:
        frame = await self.call("frame", {"bin_index": bin_index}, Frame)
        try:
            return frame.array()
        except ValueError as exc:  # binascii.Error is one
            raise RemoteSimError(f"{self.where}: frame: bad reply: {exc}") from None

    def stow_plan(self, item: ItemArrival, exclude_bins: tuple[str, ...] = ()) -> StowPlan:
        return self._blocking(self.astow_plan, item, exclude_bins)  # type: ignore[no-any-return]

    def verify(self, item: ItemArrival, option: StowOption) -> Verification:
        return self._blocking(self.averify, item, option)  # type: ignore[no-any-return]

    def eligibility(self, order: PickOrder) -> Eligibility:
        return self._blocking(self.aeligibility, order)  # type: ignore[no-any-return]

    def pick_plan(self, order: PickOrder) -> PickPlan:
        return self._blocking(self.apick_plan, order)  # type: ignore[no-any-return]

    def motion_result(self, motion: Motion, result: MotionResult) -> None:
        """The service perceives from the world it simulates: a motion's result tells it nothing more."""

    # -- FrameSource -----------------------------------------------------------------------------------------
    def frame(self, bin_index: int) -> np.ndarray:
        return self._blocking(self.aframe, bin_index)  # type: ignore[no-any-return]

    # -- OrderSource (async, on the loop) --------------------------------------------------------------------
    async def next_order(self, timeout_s: float) -> PickOrder | None:
        """The simulated FC's next pick order, or None when none comes within timeout_s."""
        raw = await self.request("next_order", {"timeout_s": timeout_s},
                                 timeout_s=timeout_s + ORDER_MARGIN_S + self.request_timeout_s)
        if raw is None:
            return None
        try:
            return PickOrder.model_validate(raw)
        except ValidationError as exc:
            raise RemoteSimError(f"{self.where}: next_order: bad reply: {error_text(exc, 'result')}") from None


def _why(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
