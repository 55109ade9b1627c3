"""benchmarks/bench_dask.py on a small band pair: every case runs and measures what it says.

The figures themselves are not checked (they belong to the machine, and `make bench`
prints them); what is checked is that each case does the work its name promises, and
that the report's ratios and targets follow from its figures.
"""

from __future__ import annotations

import importlib.util
import json
import mmap
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.env import get_gdal_config, set_gdal_config
from rasterio.transform import from_origin

from helpers import paths
from helpers.chunks import CHUNKED_READ_CACHE_MB, suggest_chunks
from tests.ndvi_textbook import textbook_ndvi

_SPEC = importlib.util.spec_from_file_location("bench_dask", paths.ROOT / "benchmarks" / "bench_dask.py")
bench_dask = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench_dask)

CASES = (  # as the benchmark's docstring lists them
    "serial", "serial_loaded", "workshop_dask", "notebook", "notebook_compute", "notebook_read",
    "decode_limit", "decode_discard", "write_cog",
)
WORKSHOP_CHUNK = 6144  # the workshop's Dask code: chunks={"x": 6144, "y": 6144}


def _write_pair(folder: Path, height: int, width: int) -> Path:
    """red.tif and nir.tif, uint16 in 256 x 256 tiles, with a nodata corner that is wider in
    nir, so that some pixels have no data in one band only (unmasked, their NDVI is -1)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(6)
    for name, corner in (("red", 100), ("nir", 150)):
        dn = rng.integers(1, 4000, (height, width), dtype=np.uint16)
        dn[:100, :corner] = 0
        profile = dict(
            driver="GTiff", height=height, width=width, count=1, dtype="uint16", nodata=0,
            crs="EPSG:32635", transform=from_origin(499980, 4100040, 10, 10),
            tiled=True, blockxsize=256, blockysize=256, compress="deflate",
        )
        with rasterio.open(folder / f"{name}.tif", "w", **profile) as dst:
            dst.write(dn, 1)
    return folder


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2600 x 2300 (12 MB a band: more than one 8 MB chunk, and larger than a COG block so
    that the COG gets overviews)."""
    return _write_pair(tmp_path_factory.mktemp("scene"), 2600, 2300)


@pytest.fixture
def build_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """write_cog's scratch folder in tmp_path, in this process and in the benchmark's children."""
    folder = tmp_path / "build"
    monkeypatch.setattr(paths, "BUILD_DIR", folder)
    monkeypatch.setenv("RHODES_BUILD_DIR", str(folder))
    return folder


def _band(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def _expected_ndvi(scene: Path) -> np.ndarray:
    return textbook_ndvi(_band(scene / "red.tif"), _band(scene / "nir.tif"))


def _split(length: int, chunk: int) -> tuple[int, ...]:
    return tuple(min(chunk, length - start) for start in range(0, length, chunk))


def _assert_persisted(array, chunks: dict[str, int]) -> None:
    """A dask-backed DataArray whose every chunk is already a numpy array in its graph (no
    task left to run: ``.values`` would compute a lazy one anyway), in the given chunks."""
    graph = dict(array.data.__dask_graph__())
    assert all(isinstance(value, np.ndarray) for value in graph.values()), "not persisted"
    assert len(graph) == array.data.npartitions
    assert array.chunks == tuple(_split(size, chunks[dim]) for dim, size in zip(array.dims, array.shape))


def _peak_rss_mb_of_this_process() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 / 1e6 for line in status if line.startswith("VmHWM:"))


