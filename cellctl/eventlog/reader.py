"""`read_log`: records of an event log in log-time order, across a rotated set, crash-tolerant, and how it ends.

The reader walks each file's top-level records itself (opcode, length, body), checks every record's
layout against its length, and parses chunks itself (CRC checked). Every file's ending is one of:

- complete: the data section, its summary, the footer and the closing magic are all there;
- torn at byte N: the file stops short, at byte N, of a record that starts there (or of the footer
  that should follow the last whole record). Every record before N is read; of a chunk cut short,
  the zstd frame is decompressed as far as it goes (the writer ends a zstd block every
  `writer.ZSTD_BLOCK_BYTES` of records), and the whole records inside it are recovered too;
- corrupt at byte N: the record at N is structurally invalid (a reserved opcode, a length field
  that disagrees with the record's own layout, for instance one pointing past the end of the file,
  a CRC mismatch, undecodable data). Every record before N is read, then `LogFormatError` is raised.

`read_log` returns a `LogReader`: iterate it for the records; once the iteration is over, `ending`
says how the log (the set) ends. Within a file records come out in log-time order: chunks are sorted
and merged, holding back only records that a later chunk could still precede.
"""

from __future__ import annotations

import heapq
import io
import json
import os
import struct
import zlib
from collections.abc import Collection, Generator, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any, BinaryIO, Literal

import zstandard
from mcap.data_stream import ReadDataStream
from mcap.opcode import Opcode
from mcap.records import Channel, Schema

from .naming import rotated_set

MAGIC = b"\x89MCAP0\r\n"
_HEAD = struct.Struct("<BQ")  # opcode, body length
_TIMES = struct.Struct("<QQ")  # a chunk body starts with its first and last log time
_MSG = struct.Struct("<HIQQ")  # a message body: channel id, sequence, log time, publish time
_CHUNK = struct.Struct("<QQQII")  # start, end, uncompressed size, uncompressed crc, compression length
_U64 = struct.Struct("<Q")
_FOOTER_LENGTH = 20
_HEAD_BYTES = 4096  # of each record's body read by the first pass (enough to check a chunk's layout)

# Each record's body layout: H, I, Q fixed ints; s a u32-prefixed and S a u64-prefixed byte string (the
# chunk's records, an attachment's data); * the rest of the body (a message's data).
_LAYOUT: dict[int, str] = {
    Opcode.HEADER: "ss", Opcode.FOOTER: "QQI", Opcode.SCHEMA: "Hsss", Opcode.CHANNEL: "HHsss",
    Opcode.MESSAGE: "HIQQ*", Opcode.CHUNK: "QQQIsS", Opcode.MESSAGE_INDEX: "Hs", Opcode.CHUNK_INDEX: "QQQQsQsQQ",
    Opcode.ATTACHMENT: "QQssSI", Opcode.ATTACHMENT_INDEX: "QQQQQss", Opcode.STATISTICS: "QHIIIIQQs",
    Opcode.METADATA: "ss", Opcode.METADATA_INDEX: "QQs", Opcode.SUMMARY_OFFSET: "BQQ", Opcode.DATA_END: "I",
}
_Problem = tuple[str, int, str]  # a corrupt record: what it is, its offset, why
_FIXED = {"B": 1, "H": 2, "I": 4, "Q": 8}
_KNOWN = frozenset(int(op) for op in Opcode)
_COMPRESSIONS = ("", "zstd", "lz4")

Kind = Literal["complete", "torn", "corrupt"]


class LogFormatError(Exception):
    """The file is missing, not an MCAP event log, or corrupt; `ending` says where, when it is an MCAP file
    (the records before that point have been yielded)."""

    def __init__(self, message: str, ending: LogEnding | None = None) -> None:
        super().__init__(message)
        self.ending = ending


