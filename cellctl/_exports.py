"""Lazy façades: a subpackage's `__init__` names what it exports without importing it.

`cellctl run` blocks its stop signals before the first import that starts a thread (`entry.py`), and
`cellctl --help` should not load asyncua: so importing a room (`cellctl.runtime`) costs nothing until a name
is used. Type checkers see the names through the `TYPE_CHECKING` imports beside each table.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports `exports[name]` (a submodule, relative to `package`) on first use."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    return __getattr__
