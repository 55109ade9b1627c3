"""Unit tests of the offline catalogue generator's pieces (no full build needed)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio import features
from affine import Affine
from shapely.geometry import Point, box

from helpers.synthetic import cog, files, landscape, pipeline, scenario, scene
from helpers.synthetic.__main__ import main

# Figures from shared/reference/earth-search-and-rhodes.md (the live service, 2023)
POINT_IDS = [
    "S2A_35SNA_20230827_0_L2A", "S2B_35SNA_20230822_0_L2A", "S2A_35SNA_20230817_0_L2A",
    "S2B_35SNA_20230812_0_L2A", "S2A_35SNA_20230807_0_L2A", "S2B_35SNA_20230802_0_L2A",
    "S2A_35SNA_20230728_0_L2A", "S2B_35SNA_20230723_0_L2A", "S2A_35SNA_20230718_0_L2A",
    "S2B_35SNA_20230713_0_L2A", "S2A_35SNA_20230708_0_L2A", "S2B_35SNA_20230703_0_L2A",
]
ISLAND_BBOX = (27.68, 35.87, 28.25, 36.46)


@pytest.fixture(scope="module")
def plan() -> list[scenario.Acquisition]:
    return scenario.schedule()


def solar_day(acq: scenario.Acquisition) -> dt.date:
    """odc-stac's rule: UTC time shifted by the footprint centroid's longitude."""
    lon = scenario.footprint(acq).centroid.x
    return (acq.datetime + dt.timedelta(hours=lon * 24 / 360)).date()


def test_schedule_reproduces_the_workshop_counts(plan):
    in_bbox = [a for a in plan if scenario.footprint(a).intersects(box(*ISLAND_BBOX))]
    assert len(plan) == 73 and len(in_bbox) == 73
    assert {a.tile for a in plan} == {"35SNA", "35SNV", "35SPA", "35SPV"}
    assert {a.orbit.name for a in plan} == {"R107", "R007"}
    assert len({solar_day(a) for a in plan}) == 25
    assert scenario.MISSING_ITEM_ID not in {a.item_id for a in plan}


def test_point_search_gives_the_workshop_items_newest_first(plan):
    hits = [a.item_id for a in plan if scenario.footprint(a).intersects(Point(27.95, 36.20))]
    assert hits == POINT_IDS


def test_item_ids_and_times_follow_earth_search(plan):
    for a in plan:
        assert re.fullmatch(r"S2[AB]_35S[NP][AV]_2023(07|08)\d\d_0_L2A", a.item_id)
        assert a.item_id[2] == a.platform[-1].upper()
        assert a.datetime.tzinfo is not None
        hour = a.datetime.hour + a.datetime.minute / 60
        assert 8.9 < hour < 9.3
    assert [a.datetime for a in plan] == sorted((a.datetime for a in plan), reverse=True)
    workshop = next(a for a in plan if a.item_id == "S2A_35SNA_20230827_0_L2A")
    assert workshop.datetime == dt.datetime(2023, 8, 27, 9, 0, 21, 327000, tzinfo=dt.timezone.utc)
    assert workshop.cog_dir == "35/S/NA/2023/8/S2A_35SNA_20230827_0_L2A"


def test_second_orbit_covers_the_west_only(plan):
    r007 = [a for a in plan if a.orbit.name == "R007"]
    assert {a.tile for a in r007} == {"35SNA", "35SNV"}
    assert len({a.date for a in r007}) == 13
    assert all(not scenario.footprint(a).intersects(Point(27.95, 36.20)) for a in r007)
    assert all(a.datetime.minute >= 10 for a in r007)


def test_workshop_footprint_and_nodata_share_match_the_live_item(plan):
    workshop = next(a for a in plan if a.item_id == scenario.WORKSHOP_ITEM_ID)
    coords = list(scenario.footprint(workshop).exterior.coords)[:-1]
    assert coords == [(27.2904, 37.0462), (27.2330, 36.8388), (27.0111, 36.0567),
                      (28.2188, 36.0505), (28.2344, 37.0402)]
    assert scenario.nodata_fraction("R107", "35SNA") * 100 == pytest.approx(12.146, abs=0.01)


@pytest.mark.parametrize("orbit, tile", [("R107", "35SNA"), ("R007", "35SNA"), ("R007", "35SNV"), ("R107", "35SNV")])
def test_valid_pixels_agree_with_the_footprint(plan, orbit, tile):
    acq = next(a for a in plan if a.orbit.name == orbit and a.tile == tile)
    geom = scenario.to_utm(scenario.footprint(acq))
    start, stop = scenario.valid_columns(orbit, tile, 20)
    x0, y0 = scenario.TILE_ORIGINS[tile]
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, 5490, 4000), rng.integers(0, 5490, 4000)
    inner, outer = geom.buffer(-300), geom.buffer(300)
    checked_in = checked_out = 0
    for r, c in zip(rows, cols):
        p = Point(x0 + (c + 0.5) * 20, y0 - (r + 0.5) * 20)
        valid = start[r] <= c < stop[r]
        if inner.contains(p):
            assert valid, (r, c)
            checked_in += 1
        elif not outer.contains(p):
            assert not valid, (r, c)
            checked_out += 1
    assert checked_in > 100


def test_sun_angles_at_a_known_position():
    # 21 June, local solar noon on the Greenwich meridian at 36 N: sun due south,
    # elevation 90 - 36 + 23.44 (the equation of time shifts noon by ~2 minutes)
    azimuth, elevation = scenario.sun_angles(dt.datetime(2023, 6, 21, 12, 2, tzinfo=dt.timezone.utc), 0.0, 36.0)
    assert azimuth == pytest.approx(180, abs=1.0)
    assert elevation == pytest.approx(77.44, abs=0.2)
    # a Rhodes morning overpass: sun in the south-east, well up
    azimuth, elevation = scenario.sun_angles(dt.datetime(2023, 8, 27, 9, 0, tzinfo=dt.timezone.utc), 27.6, 36.5)
    assert 120 < azimuth < 160 and 50 < elevation < 65


def test_scl_statistics_counts_clouds_over_valid_pixels():
    scl = np.array([[0, 0, 4, 4], [4, 6, 8, 9], [10, 3, 5, 6]], dtype=np.uint8)
    stats = scene.scl_statistics(scl)
    # 10 valid pixels, 3 of them cloud (8, 9, 10)
    assert stats["eo:cloud_cover"] == pytest.approx(30.0)
    assert stats["s2:nodata_pixel_percentage"] == pytest.approx(2 / 12 * 100)
    assert stats["s2:vegetation_percentage"] == pytest.approx(30.0)
    assert stats["s2:water_percentage"] == pytest.approx(20.0)
    assert stats["s2:cloud_shadow_percentage"] == pytest.approx(10.0)


def _ndvi(refl: np.ndarray) -> np.ndarray:
    red, nir = refl[..., 2], refl[..., 3]
    return (nir - red) / (nir + red)


def test_spectra_give_plausible_ndvi_and_scl():
    when = dt.datetime(2023, 8, 27, 9, tzinfo=dt.timezone.utc)
    ground = scene.ground_reflectance(when, 1.0, 1.0)
    scl = scene.code_scl(ground).reshape(landscape.N_GROUND, scene.N_STATES)[:, scene.CLEAR]
    land = slice(landscape.LAND0, landscape.VILLAGE0)
    land_ndvi, land_scl = _ndvi(ground[land]), scl[land]
    veg = land_ndvi[land_scl == 4]
    assert veg.size and veg.min() >= 0.3 and veg.max() <= 0.8
    assert land_ndvi[land_scl == 5].max() < 0.35
    burned = ground[landscape.BURNED0:].reshape(landscape.BURN_LEVELS, landscape.VEG_LEVELS,
                                                landscape.SOIL_LEVELS, -1)
    burn = landscape.burn_fraction(np.arange(landscape.BURN_LEVELS))
    charred = _ndvi(burned[burn >= 0.75, 8:])  # moderate-high and high severity over burnable land
    assert charred.min() >= 0.0 and charred.max() <= 0.15
    scorched = _ndvi(burned[(burn > 0.1) & (burn < 0.3), 8:])  # low severity keeps some green
    assert scorched.min() >= 0.1 and np.median(scorched) > 0.25
    unburned = _ndvi(ground[land]).reshape(landscape.VEG_LEVELS, landscape.SOIL_LEVELS)
    assert (_ndvi(burned) <= unburned[None] + 1e-9).all()  # a burn never greens the ground
    assert set(scl[landscape.BURNED0:]) <= {4, 5}
    assert _ndvi(ground[landscape.SEA]) < 0 and scl[landscape.SEA] == 6
    assert scl[landscape.NODATA] == 0
    codes = scene.code_reflectance(ground).reshape(landscape.N_GROUND, scene.N_STATES, -1)
    assert (codes[landscape.LAND0:, scene.HIGH[-1], :4] > 0.4).all()  # opaque cloud is bright
    assert (codes[2:, scene.SHADOW] < codes[2:, scene.CLEAR]).all()


def test_digital_numbers_are_harmonised_reflectance():
    dn = scene.to_dn(np.array([0.0, 0.0312, 0.5]))
    assert dn.tolist() == [0, 312, 5000]  # reflectance = DN / 10000, no +1000 offset
    assert scene.to_tci(np.array([0, 1000, 2000, 9000], dtype=np.uint16)).tolist() == [0, 128, 255, 255]


def test_sky_states_hit_the_cloud_cover_exactly(plan):
    acq = next(a for a in plan if a.item_id == scenario.WORKSHOP_ITEM_ID)
    states = scene.sky_states(acq, 1, 0.955362)
    start, stop = scenario.valid_columns(acq.orbit.name, acq.tile, 20)
    valid = scene.valid_mask(start, stop, 5490)
    cloudy = states >= scene.CIRRUS[0]
    assert not cloudy[~valid].any()
    assert cloudy.sum() / valid.sum() * 100 == pytest.approx(0.955362, abs=1e-4)
    assert (states == scene.SHADOW).sum() > 0
    assert not ((states == scene.SHADOW) & ~valid).any()


def test_cloud_targets_keep_eleven_clear_scenes_at_the_point(plan):
    at_point = [a for a in plan if a.item_id in POINT_IDS]
    targets = {a.item_id: scene.cloud_target(a, pipeline.DEFAULT_SEED) for a in at_point}
    assert sum(t < 1 for t in targets.values()) == 11
    assert targets[scenario.WORKSHOP_ITEM_ID] == 0.955362


def test_fire_progress_spans_18_to_27_july():
    utc = dt.timezone.utc
    assert landscape.fire_progress(dt.datetime(2023, 7, 13, 9, tzinfo=utc)) == 0.0
    assert landscape.fire_progress(dt.datetime(2023, 7, 18, 9, tzinfo=utc)) == 0.0
    assert 0 < landscape.fire_progress(dt.datetime(2023, 7, 23, 9, tzinfo=utc)) < 1
    assert landscape.fire_progress(dt.datetime(2023, 7, 28, 9, tzinfo=utc)) == 1.0


def test_overview_factors_stop_at_one_block():
    assert files.overview_factors(10980) == [2, 4, 8, 16]
    assert files.overview_factors(5490) == [2, 4, 8]


@pytest.fixture(scope="module")
def small_codes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2500 x 2500 codes: nodata rows, constant sea, a noisy 'island'; and two LUTs."""
    rng = np.random.default_rng(0)
    codes = np.full((2500, 2500), 1, dtype=np.uint16)
    codes[:300] = 0
    codes[1200:2100, 700:1900] = rng.integers(2, 50, (900, 1200))
    lut = (np.arange(60, dtype=np.uint16) * 7 + 3)
    lut[0] = 0
    rgb = np.stack([lut % 256, (lut * 3) % 256, (lut * 5) % 256], axis=1).astype(np.uint8)
    return codes, lut, rgb


