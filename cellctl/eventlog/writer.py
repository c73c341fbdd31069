"""`EventLog`: the MCAP writer. Chunked, zstd, JSON channels, flushed on wall time, rotated by size."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, cast

import mcap.writer
import zstandard
from mcap.writer import LIBRARY_IDENTIFIER, CompressionType, IndexType, Writer
from pydantic import BaseModel

from .. import __version__
from .batch import BATCH_SCHEMA_NAME, FT_FIELDS, SampleBatcher
from .naming import existing_parts, part_path

MiB = 1 << 20
SCHEMA_ENCODING = "jsonschema"
MESSAGE_ENCODING = "json"
# Chunk indexes only: per-message indexes would add 16 uncompressed bytes to every record, and
# readers (ours, the mcap CLI, Foxglove) read a whole chunk anyway.
_INDEXES = IndexType.CHUNK
# A chunk's zstd frame ends a block every this many bytes of records. zstd decodes block by block, so
# the reader recovers a chunk cut short (a torn file) up to its last whole block; as zstandard.compress
# makes it (blocks of up to 128 KiB: one block for a 1 s chunk of a real-time run) the whole chunk would
# be lost. The window spans the blocks: a 1 s chunk is as small as before, a 1 MiB one (a `cellctl sim`
# log) about 1.5 % larger. Any zstd decoder reads the frame.
ZSTD_BLOCK_BYTES = 16 * 1024
ZSTD_LEVEL = 3  # zstandard.compress's default, which mcap's Writer uses


class _BlockedZstd:
    """Stands in for the `zstandard` module in `mcap.writer`, whose Writer compresses each chunk with
    `zstandard.compress(data)`: the same single frame (level 3, content size), in blocks of
    `ZSTD_BLOCK_BYTES`. Everything else is the real module."""

    def __getattr__(self, name: str) -> Any:
        return getattr(zstandard, name)

    @staticmethod
    def compress(data: bytes, level: int = ZSTD_LEVEL) -> bytes:
        if len(data) <= ZSTD_BLOCK_BYTES:
            return zstandard.compress(data, level)
        frame = zstandard.ZstdCompressor(level=level).compressobj(size=len(data))
        view = memoryview(data)
        parts = []
        for start in range(0, len(data), ZSTD_BLOCK_BYTES):
            parts.append(frame.compress(view[start : start + ZSTD_BLOCK_BYTES]))
            parts.append(frame.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))
        parts.append(frame.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH))
        return b"".join(parts)


if getattr(mcap.writer, "zstandard", None) is zstandard:  # the hook mcap.writer offers: its module global
    mcap.writer.zstandard = _BlockedZstd()  # type: ignore[assignment]


@dataclass(frozen=True)
class _Channel:
    topic: str
    schema_name: str
    schema: bytes


class _CountingFile:
    """An unbuffered file that counts what it writes. mcap's Writer hands it whole records, so once
    `Writer.flush()` returns, everything written is in the OS: a SIGKILL loses none of it."""

    def __init__(self, path: Path) -> None:
        self._raw = open(path, "xb", buffering=0)  # noqa: SIM115 - closed by EventLog
        self.count = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            view = view[self._raw.write(view) or 0 :]
        self.count += len(data)
        return len(data)

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:  # nothing buffered here
        pass

    def fsync(self) -> None:
        os.fsync(self._raw.fileno())

    def close(self) -> None:
        self._raw.close()


class EventLog:
    """Append-only event log. Use `EventLog.open(path)`, preferably as a context manager.

    `write(topic, t_s, payload)` takes the caller's clock (virtual in simulation): t_s becomes the
    record's log (and publish) time in ns. Durability runs on wall time: every `flush_s` seconds
    (on the next write, or from a background thread when writes pause) the chunk in progress is
    ended and written to the OS, so a killed process loses at most the last `flush_s` (and, should the
    kill or a crash cut the last chunk short, what the reader cannot decode of its last zstd block,
    at most `ZSTD_BLOCK_BYTES` of records: see `_BlockedZstd`). When the
    current file reaches `rotate_bytes` it is finished (summary, footer) and the log continues in
    `<stem>-0001<suffix>`, `<stem>-0002<suffix>`, … with every channel declared again.
    Thread-safe; `close()` is idempotent.

    A failing disk (ENOSPC, EIO, ...) never raises into the writers: the log is marked `failed` (the OSError,
    naming the file), `on_failure` is called once (from whichever thread hit it), and later records are counted
    in `records_lost` instead of written. The file then ends torn where the failed write stopped.
    """

    def __init__(
        self, path: Path, *, rotate_bytes: int, flush_s: float, chunk_bytes: int, fsync: bool, overwrite: bool,
        on_failure: Callable[[OSError], object] | None = None,
    ) -> None:
        if rotate_bytes <= 0 or flush_s <= 0 or chunk_bytes <= 0:
            raise ValueError("rotate_bytes, flush_s and chunk_bytes must be positive")
        self._base = Path(path)
        clash = existing_parts(self._base)
        if clash and not overwrite:
            raise FileExistsError(f"event log {self._base} exists ({len(clash)} file(s)); pass overwrite=True")
        for old in clash:
            old.unlink()
        self._rotate_bytes = rotate_bytes
        self._flush_s = flush_s
        self._chunk_bytes = chunk_bytes
        self._fsync = fsync
        self._lock = threading.RLock()
        self._channels: dict[str, _Channel] = {}
        self._batchers: list[SampleBatcher] = []
        self._paths: list[Path] = []
        self._bytes_done = 0  # in finished files
        self._records = 0
        self._records_flushed = 0
        self._closed = False
        self._error: BaseException | None = None
        self._failure: OSError | None = None
        self._on_failure = on_failure
        self._records_lost = 0
        self._start_part()
        self._last_flush = time.monotonic()
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._run_flusher, name=f"eventlog:{self._base.name}", daemon=True)
        self._flusher.start()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        rotate_bytes: int = 256 * MiB,
        flush_s: float = 1.0,
        chunk_bytes: int = 1 * MiB,
        fsync: bool = False,
        overwrite: bool = False,
        on_failure: Callable[[OSError], object] | None = None,  # what it returns is ignored
    ) -> EventLog:
        """Create a log at `path` (an existing log there is an error unless `overwrite`, which also
        removes its rotated parts). `chunk_bytes` bounds a chunk's uncompressed size; `fsync` adds an
        fsync to each flush (power-loss durability, not needed against a killed process)."""
        return cls(
            Path(path), rotate_bytes=rotate_bytes, flush_s=flush_s, chunk_bytes=chunk_bytes, fsync=fsync,
            overwrite=overwrite, on_failure=on_failure,
        )

    # -- what it has done ---------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """The first file: give it to `read_log`."""
        return self._base

    @property
    def paths(self) -> list[Path]:
        """Every file written so far, in order."""
        return list(self._paths)

    @property
    def records_written(self) -> int:
        return self._records

    @property
    def records_flushed(self) -> int:
        """Records known to be in the OS (they survive a killed process)."""
        return self._records_flushed

    @property
    def bytes_written(self) -> int:
        """Bytes handed to the OS over all files (a chunk in progress is not counted until it ends)."""
        return self._bytes_done + self._out.count

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def failed(self) -> OSError | None:
        """The disk error that stopped the log (its filename is the file), or None."""
        return self._failure

    @property
    def records_lost(self) -> int:
        """Records not written because the log had failed (and those in the chunk that failed to write)."""
        return self._records_lost

    # -- channels -----------------------------------------------------------------------------
    def add_channel(
        self, topic: str, schema: str | type[BaseModel], json_schema: Mapping[str, Any] | None = None
    ) -> None:
        """Declare `topic` with a JSON schema: `add_channel(topic, "Name", {...})` or
        `add_channel(topic, PydanticModel)`. Declaring a topic again with the same schema is a no-op."""
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            name, body = f"{schema.__module__}.{schema.__qualname__}", schema.model_json_schema()
        elif isinstance(schema, str) and json_schema is not None:
            name, body = schema, dict(json_schema)
        else:
            raise TypeError("add_channel(topic, schema_name, json_schema) or add_channel(topic, PydanticModel)")
        channel = _Channel(topic, name, json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        with self._lock:
            self._check_open()
            known = self._channels.get(topic)
            if known is not None:
                if known != channel:
                    raise ValueError(f"topic {topic!r} is already declared with schema {known.schema_name!r}")
                return
            self._channels[topic] = channel
            self._register(channel)

    def batcher(
        self,
        topic: str,
        fields: Sequence[str] = FT_FIELDS,
        *,
        max_span_s: float = 0.01,
        max_samples: int = 256,
        decimals: int | None = None,
    ) -> SampleBatcher:
        """A `SampleBatcher` that writes its batches here; declared, flushed with the log and on close."""
        batcher = SampleBatcher(
            topic, fields, max_span_s=max_span_s, max_samples=max_samples, decimals=decimals, sink=self.write
        )
        self.add_channel(topic, BATCH_SCHEMA_NAME, batcher.json_schema())
        with self._lock:
            self._batchers.append(batcher)
        return batcher

    # -- writing ------------------------------------------------------------------------------
    def write(self, topic: str, t_s: float, payload: Mapping[str, Any] | BaseModel) -> None:
        """Append one record. A pydantic payload on an undeclared topic declares it from its class."""
        data = encode(payload)
        if not (t_s >= 0.0 and math.isfinite(t_s)):
            raise ValueError(f"log time must be a finite, non-negative number of seconds, got {t_s!r}")
        log_time = round(t_s * 1e9)
        with self._lock:
            if self._failure is not None:
                self._records_lost += 1
                return
            self._check_open()
            channel_id = self._ids.get(topic)
            if channel_id is None:
                if not isinstance(payload, BaseModel):
                    raise KeyError(f"topic {topic!r} has no channel: call add_channel first")
                self.add_channel(topic, type(payload))
                channel_id = self._ids[topic]
            with self._on_disk():
                self._writer.add_message(channel_id, log_time, data, log_time, self._records & 0xFFFF_FFFF)
                self._records += 1
                if time.monotonic() - self._last_flush >= self._flush_s:
                    self._flush_locked()
                elif self._out.count >= self._rotate_bytes:
                    self._rotate()

    def flush(self) -> None:
        """End the chunk in progress (and pending batches) and hand everything to the OS now."""
        with self._lock:
            if self._failure is not None:
                return
            self._check_open()
            with self._on_disk():
                self._flush_locked()

    def close(self) -> None:
        """Flush the batchers, finish the file (summary, footer) and stop the flusher. Idempotent."""
        with self._lock:
            if self._closed:
                return
            try:
                if self._failure is None:
                    with self._on_disk():
                        for batcher in self._batchers:
                            batcher.flush()
                        self._writer.finish()
                        if self._fsync:
                            self._out.fsync()
                        self._records_flushed = self._records
            finally:
                self._closed = True
                self._out.close()
                self._stop.set()
        if threading.current_thread() is not self._flusher:
            self._flusher.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _on_disk(self) -> Iterator[None]:
        """Disk I/O (with the lock held): an OSError marks the log failed instead of reaching the writer."""
        try:
            yield
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        """Called with the lock held: stop writing, name the file, tell the owner once."""
        if self._failure is not None:
            return
        if exc.filename is None:
            exc = OSError(exc.errno, exc.strerror or os.strerror(exc.errno or errno.EIO), str(self._paths[-1]))
        self._failure = exc
        self._records_lost += self._records - self._records_flushed  # the chunk that did not make it
        if self._on_failure is not None:
            with contextlib.suppress(Exception):  # the owner's callback must not turn a disk error into a crash
                self._on_failure(exc)

    def _check_open(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"event log {self._base} failed in its flusher: {self._error}") from self._error
        if self._closed:
            raise ValueError(f"event log {self._base} is closed")

    def _start_part(self) -> None:
        path = part_path(self._base, len(self._paths))
        self._out = _CountingFile(path)
        self._paths.append(path)
        # mcap's Writer annotates its output as IO but only calls write, tell and flush on it, which _CountingFile has
        self._writer = Writer(
            cast(IO[bytes], self._out),
            chunk_size=self._chunk_bytes,
            compression=CompressionType.ZSTD,
            index_types=_INDEXES,
        )
        self._writer.start(profile="", library=f"cellctl/{__version__} {LIBRARY_IDENTIFIER}")
        self._ids: dict[str, int] = {}
        self._schema_ids: dict[tuple[str, bytes], int] = {}
        for channel in self._channels.values():
            self._register(channel)

    def _register(self, channel: _Channel) -> None:
        key = (channel.schema_name, channel.schema)
        schema_id = self._schema_ids.get(key)
        if schema_id is None:
            schema_id = self._schema_ids[key] = self._writer.register_schema(
                channel.schema_name, SCHEMA_ENCODING, channel.schema
            )
        self._ids[channel.topic] = self._writer.register_channel(channel.topic, MESSAGE_ENCODING, schema_id)

    def _rotate(self) -> None:
        self._writer.finish()
        if self._fsync:
            self._out.fsync()
        self._records_flushed = self._records
        self._out.close()
        self._bytes_done += self._out.count
        self._start_part()

    def _flush_locked(self) -> None:
        self._last_flush = time.monotonic()  # first: the batchers' writes below must not flush again
        for batcher in self._batchers:
            batcher.flush()
        self._writer.flush()
        if self._fsync:
            self._out.fsync()
        self._records_flushed = self._records
        if self._out.count >= self._rotate_bytes:
            self._rotate()

    def _dirty(self) -> bool:
        return self._records > self._records_flushed or any(b.pending for b in self._batchers)

    def _run_flusher(self) -> None:
        """Flush when writes pause: a record is in the OS at most `flush_s` after it was written."""
        while True:
            with self._lock:
                if self._closed:
                    return
                now = time.monotonic()
                if now - self._last_flush >= self._flush_s:
                    if self._failure is not None:
                        return
                    if self._dirty():
                        try:
                            with self._on_disk():
                                self._flush_locked()
                        except BaseException as exc:  # reported by the next write or close
                            self._error = exc
                            return
                        if self._failure is not None:
                            return
                    else:
                        self._last_flush = now
                wait = self._last_flush + self._flush_s - time.monotonic()
            if self._stop.wait(max(wait, 0.001)):
                return


def encode(payload: Mapping[str, Any] | BaseModel) -> bytes:
    """A record's JSON bytes (compact). Non-finite floats become null, as pydantic does."""
    if isinstance(payload, BaseModel):
        return payload.model_dump_json().encode()
    if not isinstance(payload, Mapping):
        raise TypeError(f"a payload is a dict or a pydantic model, not {type(payload).__name__}")
    try:
        return json.dumps(payload, separators=(",", ":"), allow_nan=False, default=_default).encode()
    except ValueError:  # NaN or infinity somewhere
        return json.dumps(_finite(payload), separators=(",", ":"), default=_default).encode()


def _default(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    if isinstance(obj, os.PathLike | set | frozenset):
        return sorted(obj) if isinstance(obj, set | frozenset) else os.fspath(obj)
    raise TypeError(f"cannot log a {type(obj).__name__} as JSON")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj
