"""The charts `cellctl chart ...` knows, by name, with the data each runs on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import demo
from .engine import Chart


@dataclass(frozen=True)
class Entry:
    build: Callable[[], Chart]
    data: Callable[[], Any] = lambda: None


CHARTS: dict[str, Entry] = {
    "stow_demo": Entry(demo.build, demo.DemoData),
}


def names() -> list[str]:
    return sorted(CHARTS)


def entry(name: str) -> Entry:
    try:
        return CHARTS[name]
    except KeyError:
        raise KeyError(f"no chart named {name!r}; known charts: {', '.join(names())}") from None


def load(name: str) -> Chart:
    return entry(name).build()
