"""Notebook 02 on a real ``dask.distributed`` cluster: a ``dask scheduler`` and a
``dask worker`` started as separate processes on loopback, the notebook run by papermill
with ``scheduler="tcp://127.0.0.1:PORT"`` and the bands read over HTTP from the embedded
API (``read_from="stac"``), as a learner on a real cluster would.

The notebook writes two results into ``output_dir``: the NDVI COG computed with threads
in this process, and every 10th pixel of the NDVI computed on the cluster. They must be
equal, and both must match NDVI worked out here with plain NumPy from the local bands.
Also run: ``scheduler="local"`` (a LocalCluster with its dashboard), the clear errors
for a scheduler that does not answer and for a scene that is not there, and a scene
whose item carries a wrong ``earthsearch:boa_offset_applied`` flag.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from dask.system import CPU_COUNT

from helpers import notebooks, paths
from tests.ndvi_textbook import textbook_ndvi
from tests.server_fixtures import free_port

NOTEBOOK = notebooks.NOTEBOOK_DIR / "02-parallel-raster-computations.ipynb"
DASK = str(Path(sys.executable).with_name("dask"))


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def dask_scheduler(tmp_path: Path) -> Iterator[str]:
    """``dask scheduler`` + ``dask worker`` (2 processes, 1 thread each) on 127.0.0.1."""
    from dask.distributed import Client

    address = f"tcp://127.0.0.1:{free_port()}"
    log = (tmp_path / "dask.log").open("w")
    scheduler = subprocess.Popen(
        # --no-dashboard still binds :8787 (distributed 2026.8); a free loopback port instead
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
         "--dashboard-address", "127.0.0.1:0"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    worker = subprocess.Popen(
        [DASK, "worker", address, "--host", "127.0.0.1", "--nworkers", "2", "--nthreads", "1",
         "--no-dashboard", "--memory-limit", "4GB"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        _stop(worker)
        _stop(scheduler)
        log.close()


def _numpy_ndvi_every_10th_pixel() -> np.ndarray:
    """NDVI from the local bands, by the textbook formula in float64, no data (DN 0) as NaN.

    The workshop scene's item has ``earthsearch:boa_offset_applied``: reflectance is
    DN * 0.0001 for both bands, and a common scale cancels out of the ratio.
    """
    bands = []
    for name in ("red", "nir"):
        with rasterio.open(paths.WORKSHOP_SCENE_DIR / f"{name}.tif") as src:
            bands.append(src.read(1)[::10, ::10])
    return textbook_ndvi(*bands)


@pytest.mark.slow
def test_the_notebook_on_a_dask_cluster_equals_the_threaded_result(
    api: str, dask_scheduler: str, tmp_path: Path
) -> None:
    from dask.distributed import Client

    out = tmp_path / "outputs"
    notebooks.execute(
        NOTEBOOK,
        tmp_path / NOTEBOOK.name,
        parameters={"api_url": api, "read_from": "stac", "scheduler": dask_scheduler, "output_dir": str(out)},
    )

    with rasterio.open(out / "ndvi_every_10th_pixel.tif") as src:
        on_cluster = src.read(1)
    with rasterio.open(out / "ndvi.tif") as cog:
        assert cog.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        threaded = cog.read(1)[::10, ::10]
    assert on_cluster.shape == (1098, 1098)
    np.testing.assert_array_equal(on_cluster, threaded)  # NaN where NaN, same floats elsewhere

    expected = _numpy_ndvi_every_10th_pixel()
    np.testing.assert_allclose(on_cluster, expected, atol=1e-6, equal_nan=True)
    assert 0.01 < np.isnan(expected).mean() < 0.5  # the scene has no data outside its swath, not everywhere

    with Client(dask_scheduler, timeout="30s") as client:
        ran = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
    assert any("ndvi" in prefix for prefix in ran), ran


def _stops_with(error: str, tmp_path: Path, **parameters) -> list[str]:
    """The notebook, run with ``parameters``, stops with an error matching ``error``.

    Returns the sources of the code cells that ran, the failing one last.
    """
    from papermill.exceptions import PapermillExecutionError

    executed = tmp_path / NOTEBOOK.name
    with pytest.raises(PapermillExecutionError, match=error):
        notebooks.execute(NOTEBOOK, executed, parameters={**parameters, "output_dir": str(tmp_path / "out")})
    return notebooks.code_that_ran(executed)


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["processes", None])
def test_an_unknown_scheduler_is_refused(api: str, tmp_path: Path, scheduler) -> None:
    _stops_with("scheduler must be", tmp_path, api_url=api, scheduler=scheduler)


@pytest.mark.slow
def test_the_notebook_on_a_local_cluster_shows_its_dashboard(api: str, tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    executed = notebooks.execute(
        NOTEBOOK, tmp_path / NOTEBOOK.name, parameters={"api_url": api, "scheduler": "local", "output_dir": str(out)}
    )

    printed = notebooks.printed(executed)
    assert any(line.startswith("dashboard: http://127.0.0.1:") for line in printed)
    assert f"{CPU_COUNT} workers" in printed  # a whole line: one single-threaded worker per core
    with rasterio.open(out / "ndvi_every_10th_pixel.tif") as src:
        np.testing.assert_allclose(src.read(1), _numpy_ndvi_every_10th_pixel(), atol=1e-6, equal_nan=True)


@pytest.mark.slow
def test_a_scheduler_that_does_not_answer_says_what_to_check(api: str, tmp_path: Path) -> None:
    nobody = f"tcp://127.0.0.1:{free_port()}"
    ran = _stops_with(f"no Dask scheduler answered at {nobody}", tmp_path, api_url=api, scheduler=nobody)
    assert not any("open_rasterio(" in source for source in ran), "read the scene before checking the scheduler"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("read_from", "error"),
    [("files", 'holds the bands of S2A_35SNA_20230827_0_L2A only; to read .* set read_from = "stac"'),
     ("stac", "has no scene 'S2B_35SNA_20230822_0_L2X' in 'sentinel-2-l2a'")],
)
def test_a_scene_that_is_not_there_says_what_to_change(api: str, tmp_path: Path, read_from: str, error: str) -> None:
    _stops_with(error, tmp_path, api_url=api, read_from=read_from, scene_id="S2B_35SNA_20230822_0_L2X")


@pytest.mark.slow
def test_missing_offline_data_says_to_run_make_data(api: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RHODES_DATA_DIR", str(tmp_path / "no-data"))  # the kernel inherits it
    ran = _stops_with(r"the offline data is missing .*run `make data`", tmp_path, api_url=api, read_from="files")
    assert not any("open_rasterio(" in source for source in ran)


def _workshop_data_in(folder: Path, monkeypatch) -> Path:
    """A data folder for the kernel (it inherits ``RHODES_DATA_DIR``) holding the workshop
    scene's item and bands as links to the real ones: a test replaces the one it damages."""
    item = folder / "stac" / "items" / f"{paths.WORKSHOP_SCENE_ID}.json"
    item.parent.mkdir(parents=True)
    item.symlink_to(paths.DATA_DIR / "stac" / "items" / item.name)
    (folder / "sentinel2").mkdir()
    for band in ("red.tif", "nir.tif"):
        (folder / "sentinel2" / band).symlink_to(paths.WORKSHOP_SCENE_DIR / band)
    monkeypatch.setenv("RHODES_DATA_DIR", str(folder))
    return folder


