"""Issue 11, point 3: no infinite or blind settings.

Every duration and limit of `cellctl run`'s configuration is finite and bounded, a bad value is refused at load
time with the dotted key named (never a traceback from the run), and generated configurations (hypothesis) give
either a RunConfig or a ConfigError naming a key. Valid generated configurations start the real run (the CLI in
a subprocess, devices on 127.0.0.1) and end in a clean exit.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from cellctl.config import ConfigError, RunConfig, load_config
from drivers.ft import FTSensor
from drivers.plc import PlcClient
from drivers.robot import RobotDriver
from drivers.sim.cell_devices import SimCellConfig

MiB = 1024 * 1024


def _load(tmp_path: Path, text: str) -> RunConfig:
    path = tmp_path / "cell.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


# -- (a) regressions: each of these was accepted (or crashed the run) before ------------------------------------

REFUSED = [
    # (TOML, the dotted key the error must name)
    ("[ft]\nstale_after_s = inf\n", "ft.stale_after_s"),  # staleness watchdog switched off
    ("[ft]\nstale_after_s = nan\n", "ft.stale_after_s"),
    ("[ft]\nstale_after_s = 5.0\n", "ft.stale_after_s"),  # finite, but 5 s of guarded motion unwatched
    ("[ft]\nstale_after_s = 0.0001\n", "ft.stale_after_s"),  # flaps stale between two 1 kHz samples
    ("[ft]\nforce_range_n = inf\n", "ft.force_range_n"),  # crashed the run: int(inf)
    ("[ft]\nforce_range_n = 1e10\n", "ft.force_range_n"),  # beyond any int32 count: range check blind
    ("[ft]\ntorque_range_nm = nan\n", "ft.torque_range_nm"),
    ("[ft]\nrestart_interval_s = inf\n", "ft.restart_interval_s"),
    ("[ft]\nrcvbuf_bytes = 4294967296\n", "ft.rcvbuf_bytes"),  # SO_RCVBUF takes a C int
    ('[ft]\nbind_host = "a\\u0000b"\n', "ft.bind_host"),  # crashed the run: TypeError from socket.bind
    ('[ft]\nbind_host = ""\n', "ft.bind_host"),  # every interface, unasked
    ("[sim]\nseed = -5\n", "sim.seed"),  # crashed the run in numpy's seeding
    ("[sim]\nseed = 4294967296\n", "sim.seed"),
    ("[sim]\ntime_scale = nan\n", "sim.time_scale"),
    ("[sim]\nft_rate_hz = 1e-300\n", "sim.ft_rate_hz"),
    ("[robot]\nhalt_timeout_s = inf\n", "robot.halt_timeout_s"),
    ("[robot]\nhalt_timeout_s = 60.0\n", "robot.halt_timeout_s"),  # a HALT allowed a minute is no stop
    ("[robot]\nrequest_timeout_s = nan\n", "robot.request_timeout_s"),
    ("[robot]\nrequest_timeout_s = inf\n", "robot.request_timeout_s"),
    ("[robot]\npeer_heartbeat_timeout_s = inf\n", "robot.peer_heartbeat_timeout_s"),
    ("[robot]\ndefault_timeout_s = inf\n", "robot.default_timeout_s"),
    ("[robot]\nhalt_hedge_s = 0.3\n", "robot.halt_hedge_s"),  # model-level check: the field is named
    ("[plc]\nrequest_timeout_s = inf\n", "plc.request_timeout_s"),
    ("[plc]\nwatchdog_interval_s = nan\n", "plc.watchdog_interval_s"),
    ("[plc]\nsession_timeout_s = inf\n", "plc.session_timeout_s"),  # crashed the run: int(inf * 1000)
    ("[plc]\nsession_timeout_s = 1.0\n", "plc.session_timeout_s"),  # expires between keepalive probes
    ("[plc]\npublishing_interval_ms = inf\n", "plc.publishing_interval_ms"),  # interlocks never delivered
    ("[plc.backoff]\nmax_s = inf\n", "plc.backoff.max_s"),
    ("[plc.backoff]\nmax_s = 0.1\n", "plc.backoff.max_s"),  # model-level check in a nested model
    ('[plc.security]\npolicy = "Basic256Sha256"\n', "plc.security.certificate"),
    ("[log]\nrotate_mb = inf\n", "log.rotate_mb"),  # crashed the run: int(inf)
    ("[log]\nrotate_mb = 1e-9\n", "log.rotate_mb"),  # crashed the run: a 0-byte log file limit
    ('[log]\ndir = "runs\\u0000x"\n', "log.dir"),  # crashed the run: embedded NUL
    ("[cell]\nstatus_period_s = 1e-300\n", "cell.status_period_s"),  # a busy loop next to the reflex
    ("[cell]\nstop_timeout_s = nan\n", "cell.stop_timeout_s"),
]


@pytest.mark.parametrize(("text", "key"), REFUSED, ids=[k + "=" + t.split("= ")[-1].strip() for t, k in REFUSED])
def test_unsafe_values_are_refused_at_load_time_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    message = str(err.value)
    assert f"cell.toml: {key}: " in message, message
    assert "Value error," not in message  # the model-level check's message is reworded onto the key
    if text.rstrip().endswith(("= inf", "= nan")):  # said as such, not as "should be greater than 0" (NaN)
        assert "finite number" in message, message


def test_the_defaults_and_the_tightest_allowed_values_still_load(tmp_path: Path) -> None:
    assert load_config(None) == RunConfig()
    cfg = _load(tmp_path, "[ft]\nstale_after_s = 1.0\n[robot]\nhalt_timeout_s = 2.0\nhalt_hedge_s = 1.5\n"
                          "[sim]\nseed = 4294967295\n[plc]\nrequest_timeout_s = 60.0\n")
    assert cfg.ft.stale_after_s == 1.0 and cfg.sim.seed == 2**32 - 1
    assert FTSensor(cfg.ft).config.stale_after_s == 1.0  # the run's [ft] is still the driver's FTConfig


def test_refused_values_exit_2_from_the_cli_without_a_traceback(tmp_path: Path) -> None:
    # Both of these crashed `cellctl run` with a traceback from inside the run before.
    path = tmp_path / "cell.toml"
    path.write_text("[sim]\nseed = -5\n[ft]\nforce_range_n = inf\n")
    proc = subprocess.run([sys.executable, "-m", "cellctl", "run", "--config", str(path), "--cycles", "1",
                           "--log-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.startswith("error: ") and "sim.seed" in proc.stderr and "ft.force_range_n" in proc.stderr


# -- (b) generated configurations through load_config ------------------------------------------------------------


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    """Field name -> default (or, for a nested model, its own field map)."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out[name] = _fields(ann)
        else:
            out[name] = info.default
    return out


