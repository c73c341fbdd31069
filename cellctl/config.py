"""`cellctl run` configuration: one TOML file, validated; an error names the file and the bad key.

    [cell]
    devices = "sim"          # sim: the built-in simulated cell on loopback; external: devices at the endpoints below
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
    [ft]     # drivers.ft.FTConfig        (host, port, stale_after_s; at most 1 s for a run)
    [fc]     # cellctl.fc.config.FcConfig (the FC-facing OPC UA server: host, port, path, store, ...)
    [perception]  # mode = "learned" | "oracle"; the models (docs/models.md): segmenter, pick, embedding paths;
                  # provider, intra_op_threads
    [camera] # devices = "external" only: kind = "sim-service", host, port, request_timeout_s; or kind = "realsense",
             # serial, depth_width/height, fps, color, filters, stale_after_s, ... (docs/camera.md)

With devices = "sim", the simulated devices listen on the hosts and ports given there and the drivers are pointed
at them (the `host`/`port`/`url` in `[plc]`, `[robot]`, `[ft]` and `[camera]` are then ignored). With
devices = "external" the drivers connect to those endpoints (`cellctl devices --sim` serves a simulated cell there).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cellctl.fc.config import FcConfig
from drivers.ft import FTConfig
from drivers.plc import PlcConfig
from drivers.realsense_config import RealSenseConfig
from drivers.robot import RobotConfig
from drivers.sim.faults import FaultProfileName
from perception.learned.contracts import ModelError
from perception.learned.session import CPU, MAX_THREADS, SessionSettings, check_provider


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file and key."""


class _Section(BaseModel):
    # No inf or NaN anywhere: an infinite duration or limit is a guard that never fires.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class CellSection(_Section):
    devices: Literal["sim", "external"] = "sim"
    task: Literal["stow", "pick"] = "stow"
    cycles: int = Field(0, ge=0, le=1_000_000_000, description="0: until stopped")
    # >= 0.05 s: a status loop spinning faster only takes CPU from the 1 kHz force reflex.
    status_period_s: float = Field(0.5, ge=0.05, le=60)
    stop_timeout_s: float = Field(30.0, gt=0, le=600, description="Ctrl-C: wait this long for a safe stop")
    fault_repeat_limit: int = Field(3, ge=0, le=1000, description="hold with an alarm when this many tasks in a row "
                                    "end with the same fault (0: never)")
    fault_repeat_window_s: float = Field(600.0, gt=0, le=86_400, description="... within this window")

    @field_validator("devices", mode="before")
    @classmethod
    def _renamed(cls, value: object) -> object:
        if value == "real":  # never started a cell: refused with the new name rather than kept as an alias
            raise ValueError("'real' is now called 'external' (devices reached at the [plc], [robot], [ft] and "
                             "[camera] endpoints): write devices = \"external\"")
        return value


class LogSection(_Section):
    dir: Path = Path("runs")
    # >= 1 MiB: the log's chunk size (a smaller file would rotate on every chunk; under one byte it cannot open).
    rotate_mb: float = Field(512.0, ge=1, le=1 << 20)
    flush_s: float = Field(1.0, ge=0.01, le=1.0)

    @field_validator("dir")
    @classmethod
    def _usable_path(cls, value: Path) -> Path:
        if "\x00" in str(value):
            raise ValueError("a path cannot contain a NUL character")
        return value


class SimSection(_Section):
    # numpy's and random's seeding take any int >= 0; a uint32 keeps the seed portable and printable.
    seed: int = Field(0, ge=0, lt=1 << 32)
    faults: FaultProfileName = "none"
    # >= 0.01: the run's fixed timeouts (connect, stop) are wall time; a cell running 100x faster is no test.
    time_scale: float = Field(1.0, ge=0.01, le=1.0, description="primitive durations are multiplied by this")
    host: Literal["127.0.0.1"] = "127.0.0.1"
    opcua_port: int = Field(0, ge=0, le=65535, description="0: any free port")
    modbus_port: int = Field(0, ge=0, le=65535)
    ft_port: int = Field(0, ge=0, le=65535)
    # >= 500 Hz: the force reflex is built for a 1 kHz stream, and at 500 Hz [ft] stale_after_s >= 0.01 s
    # still spans five sample periods (no stale flapping).
    ft_rate_hz: float = Field(1000.0, ge=500, le=7000)
    # The simulated cell's FC: a real OPC UA client of the [fc] server that acknowledges every report and, in a
    # pick run, requests picks of items the simulated world holds. false: an FC of your own connects instead.
    fc_client: bool = True