@pytest.mark.slow
def test_a_band_cut_short_stops_before_the_lesson_reads_it(api: str, tmp_path: Path, monkeypatch) -> None:
    cut = _workshop_data_in(tmp_path / "data", monkeypatch) / "sentinel2" / "nir.tif"
    whole = cut.resolve()
    cut.unlink()
    with whole.open("rb") as source:
        cut.write_bytes(source.read(whole.stat().st_size // 2))  # an interrupted copy
    ran = _stops_with(r"nir.tif is cut short: .*`make data`", tmp_path, api_url=api, read_from="files")
    assert not any("open_rasterio(" in source for source in ran)


@pytest.mark.slow
def test_a_wrong_offset_flag_is_caught_by_the_data_and_the_notebook_goes_on_right(
    api: str, tmp_path: Path, monkeypatch
) -> None:
    """The item says the +1000 is still in (a false flag, Element84/earth-search #66, #71)
    although the bands carry none: applying -0.1 would turn most pixels negative."""
    import json

    data = _workshop_data_in(tmp_path / "data", monkeypatch)
    item_path = data / "stac" / "items" / f"{paths.WORKSHOP_SCENE_ID}.json"
    item = json.loads(item_path.read_text())
    assert item["properties"]["earthsearch:boa_offset_applied"] is True
    item["properties"]["earthsearch:boa_offset_applied"] = False
    item_path.unlink()  # a link to the real item: write a copy in its place
    item_path.write_text(json.dumps(item))
    out = tmp_path / "outputs"

    executed = notebooks.execute(
        NOTEBOOK, tmp_path / NOTEBOOK.name, parameters={"api_url": api, "read_from": "files", "output_dir": str(out)}
    )

    printed = notebooks.printed(executed)
    assert "red (scale, offset): (0.0001, -0.1)" in printed  # the flag was read as it is
    assert "the flag is wrong: this notebook goes on with (0.0001, 0.0) (0.0001, 0.0)" in printed
    stderr = [out["text"] for cell in executed.cells for out in cell.get("outputs", []) if out.get("name") == "stderr"]
    assert any("OffsetWarning" in text for text in stderr)
    expected = _numpy_ndvi_every_10th_pixel()
    with rasterio.open(out / "ndvi_every_10th_pixel.tif") as src:
        np.testing.assert_allclose(src.read(1), expected, atol=1e-6, equal_nan=True)
    with rasterio.open(out / "ndvi.tif") as cog:
        np.testing.assert_allclose(cog.read(1)[::10, ::10], expected, atol=1e-6, equal_nan=True)
