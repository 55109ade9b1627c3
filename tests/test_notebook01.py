"""Notebook 01 under papermill with other parameters than its defaults.

Expected scene ids and counts are the workshop's (see ../shared/reference), not values
taken from a run of the notebook.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pystac
import pytest
import rasterio
from papermill.exceptions import PapermillExecutionError

from helpers import notebooks, paths

NOTEBOOK = notebooks.NOTEBOOK_DIR / "01-access-satellite-imagery.ipynb"
AUGUST_2023 = [  # the point's scenes in August 2023, newest first (Earth Search's order)
    "S2A_35SNA_20230827_0_L2A",
    "S2B_35SNA_20230822_0_L2A",
    "S2A_35SNA_20230817_0_L2A",
    "S2B_35SNA_20230812_0_L2A",
    "S2A_35SNA_20230807_0_L2A",
    "S2B_35SNA_20230802_0_L2A",
]
WORKSHOP_BOX = (560900, 3995000, 570900, 4015000)  # clip_box in EPSG:32635, metres


def _solution_results(nb: nbformat.NotebookNode) -> list[str]:
    """The ``text/plain`` result of each solution cell, in order."""
    return [
        "".join(o["data"]["text/plain"] for o in cell.outputs if o.output_type == "execute_result")
        for cell in nb.cells
        if cell.cell_type == "code" and notebooks.is_solution(cell)
    ]


@pytest.mark.slow
def test_august_only_finds_the_six_august_scenes(api: str, tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    executed = notebooks.execute(
        NOTEBOOK,
        tmp_path / NOTEBOOK.name,
        parameters={"api_url": api, "date_range": "2023-08-01/2023-08-31", "output_dir": str(out)},
    )

    saved = pystac.ItemCollection.from_file(str(out / "rhodes_sentinel-2.json"))
    assert [item.id for item in saved] == AUGUST_2023
    assert all(item.datetime.strftime("%Y-%m") == "2023-08" for item in saved)

    exercise_1, exercise_2 = _solution_results(executed)
    assert exercise_1 == "6"
    # the API's query filter agrees with the cloud cover in the scenes' own metadata
    assert int(exercise_2) == sum(item.properties["eo:cloud_cover"] < 1 for item in saved)

    with rasterio.open(out / "red_clip.tif") as clip:
        assert clip.crs.to_epsg() == 32635
        assert clip.res == (10.0, 10.0)
        left, bottom, right, top = clip.bounds
        minx, miny, maxx, maxy = WORKSHOP_BOX
        assert abs(left - minx) <= 10 and abs(right - maxx) <= 10
        assert abs(bottom - miny) <= 10 and abs(top - maxy) <= 10


def test_unreachable_api_url_stops_with_what_is_wrong_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(PapermillExecutionError) as info:
        notebooks.execute(
            NOTEBOOK,
            tmp_path / NOTEBOOK.name,
            parameters={"api_url": "http://127.0.0.1:9", "output_dir": str(tmp_path / "out")},
        )
    error = info.value
    assert error.ename == "SearchError"
    assert "Could not reach a STAC API at 'http://127.0.0.1:9'" in error.evalue
    assert "connection refused" in error.evalue
    assert "make serve" in error.evalue
    assert paths.EARTH_SEARCH_URL in error.evalue
    assert error.evalue in str(error)  # papermill's message carries the advice


@pytest.mark.slow
def test_a_point_in_the_open_sea_stops_with_no_scenes_found(api: str, tmp_path: Path) -> None:
    with pytest.raises(PapermillExecutionError) as info:
        notebooks.execute(
            NOTEBOOK,
            tmp_path / NOTEBOOK.name,
            parameters={"api_url": api, "lon": 20.0, "lat": 34.0, "output_dir": str(tmp_path / "out")},
        )
    error = info.value
    assert error.ename == "NoScenesFound"
    assert "No scenes found" in error.evalue
    assert "POINT (20 34)" in error.evalue
    assert "widen the date range" in error.evalue