TRANSFORM = (10.0, 0.0, 499980.0, 0.0, -10.0, 4100040.0)


@pytest.mark.parametrize("bands", [1, 3])
def test_cog_writer_output_reads_back_exactly(tmp_path: Path, small_codes, bands):
    codes, lut, rgb = small_codes
    table = lut if bands == 1 else rgb
    tpl = cog.template(bands, 2500, table.dtype.name, TRANSFORM, 32635)
    levels = cog.pyramid(codes)
    out = tmp_path / "B04.tif"
    cog.write(out, tpl, levels, [cog.constant_blocks(lv) for lv in levels], table)
    assert [p.name for p in tmp_path.iterdir()] == ["B04.tif"]  # no temporary left
    with rasterio.open(out) as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.block_shapes[0] == (1024, 1024)
        assert src.compression.name.upper() == "DEFLATE"
        assert src.overviews(1) == [2, 4]  # 2500 / 4 = 625 fits one 1024 block
        assert src.nodata == 0 and src.crs.to_epsg() == 32635
        assert tuple(src.transform)[:6] == TRANSFORM
        full = src.read()
        assert np.array_equal(np.moveaxis(full, 0, -1) if bands == 3 else full[0], table[codes])
        for level in levels[1:]:  # an exact out_shape makes GDAL read the overview itself
            ov = src.read(out_shape=(bands, *level.shape))
            assert np.array_equal(np.moveaxis(ov, 0, -1) if bands == 3 else ov[0], table[level])


