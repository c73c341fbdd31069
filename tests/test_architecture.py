"""The house rules of design.md ("The packages and who may import whom"), checked.

1. Import arrows: each layer, with every one of its modules, is imported in a fresh interpreter, and no module of
   a package it may not import may end up loaded.
2. The `Workcell` port: every implementation has each of the Protocol's methods, with the same parameters and
   async where the Protocol's is (mypy checks the types: tests/typing_workcells.py).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import statecharts
from statecharts.workcell import Workcell
from tests.typing_workcells import IMPLEMENTATIONS

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ("cellctl", "drivers", "perception", "planning", "statecharts", "bench", "tests")

# The charts: every module of statecharts/ but the engine.
CHARTS = tuple(
    f"statecharts.{m.name}" for m in pkgutil.iter_modules(statecharts.__path__) if m.name != "engine"
)


def _within(*packages: str) -> Callable[[str], bool]:
    return lambda name: any(name == p or name.startswith(p + ".") for p in packages)


@dataclass(frozen=True)
class Layer:
    name: str
    roots: tuple[str, ...]  # imported, packages with all their submodules
    may_load: Callable[[str], bool]  # of the project's modules
    rule: str
    skip: tuple[str, ...] = ()  # subpackages not walked (another layer's)


LAYERS = (
    # `statecharts` itself is the package the engine lives in: its __init__ is loaded (and must stay empty of charts).
    Layer("engine", ("statecharts.engine",), lambda n: n == "statecharts" or _within("statecharts.engine")(n),
          "the engine imports nothing of the project (nor the charts)"),
    Layer("perception", ("perception",), _within("perception"), "perception imports nothing of the project",
          skip=("perception.train",)),
    # Training data (issue 13.4) is rendered by the simulator; the torch modules beside it are not imported here
    # (the `train` extra is never installed by `make test`).
    Layer("training data", ("perception.train.dataset",), _within("perception", "drivers"),
          "the training data set imports only perception and drivers"),
    Layer("planning", ("planning",), _within("planning", "perception"),
          "planning may import only perception (its result types)"),
    Layer("drivers", ("drivers",), _within("drivers"),
          "drivers import nothing of cellctl, statecharts, perception or planning"),
    Layer("charts", CHARTS, _within("statecharts", "perception", "planning"),
          "the charts import neither cellctl nor drivers: they talk to the Workcell port"),
)

# Run in a fresh interpreter: import each root and, through pkgutil.walk_packages, each of its submodules; print,
# for each module imported, the project modules that its import loaded first.
_PROBE = """
import importlib, json, pkgutil, sys
project = tuple(sys.argv[1].split(","))
skip = tuple(s for s in sys.argv[2].split(",") if s)
def loaded():
    return {m for m in sys.modules if m.split(".")[0] in project}
first = sorted(loaded())
seen = set(first)
by_importer = {}
def visit(name):
    module = importlib.import_module(name)
    new = loaded() - seen
    seen.update(new)
    by_importer[name] = sorted(new)
    return module
for root in sys.argv[3:]:
    module = visit(root)
    if hasattr(module, "__path__"):
        for info in pkgutil.walk_packages(module.__path__, root + "."):
            if info.name not in by_importer and not any(info.name == s or info.name.startswith(s + ".") for s in skip):
                visit(info.name)
print(json.dumps({"preloaded": first, "by_importer": by_importer}))
"""


def _probe(roots: tuple[str, ...], skip: tuple[str, ...] = ()) -> tuple[list[str], dict[str, list[str]]]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(PROJECT), ",".join(skip), *roots],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, f"importing {roots} failed:\n{proc.stderr}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["preloaded"], out["by_importer"]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.name)
def test_import_arrows(layer: Layer) -> None:
    preloaded, by_importer = _probe(layer.roots, layer.skip)
    assert not preloaded, f"project modules loaded before any import (sitecustomize?): {preloaded}"
    assert all(r in by_importer for r in layer.roots)
    violations = [
        f"{importer} loads {module}"
        for importer, modules in by_importer.items()
        for module in modules
        if not layer.may_load(module)
    ]
    assert not violations, f"{layer.rule}, but:\n  " + "\n  ".join(violations)


def test_the_charts_are_all_there() -> None:
    """The charts' layer is what statecharts/ holds besides the engine: a new chart is checked with no change here."""
    assert {"statecharts.cell", "statecharts.stow", "statecharts.pick", "statecharts.band", "statecharts.tasks",
            "statecharts.workcell"} <= set(CHARTS)


# ---------------------------------------------------------------------------------------------- the Workcell port

PORT_METHODS = {name: fn for name, fn in vars(Workcell).items() if inspect.isfunction(fn) and not name.startswith("_")}


