"""File names of a rotated log: `run.mcap`, then `run-0001.mcap`, `run-0002.mcap`, …"""

from __future__ import annotations

import re
from pathlib import Path

_PART = re.compile(r"^(?P<stem>.+)-(?P<n>\d{4,})$")


def part_path(base: Path, n: int) -> Path:
    """The n-th file of the set that starts at `base` (n=0 is `base` itself)."""
    base = Path(base)
    return base if n == 0 else base.with_name(f"{base.stem}-{n:04d}{base.suffix}")


def rotated_set(path: Path) -> list[Path]:
    """`path` and the files that continue it, in order, up to the first missing one.

    `path` may be the first file of a set or a later part (`run-0003.mcap` continues with
    `run-0004.mcap` when `run.mcap` exists beside it).
    """
    path = Path(path)
    base, n = path, 0
    match = _PART.match(path.stem)
    if match and (sibling := path.with_name(match["stem"] + path.suffix)).exists():
        base, n = sibling, int(match["n"])
    out = [path]
    while (nxt := part_path(base, n + 1)).exists():
        out.append(nxt)
        n += 1
    return out


def existing_parts(base: Path) -> list[Path]:
    """Files already on disk that a new log at `base` would clash with."""
    base = Path(base)
    found = [base] if base.exists() else []
    pattern = re.compile(re.escape(base.stem) + r"-\d{4,}" + re.escape(base.suffix) + "$")
    if base.parent.is_dir():
        found += sorted(p for p in base.parent.iterdir() if pattern.match(p.name))
    return found