KEYS = _fields(RunConfig)

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)  # TOML strings hold no lone surrogates
_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.inf, -math.inf, math.nan, 0.0, -0.0, 1e308, -1e308, 5e-324, 1e-9, 0.5, 2.0, 60.0]),
)
_ints = st.one_of(st.integers(-(2**70), 2**70), st.integers(-5, 70000),
                  st.sampled_from([0, 1, -1, 2**31, 2**32, 2**32 - 1, 2**63 - 1, -(2**63)]))
_words = st.sampled_from(["sim", "real", "stow", "pick", "none", "typical", "harsh", "127.0.0.1", "", "0.0.0.0",
                          "opc.tcp://127.0.0.1:4840", "http://plc", "ns=2;i=5", "nope", "Basic256Sha256", "runs",
                          "/nonexistent/dir", "Sign"])
_scalars = st.one_of(_ints, _floats, _text, _words, st.booleans())
_values = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3), max_leaves=6
)


def _near(default: Any) -> st.SearchStrategy[Any]:
    """A value of the field's own kind around its default: it gets past type checks to the bounds and validators."""
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.one_of(st.integers(-1, 3 * default + 2), _ints)
    if isinstance(default, float):
        factors = st.sampled_from([0.0, -1.0, 1e-6, 0.1, 0.5, 0.9, 1.0, 1.1, 2.0, 10.0, 1e6, math.inf, math.nan])
        return st.one_of(factors.map(lambda f: default * f), _floats)
    return st.one_of(_words, _text)


