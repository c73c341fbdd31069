"""Settings of an Intel RealSense camera (`drivers.realsense`): device, streams, the SDK's filters, staleness.

No SDK import here: a configuration loads and validates where pyrealsense2 is not needed.

The filters are the SDK's post-processing blocks. They are always applied in the order the SDK recommends
(librealsense doc/post-processing-filters.md and its rs-post-processing example), whatever order `filters`
lists them in::

    decimation >> threshold >> [depth->disparity] spatial >> temporal [disparity->depth] >> hole_filling

The disparity transform around spatial and temporal is applied when the depth sensor is a stereo sensor (it has
a stereo baseline: the D400 family), as the SDK advises; other sensors filter in the depth domain. A filter's
options (`threshold_max_m`, ...) may be set only when the filter is listed; the defaults are the SDK's.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FilterName = Literal["decimation", "threshold", "spatial", "temporal", "hole_filling"]
FILTER_ORDER: tuple[FilterName, ...] = ("decimation", "threshold", "spatial", "temporal", "hole_filling")

# Each filter's options (the config keys), for "set only when the filter is listed".
FILTER_OPTIONS: dict[FilterName, tuple[str, ...]] = {
    "decimation": ("decimation_magnitude",),
    "threshold": ("threshold_min_m", "threshold_max_m"),
    "spatial": ("spatial_magnitude", "spatial_alpha", "spatial_delta", "spatial_holes_fill"),
    "temporal": ("temporal_alpha", "temporal_delta", "temporal_persistence"),
    "hole_filling": ("hole_filling_mode",),
}
COLOR_OPTIONS = ("color_width", "color_height", "align")

# The threshold filter's own range (rs.threshold_filter: 0 to 16 m).
THRESHOLD_MAX_M = 16.0


class RealSenseConfig(BaseModel):
    """A RealSense camera: which one, its depth (and colour) stream, filters, and when it is stale."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    serial: str | None = Field(None, min_length=1, max_length=64, description="None: the only camera connected")
    # D400 depth modes run from 256x144 to 1280x800; 6 to 90 fps (300 fps at the smallest sizes).
    depth_width: int = Field(640, ge=16, le=4096)
    depth_height: int = Field(480, ge=16, le=4096)
    fps: int = Field(30, ge=1, le=300, description="depth and colour frame rate")
    color: bool = False  # also stream colour (rgb8, same fps) and hand it with each frame, registered to the depth
    color_width: int = Field(640, ge=16, le=4096)
    color_height: int = Field(480, ge=16, le=4096)
    # True: depth is reprojected into the colour camera (the frame has the colour image's size and intrinsics);
    # false: colour is reprojected into the depth camera (the frame keeps the depth stream's). Needs color.
    align: bool = False
    filters: tuple[FilterName, ...] = ()
    decimation_magnitude: int = Field(2, ge=2, le=8)
    threshold_min_m: float = Field(0.15, ge=0.0, le=THRESHOLD_MAX_M)
    threshold_max_m: float = Field(4.0, gt=0.0, le=THRESHOLD_MAX_M)
    spatial_magnitude: int = Field(2, ge=1, le=5)
    spatial_alpha: float = Field(0.5, ge=0.25, le=1.0)
    spatial_delta: int = Field(20, ge=1, le=50)
    spatial_holes_fill: int = Field(0, ge=0, le=5)
    temporal_alpha: float = Field(0.4, ge=0.0, le=1.0)
    temporal_delta: int = Field(20, ge=1, le=100)
    temporal_persistence: int = Field(3, ge=0, le=8)
    hole_filling_mode: int = Field(1, ge=0, le=2, description="0 fill from left, 1 farthest around, 2 nearest")
    # No frame for this long: the camera is stale (an incident; `stale` is true until frames come again).
    stale_after_s: float = Field(1.0, ge=0.05, le=10.0)
    # Stale for this long (after stale_after_s without a frame): close the camera and open it again (by serial),
    # then every this long until it streams again; 0: never.
    reopen_after_s: float = Field(5.0, ge=0.0, le=600.0)

    @field_validator("serial")
    @classmethod
    def _serial_text(cls, value: str | None) -> str | None:
        if value is not None and any(not c.isprintable() or c.isspace() for c in value):
            raise ValueError(f"not a serial number: {value!r}")
        return value

    @field_validator("filters")
    @classmethod
    def _filters_once(cls, value: tuple[FilterName, ...]) -> tuple[FilterName, ...]:
        twice = sorted({f for f in value if value.count(f) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} listed more than once (each filter runs once, in the SDK's "
                             f"order: {', '.join(FILTER_ORDER)})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        self.check_consistent()
        return self

    def check_consistent(self) -> None:
        """Keys that only mean something with another key set; raises ValueError("key: why")."""
        given = self.model_fields_set
        for name, options in FILTER_OPTIONS.items():
            for option in options:
                if option in given and name not in self.filters:
                    raise ValueError(f"{option}: set, but the {name} filter is not in filters")
        if not self.color:
            for option in COLOR_OPTIONS:
                if option in given:
                    raise ValueError(f"{option}: set, but color is off (write color = true)")
        if "threshold" in self.filters and self.threshold_min_m >= self.threshold_max_m:
            raise ValueError(f"threshold_min_m: {self.threshold_min_m} m must be below threshold_max_m "
                             f"({self.threshold_max_m} m)")

    def ordered_filters(self) -> tuple[FilterName, ...]:
        """The configured filters in the order they run."""
        return tuple(f for f in FILTER_ORDER if f in self.filters)
