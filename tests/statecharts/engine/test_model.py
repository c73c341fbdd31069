"""`model`: the chart as written; declarative actions are checked when built."""

from __future__ import annotations

from typing import Any

import pytest

from statecharts.engine import (
    InvalidSendError,
    cancel,
    send,
)


@pytest.mark.parametrize(
    "build", [lambda: send("x", delay=-1), lambda: send("bad name"), lambda: send("x", id=3), lambda: cancel(None)]
)
def test_declarative_send_with_bad_arguments_fails_when_built(build: Any) -> None:
    """SCXML 6.2: a <send> whose delay is not a time interval, or whose event is no event
    name, is an error; a declarative one is caught when the chart is written."""
    with pytest.raises(InvalidSendError):
        build()


def test_sends_cannot_take_the_names_of_after_timers() -> None:
    """`after.<state>.<n>` is the private event of an after() timer: a send of that name would fire it."""
    for name in ("after", "after.idle.0"):
        with pytest.raises(InvalidSendError, match="are after\\(\\) timers"):
            send(name)
