"""High-rate samples (F/T at 1 kHz) logged as one columnar record per short batch.

A batch record is `{"t0": s, "dt_ns": [int, ...], "<field>": [float, ...], ...}`: `t0` is the first
sample's time in seconds (the record's log time), `dt_ns` each sample's offset from `t0` in integer
nanoseconds (the log's own time resolution), then one column per field in field order. Values are
kept exactly (no rounding unless `decimals` is given): replay must see the very numbers the
controller saw. Non-finite values are written as null (JSON has no NaN).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .reader import LogRecord

FT_FIELDS = ("fx", "fy", "fz", "tx", "ty", "tz")
BATCH_SCHEMA_NAME = "cellctl.SampleBatch"
_META = ("t0", "dt_ns")

Sink = Callable[[str, float, dict[str, Any]], None]


class SampleBatcher:
    """Collects samples of one topic and emits one record per batch (every sample kept).

    A batch is emitted when the next sample is `max_span_s` or more after the batch's first one
    (or earlier than it), when it holds `max_samples`, and on `flush()`. Emitted records go to
    `sink(topic, t0, record)` (`EventLog.batcher` wires it to the log) or, without a sink, to
    `self.emitted`. Thread-safe: the log's flusher may `flush()` while another thread `add()`s.
    """

    def __init__(
        self,
        topic: str,
        fields: Sequence[str] = FT_FIELDS,
        *,
        max_span_s: float = 0.01,
        max_samples: int = 256,
        decimals: int | None = None,
        sink: Sink | None = None,
    ) -> None:
        if not fields or len(set(fields)) != len(fields) or set(fields) & set(_META):
            raise ValueError(f"fields must be distinct names other than {_META}: {fields!r}")
        if max_span_s <= 0 or max_samples < 1:
            raise ValueError("max_span_s must be > 0 and max_samples >= 1")
        self.topic = topic
        self.fields = tuple(fields)
        self.max_span_s = max_span_s
        self.max_samples = max_samples
        self.decimals = decimals
        self.sink = sink
        self.emitted: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._t0 = 0.0
        self._dt: list[int] = []
        self._cols: list[list[float]] = [[] for _ in self.fields]

    @property
    def pending(self) -> int:
        """Samples collected and not yet emitted."""
        return len(self._dt)

    def add(self, t_s: float, values: Sequence[float]) -> None:
        """Add one sample: `values` in field order."""
        if len(values) != len(self.fields):
            raise ValueError(f"{self.topic}: expected {len(self.fields)} values {self.fields}, got {len(values)}")
        out: list[tuple[float, dict[str, Any]]] = []
        with self._lock:
            if self._dt and not 0.0 <= t_s - self._t0 < self.max_span_s - 1e-9:  # 1 ns: float slack
                out.append(self._take())
            if not self._dt:
                self._t0 = t_s
            self._dt.append(round((t_s - self._t0) * 1e9))
            if self.decimals is None:
                for col, v in zip(self._cols, values, strict=True):
                    col.append(float(v))
            else:
                for col, v in zip(self._cols, values, strict=True):
                    col.append(round(float(v), self.decimals))
            if len(self._dt) >= self.max_samples:
                out.append(self._take())
        for t0, record in out:  # outside the lock: the sink takes the log's lock
            self._emit(t0, record)

    def flush(self) -> None:
        """Emit the batch in progress, if any."""
        with self._lock:
            taken = self._take() if self._dt else None
        if taken:
            self._emit(*taken)

    def json_schema(self) -> dict[str, Any]:
        column = {"type": "array", "items": {"type": ["number", "null"]}}
        return {
            "title": "SampleBatch",
            "description": "Samples of one stream, as columns: sample i is at t0 + dt_ns[i] * 1e-9 s.",
            "type": "object",
            "properties": {
                "t0": {"type": "number", "description": "time of the first sample, s"},
                "dt_ns": {"type": "array", "items": {"type": "integer"}, "description": "offsets from t0, ns"},
                **{name: column for name in self.fields},
            },
            "required": [*_META, *self.fields],
        }

    def _take(self) -> tuple[float, dict[str, Any]]:
        record: dict[str, Any] = {"t0": self._t0, "dt_ns": self._dt}
        record.update(zip(self.fields, self._cols, strict=True))
        self._dt = []
        self._cols = [[] for _ in self.fields]
        return self._t0, record

    def _emit(self, t0: float, record: dict[str, Any]) -> None:
        if self.sink is None:
            self.emitted.append(record)
        else:
            self.sink(self.topic, t0, record)


def is_batch(payload: Mapping[str, Any]) -> bool:
    """True for a record written by a `SampleBatcher`."""
    return "t0" in payload and "dt_ns" in payload


def iter_samples(
    record: LogRecord | Mapping[str, Any], fields: Sequence[str] | None = None
) -> Iterator[tuple[float, tuple[Any, ...]]]:
    """The samples of a batch record: `(t_s, values)` with values in `fields` order (default: the
    record's own column order)."""
    payload: Mapping[str, Any] = record if isinstance(record, Mapping) else record.payload
    if not is_batch(payload):
        raise ValueError(f"not a sample batch (keys: {sorted(payload)[:8]})")
    names = list(fields) if fields is not None else [k for k in payload if k not in _META]
    t0 = payload["t0"]
    columns = [payload[name] for name in names]
    for dt, *values in zip(payload["dt_ns"], *columns, strict=True):
        yield t0 + dt * 1e-9, tuple(values)