def _defined_workcells() -> set[tuple[str, str]]:
    """(module, class) of every module-level class in the project's source that looks like a Workcell: named
    *Workcell, or defining every method of the port."""
    found: set[tuple[str, str]] = set()
    for top in ("cellctl", "statecharts", "tests"):
        for path in sorted((ROOT / top).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for node in tree.body:
                if not isinstance(node, ast.ClassDef) or (module, node.name) == ("statecharts.workcell", "Workcell"):
                    continue
                methods = {n.name for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
                if node.name.endswith("Workcell") or set(PORT_METHODS) <= methods:
                    found.add((module, node.name))
    return found


def _signature_problems(cls: type, name: str, proto: Callable[..., object]) -> list[str]:
    impl = inspect.getattr_static(cls, name, None)
    where = f"{cls.__module__}.{cls.__qualname__}.{name}"
    if impl is None:
        return [f"{where}: missing"]
    if not inspect.isfunction(impl):
        return [f"{where}: not a plain method ({type(impl).__name__})"]
    problems = []
    if inspect.iscoroutinefunction(proto) and not inspect.iscoroutinefunction(impl):
        problems.append(f"{where}: must be `async def`, as the Protocol's is")
    if not inspect.iscoroutinefunction(proto) and inspect.iscoroutinefunction(impl):
        # e.g. `interlocks`: called without await, it returns an async iterator (a plain def or an async generator)
        problems.append(f"{where}: must not be a coroutine function (`async def` without yield): the Protocol's is not")
    want = list(inspect.signature(proto).parameters.values())
    got = list(inspect.signature(impl).parameters.values())
    shape = [(p.name, p.kind.description) for p in want]
    if [(p.name, p.kind.description) for p in got] != shape:
        problems.append(f"{where}{inspect.signature(impl)}: parameters differ from the Protocol's "
                        f"{name}{inspect.signature(proto)}")
    else:
        problems += [
            f"{where}: `{g.name}` needs a default, as in the Protocol"
            for w, g in zip(want, got, strict=True)
            if w.default is not inspect.Parameter.empty and g.default is inspect.Parameter.empty
        ]
    return problems


def test_port_methods_are_known() -> None:
    assert set(PORT_METHODS) >= {"next_item", "move", "plan_stow", "report", "halt", "interlocks"}


def test_every_workcell_implementation_is_checked() -> None:
    """These are listed in tests/typing_workcells.py (so mypy checks them); any other class that looks like a
    Workcell is found in the source by `_defined_workcells` and checked at run time too."""
    listed = {(c.__module__, c.__qualname__) for c in IMPLEMENTATIONS}
    assert {
        ("cellctl.workcells.drivers", "DriverWorkcell"),
        ("cellctl.workcells.sim", "SimWorkcell"),
        ("cellctl.workcells.recording", "RecordingWorkcell"),
        ("cellctl.workcells.replay", "ReplayWorkcell"),
        ("tests.statecharts.fake_workcell", "FakeWorkcell"),
    } <= listed


def _all_workcells() -> list[type]:
    classes: dict[tuple[str, str], type] = {(c.__module__, c.__qualname__): c for c in IMPLEMENTATIONS}
    for module, name in sorted(_defined_workcells() - set(classes)):
        classes[(module, name)] = getattr(importlib.import_module(module), name)
    return list(classes.values())


@pytest.mark.parametrize("cls", _all_workcells(), ids=lambda c: c.__qualname__)
def test_workcell_implements_the_port(cls: type) -> None:
    problems = [p for name, proto in PORT_METHODS.items() for p in _signature_problems(cls, name, proto)]
    assert not problems, f"{cls.__qualname__} does not implement the Workcell port:\n  " + "\n  ".join(problems)
    assert issubclass(cls, Workcell), f"{cls.__qualname__} is not a Workcell to the runtime_checkable Protocol"


def test_the_signature_check_catches_a_mismatch() -> None:
    class Wrong:
        async def next_item(self, seconds: float) -> None: ...  # renamed parameter
        def move(self, motion: object) -> None: ...  # not async
        async def plan_stow(self, item: object, exclude_bins: tuple[str, ...]) -> None: ...  # no default
        async def interlocks(self) -> None: ...  # a coroutine, not an async iterator

    problems = [p for name, proto in PORT_METHODS.items() for p in _signature_problems(Wrong, name, proto)]
    text = "\n".join(problems)
    for expected in ("Wrong.next_item", "Wrong.move: must be `async def`", "Wrong.plan_stow: `exclude_bins` needs",
                     "Wrong.interlocks: must not be", "Wrong.halt: missing"):
        assert expected in text, text
