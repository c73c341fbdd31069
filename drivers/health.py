"""Counted, logged driver incidents: bad packets, timeouts, reconnects, stale streams."""

from __future__ import annotations

from collections import Counter
from typing import Any

import structlog


class Incidents:
    """Named counters for one driver; every increment is logged with a specific message.

    The first occurrence and every power of ten go out at warning level, the rest at
    debug, so a flood of garbage is visible without drowning the log.
    """

    def __init__(self, driver: str) -> None:
        self.driver = driver
        self._counts: Counter[str] = Counter()
        self._log = structlog.get_logger(driver)

    def count(self, kind: str, message: str, **fields: Any) -> int:
        self._counts[kind] += 1
        total = self._counts[kind]
        loud = total == 1 or (total % 10 == 0 and str(total).rstrip("0") == "1")
        (self._log.warning if loud else self._log.debug)(message, incident=kind, total=total, **fields)
        return total

    def info(self, message: str, **fields: Any) -> None:
        self._log.info(message, **fields)

    def __getitem__(self, kind: str) -> int:
        return self._counts[kind]

    def snapshot(self) -> dict[str, int]:
        return dict(self._counts)
