"""helpers.cube: a broken COG among the scenes is skipped and named; one-pixel reads.

Fast tests on tiny COGs written to tmp with rasterio. The same behaviour on copies of
the generated catalogue's items is checked in tests/test_notebook03.py.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
import odc.stac
import pystac
import pytest
import rasterio
from rasterio.transform import from_origin

from helpers.cube import (
    SkippedScenesWarning,
    first_scene_per_day,
    pixel_geobox,
    pixel_values,
    reporting_read_failures,
    solar_day,
)

X0, Y0, RES, SIZE = 585_000, 3_996_000, 20, 256


def _cog(path: Path, value: int | np.ndarray, res: float = RES) -> None:
    data = np.full((SIZE, SIZE), value, dtype="uint16") if np.isscalar(value) else value
    with rasterio.open(
        path, "w", driver="COG", width=SIZE, height=SIZE, count=1, dtype="uint16",
        crs="EPSG:32635", transform=from_origin(X0, Y0, res, res), nodata=0, blocksize=128,
        overview_resampling="average",
    ) as dst:
        dst.write(data, 1)


def _item(item_id: str, day: int, href: Path, res: float = RES) -> pystac.Item:
    from datetime import datetime, timezone

    from pyproj import Transformer

    to_lon_lat = Transformer.from_crs(32635, 4326, always_xy=True)
    west, south, east, north = to_lon_lat.transform_bounds(X0, Y0 - SIZE * res, X0 + SIZE * res, Y0)
    lon_lat_box = [west - 0.01, south - 0.01, east + 0.01, north + 0.01]  # footprint covers the file
    item = pystac.Item(
        id=item_id,
        geometry={"type": "Polygon", "coordinates": [[
            [lon_lat_box[0], lon_lat_box[1]], [lon_lat_box[2], lon_lat_box[1]],
            [lon_lat_box[2], lon_lat_box[3]], [lon_lat_box[0], lon_lat_box[3]],
            [lon_lat_box[0], lon_lat_box[1]]]]},
        bbox=lon_lat_box,
        datetime=datetime(2023, 8, day, 9, tzinfo=timezone.utc),
        properties={"proj:epsg": 32635},
    )
    item.add_asset(
        "red",
        pystac.Asset(
            href=str(href),
            media_type=pystac.MediaType.COG,
            roles=["data", "reflectance"],
            extra_fields={
                "proj:shape": [SIZE, SIZE],
                "proj:transform": [res, 0, X0, 0, -res, Y0],
                "raster:bands": [{"nodata": 0, "data_type": "uint16"}],
            },
        ),
    )
    return item


def _corrupt_pixels(path: Path) -> None:
    """Keep the COG's header (it still opens) but overwrite every tile with garbage bytes."""
    with rasterio.open(path) as src:
        first_tile = min(
            int(src.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=1))
            for row in range(SIZE // 128)
            for col in range(SIZE // 128)
        )
    data = bytearray(path.read_bytes())
    data[first_tile:] = np.random.default_rng(0).integers(0, 256, len(data) - first_tile, dtype="uint8").tobytes()
    path.write_bytes(bytes(data))


@pytest.fixture
def items_with_a_broken_cog(tmp_path: Path) -> list[pystac.Item]:
    good1, good2, broken = tmp_path / "good1.tif", tmp_path / "good2.tif", tmp_path / "broken.tif"
    _cog(good1, 1000)
    _cog(good2, 2000)
    _cog(broken, 3000)
    _corrupt_pixels(broken)
    return [
        _item("S2A_35SNA_20230817_0_L2A", 17, good1),
        _item("S2B_35SNA_20230822_0_L2A", 22, broken),
        _item("S2A_35SNA_20230827_0_L2A", 27, good2),
    ]


def _load(items, fail_on_error: bool):
    return odc.stac.load(
        items, bands=["red"], groupby="solar_day", chunks={"x": 128, "y": 128},
        crs="EPSG:32635", resolution=RES, x=(X0, X0 + SIZE * RES), y=(Y0 - SIZE * RES, Y0),
        fail_on_error=fail_on_error,
    )


def test_broken_cog_is_skipped_with_a_warning_naming_it(items_with_a_broken_cog) -> None:
    cube = _load(items_with_a_broken_cog, fail_on_error=False)
    with pytest.warns(SkippedScenesWarning) as caught:
        with reporting_read_failures(items_with_a_broken_cog) as failures:
            red = cube.red.compute(scheduler="threads")
    [warning] = [w for w in caught if w.category is SkippedScenesWarning]
    message = str(warning.message)
    assert "S2B_35SNA_20230822_0_L2A" in message and "broken.tif" in message
    assert "1 file(s) of 1 scene(s)" in message
    assert warning.filename == __file__
    assert [(f.item_id, f.band) for f in failures] == [("S2B_35SNA_20230822_0_L2A", "red")]
    # the two good scenes are computed; the broken one is empty (nodata), not garbage
    assert np.all(red.isel(time=0).values == 1000)
    assert np.all(red.isel(time=1).values == 0)
    assert np.all(red.isel(time=2).values == 2000)


def test_report_survives_an_ignore_all_filter_leaked_by_a_worker_thread(items_with_a_broken_cog) -> None:
    """Before Python 3.14, catch_warnings in dask worker threads (rasterio uses it) can race
    and leave ``simplefilter("ignore")`` behind; the report must still reach the learner."""
    cube = _load(items_with_a_broken_cog, fail_on_error=False)
    with pytest.warns(SkippedScenesWarning) as caught:
        filters_before = list(warnings.filters)
        with reporting_read_failures(items_with_a_broken_cog) as failures:
            cube.red.compute(scheduler="threads")
            leak = threading.Thread(target=warnings.simplefilter, args=("ignore",))
            leak.start()
            leak.join()
            assert warnings.filters[0][:3] == ("ignore", None, Warning)  # the leak is real
        assert list(warnings.filters) == filters_before
    assert [w.category for w in caught].count(SkippedScenesWarning) == 1
    assert len(failures) == 1


def test_no_warning_when_every_cog_reads(items_with_a_broken_cog) -> None:
    good = [items_with_a_broken_cog[0], items_with_a_broken_cog[2]]
    cube = _load(good, fail_on_error=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkippedScenesWarning)
        with reporting_read_failures(good) as failures:
            cube.red.compute(scheduler="threads")
    assert failures == []


def test_with_fail_on_error_the_whole_compute_stops(items_with_a_broken_cog) -> None:
    cube = _load(items_with_a_broken_cog, fail_on_error=True)
    with pytest.raises(rasterio.errors.RasterioError):
        cube.red.compute(scheduler="threads")


def test_pixel_geobox_is_the_cube_pixel() -> None:
    geobox = pixel_geobox(585_010, 3_995_010, 20, "EPSG:32635")
    assert geobox.shape == (1, 1)
    assert tuple(geobox.affine)[:6] == (20.0, 0.0, 585_000.0, 0.0, -20.0, 3_995_020.0)


@pytest.mark.parametrize(("x", "y"), [(585_000.5, 3_995_019.5), (585_019, 3_995_001), (585_000, 3_995_000)])
def test_pixel_geobox_of_any_point_in_the_pixel_is_that_pixel(x, y) -> None:
    assert pixel_geobox(x, y, 20, "EPSG:32635") == pixel_geobox(585_010, 3_995_010, 20, "EPSG:32635")


def test_pixel_geobox_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="positive resolution"):
        pixel_geobox(585_010, 3_995_010, 0, "EPSG:32635")
    with pytest.raises(ValueError, match="finite point"):
        pixel_geobox(float("nan"), 3_995_010, 20, "EPSG:32635")