def test_cog_writer_header_is_gdals(tmp_path: Path, small_codes):
    """The same pixels written by GDAL's COG driver give the same header, apart from
    the block offsets and sizes (GDAL deflates with libdeflate, we with zlib)."""
    codes, lut, _ = small_codes
    levels = cog.pyramid(codes)
    ours = tmp_path / "ours.tif"
    cog.write(ours, cog.template(1, 2500, "uint16", TRANSFORM, 32635), levels,
              [cog.constant_blocks(lv) for lv in levels], lut)
    gdal = tmp_path / "gdal.tif"
    with rasterio.open(gdal, "w", driver="COG", width=2500, height=2500, count=1, dtype="uint16",
                       crs="EPSG:32635", transform=Affine(*TRANSFORM), nodata=0, blocksize=1024,
                       compress="DEFLATE", overview_resampling="nearest") as dst:
        dst.write(lut[codes], 1)
    a, b = cog.parse_header(ours.read_bytes()), cog.parse_header(gdal.read_bytes())
    assert a.levels == b.levels
    ha, hb = bytearray(a.header), bytearray(b.header)
    for lv in a.levels:
        n = 4 * lv.tiles_x * lv.tiles_y
        for at in (lv.offsets_at, lv.counts_at):
            ha[at:at + n] = hb[at:at + n]
    assert ha == hb
    with rasterio.open(ours) as x, rasterio.open(gdal) as y:
        assert np.array_equal(x.read(1), y.read(1))


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path):
    target = tmp_path / "item.json"
    with pytest.raises(RuntimeError):
        with files.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_is_up_to_date_reads_the_stamp(tmp_path: Path):
    assert not pipeline.is_up_to_date(tmp_path)
    (tmp_path / "stac").mkdir()
    (tmp_path / "stac" / "collection.json").write_text("{}")
    stamp = {"generator_version": pipeline.GENERATOR_VERSION, "seed": 7,
             "files": {"stac/collection.json": 2}}
    (tmp_path / pipeline.STAMP).write_text(json.dumps(stamp))
    assert pipeline.is_up_to_date(tmp_path, seed=7)
    assert not pipeline.is_up_to_date(tmp_path, seed=8)
    (tmp_path / "stac" / "collection.json").write_text("{} ")
    assert not pipeline.is_up_to_date(tmp_path, seed=7)