@dataclass(frozen=True, slots=True)
class LogRecord:
    t_s: float  # log time, s (the writer's clock)
    topic: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LogEnding:
    """How a log ends. `records` and `last_t_s` count every record read, whatever the filters."""

    kind: Kind
    path: Path  # the file it is about: the torn or corrupt one, else the last of the set
    size: int  # that file's size, bytes
    offset: int | None = None  # torn or corrupt at this byte
    reason: str = ""  # what was cut, or what is wrong
    missing: int = 0  # torn: bytes the file is short of the end of the cut record
    records: int = 0  # records read (all files)
    salvaged: int = 0  # of them, recovered from the chunk cut short
    last_t_s: float | None = None  # the latest log time read
    files: int = 1  # files read

    def describe(self) -> str:
        """One line: `complete (…)`, `torn at byte N of FILE (…)` or `corrupt at byte N of FILE: …`."""
        count = f"{self.records} records" + (f" in {self.files} files" if self.files > 1 else "")
        if self.kind == "complete":
            return f"complete ({count}, footer intact)"
        where = f"at byte {self.offset} of {self.path.name}"
        if self.kind == "torn":
            salvaged = f", {self.salvaged} of them recovered from the cut chunk" if self.salvaged else ""
            return f"torn {where} ({self.reason}; {count} read{salvaged})"
        return f"corrupt {where}: {self.reason} ({count} read before it)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "file": str(self.path), "byte": self.offset, "size": self.size, "reason": self.reason,
            "missing_bytes": self.missing, "records": self.records, "salvaged": self.salvaged,
            "last_t": self.last_t_s, "files": self.files,
        }


def read_log(
    path: str | os.PathLike[str],
    *,
    topics: Collection[str] | None = None,
    since_s: float | None = None,
    until_s: float | None = None,
) -> LogReader:
    """Records with `since_s <= t_s < until_s` on `topics` (all when None), from `path` and the
    files that continue it (`run.mcap`, `run-0001.mcap`, …), file after file, each in log-time order.
    A missing file raises `LogFormatError` at once; other problems when the iteration reaches them."""
    path = Path(path)
    if not path.is_file():
        raise LogFormatError(f"{path}: {'not a file' if path.exists() else 'no such file'}")
    wanted = None if topics is None else set(topics)
    lo = None if since_s is None else round(since_s * 1e9)
    hi = None if until_s is None else round(until_s * 1e9)
    return LogReader(rotated_set(path), wanted, lo, hi)


