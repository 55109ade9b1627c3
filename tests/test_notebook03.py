"""Notebook 03 on the generated catalogue: burned-area accuracy, the point NDVI against the
COGs read directly, another area and date range, an area without scenes, a broken COG.

The expected values come from the generated data itself (the true scar polygon and its
``area_km2``, the COG pixels read with plain rasterio), never from the notebook's code.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pystac
import pytest
import rasterio
from papermill.exceptions import PapermillExecutionError
from pyproj import Transformer
from shapely.geometry import Point, box, shape

from helpers import notebooks, paths
from tests.server_fixtures import free_port

NOTEBOOK = paths.ROOT / "notebooks" / "03-data-cubes.ipynb"
LINE = re.compile(r"^burned area: \d+\.\d km2 \(truth \d+\.\d km2\), IoU \d\.\d\d$")
MASKED_SCL = {0, 1, 3, 6, 8, 9, 10}  # the notebook's default: workshop's 3 6 8 9 10, plus 0 and 1

pytestmark = pytest.mark.slow


def _run(tmp_path: Path, api_url: str, **parameters) -> tuple:
    out_dir = tmp_path / "outputs"
    executed = notebooks.execute(
        NOTEBOOK,
        tmp_path / NOTEBOOK.name,
        parameters={"api_url": api_url, "output_dir": str(out_dir), **parameters},
    )
    return executed, out_dir


@pytest.fixture(scope="module")
def default_run(api: str, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    return _run(tmp_path_factory.mktemp("nb03-default"), api)


def _truth() -> gpd.GeoDataFrame:
    return gpd.read_file(paths.BURN_SCAR_TRUTH_FILE)


def test_burned_area_line_and_accuracy(default_run) -> None:
    executed, out_dir = default_run
    lines = [line for line in notebooks.printed(executed) if line.startswith("burned area:")]
    assert lines and LINE.match(lines[0]), lines
    result = json.loads((out_dir / "burned_area.json").read_text())
    truth_km2 = float(_truth()["area_km2"].sum())
    assert result["truth_area_km2"] == pytest.approx(truth_km2)
    assert abs(result["area_km2"] - truth_km2) <= 0.05 * truth_km2, result
    assert result["iou"] >= 0.85, result
    assert f"(truth {truth_km2:.1f} km2)" in lines[0]


def test_threshold_matters(default_run) -> None:
    # the scar burned unevenly: a moderate-severity threshold loses the lightly burned
    # edges, one below low severity maps the summer drying of the whole island
    executed, _ = default_run
    truth_km2 = float(_truth()["area_km2"].sum())
    found = {}
    for line in notebooks.printed(executed):
        match = re.match(r"^threshold (\d\.\d+): burned area: (\d+\.\d) km2 .*IoU (\d\.\d\d)$", line)
        if match:
            found[float(match[1])] = (float(match[2]), float(match[3]))
    assert set(found) == {0.05, 0.27, 0.44}, found
    assert found[0.44][0] < 0.9 * truth_km2 and found[0.44][1] < 0.85, found
    assert found[0.44][0] < found[0.27][0] < 0.95 * truth_km2, found
    assert found[0.05][0] > 1.5 * truth_km2, found


def _catalogue_items() -> list[pystac.Item]:
    return [pystac.Item.from_file(str(p)) for p in sorted((paths.STAC_DIR / "items").glob("*.json"))]


def _read_pixel(href: str, x: float, y: float, resolution: float) -> int:
    """The DN of the ``resolution``-m pixel centred on (x, y): the 10 m bands' 2x overview."""
    with rasterio.open(href) as src:
        level = None
        if abs(src.res[0] - resolution) > 1e-6:
            factor = int(round(resolution / src.res[0]))
            assert factor in src.overviews(1), f"{href}: no {resolution} m overview"
            level = src.overviews(1).index(factor)
    with rasterio.open(href, **({} if level is None else {"overview_level": level})) as src:
        row, col = src.index(x, y)  # the pixel whose area holds (x, y)
        if not (0 <= row < src.height and 0 <= col < src.width):
            return 0
        return int(src.read(1, window=((row, row + 1), (col, col + 1)))[0, 0])


def _solar_day(item: pystac.Item) -> str:
    lon = shape(item.geometry).centroid.x
    return (item.datetime + timedelta(hours=lon / 15)).date().isoformat()


def test_point_ndvi_equals_ndvi_from_the_cogs(default_run) -> None:
    _, out_dir = default_run
    table = pd.read_csv(out_dir / "ndvi_point.csv")
    x, y = float(table["x"].iloc[0]), float(table["y"].iloc[0])
    lon, lat = Transformer.from_crs(32635, 4326, always_xy=True).transform(x, y)

    by_day: dict[str, list[pystac.Item]] = {}
    for item in _catalogue_items():
        if item.datetime.strftime("%Y-%m") in ("2023-07", "2023-08") and shape(item.geometry).intersects(Point(lon, lat)):
            by_day.setdefault(_solar_day(item), []).append(item)
    expected = {}
    for day, items in sorted(by_day.items()):
        items.sort(key=lambda it: (it.datetime, it.id))  # odc-stac's fusing order: first valid wins
        dn = {}
        for band in ("red", "nir", "scl"):
            values = [_read_pixel(it.assets[band].get_absolute_href(), x, y, 20) for it in items]
            dn[band] = next((v for v in values if v != 0), 0)
        assert all(it.properties["earthsearch:boa_offset_applied"] for it in items)
        if dn["scl"] in MASKED_SCL or dn["red"] == 0 or dn["nir"] == 0:
            continue
        red, nir = dn["red"] / 10_000, dn["nir"] / 10_000  # offset already removed (flag above)
        expected[day] = (nir - red) / (nir + red)

    assert list(table["date"]) == sorted(expected), "clear days differ"
    np.testing.assert_allclose(table["ndvi"].to_numpy(), [expected[d] for d in table["date"]], rtol=1e-5)
    assert len(expected) >= 8  # the point is clear on most of the 12 passes


