"""`read_log`: records of an event log in log-time order, across a rotated set, crash-tolerant.

The reader walks the file's top-level records itself (opcode, length, body) and hands complete
ones to the mcap library's record parsers. A record that runs past the end of the file is where a
crash tore it: reading stops there, so a killed writer's file yields every record before the tear
(no footer or summary needed). Within a file records come out in log-time order: chunks are sorted
and merged, holding back only records that a later chunk could still precede.
"""

from __future__ import annotations

import heapq
import io
import json
import os
import struct
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any, BinaryIO

from mcap.data_stream import ReadDataStream
from mcap.opcode import Opcode
from mcap.records import Channel, Chunk, Message, Schema
from mcap.stream_reader import breakup_chunk

from .naming import rotated_set

MAGIC = b"\x89MCAP0\r\n"
_HEAD = struct.Struct("<BQ")  # opcode, body length
_TIMES = struct.Struct("<QQ")  # a chunk body starts with its first and last log time
_MSG_TIME = struct.Struct("<HIQ")  # a message body: channel id, sequence, log time


class LogFormatError(Exception):
    """The file is missing, not an MCAP event log, or holds a record that cannot be decoded."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    t_s: float  # log time, s (the writer's clock)
    topic: str
    payload: dict[str, Any]


def read_log(
    path: str | os.PathLike[str],
    *,
    topics: Collection[str] | None = None,
    since_s: float | None = None,
    until_s: float | None = None,
) -> Iterator[LogRecord]:
    """Records with `since_s <= t_s < until_s` on `topics` (all when None), from `path` and the
    files that continue it (`run.mcap`, `run-0001.mcap`, …), file after file, each in log-time order.
    A missing file raises `LogFormatError` at once; other problems when the iteration reaches them."""
    path = Path(path)
    if not path.is_file():
        raise LogFormatError(f"{path}: {'not a file' if path.exists() else 'no such file'}")
    wanted = None if topics is None else set(topics)
    lo = None if since_s is None else round(since_s * 1e9)
    hi = None if until_s is None else round(until_s * 1e9)
    return (record for part in rotated_set(path) for record in _read_file(part, wanted, lo, hi))


def _read_file(path: Path, topics: set[str] | None, lo: int | None, hi: int | None) -> Iterator[LogRecord]:
    try:
        with open(path, "rb") as f:
            # First pass: the time span of each chunk (or loose message), so that the second can
            # release sorted records as soon as no later chunk can precede them.
            size = os.fstat(f.fileno()).st_size  # both passes stop here, even if the file grows
            starts = [first for first, _ in _spans(f, path, size)]
            later: list[int | None] = [None] * len(starts)  # later[i]: earliest start after group i
            low = None
            for i in range(len(starts) - 1, -1, -1):
                later[i] = low
                low = starts[i] if low is None else min(low, starts[i])
            yield from _merge(f, path, size, later, topics, lo, hi)
    except OSError as exc:
        raise LogFormatError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _records(f: BinaryIO, path: Path, size: int, *, bodies: bool) -> Iterator[tuple[int, int, bytes]]:
    """Top-level records (opcode, offset, body) of the data section, up to the footer or a tear.
    Without `bodies`, only the first 16 bytes of each body are read."""
    f.seek(0)
    magic = f.read(len(MAGIC))
    if magic != MAGIC:
        if MAGIC.startswith(magic):  # torn inside the magic: killed at birth
            return
        raise LogFormatError(f"{path}: not an MCAP file (bad magic {magic[:8]!r})")
    pos = len(MAGIC)
    while pos + _HEAD.size <= size:
        opcode, length = _HEAD.unpack(f.read(_HEAD.size))
        if opcode == 0:  # reserved; other unknown opcodes are skipped, as the spec asks
            raise LogFormatError(f"{path}: corrupt record (opcode {opcode:#x}) at byte {pos}")
        end = pos + _HEAD.size + length
        if end > size:  # torn by a crash
            return
        if opcode in (Opcode.FOOTER, Opcode.DATA_END):  # the rest is the summary
            return
        if bodies:
            body = f.read(length)
        else:
            body = f.read(min(length, 16))
            f.seek(end)
        yield opcode, pos, body
        pos = end


def _spans(f: BinaryIO, path: Path, size: int) -> Iterator[tuple[int, int]]:
    for opcode, _, head in _records(f, path, size, bodies=False):
        if opcode == Opcode.CHUNK and len(head) == 16:
            yield _TIMES.unpack(head)
        elif opcode == Opcode.MESSAGE and len(head) >= 14:
            t = _MSG_TIME.unpack(head[:14])[2]
            yield t, t


def _merge(
    f: BinaryIO,
    path: Path,
    size: int,
    later: list[int | None],
    topics: set[str] | None,
    lo: int | None,
    hi: int | None,
) -> Iterator[LogRecord]:
    channels: dict[int, Channel] = {}
    heap: list[tuple[int, int, Message]] = []
    order = count()
    group = 0
    for opcode, offset, body in _records(f, path, size, bodies=True):
        if opcode not in (Opcode.CHUNK, Opcode.MESSAGE, Opcode.SCHEMA, Opcode.CHANNEL):
            continue  # message indexes, attachments, metadata
        try:
            items = _parse(opcode, body)
        except Exception as exc:  # the library raises many kinds on bad bytes
            raise LogFormatError(f"{path}: corrupt {Opcode(opcode).name.lower()} at byte {offset}: {exc}") from exc
        for item in items:
            if isinstance(item, Channel):
                channels[item.id] = item
            elif isinstance(item, Message) and (lo is None or item.log_time >= lo) and (
                hi is None or item.log_time < hi
            ):
                channel = channels.get(item.channel_id)
                if topics is None or channel is None or channel.topic in topics:
                    heapq.heappush(heap, (item.log_time, next(order), item))
        if opcode in (Opcode.CHUNK, Opcode.MESSAGE):  # one group, as counted by _spans
            release = later[group] if group < len(later) else None
            group += 1
            while heap and (release is None or heap[0][0] < release):
                yield _decode(path, heapq.heappop(heap)[2], channels)
    while heap:
        yield _decode(path, heapq.heappop(heap)[2], channels)


def _stream(body: bytes) -> ReadDataStream:
    return ReadDataStream(io.BytesIO(body))


def _parse(opcode: int, body: bytes) -> list[Any]:
    if opcode == Opcode.CHUNK:
        return breakup_chunk(Chunk.read(_stream(body)), validate_crc=True)
    if opcode == Opcode.SCHEMA:
        return [Schema.read(_stream(body))]
    if opcode == Opcode.CHANNEL:
        return [Channel.read(_stream(body))]
    return [Message.read(_stream(body), len(body))]


def _decode(path: Path, msg: Message, channels: dict[int, Channel]) -> LogRecord:
    channel = channels.get(msg.channel_id)
    t_s = msg.log_time / 1e9
    if channel is None:
        raise LogFormatError(f"{path}: record at {t_s:.3f} s names channel {msg.channel_id}, never declared")
    if channel.message_encoding != "json":
        raise LogFormatError(f"{path}: topic {channel.topic!r} is encoded as {channel.message_encoding!r}, not json")
    try:
        payload = json.loads(msg.data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise LogFormatError(f"{path}: record at {t_s:.3f} s on {channel.topic!r} is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise LogFormatError(f"{path}: record at {t_s:.3f} s on {channel.topic!r} is not a JSON object")
    return LogRecord(t_s, channel.topic, payload)