class LogReader(Iterator[LogRecord]):
    """The records of a log (see `read_log`); `ending` is set once they are all read (None before)."""

    def __init__(self, paths: list[Path], topics: set[str] | None, lo: int | None, hi: int | None) -> None:
        self.paths = paths
        self.ending: LogEnding | None = None
        self._topics, self._lo, self._hi = topics, lo, hi
        self._skip = False  # finish(): walk the rest without decoding
        self._records = 0
        self._salvaged = 0
        self._last: int | None = None
        self._gen = self._run()

    def __iter__(self) -> LogReader:
        return self

    def __next__(self) -> LogRecord:
        return next(self._gen)

    def finish(self) -> LogEnding:
        """Read what is left without decoding it (after a caller's own limit) and return the ending."""
        self._skip = True
        for _ in self._gen:
            pass
        assert self.ending is not None
        return self.ending

    # -- internals ----------------------------------------------------------------------------
    def _ending(self, kind: Kind, path: Path, size: int, files: int, **kw: Any) -> LogEnding:
        last = None if self._last is None else self._last / 1e9
        return LogEnding(kind, path, size, records=self._records, salvaged=self._salvaged, last_t_s=last,
                         files=files, **kw)

    def _run(self) -> Iterator[LogRecord]:
        torn: LogEnding | None = None
        size = 0
        for n, path in enumerate(self.paths, 1):
            try:
                with open(path, "rb") as f:
                    size = os.fstat(f.fileno()).st_size  # both passes stop here, even if the file grows
                    scan = _scan(f, path, size)
                    problem = yield from self._merge(f, path, scan)
            except _BadRecord as exc:  # a record that does not decode: corrupt there
                exc.ending = self._ending("corrupt", path, size, n, offset=exc.offset, reason=exc.reason)
                self.ending = exc.ending
                raise
            except OSError as exc:
                raise LogFormatError(f"{path}: cannot read: {exc.strerror or exc}") from exc
            end = scan.end
            if problem is not None:  # found while decoding: corrupt there
                end = _End("corrupt", *problem)
            if end.kind == "corrupt":
                self.ending = self._ending("corrupt", path, size, n, offset=end.offset, reason=end.reason)
                raise LogFormatError(f"{path}: corrupt {end.what} at byte {end.offset}: {end.reason}", self.ending)
            if end.kind == "torn" and torn is None:
                torn = self._ending("torn", path, size, n, offset=end.offset, reason=end.reason, missing=end.missing)
        files = len(self.paths)
        if torn is not None:  # counts over the whole set
            self.ending = self._ending("torn", torn.path, torn.size, files, offset=torn.offset, reason=torn.reason,
                                       missing=torn.missing)
        else:
            self.ending = self._ending("complete", self.paths[-1], size, files)

    def _merge(self, f: BinaryIO, path: Path, scan: _Scan) -> Generator[LogRecord, None, _Problem | None]:
        """Yield the file's records in log-time order; return (what, offset, reason) if a record proves corrupt."""
        starts = scan.starts
        later: list[int | None] = [None] * len(starts)  # later[i]: earliest start after group i
        low = None
        for i in range(len(starts) - 1, -1, -1):
            later[i] = low
            low = starts[i] if low is None else min(low, starts[i])
        channels: dict[int, Channel] = {}
        heap: list[tuple[int, int, int, bytes, int]] = []
        order = count()
        group = 0
        topics, lo, hi = self._topics, self._lo, self._hi
        problem: _Problem | None = None
        records = scan.records + ([scan.end.partial] if scan.end.partial is not None else [])
        for opcode, offset, length in records:
            partial = opcode == Opcode.CHUNK and offset == scan.end.offset and scan.end.partial is not None
            try:
                f.seek(offset + _HEAD.size)
                body = f.read(length)
                if opcode == Opcode.CHUNK:
                    items = _chunk_items(body, partial)
                elif opcode == Opcode.MESSAGE:
                    items = [(Opcode.MESSAGE, body)]
                else:
                    items = [(opcode, body)]
                for op, item in items:
                    if op == Opcode.MESSAGE:
                        channel_id, _, log_time, _ = _MSG.unpack_from(item)
                        self._records += 1
                        self._salvaged += partial
                        if self._last is None or log_time > self._last:
                            self._last = log_time
                        if self._skip or (lo is not None and log_time < lo) or (hi is not None and log_time >= hi):
                            continue
                        channel = channels.get(channel_id)
                        if topics is None or channel is None or channel.topic in topics:
                            heapq.heappush(heap, (log_time, next(order), channel_id, item[_MSG.size :], offset))
                    elif op == Opcode.CHANNEL:
                        channel = _exactly(Channel.read, item)
                        channels[channel.id] = channel
                    elif op == Opcode.SCHEMA:
                        _exactly(Schema.read, item)
            except _Corrupt as exc:
                problem = (Opcode(opcode).name.lower(), offset, str(exc))
                break
            if opcode in (Opcode.CHUNK, Opcode.MESSAGE):  # one group, as counted by _scan
                release = later[group] if group < len(later) else None
                group += 1
                while heap and (release is None or heap[0][0] < release):
                    yield _decode(path, heapq.heappop(heap), channels)
        while heap:  # the rest (also before a corrupt record: what precedes it is read)
            yield _decode(path, heapq.heappop(heap), channels)
        return problem


class _Corrupt(Exception):
    pass


class _BadRecord(LogFormatError):
    """A record that does not decode, in the chunk (or loose message) at `offset`."""

    def __init__(self, path: Path, reason: str, offset: int) -> None:
        super().__init__(f"{path}: {reason}")
        self.reason = reason
        self.offset = offset


def _exactly(read: Any, body: bytes) -> Any:
    """A record parsed by the mcap library, which must consume exactly its body."""
    stream = ReadDataStream(io.BytesIO(body))
    try:
        record = read(stream)
    except Exception as exc:  # the library raises many kinds on bad bytes
        raise _Corrupt(f"undecodable record: {exc!r}") from exc
    if stream.count != len(body):
        raise _Corrupt(f"record of {len(body)} bytes has {stream.count} bytes of content")
    return record


