"""`errors`: every exception the engine raises is in errors.py, under `StatechartError`, and says who
raises it and when."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import statecharts.engine
from statecharts.engine import errors
from statecharts.engine.errors import StatechartError

ENGINE = Path(statecharts.engine.__file__).parent
MODULES = [m.name for m in pkgutil.iter_modules(statecharts.engine.__path__)]
ERRORS = [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]


def test_every_exception_of_the_engine_is_defined_in_errors_py_under_the_root() -> None:
    for name in MODULES:
        module = importlib.import_module(f"statecharts.engine.{name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__.startswith("statecharts.engine"):
                assert cls.__module__ == errors.__name__, f"{cls.__qualname__} is defined in {cls.__module__}"
    assert ERRORS and all(issubclass(c, StatechartError) for c in ERRORS)


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_each_exception_says_who_raises_it_and_when(cls: type[StatechartError]) -> None:
    doc = inspect.getdoc(cls) or ""
    if cls is StatechartError:
        assert "root" in doc
    else:
        assert doc.startswith("Raised by "), f"{cls.__name__}: {doc[:60]!r}"
        assert cls.__name__ in (errors.__doc__ or ""), f"{cls.__name__} missing from the module's tree"


def test_the_engine_raises_only_its_own_exceptions() -> None:
    """No `raise ValueError(...)` and the like in the engine: each raise names a class of errors.py
    (a bare `raise` re-raising is fine; `assert` states invariants, not errors)."""
    builtin_errors = {n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)}
    offenders = []
    for path in sorted(ENGINE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                name = exc.id if isinstance(exc, ast.Name) else ast.unparse(exc)
                if name in builtin_errors:
                    offenders.append(f"{path.name}:{node.lineno} raises {name}")
    assert offenders == []


def test_each_keeps_the_builtin_base_it_had() -> None:
    """`except ValueError` around a chart definition, or `except KeyError` around `wait_for`, still works."""
    assert issubclass(errors.ChartDefinitionError, ValueError)
    assert issubclass(errors.InvalidSendError, ValueError)
    assert issubclass(errors.UnknownClockError, ValueError)
    assert issubclass(errors.UnknownStateError, KeyError)
    for cls in (errors.LivelockError, errors.ChartFinishedError, errors.ChartAlreadyStartedError,
                errors.UndeclaredEventError):
        assert issubclass(cls, RuntimeError)
    assert errors.ChartDefinitionError("s", "bad").state == "s"


def test_the_error_payloads_are_values_not_exceptions() -> None:
    """`error.execution` and `error.activity` carry what failed; neither payload is an exception."""
    from statecharts.engine.events import ActivityFailure, ExecutionFailure

    assert not issubclass(ExecutionFailure, BaseException) and not issubclass(ActivityFailure, BaseException)


def test_clock_named_raises_unknown_clock_error() -> None:
    from statecharts.engine.clock import clock_named

    with pytest.raises(errors.UnknownClockError, match="'sundial'"):
        clock_named("sundial")
