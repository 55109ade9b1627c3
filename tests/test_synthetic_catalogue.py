"""Tests on the full generated catalogue (``catalogue`` fixture: builds it when needed).

Expected figures come from the live service as recorded in
``shared/reference/earth-search-and-rhodes.md``, or from physics (NDVI ranges), never
from the generator's own constants.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from pathlib import Path

import geopandas as gpd
import numpy as np
import pystac
import pytest
import rasterio
from pystac.validation.stac_validator import JsonSchemaSTACValidator
from rasterio.enums import Resampling
from shapely.geometry import Point, box, shape

from helpers import synthetic
from helpers.synthetic import scenario

pytestmark = pytest.mark.slow

POINT = Point(27.95, 36.20)
POINT_IDS = [
    "S2A_35SNA_20230827_0_L2A", "S2B_35SNA_20230822_0_L2A", "S2A_35SNA_20230817_0_L2A",
    "S2B_35SNA_20230812_0_L2A", "S2A_35SNA_20230807_0_L2A", "S2B_35SNA_20230802_0_L2A",
    "S2A_35SNA_20230728_0_L2A", "S2B_35SNA_20230723_0_L2A", "S2A_35SNA_20230718_0_L2A",
    "S2B_35SNA_20230713_0_L2A", "S2A_35SNA_20230708_0_L2A", "S2B_35SNA_20230703_0_L2A",
]
WORKSHOP_ID = "S2A_35SNA_20230827_0_L2A"
BURN_X, BURN_Y = 585_000, 3_995_000
EARTH_SEARCH_EXTENSIONS = {"processing", "grid", "raster", "view", "projection", "mgrs", "eo"}


@pytest.fixture(scope="module")
def items(catalogue: Path) -> list[pystac.Item]:
    paths_ = sorted((catalogue / "stac" / "items").glob("*.json"))
    return [pystac.Item.from_file(str(p)) for p in paths_]


@pytest.fixture(scope="module")
def by_id(items) -> dict[str, pystac.Item]:
    return {it.id: it for it in items}


def search(items, geom, start="2023-07-01", end="2023-08-31", max_cloud=None) -> list[pystac.Item]:
    """What a STAC API search does: intersects + datetime + query, newest first."""
    t0 = dt.datetime.fromisoformat(start).replace(tzinfo=dt.timezone.utc)
    t1 = dt.datetime.fromisoformat(end).replace(tzinfo=dt.timezone.utc) + dt.timedelta(days=1)
    hits = [it for it in items if shape(it.geometry).intersects(geom) and t0 <= it.datetime < t1
            and (max_cloud is None or it.properties["eo:cloud_cover"] < max_cloud)]
    return sorted(hits, key=lambda it: it.datetime, reverse=True)


def asset_path(item: pystac.Item, key: str) -> Path:
    return Path(item.assets[key].get_absolute_href())


def read20(item: pystac.Item, key: str) -> np.ndarray:
    """A band on the 20 m grid (10 m bands through their first overview)."""
    with rasterio.open(asset_path(item, key)) as src:
        return src.read(1, out_shape=(5490, 5490), resampling=Resampling.nearest)


def test_up_to_date_after_the_build(catalogue):
    assert synthetic.is_up_to_date(catalogue)


def test_point_search_matches_the_workshop(items):
    assert [it.id for it in search(items, POINT)] == POINT_IDS
    assert len(search(items, POINT, max_cloud=1)) == 11


def test_island_bbox_search_matches_the_workshop(items, catalogue):
    aoi = gpd.read_file(catalogue / "rhodes.gpkg")
    hits = search(items, box(*aoi.total_bounds))
    assert len(hits) == 73
    assert {it.properties["grid:code"] for it in hits} == {"MGRS-35SNA", "MGRS-35SNV", "MGRS-35SPA", "MGRS-35SPV"}
    orbits = {it.properties["s2:product_uri"].split("_")[4] for it in hits}
    assert orbits == {"R107", "R007"}


def test_odc_stac_groups_the_island_items_into_25_solar_days(items, catalogue):
    import odc.stac

    aoi = gpd.read_file(catalogue / "rhodes.gpkg")
    ds = odc.stac.load(items, bands=["red"], groupby="solar_day", chunks={},
                       resolution=20, bbox=tuple(aoi.total_bounds))
    assert ds.sizes["time"] == 25
    # the workshop's cube: about 2567 x 3255 pixels at 20 m
    assert abs(ds.sizes["x"] - 2567) < 60 and abs(ds.sizes["y"] - 3255) < 60


def test_items_validate_against_the_core_schema_offline(items):
    """pystac ships the STAC 1.1.0 core schemas; extension schemas would need the
    network, so their fields are checked by hand below."""
    validator = JsonSchemaSTACValidator()
    for it in items:
        validator.validate_core(it.to_dict(), pystac.STACObjectType.ITEM, "1.1.0", it.id)


def test_items_carry_earth_search_fields(items, catalogue):
    for it in items:
        # the raw JSON: pystac migrates projection v1.1 (proj:epsg) to v2 (proj:code) on read
        raw = json.loads((catalogue / "stac" / "items" / f"{it.id}.json").read_text())
        names = {u.split("/")[3] for u in raw["stac_extensions"]}
        assert names == EARTH_SEARCH_EXTENSIONS
        p = raw["properties"]
        assert p["proj:epsg"] == 32635 and p["constellation"] == "sentinel-2"
        assert p["grid:code"] == f"MGRS-{p['mgrs:utm_zone']}{p['mgrs:latitude_band']}{p['mgrs:grid_square']}"
        assert p["s2:processing_baseline"] == "05.09"
        assert p["earthsearch:boa_offset_applied"] is True
        assert 0 <= p["eo:cloud_cover"] <= 100
        assert 0 < p["view:sun_elevation"] < 90 and 0 <= p["view:sun_azimuth"] < 360
        assert set(it.assets) == {"blue", "green", "red", "nir", "swir22", "scl", "visual", "thumbnail"}
        for key in ("blue", "green", "red", "nir", "swir22"):
            rb = it.assets[key].extra_fields["raster:bands"][0]
            assert (rb["scale"], rb["offset"], rb["nodata"], rb["data_type"]) == (0.0001, -0.1, 0, "uint16")
            assert it.assets[key].extra_fields["eo:bands"][0]["common_name"] == key
            assert "data" in it.assets[key].roles
        assert it.assets["thumbnail"].media_type == "image/jpeg"
        assert it.collection_id == "sentinel-2-l2a"


def test_workshop_item_has_the_live_properties(by_id):
    it = by_id[WORKSHOP_ID]
    assert it.datetime == dt.datetime(2023, 8, 27, 9, 0, 21, 327000, tzinfo=dt.timezone.utc)
    assert it.properties["eo:cloud_cover"] == pytest.approx(0.955362)
    assert it.properties["s2:nodata_pixel_percentage"] == pytest.approx(12.146)
    assert it.geometry["coordinates"][0][:5] == [[27.2904, 37.0462], [27.233, 36.8388], [27.0111, 36.0567],
                                                 [28.2188, 36.0505], [28.2344, 37.0402]]
    assert "_R107_" in it.properties["s2:product_uri"]


def test_every_asset_href_is_relative_and_resolves(items, catalogue):
    for it in items:
        for key, asset in it.assets.items():
            raw = json.loads((catalogue / "stac" / "items" / f"{it.id}.json").read_text())["assets"][key]["href"]
            assert raw.startswith("../../sentinel-s2-l2a-cogs/35/S/")
            assert asset_path(it, key).is_file(), (it.id, key)


def test_workshop_scene_files_for_the_dask_lesson(catalogue, by_id):
    it = by_id[WORKSHOP_ID]
    assert (catalogue / "sentinel2" / "red.tif").samefile(asset_path(it, "red"))
    assert (catalogue / "sentinel2" / "nir.tif").samefile(asset_path(it, "nir"))


def _tiff_layout(path: Path) -> list[tuple[int, int, int]]:
    """(IFD offset, first data offset, last data end) of each image in a classic TIFF.

    A short hand-written reader: GDAL's validate_cloud_optimized_geotiff.py needs the
    osgeo bindings, which the pinned stack does not have.
    """
    data = path.read_bytes()
    assert data[:4] == b"II*\x00", "little-endian classic TIFF expected"
    out, ifd = [], struct.unpack_from("<I", data, 4)[0]
    while ifd:
        (n,) = struct.unpack_from("<H", data, ifd)
        tags = {}
        for i in range(n):
            tag, typ, count, value = struct.unpack_from("<HHII", data, ifd + 2 + 12 * i)
            if tag in (324, 325):  # TileOffsets, TileByteCounts (LONG)
                fmt = "<%dI" % count
                vals = struct.unpack_from(fmt, data, value) if count > 1 else (value,)
                tags[tag] = vals
        offsets, counts = tags[324], tags[325]
        used = [(o, c) for o, c in zip(offsets, counts) if c]
        out.append((ifd, min(o for o, _ in used), max(o + c for o, c in used)))
        (ifd,) = struct.unpack_from("<I", data, ifd + 2 + 12 * n)
    return out


@pytest.mark.parametrize("item_id", [WORKSHOP_ID, "S2A_35SNV_20230830_0_L2A", "S2B_35SPV_20230713_0_L2A"])
def test_rasters_are_cloud_optimized_geotiffs(by_id, item_id):
    it = by_id[item_id]
    for key in ("blue", "green", "red", "nir", "swir22", "scl", "visual"):
        path = asset_path(it, key)
        with rasterio.open(path) as src:
            assert src.driver == "GTiff"
            assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert src.compression.name.upper() == "DEFLATE"
            assert all(b == (1024, 1024) for b in src.block_shapes)
            assert list(src.shape) == it.assets[key].extra_fields["proj:shape"]
            assert list(src.transform)[:6] == it.assets[key].extra_fields["proj:transform"]
            assert src.crs.to_epsg() == 32635 and src.nodata == 0
            assert src.overviews(1) == ([2, 4, 8, 16] if src.width == 10980 else [2, 4, 8])
            assert src.count == (3 if key == "visual" else 1)
        layout = _tiff_layout(path)
        first_data = min(d for _, d, _ in layout)
        assert all(ifd < first_data for ifd, _, _ in layout), "IFDs must come before the data"
        full, overviews = layout[0], layout[1:]
        assert all(ov_end <= full[1] for _, _, ov_end in overviews), "overview data first"


def test_cloud_cover_is_measured_on_the_scl(items):
    for it in items:
        with rasterio.open(asset_path(it, "scl")) as src:
            scl = src.read(1)
        counts = np.bincount(scl.ravel(), minlength=12)
        valid = counts[1:].sum()
        cloud = counts[[8, 9, 10]].sum() / valid * 100
        assert it.properties["eo:cloud_cover"] == pytest.approx(cloud, abs=0.1), it.id
        assert it.properties["s2:water_percentage"] == pytest.approx(counts[6] / valid * 100, abs=0.1)
        assert it.properties["s2:cloud_shadow_percentage"] == pytest.approx(counts[3] / valid * 100, abs=0.1)
        assert it.properties["s2:nodata_pixel_percentage"] == pytest.approx(counts[0] / scl.size * 100, abs=0.1)


def test_clouds_and_shadows_show_in_reflectance_and_scl(by_id):
    it = by_id[WORKSHOP_ID]
    scl = read20(it, "scl")
    blue = read20(it, "blue").astype(float) / 10000
    clear_land = np.isin(scl, [4, 5])
    assert (scl == 9).any() and (scl == 8).any() and (scl == 3).any()
    assert blue[scl == 9].mean() > 0.35 > blue[clear_land].mean()
    assert blue[scl == 3].mean() < blue[scl == 6].mean()  # shadows darker than open sea


def test_nodata_agrees_with_the_footprint(items):
    rng = np.random.default_rng(1)
    for it in items:
        geom = scenario.to_utm(shape(it.geometry))
        inner, outer = geom.buffer(-400), geom.buffer(400)
        x0, y0 = it.assets["scl"].extra_fields["proj:transform"][2], it.assets["scl"].extra_fields["proj:transform"][5]
        with rasterio.open(asset_path(it, "scl")) as src:
            scl = src.read(1)
        rows, cols = rng.integers(0, 5490, 500), rng.integers(0, 5490, 500)
        for r, c in zip(rows, cols):
            p = Point(x0 + (c + 0.5) * 20, y0 - (r + 0.5) * 20)
            if inner.contains(p):
                assert scl[r, c] != 0, (it.id, r, c)
            elif not outer.contains(p):
                assert scl[r, c] == 0, (it.id, r, c)


def test_the_10m_bands_share_the_nodata_mask(by_id):
    it = by_id[WORKSHOP_ID]
    with rasterio.open(asset_path(it, "red")) as red, rasterio.open(asset_path(it, "nir")) as nir:
        r, n = red.read(1), nir.read(1)
    assert np.array_equal(r == 0, n == 0)
    assert (r == 0).mean() * 100 == pytest.approx(it.properties["s2:nodata_pixel_percentage"], abs=0.01)


def _ndvi_at(item: pystac.Item, x: float, y: float) -> tuple[float, int]:
    vals = {}
    for key in ("red", "nir", "scl"):
        with rasterio.open(asset_path(item, key)) as src:
            vals[key] = next(src.sample([(x, y)]))[0]
    red, nir = vals["red"] / 10000, vals["nir"] / 10000
    return (nir - red) / (nir + red), int(vals["scl"])


def test_burn_scar_at_the_check_point(by_id, catalogue):
    before, scl_before = _ndvi_at(by_id["S2B_35SNA_20230713_0_L2A"], BURN_X, BURN_Y)
    after, scl_after = _ndvi_at(by_id[WORKSHOP_ID], BURN_X, BURN_Y)
    assert before > 0.4 and scl_before == 4
    assert 0.0 <= after <= 0.15 and scl_after in (4, 5)  # burned land is not masked by SCL
    truth = gpd.read_file(catalogue / "burn_scar_truth.gpkg")
    assert truth.crs.to_epsg() == 32635 and len(truth) == 1
    assert truth.geometry[0].contains(Point(BURN_X, BURN_Y))
    assert truth["area_km2"][0] == pytest.approx(truth.geometry[0].area / 1e6, rel=1e-3)
    assert 80 < truth["area_km2"][0] < 250


def test_burn_scar_grows_between_18_and_27_july(by_id, catalogue):
    truth = gpd.read_file(catalogue / "burn_scar_truth.gpkg").geometry[0]
    minx, miny, maxx, maxy = truth.bounds
    burned = []
    for day in ("20230713", "20230718", "20230723", "20230728", "20230827"):
        it = by_id[f"S2{'B' if day in ('20230713', '20230723') else 'A'}_35SNA_{day}_0_L2A"]
        with rasterio.open(asset_path(it, "red")) as rs, rasterio.open(asset_path(it, "nir")) as ns, \
                rasterio.open(asset_path(it, "scl")) as ss:
            win = rasterio.windows.from_bounds(minx, max(miny, 3_990_240), maxx, maxy, rs.transform)
            red = rs.read(1, window=win, out_shape=(int(win.height) // 2, int(win.width) // 2)).astype(float)
            nir = ns.read(1, window=win, out_shape=red.shape).astype(float)
            scl = ss.read(1, window=rasterio.windows.from_bounds(*rs.window_bounds(win), ss.transform), out_shape=red.shape)
        ndvi = (nir - red) / np.maximum(nir + red, 1)
        # land only (SCL 4, 5): charred ground at NDVI ~0.03 reads a little below 0 under
        # the workshop scene's sensor noise, so no lower bound
        burned.append(int(((ndvi < 0.16) & np.isin(scl, [4, 5])).sum()))
    b13, b18, b23, b28, b827 = burned
    assert b18 <= b13 * 1.2 + 50 and b13 < b23 < b28
    assert b827 == pytest.approx(b28, rel=0.1)


def test_land_physics(by_id):
    it = by_id["S2B_35SNA_20230713_0_L2A"]
    scl = read20(it, "scl")
    red = read20(it, "red").astype(float) / 10000
    nir = read20(it, "nir").astype(float) / 10000
    valid = (scl > 0) & (red > 0)  # the 10 m overview and the SCL may differ on the swath edge
    ndvi = np.where(valid, (nir - red) / np.maximum(nir + red, 1e-6), np.nan)
    veg = ndvi[scl == 4]
    assert veg.size > 100_000 and veg.min() >= 0.3 and veg.max() <= 0.8
    assert np.nanmax(ndvi[scl == 6]) < 0  # open sea
    soil = ndvi[scl == 5]
    assert soil.size > 1_000 and soil.min() > 0.0
    assert (red[valid] > 0).all() and (red[valid] < 1).all()


def test_aoi_is_one_polygon_in_wgs84(catalogue):
    aoi = gpd.read_file(catalogue / "rhodes.gpkg")
    assert len(aoi) == 1 and aoi.crs.to_epsg() == 4326
    assert aoi.geometry[0].geom_type == "Polygon"
    assert 1300 < aoi.to_crs(32635).area[0] / 1e6 < 1550
    assert aoi.geometry[0].contains(POINT)


def test_collection_describes_the_items(catalogue, items):
    col = pystac.Collection.from_file(str(catalogue / "stac" / "collection.json"))
    assert col.id == "sentinel-2-l2a"
    bbox = col.extent.spatial.bboxes[0]
    for it in items:
        assert bbox[0] <= it.bbox[0] and it.bbox[2] <= bbox[2]
    assert set(col.extra_fields["item_assets"]) == set(items[0].assets)
    JsonSchemaSTACValidator().validate_core(col.to_dict(), pystac.STACObjectType.COLLECTION, "1.1.0", col.id)


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_gives_the_same_bytes(catalogue, tmp_path):
    """Rebuild two items (one per orbit) and the vector files from the default seed:
    every file must equal the catalogue's byte for byte."""
    plan = [a for a in scenario.schedule() if a.item_id in (WORKSHOP_ID, "S2B_35SNV_20230726_0_L2A")]
    assert len(plan) == 2
    synthetic.build(tmp_path, acquisitions=plan, workers=1)
    assert not synthetic.is_up_to_date(tmp_path)  # a partial build writes no stamp
    assert not list(tmp_path.rglob("*.part"))
    compared = 0
    for acq in plan:
        folder = Path("sentinel-s2-l2a-cogs") / acq.cog_dir
        for f in sorted((tmp_path / folder).iterdir()):
            assert _digest(f) == _digest(catalogue / folder / f.name), f
            compared += 1
        item = Path("stac/items") / f"{acq.item_id}.json"
        assert _digest(tmp_path / item) == _digest(catalogue / item)
        compared += 1
    for name in ("rhodes.gpkg", "burn_scar_truth.gpkg"):
        assert _digest(tmp_path / name) == _digest(catalogue / name), name
    assert compared == 2 * 8 + 2


