"""`cellctl log show`: an event log as a readable timeline, one line per record, then how the log ends."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Collection, Mapping
from typing import Any

from cellctl.eventlog import LogEnding, LogFormatError, LogRecord, is_batch, read_log

WIDTH = 160  # a line is cut to this many characters
TOPIC_WIDTH = 20


def show(
    path: str | os.PathLike[str],
    *,
    topics: Collection[str] | None = None,
    since_s: float | None = None,
    until_s: float | None = None,
    limit: int | None = None,
    as_json: bool = False,
    echo: Callable[[str], None] = print,
    error: Callable[[str], None] = print,
) -> int:
    """Print the records, then how the log ends (`ending_line`); return the exit status: 0 for a complete
    or torn log, 2 for a missing, unreadable or corrupt one (after the records before the corruption)."""
    shown = 0
    try:
        reader = read_log(path, topics=topics or None, since_s=since_s, until_s=until_s)
        for record in reader:
            if limit is not None and shown >= limit:
                break
            echo(json_line(record) if as_json else line(record))
            shown += 1
        ending = reader.finish()  # after --limit, the rest is walked (not printed) to see how it ends
    except LogFormatError as exc:
        if exc.ending is not None:
            echo(ending_line(exc.ending, as_json))
        error(f"error: {exc}")
        return 2
    echo(ending_line(ending, as_json))
    return 0


def ending_line(ending: LogEnding, as_json: bool = False) -> str:
    """The last line of `cellctl log show`: `log ends: complete (…)`, `log ends: torn at byte N of FILE (…)` or
    `log ends: corrupt at byte N of FILE: …`; with `as_json`, `{"ending": {"kind": …, "byte": N, …}}`."""
    if as_json:
        return json.dumps({"ending": ending.as_dict()}, separators=(",", ":"))
    return f"log ends: {ending.describe()}"


def json_line(record: LogRecord) -> str:
    return json.dumps({"t": record.t_s, "topic": record.topic, "payload": record.payload}, separators=(",", ":"))


def line(record: LogRecord, width: int = WIDTH) -> str:
    text = f"{record.t_s:12.3f}  {record.topic:<{TOPIC_WIDTH}} {summary(record.payload)}"
    return text if len(text) <= width else text[: width - 1] + "…"


def summary(payload: Mapping[str, Any]) -> str:
    """A compact, human summary of one payload."""
    if is_batch(payload):
        return _batch(payload)
    if "target" in payload and ("source" in payload or "state" in payload):
        return _transition(payload)
    return " ".join(f"{key}={_value(value)}" for key, value in payload.items())


def _transition(p: Mapping[str, Any]) -> str:
    source = p.get("source", p.get("state"))
    target = p["target"]
    target = ",".join(map(str, target)) if isinstance(target, list) else target
    text = f"{source} -> {target}"
    if p.get("event"):
        text += f" on {p['event']}"
    if p.get("chart"):
        text = f"{p['chart']}: {text}"
    rest = {k: v for k, v in p.items() if k not in ("source", "state", "target", "event", "chart", "time")}
    return text + ("  " + summary(rest) if rest else "")


def _batch(p: Mapping[str, Any]) -> str:
    dt = p["dt_ns"]
    text = f"{len(dt)} samples over {(dt[-1] if dt else 0) / 1e6:.1f} ms"
    for label, names in (("F", ("fx", "fy", "fz")), ("T", ("tx", "ty", "tz"))):
        if all(name in p for name in names):
            text += f" max|{label}|={_max_norm([p[name] for name in names]):.3g}"
    return text


def _max_norm(columns: list[list[float | None]]) -> float:
    best = 0.0
    for values in zip(*columns, strict=True):
        if None not in values:
            best = max(best, math.sqrt(sum(v * v for v in values)))  # type: ignore[operator]
    return best


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str) and value and " " not in value and "=" not in value:
        return value
    return json.dumps(value, separators=(",", ":"))
