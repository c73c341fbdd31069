"""`cellctl run` configuration: one TOML file, validated; an error names the file and the bad key.

    [cell]
    devices = "sim"          # sim: the built-in simulated cell on loopback; real: the cell's devices
    task = "stow"            # stow | pick
    cycles = 0               # 0: run until stopped

    [log]
    dir = "runs"             # one MCAP event log per run, named by start time
    rotate_mb = 512

    [sim]                    # the built-in simulated cell (devices = "sim")
    seed = 0
    faults = "none"          # none | typical | harsh

    [plc]    # drivers.plc.PlcConfig      (url, node map, timeouts, security)
    [robot]  # drivers.robot.RobotConfig  (host, port, timeouts, heartbeat)
    [ft]     # drivers.ft.FTConfig        (host, port, stale_after_s)

With devices = "sim", the simulated devices listen on the hosts and ports given there and the drivers are pointed
at them (the `host`/`port`/`url` in `[plc]`, `[robot]`, `[ft]` are then ignored).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.ft import FTConfig
from drivers.plc import PlcConfig
from drivers.robot import RobotConfig
from drivers.sim.faults import FaultProfileName


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file and key."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CellSection(_Section):
    devices: Literal["sim", "real"] = "sim"
    task: Literal["stow", "pick"] = "stow"
    cycles: int = Field(0, ge=0, description="0: until stopped")
    status_period_s: float = Field(0.5, gt=0, le=60)
    stop_timeout_s: float = Field(30.0, gt=0, le=600, description="Ctrl-C: wait this long for a safe stop")


class LogSection(_Section):
    dir: Path = Path("runs")
    rotate_mb: float = Field(512.0, gt=0)
    flush_s: float = Field(1.0, gt=0, le=1.0)


class SimSection(_Section):
    seed: int = 0
    faults: FaultProfileName = "none"
    time_scale: float = Field(1.0, gt=0, le=1.0, description="primitive durations are multiplied by this")
    host: Literal["127.0.0.1"] = "127.0.0.1"
    opcua_port: int = Field(0, ge=0, le=65535, description="0: any free port")
    modbus_port: int = Field(0, ge=0, le=65535)
    ft_port: int = Field(0, ge=0, le=65535)
    ft_rate_hz: float = Field(1000.0, gt=0, le=7000)



class RunConfig(_Section):
    cell: CellSection = CellSection()
    log: LogSection = LogSection()
    sim: SimSection = SimSection()
    plc: PlcConfig = PlcConfig()
    robot: RobotConfig = RobotConfig()
    ft: FTConfig = FTConfig()


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_config(path: Path | None, *, task: str | None = None) -> RunConfig:
    """The run configuration from `path` (None: the built-in simulated cell), `task` overriding [cell].task."""
    raw: dict[str, object] = {}
    name = "built-in defaults"
    if path is not None:
        name = str(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{name}: no such file") from None
        except OSError as exc:
            raise ConfigError(f"{name}: cannot read ({exc.strerror or exc})") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{name}: not valid TOML: {exc}") from None
    if task is not None:
        cell = raw.setdefault("cell", {})
        if not isinstance(cell, dict):
            raise ConfigError(f"{name}: cell: must be a table")
        cell["task"] = task
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{name}: {_where(e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)]
        raise ConfigError("\n".join(lines)) from None
