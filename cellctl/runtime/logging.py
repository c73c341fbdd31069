"""structlog setup: JSON lines when the log stream is not a terminal, console otherwise."""

from __future__ import annotations

import logging
import sys
from typing import TextIO, cast

import structlog


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is at the time (it may be replaced, e.g. by a test runner)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure(level: str = "info", *, stream: TextIO | None = None, json: bool | None = None) -> None:
    """Route structlog (and stdlib logging) to `stream` (stderr by default).

    Logs go to stderr so that command output on stdout (exports, JSON) stays clean;
    `json=None` picks JSON lines unless the stream is a terminal.
    """
    # structlog's PrintLoggerFactory is annotated to take a TextIO but only writes and flushes, as _CurrentStderr can
    stream = stream or cast(TextIO, _CurrentStderr())
    as_json = not stream.isatty() if json is None else json
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning or error")
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=numeric, stream=stream, format="%(levelname)s %(name)s: %(message)s", force=True)
    for chatty in ("pymodbus", "asyncua"):  # per-frame dumps and per-session INFO lines
        logging.getLogger(chatty).setLevel(max(numeric, logging.WARNING))