SIM_SERVICE_KEYS = ("host", "port", "request_timeout_s")
# how the cell takes a bin's frame (realsense)
VIEW_KEYS = ("standoff_mm", "settle_s", "frame_timeout_s", "max_view_age_s")
REALSENSE_KEYS = (*RealSenseConfig.model_fields, *VIEW_KEYS)


class CameraConfig(RealSenseConfig):
    """[camera] (devices = "external"): the EOAT camera and its perception.

    kind = "sim-service": the simulated cell's camera and perception served by `cellctl devices --sim`
    (its --service-port) at host:port; each request (and the connect) must answer within request_timeout_s.
    kind = "realsense": an Intel RealSense camera on the EOAT (drivers.realsense; its keys are
    drivers.realsense_config's RealSenseConfig, docs/camera.md, with color = true: the models need RGB), and how a
    bin's frame is taken (cellctl.workcells.eoat_view): the tool goes standoff_mm in front of the bin's opening,
    centred, and the frame is the first that arrives settle_s after the move, within frame_timeout_s. Learned
    perception runs on its frames over the PLC's pod; a pick run also needs [perception] catalogue (the FC's
    product images). A key of the other kind is refused.
    """

    kind: Literal["sim-service", "realsense"] = "sim-service"
    host: str = Field("127.0.0.1", min_length=1, max_length=253)
    port: int = Field(4850, ge=1, le=65535)
    # A stow plan renders and perceives every bin of the pod: about a second on a slow machine.
    request_timeout_s: float = Field(10.0, ge=0.1, le=120)
    standoff_mm: float = Field(350.0, ge=100.0, le=1000.0, description="camera to the bin's opening for a view")
    settle_s: float = Field(0.1, ge=0.0, le=2.0, description="a view's frame arrives at least this after the move")
    frame_timeout_s: float = Field(2.0, gt=0.0, le=30.0, description="no fresh frame within this: no view")
    # A bin's view is used again until the cell moves in that bin, another pod comes, the guards open, or this.
    max_view_age_s: float = Field(60.0, ge=0.0, le=3600.0, description="0: every plan views every bin anew")

    @field_validator("host")
    @classmethod
    def _host_text(cls, value: str) -> str:
        if any(not c.isprintable() or c.isspace() for c in value):
            raise ValueError(f"not a host name or address: {value!r}")
        return value

    def check_consistent(self) -> None:
        own, other = (SIM_SERVICE_KEYS, REALSENSE_KEYS) if self.kind == "sim-service" else \
            (REALSENSE_KEYS, SIM_SERVICE_KEYS)
        for key in other:
            if key in self.model_fields_set:
                raise ValueError(f"{key}: not a key of kind = {self.kind!r} (its keys: kind, {', '.join(own)})")
        if self.kind == "realsense":
            super().check_consistent()

    def realsense(self) -> RealSenseConfig:
        """The RealSense driver's settings (kind = "realsense")."""
        given = {k: getattr(self, k) for k in RealSenseConfig.model_fields if k in self.model_fields_set}
        return RealSenseConfig.model_validate(given)


EXTERNAL_NEEDS_CAMERA = (
    "cell.devices: 'external' needs a [camera] section: kind = 'realsense' (an Intel RealSense on the EOAT: serial, "
    "color = true, ...; docs/camera.md) or kind = 'sim-service' (the simulated cell's camera and perception served "
    "by `cellctl devices --sim`: host, port, e.g. [camera] kind = \"sim-service\", host = \"127.0.0.1\", port = 4850)")


class RunFTConfig(FTConfig):
    """[ft] of a run: the driver's FTConfig with the staleness window a force-guarded motion can live with.

    A guarded motion runs blind for up to stale_after_s after the last F/T sample before the stream is stale and
    the motion halted: at most 1.0 s (1000 missed samples at 1 kHz; a stow primitive moves well under that
    long unwatched). At least 0.01 s: ten sample periods at 1 kHz, so scheduling jitter does not flap it.
    """

    stale_after_s: float = Field(default=0.05, ge=0.01, le=1.0)


