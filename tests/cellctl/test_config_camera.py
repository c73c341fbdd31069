"""Issue 12, point 5: `cell.devices = "external"` and its `[camera]` section.

External devices are reached at the configured endpoints; the EOAT camera has no driver yet, so the only camera is
the simulated cell's (kind = "sim-service", served by `cellctl devices --sim`). Without a [camera] the load fails
naming the key and what is missing; "real" (the old name, which never started a cell) is refused with the new one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cellctl.config import CameraConfig, ConfigError, RunConfig, load_config


def _load(tmp_path: Path, text: str) -> RunConfig:
    path = tmp_path / "cell.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_external_without_a_camera_names_the_missing_section_and_the_only_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, '[cell]\ndevices = "external"\n')
    text = str(err.value)
    assert text.startswith(f"{tmp_path / 'cell.toml'}: cell.devices: 'external' needs a [camera] section")
    assert "kind, host, port" in text and "kind = 'sim-service'" in text and "cellctl devices --sim" in text
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
    ('kind = "realsense"', "camera.kind"),  # no camera driver yet
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
