"""helpers.paths: where the data is, and what a learner is told when it is not there."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import paths


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setattr(paths, "STAC_DIR", tmp_path / "stac")
    monkeypatch.setattr(paths, "WORKSHOP_SCENE_DIR", tmp_path / "sentinel2")
    return tmp_path


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_the_workshop_scene_files_are_the_item_and_both_bands(data_dir: Path) -> None:
    item = data_dir / "stac" / "items" / "S2A_35SNA_20230827_0_L2A.json"
    red, nir = data_dir / "sentinel2" / "red.tif", data_dir / "sentinel2" / "nir.tif"
    for path in (item, red, nir):
        _touch(path)
    assert paths.workshop_scene_files() == {"item": item, "red": red, "nir": nir}


def test_no_data_at_all_says_to_run_make_data(data_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"offline data is missing .*run `make data`.*read_from = \"stac\""):
        paths.workshop_scene_files()


def test_a_missing_band_is_named(data_dir: Path) -> None:
    _touch(data_dir / "stac" / "items" / "S2A_35SNA_20230827_0_L2A.json")
    _touch(data_dir / "sentinel2" / "red.tif")
    with pytest.raises(FileNotFoundError) as raised:
        paths.workshop_scene_files()
    message = str(raised.value)
    assert str(data_dir / "sentinel2" / "nir.tif") in message
    assert "red.tif" not in message and ".json" not in message
