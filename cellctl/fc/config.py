"""`FcConfig`: the FC-facing OPC UA server's settings (the `[fc]` section of the run configuration).

    [fc]
    host = "127.0.0.1"              # the interface to listen on ("0.0.0.0": all)
    port = 4841                     # 0: an ephemeral port (the server reports the one it got)
    path = "/cellctl/fc"            # endpoint path: opc.tcp://host:port/cellctl/fc
    namespace = "urn:cellctl:fc"    # our namespace URI (the PackML types keep http://opcfoundation.org/UA/PackML/)
    redeliver_after_s = 30.0        # an unacknowledged report's event is sent again after this long
    pending_shown = 100             # the oldest N unacknowledged reports in PendingReports
    refresh_s = 0.1                 # state and counters are pushed at this period
    store = "runs/cellctl-fc.sqlite"  # outbox, pick requests, journal (cellctl.fc.store); unset: beside the logs
    outbox_capacity = 10000         # unacknowledged reports before the cell holds with an alarm (no new task starts)
    max_requests = 10000            # queued pick requests before RequestPick answers BadResourceUnavailable
    nodeset = "cellctl/fc/nodesets/Opc.Ua.PackML.NodeSet2.xml"  # fetched by `make` (scripts/fetch-nodesets.sh)

A bad value raises pydantic's ValidationError naming the key; unknown keys, inf and NaN are refused.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DEFAULT_NODESET", "FcConfig"]

DEFAULT_NODESET = Path(__file__).parent / "nodesets" / "Opc.Ua.PackML.NodeSet2.xml"


class FcConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    host: str = Field("127.0.0.1", min_length=1, max_length=253)
    port: int = Field(4841, ge=0, le=65535, description="0: an ephemeral port")
    path: str = Field("/cellctl/fc", max_length=200)
    namespace: str = Field("urn:cellctl:fc", min_length=1, max_length=200)
    server_name: str = Field("cellctl FC server", min_length=1, max_length=200)
    # >= 1 s: a redelivery storm helps no FC; <= 1 h: an FC that missed an event hears of it again the same shift.
    redeliver_after_s: float = Field(30.0, ge=1.0, le=3600.0)
    pending_shown: int = Field(100, ge=1, le=10_000)
    # 20 ms .. 1 s: the FC sees a state change within one period.
    refresh_s: float = Field(0.1, ge=0.02, le=1.0)
    store: Path = Path("runs/cellctl-fc.sqlite")
    # A shift makes a few thousand reports: 10 000 unacknowledged is an FC that stopped acknowledging, not a slow one.
    outbox_capacity: int = Field(10_000, ge=1, le=1_000_000)
    max_requests: int = Field(10_000, ge=1, le=1_000_000)
    nodeset: Path = DEFAULT_NODESET

    @field_validator("host", "path", "namespace")
    @classmethod
    def _no_spaces(cls, value: str) -> str:
        if not value.isprintable() or any(c.isspace() for c in value):
            raise ValueError("must be printable, without spaces")
        return value

    @field_validator("server_name")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("must be printable")
        return value

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError("an endpoint path starts with '/' (or is empty)")
        return value

    @field_validator("store", "nodeset")
    @classmethod
    def _usable_path(cls, value: Path) -> Path:
        if "\x00" in str(value):
            raise ValueError("a path cannot contain a NUL character")
        return value

    def url(self, port: int | None = None) -> str:
        """The endpoint URL (with `port` instead of the configured one, e.g. the ephemeral port it got)."""
        return f"opc.tcp://{self.host}:{self.port if port is None else port}{self.path}"