@pytest.mark.parametrize(("case", "reads"), [("serial", 4), ("serial_loaded", 2)])
def test_the_serial_codes_give_the_textbook_ndvi_at_once_reading_each_band_twice_or_once(
    scene: Path, monkeypatch, case: str, reads: int
) -> None:
    # what notebook 02 says of the workshop's code: arithmetic works on copies of the
    # unloaded bands, so nir - red and nir + red each read both files
    import rioxarray._io

    done = []
    read_window = rioxarray._io.RasterioArrayWrapper._getitem
    monkeypatch.setattr(
        rioxarray._io.RasterioArrayWrapper, "_getitem", lambda self, key: done.append(key) or read_window(self, key)
    )
    result = bench_dask.RUNNERS[case](scene / "red.tif", scene / "nir.tif")
    assert len(done) == reads
    assert isinstance(result.data, np.ndarray)  # computed, not lazy
    np.testing.assert_allclose(result.values[0], _expected_ndvi(scene), rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("shape", [(6200, 300), (300, 6200)], ids=["tall", "wide"])
def test_the_workshop_dask_persists_the_ndvi_in_6144_chunks(tmp_path: Path, shape: tuple[int, int]) -> None:
    strip = _write_pair(tmp_path, *shape)  # longer than one chunk, in y then in x
    result = bench_dask.RUNNERS["workshop_dask"](strip / "red.tif", strip / "nir.tif")
    _assert_persisted(result, {"band": 1, "y": WORKSHOP_CHUNK, "x": WORKSHOP_CHUNK})
    np.testing.assert_allclose(result.values[0], _expected_ndvi(strip), rtol=1e-6, equal_nan=True)


def test_the_notebook_way_persists_the_ndvi_in_block_aligned_chunks(scene: Path) -> None:
    result = bench_dask.RUNNERS["notebook"](scene / "red.tif", scene / "nir.tif")
    _assert_persisted(result, suggest_chunks(scene / "red.tif").chunks)
    np.testing.assert_allclose(result.values[0], _expected_ndvi(scene), rtol=1e-6, equal_nan=True)


def test_the_notebook_compute_returns_the_ndvi_as_one_numpy_array(scene: Path) -> None:
    result = bench_dask.RUNNERS["notebook_compute"](scene / "red.tif", scene / "nir.tif")
    assert isinstance(result.data, np.ndarray)
    np.testing.assert_allclose(result.values[0], _expected_ndvi(scene), rtol=1e-6, equal_nan=True)


def test_the_notebook_read_persists_both_bands_in_block_aligned_chunks(scene: Path) -> None:
    red, nir = bench_dask.RUNNERS["notebook_read"](scene / "red.tif", scene / "nir.tif")
    for band, name in ((red, "red.tif"), (nir, "nir.tif")):
        _assert_persisted(band, suggest_chunks(scene / name).chunks)
        np.testing.assert_array_equal(band.values[0], _band(scene / name))


@pytest.mark.parametrize("case", ["notebook", "notebook_compute", "notebook_read", "write_cog"])
def test_the_notebook_cases_shrink_gdals_block_cache_as_notebook_02_does(
    scene: Path, build_dir: Path, case: str
) -> None:
    before = get_gdal_config("GDAL_CACHEMAX")
    try:
        set_gdal_config("GDAL_CACHEMAX", 5 * 2**20)  # neither GDAL's default nor the notebook's
        bench_dask.RUNNERS[case](scene / "red.tif", scene / "nir.tif")
        assert get_gdal_config("GDAL_CACHEMAX") == CHUNKED_READ_CACHE_MB * 2**20
    finally:
        set_gdal_config("GDAL_CACHEMAX", before)


def _chunk_shape(scene: Path, chunk_mb: float) -> list[int]:
    """Rows and columns of a full chunk, as suggest_chunks gives them for ``chunk_mb``."""
    chunks = suggest_chunks(scene / "red.tif", target_mb=chunk_mb)
    return [chunks["y"], chunks["x"]]


def test_the_notebook_cases_read_in_the_chunks_and_block_cache_they_are_given(scene: Path) -> None:
    assert _chunk_shape(scene, 0.5) != _chunk_shape(scene, 8.0)  # else this test could not fail
    before = get_gdal_config("GDAL_CACHEMAX")
    try:
        red, nir = bench_dask.RUNNERS["notebook_read"](scene / "red.tif", scene / "nir.tif", chunk_mb=0.5, cache_mb=16)
        assert get_gdal_config("GDAL_CACHEMAX") == 16 * 2**20
    finally:
        set_gdal_config("GDAL_CACHEMAX", before)
    for band in (red, nir):
        _assert_persisted(band, suggest_chunks(scene / "red.tif", target_mb=0.5))


def test_the_chunk_target_and_gdals_own_cache_reach_the_case_in_its_own_process(scene: Path) -> None:
    fresh_process_cache = subprocess.run(  # GDAL's default, 5% of this machine's RAM
        [sys.executable, "-c", "from rasterio.env import get_gdal_config; print(get_gdal_config('GDAL_CACHEMAX'))"],
        capture_output=True, text=True, check=True,
    ).stdout
    gdal_default_mb = round(int(fresh_process_cache) / 2**20, 1)
    assert gdal_default_mb != CHUNKED_READ_CACHE_MB

    measured = bench_dask._in_subprocess("notebook_read", scene, chunk_mb=0.5, cache_mb=None)
    assert measured["chunk_shape"] == [1, *_chunk_shape(scene, 0.5)]
    assert measured["gdal_cache_mb"] == gdal_default_mb
    measured = bench_dask._in_subprocess("notebook_read", scene)
    assert measured["chunk_shape"] == [1, *_chunk_shape(scene, 8.0)]
    assert measured["gdal_cache_mb"] == CHUNKED_READ_CACHE_MB


@pytest.mark.parametrize(
    "option",
    [["--chunk-mb", "0"], ["--cache-mb", "-5"], ["--cache-mb", "default"], ["--warm-mb", "-1"], ["--warm-mb", "inf"]],
)
def test_a_size_that_is_not_a_positive_number_of_mb_is_refused_saying_what_to_give(
    scene: Path, option: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        bench_dask.main(["--scene-dir", str(scene), *option])
    assert refused.value.code == 2
    assert option[0] in capsys.readouterr().err


def test_a_warm_up_touches_its_memory_before_the_clock_and_stays_out_of_the_peak_rss(scene: Path) -> None:
    cold = bench_dask._in_subprocess("decode_discard", scene)
    warm = bench_dask._in_subprocess("decode_discard", scene, warm_mb=400)
    assert "warm_up_faults" not in cold
    assert warm["warm_up_faults"] >= 400e6 / 2**21  # every page touched, even as 2 MiB huge pages
    assert warm["warm_up_seconds"] > 0
    # the peak starts afresh after the warm-up: without that it would be 400 MB higher
    assert warm["peak_rss_mb"] < cold["peak_rss_mb"] + 100, (warm["peak_rss_mb"], cold["peak_rss_mb"])


def test_the_decode_limit_holds_both_bands_and_the_discarding_one_none(scene: Path) -> None:
    red, nir = scene / "red.tif", scene / "nir.tif"
    kept = bench_dask.RUNNERS["decode_limit"](red, nir)
    assert len(kept) == 2
    np.testing.assert_array_equal(kept[0], _band(red))
    np.testing.assert_array_equal(kept[1], _band(nir))
    assert bench_dask.RUNNERS["decode_discard"](red, nir) == []


@pytest.mark.parametrize("case", CASES)
def test_every_case_reports_its_time_cpu_and_memory(scene: Path, build_dir: Path, case: str) -> None:
    peak_before = _peak_rss_mb_of_this_process()
    measured = bench_dask.run_case(case, scene)
    assert measured["seconds"] > 0 and measured["cpu_seconds"] > 0
    assert isinstance(measured["minor_faults"], int) and measured["minor_faults"] >= 0
    # this process's high-water mark, in MB: between the marks before and after the call
    assert peak_before <= measured["peak_rss_mb"] <= _peak_rss_mb_of_this_process()
    if case == "write_cog":
        assert measured["layout"] == "COG" and measured["overviews"]


def test_page_faults_count_the_fresh_memory_a_case_touches(scene: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def touch_fresh_memory(red: Path, nir: Path, **notebook_way) -> mmap.mmap:
        # An anonymous mapping is memory this process has never touched, at least one fault
        # per 2 MiB even as huge pages (a 64 MB numpy array may reuse memory malloc kept)
        fresh = mmap.mmap(-1, 64 * 2**20)
        np.frombuffer(fresh, np.uint8)[::4096] = 1  # one byte per 4 KiB page
        return fresh

    monkeypatch.setitem(bench_dask.RUNNERS, "notebook", touch_fresh_memory)
    touching = bench_dask.run_case("notebook", scene)["minor_faults"]
    monkeypatch.setitem(bench_dask.RUNNERS, "notebook", lambda red, nir, **notebook_way: None)
    idle = bench_dask.run_case("notebook", scene)["minor_faults"]
    assert idle < 32 <= touching, (idle, touching)


def test_each_round_runs_every_case_once_and_no_case_always_follows_the_same_one() -> None:
    orders = [bench_dask.round_order(round_) for round_ in range(5)]  # --repeat's default
    for order in orders:
        assert sorted(order) == sorted(CASES)
    assert orders == [bench_dask.round_order(round_) for round_ in range(5)]  # a run can be repeated
    for case in CASES:
        before = {order[order.index(case) - 1] if order.index(case) else None for order in orders}
        assert len(before) > 1, (case, before)


@pytest.mark.parametrize("warm_mb", [0, 60])
def test_main_runs_every_case_and_reports_ratios_and_targets_that_follow_from_the_figures(
    scene: Path, build_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], warm_mb: int
) -> None:
    out = tmp_path / "dask.json"
    warm_up = ["--warm-mb", str(warm_mb)] if warm_mb else []  # 0 is the default
    assert bench_dask.main(["--scene-dir", str(scene), "--repeat", "1", "--out", str(out), *warm_up]) == 0
    report = json.loads(out.read_text())

    assert set(report["results"]) == set(report["runs"]) == set(CASES)
    for case in CASES:
        (run,) = report["runs"][case]  # --repeat 1: one fresh process per case
        assert run["seconds"] > 0 and run["cpu_seconds"] > 0 and run["peak_rss_mb"] > 0
        assert report["results"][case]["seconds_min"] == round(run["seconds"], 3)
        assert report["results"][case]["seconds_median"] == round(run["seconds"], 3)
        assert report["results"][case]["cpu_seconds_min"] == round(run["cpu_seconds"], 3)
        assert report["results"][case]["system_seconds_range"] == [round(run["system_seconds"], 3)] * 2
        assert 0 <= run["system_seconds"] <= run["cpu_seconds"]
        assert report["results"][case]["peak_rss_mb"] == round(run["peak_rss_mb"], 1)
        assert report["results"][case]["minor_faults_median"] == run["minor_faults"] > 0
        if warm_mb:
            assert run["warm_up_faults"] >= warm_mb * 1e6 / 2**21
            assert report["results"][case]["warm_up_seconds_range"] == [run["warm_up_seconds"]] * 2
        else:
            assert "warm_up_faults" not in run and "warm_up_seconds_range" not in report["results"][case]

    seconds = {case: report["results"][case]["seconds_min"] for case in CASES}
    rss = {f"{case}_rss": report["results"][case]["peak_rss_mb"] for case in CASES}
    per_core = {  # CPU seconds shared out over the cores: "a_cpu_per_core_vs_b" over b's seconds
        f"{case}_cpu_per_core": report["results"][case]["cpu_seconds_min"] / report["cpu_count"] for case in CASES
    }
    figures = {**seconds, **rss, **per_core}  # "a_vs_b" is seconds over seconds, "a_rss_vs_b" RSS over RSS
    for name, value in report["ratios"].items():
        left, right = name.split("_vs_")
        assert value == round(figures[left] / figures[right + ("_rss" if left.endswith("_rss") else "")], 2), name
    for case in ("notebook", "notebook_read"):
        assert f"{case}_cpu_per_core_vs_decode_limit" in report["ratios"]

    assert report["round_orders"] == [bench_dask.round_order(0)]
    assert report["warm_mb"] == warm_mb
    assert report["notebook_way"] == {"chunk_mb": 8.0, "cache_mb": CHUNKED_READ_CACHE_MB}
    for case in CASES:
        assert report["results"][case]["gdal_cache_mb"] > 0
    assert report["results"]["notebook"]["chunk_shape"] == [1, *_chunk_shape(scene, 8.0)]
    assert report["targets"] == {  # as the benchmark's docstring states them
        "notebook_vs_decode_limit_max": 1.2, "serial_vs_notebook_min": 4.0,
        "notebook_rss_vs_serial_max": 0.40, "write_cog_rss_mb_max": 1000.0,
    }
    met = {
        "notebook_within_1.2x_of_decode_limit": round(seconds["notebook"] / seconds["decode_limit"], 2) <= 1.2,
        "notebook_4x_faster_than_serial": round(seconds["serial"] / seconds["notebook"], 2) >= 4.0,
        "notebook_rss_at_most_40pct_of_serial": round(rss["notebook_rss"] / rss["serial_rss"], 2) <= 0.40,
        "write_cog_rss_under_1GB": rss["write_cog_rss"] < 1000.0,
        "write_cog_is_a_cog": report["results"]["write_cog"]["layout"] == "COG",
    }
    assert report["met"] == met
    assert report["results"]["write_cog"]["layout"] == "COG"

    printed = capsys.readouterr().out
    assert re.findall(r"^  round 1/1 (\w+)", printed, re.M) == report["round_orders"][0]  # the order it ran
    targets = printed.split("Targets:\n", 1)[1]
    for name, ok in met.items():
        assert re.search(rf"^  {'met ' if ok else 'MISSED'} {re.escape(name)}$", targets, re.M), name
    assert f"Wrote {out}" in printed
    assert (f"each case after touching and freeing {warm_mb} MB" in printed) == bool(warm_mb)
    assert ("(warm-up of" in printed) == bool(warm_mb)


def test_a_truncated_band_says_to_regenerate_the_scene_not_a_traceback(
    scene: Path, tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    shutil.copy(scene / "red.tif", damaged / "red.tif")
    whole = (scene / "nir.tif").read_bytes()
    (damaged / "nir.tif").write_bytes(whole[: len(whole) // 2])  # header intact, tiles cut off

    with pytest.raises(SystemExit) as raised:
        bench_dask.main(["--scene-dir", str(damaged), "--repeat", "1", "--out", str(tmp_path / "dask.json")])
    message = str(raised.value)
    assert "Traceback" not in message
    assert "nir.tif" in message and "corrupt or truncated" in message
    assert f"delete {paths.WORKSHOP_SCENE_DIR} and run `make data`" in message


def test_a_band_with_a_damaged_header_is_refused_before_any_case_runs(scene: Path, tmp_path: Path) -> None:
    shutil.copy(scene / "nir.tif", tmp_path / "nir.tif")
    (tmp_path / "red.tif").write_bytes((scene / "red.tif").read_bytes()[:100])
    with pytest.raises(SystemExit) as raised:
        bench_dask._check_scene(tmp_path)
    message = str(raised.value)
    assert "red.tif" in message and "corrupt or truncated" in message
    assert f"delete {paths.WORKSHOP_SCENE_DIR} and run `make data`" in message