class PerceptionSection(_Section):
    """[perception]: which perception the simulated cell uses, the learned models' files (docs/models.md) and how
    onnxruntime runs them.

    mode: "learned" (default), the models on camera frames alone; "oracle", the simulator's labels (for ablation).
    segmenter, pick, embedding: .onnx files (a relative path is taken from the working directory; unset: the
    shipped model in models/), each checked against its contract when it is loaded. provider: an execution
    provider this onnxruntime has (another is refused, naming those it has); intra_op_threads: onnxruntime's
    threads per session (the cores are shared with the force reflex: 1 by default). catalogue: the FC's product
    reference images as a directory (`cellctl.fc.catalogue`, docs/catalogue.md; `cellctl catalogue export` writes
    the simulated FC's); a pick run with a RealSense camera needs it, the simulated cell brings its own.
    """

    mode: Literal["learned", "oracle"] = "learned"
    catalogue: Path | None = None  # the FC's product images (docs/catalogue.md): a pick run on a real camera
    segmenter: Path | None = None
    pick: Path | None = None
    embedding: Path | None = None
    provider: str = Field(CPU, min_length=1, max_length=100)
    intra_op_threads: int = Field(1, ge=1, le=MAX_THREADS)

    @field_validator("segmenter", "pick", "embedding", "catalogue")
    @classmethod
    def _model_path(cls, value: Path | None) -> Path | None:
        if value is not None and "\x00" in str(value):
            raise ValueError("a path cannot contain a NUL character")
        return value

    @field_validator("provider")
    @classmethod
    def _available(cls, value: str) -> str:  # a given provider only: the default loads no onnxruntime
        try:
            return check_provider(value)
        except ModelError as exc:
            raise ValueError(str(exc)) from None

    def session_settings(self) -> SessionSettings:
        return SessionSettings(self.provider, self.intra_op_threads)


class RunConfig(_Section):
    cell: CellSection = CellSection()
    log: LogSection = LogSection()
    sim: SimSection = SimSection()
    plc: PlcConfig = PlcConfig()
    robot: RobotConfig = RobotConfig()
    ft: RunFTConfig = RunFTConfig()
    camera: CameraConfig = CameraConfig()  # used with devices = "external" only, and there it must be given
    fc: FcConfig = FcConfig()
    perception: PerceptionSection = PerceptionSection()

    @model_validator(mode="after")
    def _external_needs_camera(self) -> RunConfig:
        if self.cell.devices == "external" and "camera" not in self.model_fields_set:
            raise ValueError(EXTERNAL_NEEDS_CAMERA)
        return self


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _quoted(key: str) -> str:
    # As a TOML (and JSON) string; what would not print (a line break, NEL, a control) is escaped.
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in json.dumps(key, ensure_ascii=False))


def _where(loc: tuple[int | str, ...]) -> str:
    # A key that is not a bare TOML key (empty, dotted, spaced) is quoted as in TOML: the dotted path stays whole.
    parts = (str(p) if isinstance(p, int) or _BARE_KEY.fullmatch(p) else _quoted(p) for p in loc)
    return ".".join(parts) or "(top level)"


# A model-level validator's error has the section as its location; its message starts with the field it is
# about ("halt_hedge_s: must be shorter than halt_timeout_s"; across sections "cell.devices: ..."), which becomes
# part of the dotted key.
_FIELD_FIRST = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*): (.+)", re.DOTALL)


def _line(name: str, err: Any) -> str:
    loc, msg = tuple(err["loc"]), err["msg"]
    if err["type"] == "value_error":
        text = str(err.get("ctx", {}).get("error", msg))
        m = _FIELD_FIRST.fullmatch(text)
        if m is not None:
            loc, msg = (*loc, *m[1].split(".")), m[2]
        else:
            msg = text
    return f"{name}: {_where(loc)}: {msg}"


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
        lines = [_line(name, e) for e in exc.errors(include_url=False)]
        raise ConfigError("\n".join(lines)) from None
