"""Stow-station PLC / conveyor over OPC UA (asyncua client).

`PlcClient.run()` keeps one OPC UA session up: connect, resolve the node map, create one
subscription, deliver notifications as typed streams (`arrivals`, `interlocks`, `pod`),
and on a lost connection report `disconnected` on `status`, tear the session down and
build a fresh one with capped exponential backoff (tenacity). asyncua's own
auto-reconnect is left off so the driver owns the backoff, the status reports and the
re-read of missed values. Loss is detected by asyncua's connection supervisor (socket
closed, or its periodic keepalive read failing within `watchdog_interval_s`).

Nothing is missed across reconnects: arrivals are read from the PLC's ArrivalLog (a
bounded history keyed by a monotonically increasing seq) whenever ArrivalSeq changes,
including its initial notification on every (re)subscribe; the driver publishes the
records above the last seq it delivered. Interlocks and the pod come back through the
initial notifications of the new subscription.

Interlock notifications are published by the task that drains the subscription, which
never waits on a request; the ArrivalLog and pod reads they trigger run one at a time,
in trigger order, in a second task, so an e-stop is never held behind a slow read.

Bad input (Bad status, wrong variant type, malformed arrival/pod data) is counted and
logged through `Incidents` and never published. A malformed ArrivalLog record is counted
once (remembered by its text); its seq is believed only where it is in line (not above
the PLC's ArrivalSeq, below every record after it), so a garbage seq cannot hold back or
swallow later arrivals.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import anyio
from anyio.abc import TaskStatus
from asyncua import Client, ua
from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent, Subscription
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from .health import Incidents
from .plc_nodes import (
    INTERLOCK_NAMES,
    BinLayout,
    InterlockState,
    ItemArrival,
    MethodNodes,
    PlcNodeMap,
    PodState,
    parse_arrival,
)
from .streams import Topic

T = TypeVar("T")

_ARRIVAL_SEQ = "conveyor.arrival_seq"
_ARRIVAL_LOG = "conveyor.arrival_log"
_POD_FIELDS = ("pod.pod_seq", "pod.pod_id", "pod.face", "pod.bin_layout")


# ---------------------------------------------------------------------------- config


class _Frozen(BaseModel):
    # allow_inf_nan=False: an inf or NaN timeout or interval is a watchdog that never fires.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class SecurityConfig(_Frozen):
    """Passed through to asyncua. `policy="None"` (default) means no message security."""

    policy: Literal["None", "Basic256Sha256"] = "None"
    mode: Literal["Sign", "SignAndEncrypt"] = "SignAndEncrypt"
    certificate: Path | None = None  # client certificate (DER or PEM)
    private_key: Path | None = None
    private_key_password: SecretStr | None = None
    server_certificate: Path | None = None  # None: taken from the server's endpoint list
    username: str | None = None
    password: SecretStr | None = None

    @model_validator(mode="after")
    def _needs_cert(self) -> SecurityConfig:
        if self.policy != "None" and (self.certificate is None or self.private_key is None):
            # Messages start with the field so that a loader can name the dotted key (cellctl.config does).
            missing = "certificate" if self.certificate is None else "private_key"
            raise ValueError(f"{missing}: security policy {self.policy} needs certificate and private_key paths")
        if self.password is not None and self.username is None:
            raise ValueError("username: a password is given without username")
        return self


class BackoffConfig(_Frozen):
    """Reconnect delays: initial_s * 2**n plus up to jitter_s, capped at max_s."""

    initial_s: float = Field(0.5, gt=0, le=60)
    max_s: float = Field(10.0, gt=0, le=600)
    jitter_s: float = Field(0.2, ge=0, le=60)

    @model_validator(mode="after")
    def _order(self) -> BackoffConfig:
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s: backoff max_s ({self.max_s}) < initial_s ({self.initial_s})")
        return self


class PlcConfig(_Frozen):
    url: str = "opc.tcp://127.0.0.1:4840/cellctl/plc"
    nodes: PlcNodeMap = PlcNodeMap()
    # Upper bounds: past them a timeout or interval no longer bounds anything (a PLC loss or an interlock
    # change noticed minutes late is not noticed).
    connect_timeout_s: float = Field(5.0, gt=0, le=60)
    request_timeout_s: float = Field(2.0, gt=0, le=60)  # default for read/write/call and internal reads
    watchdog_interval_s: float = Field(1.0, gt=0, le=30)  # keepalive probe period; bounds loss detection
    session_timeout_s: float = Field(30.0, ge=1, le=3600)  # sent to the server in ms (UInt32-sized)
    publishing_interval_ms: float = Field(50.0, gt=0, le=1000)  # interlock changes arrive at most this late
    interlock_queue_size: int = Field(16, ge=1, le=10_000)  # server-side queue so no interlock transition is conflated
    backoff: BackoffConfig = BackoffConfig()
    security: SecurityConfig = SecurityConfig()
    # Arrivals after this seq are delivered on first connect; None: only arrivals after the first connect.
    resume_after_seq: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _session_outlives_the_watchdog(self) -> PlcConfig:
        # The keepalive read keeps the session alive: a session shorter than its period expires between probes.
        if self.session_timeout_s <= self.watchdog_interval_s:
            raise ValueError("session_timeout_s: must exceed watchdog_interval_s")
        return self

    @field_validator("url")
    @classmethod
    def _opc_tcp(cls, value: str) -> str:
        if not value.startswith("opc.tcp://"):
            raise ValueError(f"PLC url must start with opc.tcp://, got {value!r}")
        return value


# ---------------------------------------------------------------------------- events and errors


@dataclass(frozen=True, slots=True)
class PlcStatus:
    """Published on `PlcClient.status` at every connect and every loss."""

    state: Literal["connected", "disconnected"]
    detail: str
    at: float = field(default_factory=time.monotonic)

    @property
    def connected(self) -> bool:
        return self.state == "connected"


class PlcError(Exception):
    """Base class for PLC driver errors."""


class PlcDisconnected(PlcError, ConnectionError):
    """No session to the PLC (or it was lost during the request)."""


class PlcTimeout(PlcError, TimeoutError):
    """Connected, but the PLC did not answer within the timeout."""


class PlcBadStatus(PlcError):
    """The PLC answered with a Bad status code (read, write or method call)."""


# ---------------------------------------------------------------------------- session


class _Session:
    """One connected asyncua client plus what was resolved/subscribed on it."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.lost = anyio.Event()
        self.reason = ""
        self.ids: dict[str, ua.NodeId] = {}  # variable / "method:<name>" / "object:<name>" -> NodeId
        self.kinds: dict[ua.NodeId, str] = {}  # monitored NodeId -> variable name
        self.subscription: Subscription | None = None
        self.variant_types: dict[str, ua.VariantType] = {}
        self.interlocks: dict[str, bool | None] = dict.fromkeys(INTERLOCK_NAMES)
        self.interlocks_fresh = True  # publish the first complete snapshot of this session
        # reads still to do, oldest trigger first (an ordered set: a repeated trigger keeps its place)
        self.pending_reads: dict[str, None] = {}
        self.reads_due = anyio.Event()

    def request_read(self, trigger: str) -> None:
        """Ask the reader task to (re)read what `trigger` announces; repeats before the read conflate."""
        self.pending_reads[trigger] = None
        self.reads_due.set()

    async def next_read(self) -> str:
        while not self.pending_reads:
            self.reads_due = anyio.Event()
            await self.reads_due.wait()
        trigger = next(iter(self.pending_reads))
        del self.pending_reads[trigger]
        return trigger

    def mark_lost(self, reason: str) -> None:
        if not self.lost.is_set():
            self.reason = reason
            self.lost.set()

    async def on_connection_lost(self, exc: Exception) -> None:
        # called by asyncua's supervisor (socket closed or keepalive read failed)
        self.mark_lost(f"connection lost: {exc!r}")

    def node(self, name: str) -> Any:
        return self.client.get_node(self.ids[name])

    async def close(self, limit_s: float) -> None:
        with anyio.move_on_after(limit_s, shield=True):
            with contextlib.suppress(Exception):  # the transport is usually dead already
                await self.client.disconnect()
        self.client.disconnect_socket()


