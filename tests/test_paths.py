"""helpers.paths: where the data is, and what a learner is told when it is not there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.transform

from helpers import paths


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setattr(paths, "STAC_DIR", tmp_path / "stac")
    monkeypatch.setattr(paths, "WORKSHOP_SCENE_DIR", tmp_path / "sentinel2")
    return tmp_path


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def _band(path: Path) -> Path:
    """A small tiled band with noise, so that its blocks fill most of the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.random.default_rng(4).integers(1, 10000, (512, 512), dtype=np.uint16)
    with rasterio.open(
        path, "w", driver="GTiff", width=512, height=512, count=1, dtype="uint16",
        tiled=True, blockxsize=256, blockysize=256, compress="deflate",
        crs="EPSG:32635", transform=rasterio.transform.from_origin(500_000, 4_000_000, 10, 10),
    ) as dst:
        dst.write(values, 1)
    return path


def test_the_workshop_scene_files_are_the_item_and_both_bands(data_dir: Path) -> None:
    item = data_dir / "stac" / "items" / "S2A_35SNA_20230827_0_L2A.json"
    red, nir = data_dir / "sentinel2" / "red.tif", data_dir / "sentinel2" / "nir.tif"
    _touch(item)
    _band(red), _band(nir)
    assert paths.workshop_scene_files() == {"item": item, "red": red, "nir": nir}


def test_no_data_at_all_says_to_run_make_data(data_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"offline data is missing .*run `make data`.*online.*read_from = \"stac\", api_url = \"https://earth-search"):
        paths.workshop_scene_files()


def test_a_missing_band_is_named(data_dir: Path) -> None:
    _touch(data_dir / "stac" / "items" / "S2A_35SNA_20230827_0_L2A.json")
    _touch(data_dir / "sentinel2" / "red.tif")
    with pytest.raises(FileNotFoundError) as raised:
        paths.workshop_scene_files()
    message = str(raised.value)
    assert str(data_dir / "sentinel2" / "nir.tif") in message
    assert "red.tif" not in message and ".json" not in message


def test_a_band_cut_short_is_named_before_any_read(data_dir: Path) -> None:
    _touch(data_dir / "stac" / "items" / "S2A_35SNA_20230827_0_L2A.json")
    _band(data_dir / "sentinel2" / "red.tif")
    nir = _band(data_dir / "sentinel2" / "nir.tif")
    whole = nir.stat().st_size
    with nir.open("r+b") as file:
        file.truncate(whole // 2)
    with pytest.raises(paths.DamagedFileError, match=f"{nir} is cut short: .* the file has {whole // 2:,} bytes.*`make data`"):
        paths.workshop_scene_files()


def test_a_band_that_is_not_a_geotiff_is_named(data_dir: Path) -> None:
    _touch(data_dir / "stac" / "items" / "S2A_35SNA_20230827_0_L2A.json")
    _touch(data_dir / "sentinel2" / "red.tif")  # empty, as an interrupted download leaves it
    _band(data_dir / "sentinel2" / "nir.tif")
    with pytest.raises(paths.DamagedFileError, match="red.tif cannot be read as a GeoTIFF .*`make data`"):
        paths.workshop_scene_files()


def test_the_generated_workshop_scene_is_complete() -> None:
    for band in ("red", "nir"):
        paths.check_geotiff_complete(paths.WORKSHOP_SCENE_DIR / f"{band}.tif")


def test_an_empty_output_dir_is_the_projects_outputs_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(paths, "OUTPUTS_DIR", tmp_path / "build" / "outputs")
    monkeypatch.chdir(tmp_path)  # not where the notebooks are: the default does not depend on it
    assert paths.output_folder("") == tmp_path / "build" / "outputs"
    assert (tmp_path / "build" / "outputs").is_dir()


def test_a_given_output_dir_is_taken_as_given(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert paths.output_folder("results/run1") == Path("results/run1")
    assert (tmp_path / "results" / "run1").is_dir()
    monkeypatch.setenv("HOME", str(tmp_path))
    assert paths.output_folder("~/mine") == tmp_path / "mine"
