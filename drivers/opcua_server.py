"""Helpers for the asyncua servers this project runs (the simulated PLC, the FC-facing server).

- `quiet_start()`: around `Server.start()`, drops asyncua's records of a failed start (it logs the error with a
  traceback before raising; the OSError still goes up, to be reported once) and its warnings that a NoSecurity
  endpoint cannot protect certificate and password tokens (known for these endpoints).
- `stop_quickly(server)`: `Server.stop()` without waiting out the 1 s sleep of asyncua's ServerStatus clock task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from asyncua import Server

__all__ = ["quiet_start", "stop_quickly"]


class _StartFilter(logging.Filter):
    _EXPECTED = ("No signing policy available", "No encrypting policy available")

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).endswith("error starting server"):
            return False
        return not str(record.msg).startswith(self._EXPECTED)


_SERVER_LOG = logging.getLogger("asyncua.server.server")
_START_FILTER = _StartFilter()
_starting = 0


@contextlib.contextmanager
def quiet_start() -> Iterator[None]:
    global _starting
    _starting += 1
    _SERVER_LOG.addFilter(_START_FILTER)
    try:
        yield
    finally:
        _starting -= 1
        if not _starting:
            _SERVER_LOG.removeFilter(_START_FILTER)


async def stop_quickly(server: Server) -> None:
    clock = getattr(server.iserver, "time_task", None)
    if isinstance(clock, asyncio.Task):
        clock.cancel()
        await asyncio.wait([clock])
        server.iserver.time_task = None
    await server.stop()