def _footprint_item(item_id: str, when: str, west: float, south: float, east: float, north: float) -> pystac.Item:
    from datetime import datetime

    return pystac.Item(
        id=item_id,
        geometry={"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north],
                                                      [west, north], [west, south]]]},
        bbox=[west, south, east, north],
        datetime=datetime.fromisoformat(when),
        properties={},
    )


def test_first_scene_per_day_keeps_the_first_covering_tile() -> None:
    na = dict(west=27.0, south=36.05, east=28.2, north=37.05)  # 35SNA
    nv = dict(west=27.0, south=35.15, east=28.2, north=36.15)  # 35SNV, overlaps NA in 36.05-36.15
    items = [
        _footprint_item("S2B_35SNV_20230713_0_L2A", "2023-07-13T09:00:30+00:00", **nv),
        _footprint_item("S2B_35SNA_20230713_0_L2A", "2023-07-13T09:00:19+00:00", **na),
        _footprint_item("S2A_35SNV_20230718_0_L2A", "2023-07-18T09:00:29+00:00", **nv),
        _footprint_item("S2A_35SNA_20230718_0_L2A", "2023-07-18T09:00:29+00:00", **na),  # same time: id decides
        _footprint_item("S2A_35SPA_20230718_0_L2A", "2023-07-18T09:00:20+00:00", 28.1, 36.05, 29.3, 37.05),
    ]
    kept = first_scene_per_day(items, lon=27.95, lat=36.10)
    assert [item.id for item in kept] == ["S2B_35SNA_20230713_0_L2A", "S2A_35SNA_20230718_0_L2A"]
    # south of the overlap only 35SNV covers the point
    kept = first_scene_per_day(items, lon=27.95, lat=35.5)
    assert [item.id for item in kept] == ["S2B_35SNV_20230713_0_L2A", "S2A_35SNV_20230718_0_L2A"]


def test_solar_day_shifts_by_longitude() -> None:
    item = _footprint_item("late", "2023-07-13T22:30:00+00:00", 27.0, 36.0, 28.0, 37.0)
    assert str(solar_day(item, lon=28.0)) == "2023-07-14"  # 22:30 UTC is 00:22 solar time at 28 E
    assert str(solar_day(item, lon=-10.0)) == "2023-07-13"


