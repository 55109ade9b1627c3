"""benchmarks/bench_dask.py on a small band pair: every case runs and measures what it says.

The figures themselves are not checked (they belong to the machine, and `make bench`
prints them); what is checked is that each case does the work its name promises.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from helpers import paths
from tests.ndvi_textbook import textbook_ndvi

_SPEC = importlib.util.spec_from_file_location("bench_dask", paths.ROOT / "benchmarks" / "bench_dask.py")
bench_dask = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench_dask)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """red.tif and nir.tif, 2600 x 2300 uint16 in 256 x 256 tiles (12 MB each: more than one
    8 MB chunk, and larger than a COG block so that it gets overviews), a nodata corner."""
    folder = tmp_path_factory.mktemp("scene")
    rng = np.random.default_rng(6)
    for name in ("red", "nir"):
        dn = rng.integers(1, 4000, (2600, 2300), dtype=np.uint16)
        dn[:100, :100] = 0
        profile = dict(
            driver="GTiff", height=2600, width=2300, count=1, dtype="uint16", nodata=0,
            crs="EPSG:32635", transform=from_origin(499980, 4100040, 10, 10),
            tiled=True, blockxsize=256, blockysize=256, compress="deflate",
        )
        with rasterio.open(folder / f"{name}.tif", "w", **profile) as dst:
            dst.write(dn, 1)
    return folder


def _band(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def test_the_decode_limit_holds_both_bands_and_the_discarding_one_none(scene: Path) -> None:
    red, nir = scene / "red.tif", scene / "nir.tif"
    kept = bench_dask._decode_limit(red, nir)
    assert len(kept) == 2
    np.testing.assert_array_equal(kept[0], _band(red))
    np.testing.assert_array_equal(kept[1], _band(nir))
    assert bench_dask._decode_discard(red, nir) == []


def test_the_notebook_read_persists_both_bands_in_block_aligned_chunks(scene: Path) -> None:
    red, nir = bench_dask._notebook_read(scene / "red.tif", scene / "nir.tif")
    assert red.chunks[1][0] == red.chunks[2][0] == 2048  # 8 x 8 blocks of 256: 8 MB
    np.testing.assert_array_equal(red.values[0], _band(scene / "red.tif"))
    np.testing.assert_array_equal(nir.values[0], _band(scene / "nir.tif"))


def test_the_notebook_way_is_the_ndvi(scene: Path) -> None:
    expected = textbook_ndvi(_band(scene / "red.tif"), _band(scene / "nir.tif"))
    result = bench_dask._notebook(scene / "red.tif", scene / "nir.tif")
    np.testing.assert_allclose(result.values[0], expected, rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("case", bench_dask.CASES)
def test_every_case_reports_its_time_cpu_and_memory(scene: Path, case: str) -> None:
    measured = bench_dask.run_case(case, scene)
    assert measured["seconds"] > 0 and measured["cpu_seconds"] > 0 and measured["peak_rss_mb"] > 0
    if case == "write_cog":
        assert measured["layout"] == "COG" and measured["overviews"]
