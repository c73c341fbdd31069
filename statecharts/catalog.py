"""The charts `cellctl chart ...` knows, by name."""

from __future__ import annotations

from collections.abc import Callable

from . import demo
from .engine import Chart

CHARTS: dict[str, Callable[[], Chart]] = {
    "stow_demo": demo.build,
}


def names() -> list[str]:
    return sorted(CHARTS)


def load(name: str) -> Chart:
    try:
        factory = CHARTS[name]
    except KeyError:
        raise KeyError(f"no chart named {name!r}; known charts: {', '.join(names())}") from None
    return factory()