# -- pixel_values: one pixel per file, as the cube has it ------------------------------
@pytest.fixture
def items_at_10m(tmp_path: Path) -> list[pystac.Item]:
    """Two scenes of a 10 m band whose every pixel differs (its 20 m overview averages 2 x 2)."""
    rows, cols = np.indices((SIZE, SIZE))
    items = []
    for day in (13, 18):
        path = tmp_path / f"red_{day}.tif"
        _cog(path, (1 + rows * 3 + cols * 7 + day).astype("uint16"), res=10)
        items.append(_item(f"S2A_35SNA_202308{day}_0_L2A", day, path, res=10))
    return items


def _cube_pixel(items, x, y, resolution, crs, use_overviews=True):
    cube = odc.stac.load(items, bands=["red"], groupby="solar_day", use_overviews=use_overviews,
                         geobox=pixel_geobox(x, y, resolution, crs))
    return cube.red.values[:, 0, 0]


@pytest.mark.parametrize("resolution", [20, 40])
def test_pixel_values_are_the_cube_pixel_from_the_overview(items_at_10m, resolution) -> None:
    x, y = X0 + 31 * resolution + resolution / 2, Y0 - 17 * resolution - resolution / 2
    pixel = pixel_values(items_at_10m, ["red"], x, y, resolution, "EPSG:32635")
    np.testing.assert_array_equal(pixel.red.values, _cube_pixel(items_at_10m, x, y, resolution, "EPSG:32635"))
    # ... and not a 10 m pixel under it: the value comes from the overview (2 x 2 average)
    assert not np.array_equal(pixel.red.values, _cube_pixel(items_at_10m, x, y, resolution, "EPSG:32635", False))
    assert [str(t)[:10] for t in pixel.time.values] == ["2023-08-13", "2023-08-18"]
    assert (float(pixel.x), float(pixel.y)) == (x, y)


def test_pixel_values_off_centre_are_the_pixel_that_contains_the_point(items_at_10m) -> None:
    centre_x, centre_y = X0 + 31 * 20 + 10, Y0 - 17 * 20 - 10
    pixel = pixel_values(items_at_10m, ["red"], centre_x + 7, centre_y - 9, 20, "EPSG:32635")
    np.testing.assert_array_equal(pixel.red.values, _cube_pixel(items_at_10m, centre_x, centre_y, 20, "EPSG:32635"))
    assert (float(pixel.x), float(pixel.y)) == (centre_x, centre_y)


def test_pixel_values_at_the_files_own_resolution(items_at_10m) -> None:
    x, y = X0 + 100 * 10 + 5, Y0 - 60 * 10 - 5
    pixel = pixel_values(items_at_10m, ["red"], x, y, 10, "EPSG:32635")
    with rasterio.open(items_at_10m[1].assets["red"].href) as src:
        assert pixel.red.values[1] == src.read(1)[60, 100]


def test_pixel_values_in_another_utm_zone_are_resampled(items_at_10m) -> None:
    from pyproj import Transformer

    x, y = Transformer.from_crs(32635, 32634, always_xy=True).transform(X0 + 1000, Y0 - 1000)
    x, y = round(x / 20) * 20 + 10, round(y / 20) * 20 + 10
    pixel = pixel_values(items_at_10m, ["red"], x, y, 20, "EPSG:32634")
    assert np.all(pixel.red.values > 0)
    np.testing.assert_array_equal(pixel.red.values, _cube_pixel(items_at_10m, x, y, 20, "EPSG:32634", False))


def test_pixel_values_outside_a_file_are_nodata(items_at_10m) -> None:
    pixel = pixel_values(items_at_10m, ["red"], X0 - 1000 + 10, Y0 - 10, 20, "EPSG:32635")
    assert list(pixel.red.values) == [0, 0]


def test_pixel_values_skip_a_broken_file_and_name_it(items_with_a_broken_cog) -> None:
    x, y = X0 + 50 * RES + RES / 2, Y0 - 50 * RES - RES / 2
    with pytest.warns(SkippedScenesWarning) as caught:
        pixel = pixel_values(items_with_a_broken_cog, ["red"], x, y, RES, "EPSG:32635")
    [warning] = [w for w in caught if w.category is SkippedScenesWarning]
    assert "S2B_35SNA_20230822_0_L2A red" in str(warning.message) and "broken.tif" in str(warning.message)
    assert warning.filename == __file__  # points at the learner's call, not inside the helper
    assert list(pixel.red.values) == [1000, 0, 2000]


def test_pixel_values_say_what_is_missing(items_at_10m) -> None:
    with pytest.raises(KeyError, match="nir"):
        pixel_values(items_at_10m, ["red", "nir"], X0 + 10, Y0 - 10, 20, "EPSG:32635")
    with pytest.raises(ValueError, match="no scenes"):
        pixel_values([], ["red"], X0 + 10, Y0 - 10, 20, "EPSG:32635")