def _resolve(text: str, namespaces: list[str]) -> ua.NodeId:
    parsed = ua.NodeId.from_string(text)
    index: int = parsed.NamespaceIndex
    uri = getattr(parsed, "NamespaceUri", None)
    if uri:
        if uri not in namespaces:
            raise PlcError(f"namespace {uri!r} of {text!r} is not on the server (it has {namespaces})")
        index = namespaces.index(uri)
    # asyncua annotates NamespaceIndex with its encoding marker ua.Int16 (a bare int subclass) but takes a plain int
    return ua.NodeId(parsed.Identifier, cast(ua.Int16, index), parsed.NodeIdType)


def _status_name(dv: ua.DataValue) -> str:
    status = dv.StatusCode
    return status.name if status is not None else "Good"


def _is_bad(dv: ua.DataValue) -> bool:
    return dv.StatusCode is not None and not dv.StatusCode.is_good()


def _value(dv: ua.DataValue) -> Any:
    return dv.Value.Value if dv.Value is not None else None


# ---------------------------------------------------------------------------- client


class PlcClient:
    """OPC UA client for the stow-station PLC. Start `run()` in a task group; it runs until cancelled."""

    def __init__(self, config: PlcConfig | None = None) -> None:
        self.config = config or PlcConfig()
        self.incidents = Incidents("plc")
        self.arrivals: Topic[ItemArrival] = Topic("plc.arrivals")
        self.interlocks: Topic[InterlockState] = Topic("plc.interlocks")
        self.pod: Topic[PodState] = Topic("plc.pod")
        self.status: Topic[PlcStatus] = Topic("plc.status")
        self.last_arrival_seq: int | None = self.config.resume_after_seq
        self.last_interlocks: InterlockState | None = None
        self.last_pod: PodState | None = None
        self.last_error = "not connected yet"
        self._last_pod_seq = 0
        self._bad_records: set[str] = set()  # malformed log records (text) in the log, already counted
        self._parsed: dict[str, _Record] = {}  # every record of the last ArrivalLog read, parsed once
        self._session: _Session | None = None
        self._up = anyio.Event()

    @property
    def connected(self) -> bool:
        return self._session is not None

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        """Wait for a session; raises TimeoutError after `timeout_s` seconds."""
        with anyio.fail_after(timeout_s):
            await self._up.wait()

    # ------------------------------------------------------------------ upkeep

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, subscribe, deliver; on loss report it and reconnect. Runs until cancelled."""
        task_status.started()
        while True:
            session = await self._connect_with_backoff()
            try:
                await self._serve(session)
            finally:
                self._session = None
                self._up = anyio.Event()
                self.last_error = session.reason or "client stopped"
                self.status.publish(PlcStatus("disconnected", self.last_error))
                await session.close(self.config.request_timeout_s)
            self.incidents.count("connection_lost", "PLC connection lost; reconnecting", reason=session.reason)

    async def _connect_with_backoff(self) -> _Session:
        b = self.config.backoff
        retrying = AsyncRetrying(
            wait=wait_exponential_jitter(multiplier=b.initial_s, max=b.max_s, jitter=b.jitter_s),
            retry=retry_if_exception_type(Exception),
            before_sleep=self._on_connect_failed,
            sleep=anyio.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._open()
        raise AssertionError("unreachable: retries never stop")

    def _on_connect_failed(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.last_error = f"connect failed: {exc!r}"
        delay = state.upcoming_sleep
        self.incidents.count(
            "connect_failed", "PLC connect failed", url=self.config.url, error=repr(exc), retry_in_s=round(delay, 3)
        )

    async def _open(self) -> _Session:
        cfg = self.config
        client = Client(
            cfg.url, timeout=cfg.request_timeout_s, watchdog_intervall=cfg.watchdog_interval_s, auto_reconnect=False
        )
        client.name = client.description = "cellctl PLC driver"
        client.session_timeout = int(cfg.session_timeout_s * 1000)
        session = _Session(client)
        client.connection_lost_callback = session.on_connection_lost
        try:
            with anyio.fail_after(cfg.connect_timeout_s):
                await self._apply_security(client)
                await client.connect()
                await self._resolve_nodes(session)
                if self.last_arrival_seq is None:
                    await self._set_arrival_baseline(session)
                await self._subscribe(session)
        except BaseException:
            await session.close(cfg.request_timeout_s)
            raise
        return session

    async def _apply_security(self, client: Client) -> None:
        sec = self.config.security
        if sec.policy == "Basic256Sha256":
            assert sec.certificate is not None and sec.private_key is not None
            mode = ua.MessageSecurityMode[sec.mode]
            await client.set_security(
                SecurityPolicyBasic256Sha256,
                certificate=str(sec.certificate),
                private_key=str(sec.private_key),
                private_key_password=sec.private_key_password.get_secret_value() if sec.private_key_password else None,
                server_certificate=str(sec.server_certificate) if sec.server_certificate else None,
                mode=mode,
            )
        if sec.username is not None:
            client.set_user(sec.username)
        if sec.password is not None:
            client.set_password(sec.password.get_secret_value())

    async def _resolve_nodes(self, session: _Session) -> None:
        namespaces = await session.client.get_namespace_array()
        nodes = self.config.nodes
        for name, text in nodes.variables().items():
            session.ids[name] = _resolve(text, namespaces)
        for name in MethodNodes.model_fields:
            ref = nodes.method(name)
            session.ids[f"object:{name}"] = _resolve(ref.object_id, namespaces)
            session.ids[f"method:{name}"] = _resolve(ref.method_id, namespaces)

    async def _subscribe(self, session: _Session) -> None:
        client = session.client
        sub = await client.create_subscription(self.config.publishing_interval_ms, handler=None, queue_maxsize=10_000)
        session.subscription = sub
        groups: list[tuple[list[str], int]] = [
            ([_ARRIVAL_SEQ, "pod.pod_seq"], 1),  # triggers: conflation is fine, the data is re-read
            ([f"interlocks.{n}" for n in INTERLOCK_NAMES], self.config.interlock_queue_size),
        ]
        for names, queuesize in groups:
            results = await sub.subscribe_data_change([session.node(n) for n in names], queuesize=queuesize)
            for name, result in zip(names, results, strict=True):
                if isinstance(result, ua.StatusCode):
                    raise PlcError(f"cannot monitor {name} ({self.config.nodes.variable(name)}): {result.name}")
                session.kinds[session.ids[name]] = name

    async def _serve(self, session: _Session) -> None:
        self._session = session
        self._up.set()
        self.last_error = ""
        self.status.publish(PlcStatus("connected", self.config.url))
        self.incidents.info("PLC connected", url=self.config.url)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._consume, session)
            tg.start_soon(self._read_triggered, session)
            await session.lost.wait()
            tg.cancel_scope.cancel()

    async def _consume(self, session: _Session) -> None:
        """Drain the subscription without ever waiting on a request (reads go to `_read_triggered`)."""
        assert session.subscription is not None
        try:
            async for event in session.subscription:
                if isinstance(event, DataChangeEvent):
                    self._on_data_change(session, event)
                elif isinstance(event, StatusChangeEvent):
                    status = event.notification.Status
                    if not status.is_good():
                        session.mark_lost(f"subscription status {status.name}")
                        return
        except Exception as exc:
            self._handler_failed(session, exc)
            return
        session.mark_lost("subscription ended")

    async def _read_triggered(self, session: _Session) -> None:
        """Do the ArrivalLog / pod reads the notifications asked for, one at a time, in trigger order."""
        try:
            while True:
                trigger = await session.next_read()
                if trigger == _ARRIVAL_SEQ:
                    await self._read_arrivals(session)
                else:
                    await self._read_pod(session)
        except Exception as exc:
            self._handler_failed(session, exc)

    def _handler_failed(self, session: _Session, exc: Exception) -> None:
        if isinstance(exc, (OSError, ua.UaError, PlcError)):
            # a failed re-read leaves values unknown: rebuild the session, which re-reads everything
            session.mark_lost(f"read failed: {exc!r}")
        else:  # a bug must not kill connection upkeep: count it and resync
            self.incidents.count("handler_error", "PLC notification handler failed; resyncing", error=repr(exc))
            session.mark_lost(f"handler failed: {exc!r}")

    # ------------------------------------------------------------------ notifications

    def _on_data_change(self, session: _Session, event: DataChangeEvent) -> None:
        name = session.kinds.get(event.node.nodeid)
        if name is None:
            return
        dv: ua.DataValue = event.data.monitored_item.Value
        if name.startswith("interlocks."):
            self._on_interlock(session, name, dv)
        elif name == _ARRIVAL_SEQ:
            # the seq is only a trigger: a wrong-typed one is counted, the log is the source of truth
            if self._check(name, dv, int) is not None or not _is_bad(dv):
                session.request_read(_ARRIVAL_SEQ)
        elif name == "pod.pod_seq":
            seq = self._check(name, dv, int)
            if seq is not None and seq not in (0, self._last_pod_seq):
                session.request_read("pod.pod_seq")  # the read re-checks the seq it gets

    def _check(self, name: str, dv: ua.DataValue, kind: type[T]) -> T | None:
        """The value if its status is Good and its type is `kind`; otherwise count and return None."""
        if _is_bad(dv):
            self.incidents.count(
                "bad_status", "PLC value has a Bad status; ignored", variable=name, status=_status_name(dv)
            )
            return None
        value = _value(dv)
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            self.incidents.count(
                "bad_type",
                "PLC value has the wrong type; ignored",
                variable=name,
                expected=kind.__name__,
                got=type(value).__name__,
                value=repr(value)[:80],
            )
            return None
        return value  # type: ignore[return-value]

    def _on_interlock(self, session: _Session, name: str, dv: ua.DataValue) -> None:
        short = name.split(".", 1)[1]
        value = self._check(name, dv, bool)
        session.interlocks[short] = value
        if value is None:
            session.interlocks_fresh = True  # state unknown until a good value: republish then
            return
        values = session.interlocks
        if any(v is None for v in values.values()):
            return
        state = InterlockState.model_validate(values)
        if session.interlocks_fresh or state != self.last_interlocks:
            session.interlocks_fresh = False
            self.last_interlocks = state
            self.interlocks.publish(state)

    async def _read(self, session: _Session, names: list[str]) -> list[ua.DataValue]:
        with anyio.fail_after(self.config.request_timeout_s):
            return await session.client.read_attributes([session.node(n) for n in names])

    async def _set_arrival_baseline(self, session: _Session) -> None:
        """First connect without `resume_after_seq`: deliver only arrivals after what the PLC already has."""
        log, plc_seq = await self._read_log(session)
        if log is not None:
            self.last_arrival_seq = max(_trusted_seqs(self._scan_log(log, plc_seq)), default=0)

    async def _read_log(self, session: _Session) -> tuple[list[str] | None, int | None]:
        """The ArrivalLog records, or None (counted) when the PLC value is unusable, and the
        ArrivalSeq read with them (None when unusable; its notifications count that)."""
        log_dv, seq_dv = await self._read(session, [_ARRIVAL_LOG, _ARRIVAL_SEQ])
        plc_seq = None if _is_bad(seq_dv) else _value(seq_dv)
        if not isinstance(plc_seq, int) or isinstance(plc_seq, bool):
            plc_seq = None
        if _is_bad(log_dv):
            self._check(_ARRIVAL_LOG, log_dv, list)
            return None, plc_seq
        log = _value(log_dv)
        if log is None:
            log = []
        if not isinstance(log, list) or not all(isinstance(r, str) for r in log):
            self.incidents.count(
                "bad_type", "PLC ArrivalLog is not a string array; ignored", variable=_ARRIVAL_LOG, value=repr(log)[:80]
            )
            return None, plc_seq
        return log, plc_seq

    def _scan_log(self, log: list[str], plc_seq: int | None) -> list[tuple[_Record, bool]]:
        """Each record (parsed once while it stays in the log) and whether its seq can be believed.

        A good record's seq is believed. A malformed record's seq is believed only when it is in
        line: not above `plc_seq` (the PLC's ArrivalSeq; without it, the highest good seq in the
        log) and below the seq of every record after it. Any future arrival has a seq above the
        PLC's ArrivalSeq, so a believed seq can never swallow a later good record.
        """
        parsed: dict[str, _Record] = {}
        records: list[_Record] = []
        for text in log:
            record = parsed.get(text) or self._parsed.get(text) or _Record.parse(text)
            parsed[text] = record
            records.append(record)
        self._parsed = parsed  # records that left the log are forgotten
        good_seqs = (r.seq for r in records if r.good and r.seq is not None)  # a good record's seq is its arrival's
        bound = plc_seq if plc_seq is not None else max(good_seqs, default=None)
        trusted: list[bool] = []
        below: float = math.inf  # lowest seq among the records after this one
        for record in reversed(records):
            seq = record.seq
            trusted.append(seq is not None and (record.good or (bound is not None and seq <= bound and seq < below)))
            if seq is not None:
                below = min(below, seq)
        trusted.reverse()
        return list(zip(records, trusted, strict=True))

    async def _read_arrivals(self, session: _Session) -> None:
        log, plc_seq = await self._read_log(session)
        if log is None:
            return
        scanned = self._scan_log(log, plc_seq)
        seqs = _trusted_seqs(scanned)
        last = self.last_arrival_seq
        if last is None:  # the baseline read in _open failed: take it now
            self.last_arrival_seq = max(seqs, default=0)
            return
        if seqs and max(seqs) < last:
            self.incidents.count(
                "arrival_seq_reset",
                "PLC arrival seq went backwards (PLC restarted?); resyncing",
                last=last,
                now=max(seqs),
            )
            self.last_arrival_seq = last = min(seqs) - 1
        newer = [s for s in seqs if s > last]
        if newer and min(newer) > last + 1:
            self.incidents.count(
                "arrival_gap", "arrivals dropped out of the PLC log before they were read", missed=min(newer) - last - 1
            )
        self._bad_records.intersection_update(self._parsed)
        for record, trusted in scanned:
            seq = record.seq
            if seq is not None and seq <= last:
                continue  # delivered (or passed over) already
            if record.arrival is None:
                if record.text not in self._bad_records:
                    self._bad_records.add(record.text)
                    self.incidents.count(
                        "bad_arrival",
                        "malformed arrival record; not published",
                        record=record.text[:200],
                        error=record.error,
                    )
                if trusted:
                    assert seq is not None
                    self.last_arrival_seq = last = seq  # in line: counts as passed, so no gap is reported
                continue
            self.last_arrival_seq = last = record.arrival.seq
            self.arrivals.publish(record.arrival)

    async def _read_pod(self, session: _Session) -> None:
        dvs = await self._read(session, list(_POD_FIELDS))
        seq = self._check("pod.pod_seq", dvs[0], int)
        if seq is None or seq in (0, self._last_pod_seq):
            return  # 0: the PLC is mid-update; the final seq triggers another read
        if seq < self._last_pod_seq:
            self.incidents.count(
                "pod_seq_reset", "PLC pod seq went backwards (PLC restarted?)", last=self._last_pod_seq, now=seq
            )
        pod_id = self._check("pod.pod_id", dvs[1], str)
        face = self._check("pod.face", dvs[2], str)
        layout_text = self._check("pod.bin_layout", dvs[3], str)
        self._last_pod_seq = seq  # never re-count the same bad generation
        if pod_id is None or face is None or layout_text is None:
            return
        try:
            pod = PodState(seq=seq, pod_id=pod_id, face=face, layout=BinLayout.from_json(layout_text))  # type: ignore[arg-type]
        except ValueError as exc:
            self.incidents.count(
                "bad_pod", "malformed pod data; not published", seq=seq, pod_id=pod_id, error=_brief(exc)
            )
            return
        self.last_pod = pod
        self.pod.publish(pod)

    # ------------------------------------------------------------------ requests

    async def read(self, name: str, *, timeout_s: float | None = None) -> Any:
        """Read a variable of the node map (`group.field` or an `extra` name)."""
        self.config.nodes.variable(name)  # KeyError for unknown names, before any waiting

        async def op(session: _Session) -> Any:
            (dv,) = await session.client.read_attributes([session.node(name)])
            if _is_bad(dv):
                self.incidents.count(
                    "bad_status", "PLC read returned a Bad status", variable=name, status=_status_name(dv)
                )
                raise PlcBadStatus(f"read {name}: {_status_name(dv)}")
            return _value(dv)

        return await self._request(f"read {name}", timeout_s, op)

    async def write(self, name: str, value: Any, *, timeout_s: float | None = None) -> None:
        """Write a variable; the value is converted to the node's declared data type."""
        self.config.nodes.variable(name)

        async def op(session: _Session) -> None:
            node = session.node(name)
            vtype = session.variant_types.get(name)
            if vtype is None:
                vtype = session.variant_types[name] = await node.read_data_type_as_variant_type()
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"write {name}: refusing non-finite value {value}")
            (status,) = await session.client.write_values([node], [ua.DataValue(ua.Variant(value, vtype))], False)
            if not status.is_good():
                raise PlcBadStatus(f"write {name}={value!r}: {status.name}")

        await self._request(f"write {name}", timeout_s, op)

    async def call(self, method: str, *args: Any, timeout_s: float | None = None) -> Any:
        """Call a PLC method by node-map name; returns its output (a list if it has several)."""
        self.config.nodes.method(method)

        async def op(session: _Session) -> Any:
            obj = session.client.get_node(session.ids[f"object:{method}"])
            try:
                return await obj.call_method(session.ids[f"method:{method}"], *args)
            except ua.UaStatusCodeError as exc:
                raise PlcBadStatus(f"call {method}{args!r}: {type(exc).__name__}") from exc

        return await self._request(f"call {method}", timeout_s, op)

    async def _request(self, what: str, timeout_s: float | None, op: Callable[[_Session], Awaitable[T]]) -> T:
        """Run `op` on the session within `timeout_s` (waiting for a reconnect if needed), with clear errors."""
        limit = self.config.request_timeout_s if timeout_s is None else timeout_s
        session: _Session | None = None
        try:
            with anyio.fail_after(limit):
                await self._up.wait()
                session = self._session
                if session is None:
                    raise PlcDisconnected(f"{what}: PLC {self.config.url} disconnected ({self.last_error})")
                return await op(session)
        except TimeoutError as exc:
            if session is None:
                raise PlcDisconnected(
                    f"{what}: PLC {self.config.url} is disconnected ({self.last_error}); gave up after {limit:g} s"
                ) from exc
            raise PlcTimeout(f"{what}: no answer from PLC {self.config.url} within {limit:g} s") from exc
        except (ConnectionError, OSError) as exc:
            if isinstance(exc, PlcError):
                raise
            raise PlcDisconnected(f"{what}: connection to PLC {self.config.url} lost: {exc!r}") from exc
        except ua.UaStatusCodeError as exc:
            raise PlcBadStatus(f"{what}: {type(exc).__name__}") from exc


@dataclass(frozen=True, slots=True)
class _Record:
    """One ArrivalLog record: the arrival, or why it is malformed; `seq` if one can be read."""

    text: str
    seq: int | None
    arrival: ItemArrival | None
    error: str = ""

    @property
    def good(self) -> bool:
        return self.arrival is not None

    @classmethod
    def parse(cls, text: str) -> _Record:
        try:
            arrival = parse_arrival(text)
        except ValueError as exc:
            return cls(text, _record_seq(text), None, _brief(exc))
        return cls(text, arrival.seq, arrival)


def _trusted_seqs(scanned: list[tuple[_Record, bool]]) -> list[int]:
    return [r.seq for r, trusted in scanned if trusted and r.seq is not None]


def _record_seq(record: str) -> int | None:
    """The seq of an ArrivalLog record if it has a readable integer one."""
    try:
        data = json.loads(record)
    except ValueError:
        return None
    seq = data.get("seq") if isinstance(data, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def _brief(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors())
    return str(exc)
