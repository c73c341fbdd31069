"""Issue 12, point 5: `cell.devices = "external"` and its `[camera]` section.

External devices are reached at the configured endpoints; the camera `cellctl run` can use is the simulated cell's
(kind = "sim-service", served by `cellctl devices --sim`). Without a [camera] the load fails naming the key and what
is missing; "real" (the old name, which never started a cell) is refused with the new one. Issue 13, point 7:
kind = "realsense" configures the RealSense driver (its keys, bounds and cross-checks below) and how a bin's
view is taken; `cellctl run` refuses at start, in one line, what it could not run on it: the oracle (a real camera
gives no labels), no colour (the models need RGB), a pick run without the FC's catalogue or with a broken one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cellctl.commands.run import run_cell
from cellctl.config import CameraConfig, ConfigError, RunConfig, load_config
from cellctl.workcells.sources import (
    REALSENSE_NEEDS_COLOR,
    REALSENSE_NEEDS_LEARNED_PERCEPTION,
    REALSENSE_PICK_NEEDS_CATALOGUE,
    check_devices,
)
from drivers.realsense_config import RealSenseConfig


def _load(tmp_path: Path, text: str) -> RunConfig:
    path = tmp_path / "cell.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_external_without_a_camera_names_the_missing_section_and_both_kinds(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, '[cell]\ndevices = "external"\n')
    text = str(err.value)
    assert text.startswith(f"{tmp_path / 'cell.toml'}: cell.devices: 'external' needs a [camera] section")
    assert "kind = 'realsense'" in text and "kind = 'sim-service'" in text and "cellctl devices --sim" in text
    assert "\n" not in text  # one error, one line


def test_the_old_name_real_is_refused_with_the_new_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cell\.devices: 'real' is now called 'external'.*devices = \"external\""):
        _load(tmp_path, '[cell]\ndevices = "real"\n')


def test_external_with_a_sim_service_camera_loads(tmp_path: Path) -> None:
    cfg = _load(tmp_path, '[cell]\ndevices = "external"\n[camera]\nkind = "sim-service"\nport = 4851\n'
                          '[plc]\nurl = "opc.tcp://127.0.0.1:4841/cellctl/plc"\n[robot]\nport = 5021\n')
    assert cfg.cell.devices == "external"
    assert cfg.camera == CameraConfig(kind="sim-service", host="127.0.0.1", port=4851, request_timeout_s=10.0)
    assert cfg.plc.url.endswith(":4841/cellctl/plc") and cfg.robot.port == 5021


def test_an_empty_camera_section_is_the_sim_service_on_its_default_port(tmp_path: Path) -> None:
    assert _load(tmp_path, '[cell]\ndevices = "external"\n[camera]\n').camera == CameraConfig()
    assert CameraConfig() == CameraConfig(kind="sim-service", host="127.0.0.1", port=4850)


def test_sim_devices_need_no_camera_and_ignore_one(tmp_path: Path) -> None:
    assert "camera" not in _load(tmp_path, "").model_fields_set
    assert _load(tmp_path, '[camera]\nport = 4999\n').cell.devices == "sim"


def test_a_config_built_in_code_needs_the_camera_given_too() -> None:
    with pytest.raises(ValueError, match="needs a \\[camera\\] section"):
        RunConfig.model_validate({"cell": {"devices": "external"}})
    assert RunConfig.model_validate({"cell": {"devices": "external"}, "camera": {}}).camera.port == 4850


@pytest.mark.parametrize(("body", "key"), [
    ('kind = "usb"', "camera.kind"),
    ('kind = "sim-service"\nserial = "123"', "camera.serial"),  # a realsense key
    ('kind = "sim-service"\nfilters = []', "camera.filters"),
    ('kind = "sim-service"\nport = 0', "camera.port"),
    ('kind = "sim-service"\nport = 65536', "camera.port"),
    ('kind = "sim-service"\nhost = ""', "camera.host"),
    ('kind = "sim-service"\nhost = "local host"', "camera.host"),
    ('kind = "sim-service"\nrequest_timeout_s = inf', "camera.request_timeout_s"),
    ('kind = "sim-service"\nrequest_timeout_s = nan', "camera.request_timeout_s"),
    ('kind = "sim-service"\nrequest_timeout_s = 0.0', "camera.request_timeout_s"),
    ('kind = "sim-service"\nrequest_timeout_s = 1000.0', "camera.request_timeout_s"),
    ('kind = "sim-service"\nzoom = 2', "camera.zoom"),
])
def test_a_bad_camera_section_names_the_key(tmp_path: Path, body: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, f'[cell]\ndevices = "external"\n[camera]\n{body}\n')
    assert str(err.value).startswith(f"{tmp_path / 'cell.toml'}: {key}: "), str(err.value)


REALSENSE = """[cell]
devices = "external"
[camera]
kind = "realsense"
serial = "123456789012"
depth_width = 848
depth_height = 480
fps = 15
color = true
color_width = 1280
color_height = 720
align = true
filters = ["temporal", "threshold", "decimation"]
threshold_max_m = 1.2
decimation_magnitude = 3
temporal_persistence = 0
stale_after_s = 0.5
"""


def test_a_realsense_camera_section_loads_with_every_key(tmp_path: Path) -> None:
    cam = _load(tmp_path, REALSENSE).camera
    assert cam.kind == "realsense"
    rs = cam.realsense()
    assert rs == RealSenseConfig(serial="123456789012", depth_width=848, depth_height=480, fps=15, color=True,
                                 color_width=1280, color_height=720, align=True,
                                 filters=("temporal", "threshold", "decimation"), threshold_max_m=1.2,
                                 decimation_magnitude=3, temporal_persistence=0, stale_after_s=0.5)
    assert rs.ordered_filters() == ("decimation", "threshold", "temporal")  # the SDK's order, whatever the list's
    assert (rs.threshold_min_m, rs.spatial_alpha, rs.hole_filling_mode) == (0.15, 0.5, 1)  # the SDK's defaults


def test_a_bare_realsense_section_is_the_only_camera_at_640x480_30_fps(tmp_path: Path) -> None:
    rs = _load(tmp_path, '[cell]\ndevices = "external"\n[camera]\nkind = "realsense"\n').camera.realsense()
    assert rs == RealSenseConfig()
    assert (rs.serial, rs.depth_width, rs.depth_height, rs.fps, rs.color, rs.filters) == (None, 640, 480, 30,
                                                                                          False, ())


@pytest.mark.parametrize(("body", "key"), [
    ('host = "127.0.0.1"', "camera.host"),  # a sim-service key
    ('request_timeout_s = 5.0', "camera.request_timeout_s"),
    ('serial = ""', "camera.serial"),
    ('serial = "12 34"', "camera.serial"),
    ("depth_width = 0", "camera.depth_width"),
    ("depth_height = 100000", "camera.depth_height"),
    ("fps = 0", "camera.fps"),
    ("fps = 30.5", "camera.fps"),
    ('filters = ["median"]', "camera.filters.0"),
    ('filters = "spatial"', "camera.filters"),
    ('filters = ["spatial", "spatial"]', "camera.filters"),
    ("threshold_max_m = 1.0", "camera.threshold_max_m"),  # the threshold filter is not listed
    ('filters = ["threshold"]\nthreshold_min_m = 2.0\nthreshold_max_m = 1.0', "camera.threshold_min_m"),
    ('filters = ["threshold"]\nthreshold_max_m = 20.0', "camera.threshold_max_m"),
    ('filters = ["decimation"]\ndecimation_magnitude = 1', "camera.decimation_magnitude"),
    ('filters = ["spatial"]\nspatial_alpha = 0.1', "camera.spatial_alpha"),
    ('filters = ["temporal"]\ntemporal_persistence = 9', "camera.temporal_persistence"),
    ('filters = ["hole_filling"]\nhole_filling_mode = 3', "camera.hole_filling_mode"),
    ("color_width = 1280", "camera.color_width"),  # colour is off
    ("align = true", "camera.align"),
    ("color = true\ncolor_height = 8", "camera.color_height"),
    ("stale_after_s = 0.0", "camera.stale_after_s"),
    ("stale_after_s = inf", "camera.stale_after_s"),
    ("stale_after_s = nan", "camera.stale_after_s"),
    ("exposure = 100", "camera.exposure"),
])
def test_a_bad_realsense_section_names_the_key(tmp_path: Path, body: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, f'[cell]\ndevices = "external"\n[camera]\nkind = "realsense"\n{body}\n')
    assert str(err.value).startswith(f"{tmp_path / 'cell.toml'}: {key}: "), str(err.value)
    assert "\n" not in str(err.value)


def test_a_key_of_the_other_kind_is_refused_naming_the_kinds_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, '[cell]\ndevices = "external"\n[camera]\nkind = "realsense"\nport = 4850\n')
    assert "camera.port: not a key of kind = 'realsense' (its keys: kind, serial, depth_width" in str(err.value)


@pytest.mark.anyio
@pytest.mark.parametrize(("extra", "message"), [
    ('[perception]\nmode = "oracle"\n', REALSENSE_NEEDS_LEARNED_PERCEPTION),
    ('[cell]\ntask = "pick"\n', REALSENSE_PICK_NEEDS_CATALOGUE),
])
async def test_cellctl_run_refuses_what_a_realsense_run_cannot_do_at_start_in_one_line(
        tmp_path: Path, extra: str, message: str) -> None:
    text = REALSENSE.replace('[cell]\ndevices = "external"\n', '[cell]\ndevices = "external"\n'
                             + extra.removeprefix("[cell]\n")) if extra.startswith("[cell]") else REALSENSE + extra
    cfg = _load(tmp_path, text + f'[log]\ndir = "{tmp_path / "runs"}"\n')
    with pytest.raises(ConfigError) as err:
        check_devices(cfg)
    assert str(err.value) == message and "\n" not in message
    with pytest.raises(ConfigError, match=message.split(":")[0]):
        await run_cell(cfg)
    assert not (tmp_path / "runs").exists()  # refused before a log (or the store beside it) was made
    check_devices(_load(tmp_path, '[camera]\nkind = "realsense"\n'))  # devices = "sim" ignores [camera]


def test_a_realsense_camera_without_colour_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        check_devices(_load(tmp_path, '[cell]\ndevices = "external"\n[camera]\nkind = "realsense"\n'))
    assert str(err.value) == REALSENSE_NEEDS_COLOR
    check_devices(_load(tmp_path, REALSENSE))  # a stow run with colour: accepted


def test_view_keys_belong_to_the_realsense_kind(tmp_path: Path) -> None:
    cam = _load(tmp_path, REALSENSE + "standoff_mm = 420\nsettle_s = 0.2\nframe_timeout_s = 3\n").camera
    assert (cam.standoff_mm, cam.settle_s, cam.frame_timeout_s) == (420.0, 0.2, 3.0)
    assert "standoff_mm" not in cam.realsense().model_fields_set
    with pytest.raises(ConfigError, match=r"camera\.standoff_mm: not a key of kind = 'sim-service'"):
        _load(tmp_path, '[cell]\ndevices = "external"\n[camera]\nkind = "sim-service"\nstandoff_mm = 300\n')
    with pytest.raises(ConfigError, match=r"camera\.standoff_mm"):
        _load(tmp_path, REALSENSE + "standoff_mm = 20\n")