def test_cli_says_up_to_date_without_building(tmp_path: Path, capsys):
    stamp = {"generator_version": pipeline.GENERATOR_VERSION, "seed": pipeline.DEFAULT_SEED, "files": {}}
    (tmp_path / pipeline.STAMP).write_text(json.dumps(stamp))
    assert main(["--data-dir", str(tmp_path)]) == 0
    assert "up to date, nothing to do" in capsys.readouterr().out


def test_cli_rejects_a_file_as_data_dir(tmp_path: Path, capsys):
    not_a_dir = tmp_path / "data"
    not_a_dir.write_text("")
    assert main(["--data-dir", str(not_a_dir)]) == 2
    assert "pass --data-dir with a folder" in capsys.readouterr().err


def test_world_is_deterministic_and_holds_the_scar():
    a, b = landscape.build_world(3), landscape.build_world(3)
    np.testing.assert_array_equal(a.ground10, b.ground10)
    np.testing.assert_array_equal(a.arrival20, b.arrival20)
    assert a.scar_utm.contains(Point(*scenario.BURN_CHECK_POINT))
    assert 100 < a.scar_utm.area / 1e6 < 200
    # a realistic scar: burns from light to total, unburned islands inside the perimeter
    burn = a.burn20[a.scar_window]
    burned = burn[burn > 0]
    assert np.mean(burned < 0.2) > 0.05 and np.mean(burned >= 0.75) > 0.3
    truth = features.rasterize([(a.scar_utm, 1)], out_shape=a.land20.shape,
                                transform=landscape.WORLD_TRANSFORM).astype(bool)
    assert np.count_nonzero(truth & (a.burn20 == 0)) > 0  # islands of the MMU are in the truth
    hull = a.scar_utm.convex_hull
    assert a.scar_utm.length > 10 * np.sqrt(a.scar_utm.area)  # ragged: a disc has 3.5
    assert hull.area > 1.2 * a.scar_utm.area
    c = landscape.build_world(4)
    assert not np.array_equal(a.ground10, c.ground10)