def _chunk_items(body: bytes, partial: bool) -> list[tuple[int, bytes]]:
    """The records inside a chunk (opcode, body). A `partial` chunk (cut short by the end of the file) is
    decompressed as far as its data goes and yields its whole records; a whole chunk must check out."""
    _, _, size, crc, clen = _CHUNK.unpack_from(body)
    p = _CHUNK.size
    compression = body[p : p + clen].decode("utf-8", "replace")
    p += clen
    (data_length,) = _U64.unpack_from(body, p)
    data = body[p + 8 : p + 8 + data_length]
    if compression not in _COMPRESSIONS:
        raise _Corrupt(f"unknown compression {compression!r}")
    if compression == "lz4":
        if partial:
            return []
        raise _Corrupt("lz4 chunks are not supported (the writer uses zstd)")
    if compression == "zstd":
        try:
            if partial:
                raw = zstandard.ZstdDecompressor().decompressobj().decompress(data)[:size]
            else:
                raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
        except zstandard.ZstdError as exc:
            raise _Corrupt(f"chunk data does not decompress: {exc}") from exc
    else:
        raw = data
    if not partial:
        if len(raw) != size:
            raise _Corrupt(f"chunk holds {len(raw)} bytes, its header says {size}")
        if crc and zlib.crc32(raw) != crc:
            raise _Corrupt(f"chunk CRC mismatch (expected {crc:#010x}, got {zlib.crc32(raw):#010x})")
    items: list[tuple[int, bytes]] = []
    p, n = 0, len(raw)
    view = memoryview(raw)
    while p < n:
        if p + _HEAD.size > n:
            break
        opcode, length = _HEAD.unpack_from(raw, p)
        q = p + _HEAD.size + length
        if q > n:
            break
        if opcode == Opcode.MESSAGE and length < _MSG.size:
            raise _Corrupt(f"a message in the chunk has a {length}-byte body")
        if opcode == 0:
            raise _Corrupt(f"a record in the chunk has opcode 0x00 (at chunk byte {p})")
        items.append((opcode, bytes(view[p + _HEAD.size : q])))
        p = q
    if p != n and not partial:
        raise _Corrupt(f"the chunk's last record runs past its end (chunk byte {p} of {n})")
    return items


# -- the first pass: the file's records and how it ends -------------------------------------------
@dataclass(slots=True)
class _End:
    kind: Kind
    what: str = ""  # the record concerned
    offset: int = 0
    reason: str = ""
    missing: int = 0
    partial: tuple[int, int, int] | None = None  # a chunk cut short: (opcode, offset, bytes present)


@dataclass(slots=True)
class _Scan:
    records: list[tuple[int, int, int]]  # the data section's whole records: opcode, offset, body length
    starts: list[int]  # each group's (chunk's or loose message's) first log time
    end: _End


def _layout(opcode: int, head: bytes, length: int) -> str | None:
    """None if what is visible of a body (`head`) fits the record's layout and `length`; else what is wrong.
    A body cut short by the file's end fits if nothing visible contradicts the length."""
    layout = _LAYOUT.get(opcode)
    if layout is None:
        return None
    p = 0
    for token in layout:
        if token == "*":
            return None if p <= length else f"its length ({length}) is shorter than its fixed fields ({p})"
        if token in _FIXED:
            p += _FIXED[token]
            continue
        width = 4 if token == "s" else 8
        if p + width > len(head):
            return None if p + width <= length else f"its length ({length}) ends inside its fields"
        (n,) = struct.unpack_from("<I" if width == 4 else "<Q", head, p)
        p += width + n
        if p > length:
            return f"its length field ({length}) disagrees with its content (a field runs to {p})"
    if p != length:
        return f"its length field ({length}) disagrees with its content ({p} bytes)"
    return None


def _zeros(f: BinaryIO, start: int, size: int) -> bool:
    f.seek(start)
    left = size - start
    while left > 0:
        block = f.read(min(left, 1 << 20))
        if not block or block.count(0) != len(block):
            return False
        left -= len(block)
    return True