@st.composite
def _section(draw: st.DrawFn, fields: dict[str, Any], depth: int = 0) -> Any:
    if draw(st.integers(0, 19)) == 0:
        return draw(_scalars)  # a section that is no table
    names = draw(st.lists(st.sampled_from(sorted(fields)), unique=True, max_size=min(len(fields), 5)))
    table: dict[str, Any] = {}
    for name in names:
        sub = fields[name]
        if isinstance(sub, dict) and depth < 3:
            table[name] = draw(_section(sub, depth + 1))
        elif draw(st.integers(0, 3)):  # mostly a value of the field's kind: past the type check to the bounds
            table[name] = draw(_near(sub))
        else:
            table[name] = draw(_values)
    if draw(st.integers(0, 9)) == 0:
        table[draw(_text)] = draw(_values)  # an unknown key (or, by chance, a real one)
    return table


@st.composite
def _configs(draw: st.DrawFn) -> dict[str, Any]:
    sections = draw(st.lists(st.sampled_from(sorted(KEYS)), unique=True, max_size=len(KEYS)))
    raw = {name: draw(_section(KEYS[name])) for name in sections}
    if draw(st.integers(0, 9)) == 0:
        raw[draw(_text)] = draw(_values)
    return raw


def _toml_key(key: str) -> str:
    return json.dumps(key, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml(value: Any) -> str:
    """A TOML value (inline tables and arrays); floats keep inf and nan."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_key(value)  # a JSON string with \x7f escaped is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml_key(k)} = {_toml(v)}" for k, v in value.items()) + "}"


def _document(raw: dict[str, Any]) -> str:
    return "".join(f"{_toml_key(k)} = {_toml(v)}\n" for k, v in raw.items())


_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _dotted(text: str) -> tuple[list[str], str] | None:
    """`a.b."c.d"` at the start of text: the key path and the rest after it (None: no key path there)."""
    parts: list[str] = []
    while True:
        if text.startswith('"'):
            try:
                part, end = json.JSONDecoder().raw_decode(text)
            except json.JSONDecodeError:
                return None
        else:
            m = _BARE.match(text)
            if m is None:
                return None
            part, end = m[0], m.end()
        parts.append(part)
        text = text[end:]
        if not text.startswith("."):
            return parts, text
        text = text[1:]


def _get(raw: Any, loc: list[str]) -> Any:
    for part in loc:
        if not isinstance(raw, dict) or part not in raw:
            raise KeyError(part)
        raw = raw[part]
    return raw


def _named_key(line: str, path: Path, raw: dict[str, Any]) -> bool:
    """The line is `FILE: dotted.key: message` and the key is one given (or a field of a table given)."""
    prefix = f"{path}: "
    parsed = _dotted(line[len(prefix):]) if line.startswith(prefix) else None
    if parsed is None or not parsed[1].startswith(": "):
        return False
    loc = parsed[0]
    with contextlib.suppress(KeyError):
        _get(raw, loc)
        return True
    with contextlib.suppress(KeyError):  # a field missing from (or checked across) a table that was given
        return len(loc) > 1 and isinstance(_get(raw, loc[:-1]), dict)
    return False


def _start_up_objects(cfg: RunConfig) -> None:
    """What run_cell builds from the configuration before any I/O: none of it may raise."""
    s = cfg.sim
    SimCellConfig(host=s.host, opcua_port=s.opcua_port, modbus_port=s.modbus_port, ft_port=s.ft_port,
                  ft_rate_hz=s.ft_rate_hz, seed=s.seed, faults=s.faults, time_scale=s.time_scale)
    assert int(cfg.log.rotate_mb * MiB) > 0
    PlcClient(cfg.plc.model_copy(update={"url": "opc.tcp://127.0.0.1:4840/x", "resume_after_seq": 0}))
    RobotDriver(cfg.robot.model_copy(update={"host": "127.0.0.1", "port": 5020}))
    FTSensor(cfg.ft.model_copy(update={"host": "127.0.0.1", "port": 49152}))
    for value in (cfg.cell.status_period_s, cfg.cell.stop_timeout_s, cfg.log.flush_s, cfg.ft.stale_after_s,
                  cfg.robot.halt_timeout_s, cfg.robot.request_timeout_s, cfg.plc.request_timeout_s):
        assert math.isfinite(value) and value > 0


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_configs())
def test_generated_configs_load_or_fail_naming_a_key(tmp_path_factory: pytest.TempPathFactory,
                                                     raw: dict[str, Any]) -> None:
    where = tmp_path_factory.getbasetemp() / "generated-configs"
    where.mkdir(exist_ok=True)
    path = where / "cell.toml"
    path.write_text(_document(raw), encoding="utf-8")
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        lines = str(exc).split("\n")  # one error a line
        assert lines and all(_named_key(line, path, raw) for line in lines), (str(exc), raw)
        event("refused")
        return
    event("loaded")
    _start_up_objects(cfg)


# -- (c) generated valid configurations through `cellctl run`'s start-up -----------------------------------------


@st.composite
def _valid_configs(draw: st.DrawFn) -> str:
    """A valid configuration away from the defaults, for a short run (time_scale small, one cycle)."""
    def f(lo: float, hi: float) -> float:
        return round(draw(st.floats(lo, hi)), 4)

    halt = f(0.15, 2.0)
    heartbeat = f(0.02, 0.3)
    watchdog = f(0.2, 5.0)
    tables = {
        "cell": {"task": draw(st.sampled_from(["stow", "pick"])), "status_period_s": f(0.05, 1.0),
                 "stop_timeout_s": f(1.0, 30.0)},
        "log": {"rotate_mb": f(1.0, 1024.0), "flush_s": f(0.05, 1.0)},
        "sim": {"seed": draw(st.integers(0, 2**32 - 1)), "faults": draw(st.sampled_from(["none", "typical"])),
                "time_scale": f(0.02, 0.04), "ft_rate_hz": f(500.0, 2000.0)},
        "ft": {"stale_after_s": f(0.03, 1.0), "restart_interval_s": f(0.05, 2.0), "restart_grace_s": f(0.2, 5.0),
               "force_range_n": f(200.0, 2000.0), "torque_range_nm": f(20.0, 200.0)},
        "robot": {"request_timeout_s": f(0.1, 2.0), "halt_timeout_s": halt, "halt_hedge_s": round(halt * 0.3, 4),
                  "heartbeat_period_s": heartbeat, "peer_heartbeat_timeout_s": round(heartbeat * 5 + 0.2, 4),
                  "poll_hz": f(100.0, 500.0), "reconnect_initial_s": f(0.01, 0.2), "reconnect_max_s": f(0.2, 5.0)},
        "plc": {"request_timeout_s": f(0.5, 10.0), "watchdog_interval_s": watchdog,
                "session_timeout_s": round(watchdog * 3 + 5, 4), "publishing_interval_ms": f(10.0, 200.0),
                "interlock_queue_size": draw(st.integers(4, 64))},
    }
    chosen = draw(st.lists(st.sampled_from(sorted(tables)), unique=True, min_size=1))
    lines = []
    for name in sorted(set(chosen) | {"sim"}):  # time_scale always: a long cycle would only cost time
        table = tables[name]
        keys = draw(st.lists(st.sampled_from(sorted(table)), unique=True, min_size=1))
        if name == "sim":
            keys = sorted(set(keys) | {"time_scale"})
        if name == "robot":  # these are checked against each other: all or none
            keys = sorted(set(keys) | {"halt_timeout_s", "halt_hedge_s", "heartbeat_period_s",
                                       "peer_heartbeat_timeout_s", "reconnect_initial_s", "reconnect_max_s"})
        if name == "plc":
            keys = sorted(set(keys) | {"watchdog_interval_s", "session_timeout_s"})
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml(table[k])}" for k in keys]
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(400)
@settings(max_examples=3, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(text=_valid_configs())
def test_generated_valid_configs_run_one_cycle_or_exit_2_cleanly(tmp_path_factory: pytest.TempPathFactory,
                                                                  text: str) -> None:
    where = tmp_path_factory.mktemp("run")
    path = where / "cell.toml"
    path.write_text(text + f'[fc]\nport = 0\nstore = "{where / "fc.sqlite"}"\n', encoding="utf-8")  # no fixed port
    load_config(path)  # the strategy only makes valid configurations
    proc = subprocess.Popen([sys.executable, "-m", "cellctl", "run", "--config", str(path), "--cycles", "1",
                             "--log-dir", str(where), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        out, err = proc.communicate(timeout=90)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert "Traceback" not in out + err, (text, err[-3000:])
    if proc.returncode == 2:  # refused at start-up: one clean line
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, (text, err[-3000:])
        return
    assert proc.returncode in (0, 1), (text, proc.returncode, err[-3000:])
    summary = json.loads(out.strip().splitlines()[-1])
    # 1 only when the cell aborted (e.g. a fault it cannot recover from); otherwise the one cycle completed
    assert summary["end_state"] == ("aborted" if proc.returncode == 1 else "complete"), (text, summary)