def test_island_outline_is_rhodes_sized():
    utm = scenario.to_utm(landscape.island())
    assert 1300 < utm.area / 1e6 < 1550
    minx, miny, maxx, maxy = landscape.island().bounds
    assert minx == pytest.approx(27.68, abs=0.02) and maxx == pytest.approx(28.25, abs=0.02)
    assert miny == pytest.approx(35.87, abs=0.02) and maxy == pytest.approx(36.46, abs=0.02)
    assert landscape.island().contains(Point(27.95, 36.20))


def test_a_second_build_waits_for_the_first_and_finds_it_done(tmp_path: Path):
    import fcntl
    import threading

    results = []
    with open(tmp_path / pipeline.LOCK, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # "the first build" is running
        waiter = threading.Thread(target=lambda: results.append(pipeline.build(tmp_path)))
        waiter.start()
        waiter.join(timeout=0.5)
        assert waiter.is_alive() and not results  # blocked on the lock
        stamp = {"generator_version": pipeline.GENERATOR_VERSION, "seed": pipeline.DEFAULT_SEED, "files": {}}
        (tmp_path / pipeline.STAMP).write_text(json.dumps(stamp))  # the first one finished
        fcntl.flock(handle, fcntl.LOCK_UN)
    waiter.join(timeout=30)
    assert results and results[0].skipped


def test_noisy_cog_keeps_nodata_is_deterministic_and_deflates_like_real_pixels(tmp_path: Path, small_codes):
    """Sensor-like noise: nodata stays 0, the mean stays the table's value, the same key
    gives the same bytes, another key other bytes, and the noise defeats DEFLATE."""
    codes, lut, _ = small_codes
    lut = np.where(lut > 0, lut + 1000, 0).astype(np.uint16)  # far from the clip at 1 DN
    tpl = cog.template(1, 2500, "uint16", TRANSFORM, 32635)
    levels = cog.pyramid(codes)
    consts = [cog.constant_blocks(lv) for lv in levels]
    sigma = np.where(lut > 0, 50.0, 0.0).astype(np.float32)
    plain, a, b, c = (tmp_path / f"{n}.tif" for n in ("plain", "a", "b", "c"))
    cog.write(plain, tpl, levels, consts, lut)
    cog.write(a, tpl, levels, consts, lut, sigma, (1, 2))
    cog.write(b, tpl, levels, consts, lut, sigma, (1, 2))
    cog.write(c, tpl, levels, consts, lut, sigma, (1, 3))
    assert a.read_bytes() == b.read_bytes() and a.read_bytes() != c.read_bytes()
    with rasterio.open(a) as src:
        noisy = src.read(1).astype(float)
    base = lut[codes].astype(float)
    assert np.array_equal(noisy == 0, base == 0)
    diff = (noisy - base)[base > 0]
    assert abs(diff.mean()) < 0.5 and 45 < diff.std() < 55
    # 50 DN of Gaussian noise carries ~7.7 bits a pixel: over 1 byte once deflated, while
    # the plain raster (constant sea, an island of random codes) deflates 4x smaller
    assert a.stat().st_size > 1.0 * (base > 0).sum() > 3 * plain.stat().st_size


def test_noise_sigma_is_zero_on_nodata_and_smaller_on_sea():
    sigma = scene.code_noise_sigma().reshape(landscape.N_GROUND, scene.N_STATES)
    assert (sigma[landscape.NODATA] == 0).all()
    assert 0 < sigma[landscape.SEA, scene.CLEAR] < sigma[landscape.LAND0, scene.CLEAR]
    assert sigma[landscape.SEA, scene.HIGH[0]] == sigma[landscape.LAND0, scene.CLEAR]  # cloud over sea