def test_another_seed_gives_another_landscape(catalogue, tmp_path):
    plan = [a for a in scenario.schedule() if a.item_id == "S2B_35SPV_20230713_0_L2A"]
    synthetic.build(tmp_path, seed=synthetic.DEFAULT_SEED + 1, acquisitions=plan, workers=1)
    rel = Path("sentinel-s2-l2a-cogs") / plan[0].cog_dir / "B04.tif"
    assert _digest(tmp_path / rel) != _digest(catalogue / rel)


def test_workshop_scene_weighs_like_a_real_one(by_id):
    """Real Sentinel-2 10 m bands are ~240 MB on disk (noise defeats DEFLATE); the
    workshop scene's must be of that order, the other scenes stay small (build budget)."""
    for key in ("blue", "green", "red", "nir"):
        size = asset_path(by_id[WORKSHOP_ID], key).stat().st_size
        assert 150e6 <= size <= 240e6, (key, size)
    assert asset_path(by_id["S2B_35SNA_20230822_0_L2A"], "red").stat().st_size < 30e6


def test_workshop_scene_noise_keeps_classes_apart(by_id):
    """Noise does not blur the physics: open sea keeps negative NDVI almost everywhere
    and vegetation (SCL 4) stays in 0.3-0.8 at its 0.1 and 99.9 percentiles."""
    it = by_id[WORKSHOP_ID]
    scl = read20(it, "scl")
    red = read20(it, "red").astype(float)
    nir = read20(it, "nir").astype(float)
    ok = (scl > 0) & (red > 0)
    ndvi = np.where(ok, (nir - red) / np.maximum(nir + red, 1), np.nan)
    assert (ndvi[scl == 6] < 0).mean() > 0.98
    lo, hi = np.nanpercentile(ndvi[scl == 4], [0.1, 99.9])
    assert lo >= 0.3 and hi <= 0.8
    sea = red[scl == 6]
    assert 10 < sea.std() < 40  # noisy, not a constant look-up value