def _scan(f: BinaryIO, path: Path, size: int) -> _Scan:
    records: list[tuple[int, int, int]] = []
    starts: list[int] = []
    f.seek(0)
    magic = f.read(len(MAGIC))
    if magic != MAGIC:
        if MAGIC.startswith(magic):  # torn inside the magic: killed at birth
            reason = "the file is empty" if not magic else "the file ends inside the opening magic"
            return _Scan(records, starts, _End("torn", "magic", 0, reason, len(MAGIC) - len(magic)))
        raise LogFormatError(f"{path}: not an MCAP file (bad magic {magic[:8]!r})")
    pos = len(MAGIC)
    summary = False  # after DATA_END
    while True:
        if pos == size:
            where = ("in its summary" if summary else "after its opening magic" if pos == len(MAGIC)
                     else "after its last whole record")
            return _Scan(records, starts, _End("torn", "footer", pos, f"no footer: the file ends {where}"))
        head9 = f.read(_HEAD.size)
        opcode = head9[0]
        if opcode == 0 and _zeros(f, pos, size):  # unwritten space that a crash left at the end of the file
            return _Scan(records, starts, _End("torn", "record", pos, f"the last {size - pos} bytes are zeros"))
        if opcode == 0 or (opcode not in _KNOWN and opcode < 0x80):  # 0x80-0xff: private records, skipped
            return _Scan(records, starts, _End("corrupt", "record", pos, f"invalid opcode {opcode:#04x}"))
        if len(head9) < _HEAD.size:
            return _Scan(records, starts, _torn(summary, "record", pos, "the file ends inside a record's header",
                                                _HEAD.size - len(head9)))
        opcode, length = _HEAD.unpack(head9)
        name = Opcode(opcode).name.lower() if opcode in _KNOWN else "record"
        end = pos + _HEAD.size + length
        present = min(length, size - pos - _HEAD.size)
        head = f.read(min(present, _HEAD_BYTES))
        wrong = _layout(opcode, head, length)
        if wrong is not None:
            return _Scan(records, starts, _End("corrupt", name, pos, wrong))
        if end > size:  # cut short by the end of the file: a tear, or a length pointing past it
            if opcode not in _KNOWN:
                reason = f"a record of unknown opcode {opcode:#04x} runs {end - size} bytes past the end of the file"
                return _Scan(records, starts, _End("corrupt", name, pos, reason))
            reason = f"a {name} of {length + _HEAD.size} bytes is cut {end - size} bytes short"
            partial = None
            if opcode == Opcode.CHUNK and not summary and _chunk_head_visible(head):
                partial = (opcode, pos, present)
                starts.append(_TIMES.unpack_from(head)[0])
            return _Scan(records, starts, _torn(summary, name, pos, reason, end - size, partial))
        if opcode == Opcode.FOOTER:
            return _Scan(records, starts, _footer_end(f, pos, end, size))
        if opcode == Opcode.DATA_END:
            summary = True
        elif not summary:
            if opcode == Opcode.CHUNK:
                starts.append(_TIMES.unpack_from(head)[0])
                records.append((opcode, pos, length))
            elif opcode == Opcode.MESSAGE:
                starts.append(_MSG.unpack_from(head)[2])
                records.append((opcode, pos, length))
            elif opcode in (Opcode.SCHEMA, Opcode.CHANNEL):
                records.append((opcode, pos, length))
        pos = end
        f.seek(pos)


def _torn(summary: bool, what: str, pos: int, reason: str, missing: int, partial: Any = None) -> _End:
    if summary:
        reason += ", in the summary after all the data: no records lost"
    return _End("torn", what, pos, reason, missing, partial)


def _chunk_head_visible(head: bytes) -> bool:
    """The fixed fields, compression and data length of a cut chunk are in the file."""
    if len(head) < _CHUNK.size:
        return False
    clen = _CHUNK.unpack_from(head)[4]
    return len(head) >= _CHUNK.size + clen + 8


def _footer_end(f: BinaryIO, pos: int, end: int, size: int) -> _End:
    f.seek(end)
    tail = f.read(len(MAGIC) + 1)
    if tail[: len(MAGIC)] == MAGIC and len(tail) == len(MAGIC):
        return _End("complete")
    if MAGIC.startswith(tail):
        return _End("torn", "magic", end, "the closing magic is cut: no records lost", len(MAGIC) - len(tail))
    if tail[: len(MAGIC)] == MAGIC:
        return _End("corrupt", "footer", end + len(MAGIC), f"{size - end - len(MAGIC)} bytes after the closing magic")
    return _End("corrupt", "footer", end, "no closing magic after the footer")


def _decode(path: Path, item: tuple[int, int, int, bytes, int], channels: dict[int, Channel]) -> LogRecord:
    log_time, _, channel_id, data, offset = item
    channel = channels.get(channel_id)
    t_s = log_time / 1e9
    if channel is None:
        raise _BadRecord(path, f"record at {t_s:.3f} s names channel {channel_id}, never declared", offset)
    if channel.message_encoding != "json":
        raise _BadRecord(path, f"topic {channel.topic!r} is encoded as {channel.message_encoding!r}, not json",
                         offset)
    try:
        payload = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadRecord(path, f"record at {t_s:.3f} s on {channel.topic!r} is not JSON: {exc}", offset) from exc
    if not isinstance(payload, dict):
        raise _BadRecord(path, f"record at {t_s:.3f} s on {channel.topic!r} is not a JSON object", offset)
    return LogRecord(t_s, channel.topic, payload)