def test_other_area_and_dates(api: str, tmp_path: Path) -> None:
    # the south of the island around the scar, a shorter period that still spans the fire
    truth = _truth().to_crs(32635)
    west, south, east, north = truth.total_bounds
    area = gpd.GeoDataFrame(geometry=[box(west - 3000, south - 3000, east + 3000, north + 3000)], crs=32635)
    aoi_file = tmp_path / "south.gpkg"
    area.to_crs(4326).to_file(aoi_file)
    executed, out_dir = _run(
        tmp_path, api, aoi_file=str(aoi_file), dates="2023-07-06/2023-08-20",
        date_before="2023-07-08", date_after="2023-08-17",
    )

    days = [line for line in notebooks.printed(executed) if " time steps from " in line]
    assert days and int(days[0].split()[0]) < 25
    table = pd.read_csv(out_dir / "ndvi_point.csv")
    assert table["date"].min() >= "2023-07-06" and table["date"].max() <= "2023-08-20"
    result = json.loads((out_dir / "burned_area.json").read_text())
    assert abs(result["area_km2"] - result["truth_area_km2"]) <= 0.05 * result["truth_area_km2"]
    assert result["iou"] >= 0.85


def test_area_without_scenes_says_so(api: str, tmp_path: Path) -> None:
    sea = gpd.GeoDataFrame(geometry=[box(20.0, 33.0, 20.2, 33.2)], crs=4326)  # Libyan Sea
    aoi_file = tmp_path / "sea.gpkg"
    sea.to_file(aoi_file)
    with pytest.raises(PapermillExecutionError) as failure:
        _run(tmp_path, api, aoi_file=str(aoi_file))
    assert failure.value.ename == "NoScenesFound"
    assert "No scenes found" in failure.value.evalue


def test_a_scheduler_that_does_not_answer_stops_the_notebook_before_the_search(api: str, tmp_path: Path) -> None:
    nobody = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(PapermillExecutionError) as failure:
        _run(tmp_path, api, scheduler=nobody)
    assert failure.value.ename == "SchedulerNotAnswering"
    assert f"no Dask scheduler answered at {nobody}" in failure.value.evalue
    ran = notebooks.code_that_ran(tmp_path / NOTEBOOK.name)
    assert not any("search(" in source for source in ran), "searched the catalogue before checking the scheduler"


def _corrupt_tiles(path: Path) -> None:
    """Keep the COG's header (it still opens) but lose every tile: a truncated download."""
    starts = []
    with rasterio.open(path) as src:
        levels = [None, *range(len(src.overviews(1)))]
    for level in levels:
        with rasterio.open(path, **({} if level is None else {"overview_level": level})) as src:
            starts.append(int(src.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1)))
    # Cut the file where the first tile starts, as an interrupted download would.
    path.write_bytes(path.read_bytes()[: min(starts)])


def test_broken_cog_among_catalogue_items_is_skipped_and_named(catalogue: Path, tmp_path: Path) -> None:
    import odc.stac

    from helpers.cube import SkippedScenesWarning, reporting_read_failures

    wanted = ["S2B_35SNA_20230713_0_L2A", "S2A_35SNA_20230817_0_L2A", "S2A_35SNA_20230827_0_L2A"]
    items = []
    for item in (it for it in _catalogue_items() if it.id in wanted):
        copy = item.clone()
        for key, asset in copy.assets.items():  # absolute paths: the copies live elsewhere
            asset.href = item.assets[key].get_absolute_href()
        items.append(copy)
    assert sorted(it.id for it in items) == sorted(wanted)
    broken_item = next(it for it in items if it.id == "S2A_35SNA_20230817_0_L2A")
    broken = tmp_path / "B04.tif"
    broken.write_bytes(Path(broken_item.assets["red"].href).read_bytes())
    _corrupt_tiles(broken)
    broken_item.assets["red"].href = str(broken)

    def load(fail_on_error: bool):
        return odc.stac.load(
            items, bands=["red"], groupby="solar_day", chunks={"x": 512, "y": 512},
            resolution=20, use_overviews=True, crs="EPSG:32635",
            x=(583_000, 587_000), y=(3_993_000, 3_997_000), fail_on_error=fail_on_error,
        )

    cube = load(fail_on_error=False)
    with pytest.warns(SkippedScenesWarning) as caught:
        with reporting_read_failures(items):
            red = cube.red.compute(scheduler="threads")  # as notebook 03 computes
    [message] = [str(w.message) for w in caught if w.category is SkippedScenesWarning]
    assert "S2A_35SNA_20230817_0_L2A red" in message and str(broken) in message
    days = [str(t)[:10] for t in red.time.values]
    assert days == ["2023-07-13", "2023-08-17", "2023-08-27"]
    assert np.all(red.sel(time="2023-08-17").values == 0)  # skipped: empty, not garbage
    assert np.count_nonzero(red.sel(time="2023-07-13").values) > 0.9 * red.isel(time=0).size
    assert np.count_nonzero(red.sel(time="2023-08-27").values) > 0.9 * red.isel(time=0).size

    with pytest.raises(rasterio.errors.RasterioError):
        load(fail_on_error=True).red.compute(scheduler="threads")

