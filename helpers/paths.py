"""Where things live: the data folder, the build folder and the embedded STAC API.

Every notebook, test and Makefile target takes its locations from here, so that a
notebook opened in JupyterLab (working directory ``notebooks/``) and one run by
papermill from the repository root read the same files.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The repository checkout (helpers is installed in editable mode)."""

DATA_DIR = Path(os.environ.get("RHODES_DATA_DIR", ROOT / "data"))
"""Generated catalogue, COGs and vector files (``make data``)."""

BUILD_DIR = Path(os.environ.get("RHODES_BUILD_DIR", ROOT / "build"))
"""Executed notebooks, figures, student copies and benchmark results."""

STAC_DIR = DATA_DIR / "stac"
"""``collection.json`` and ``items/<item id>.json`` of the offline catalogue."""

COG_DIR = DATA_DIR / "sentinel-s2-l2a-cogs"
"""The COG files, laid out like Earth Search's bucket: ``35/S/NA/2023/8/<item id>/<band>.tif``."""

AOI_FILE = DATA_DIR / "rhodes.gpkg"
BURN_SCAR_TRUTH_FILE = DATA_DIR / "burn_scar_truth.gpkg"
WORKSHOP_SCENE_ID = "S2A_35SNA_20230827_0_L2A"
WORKSHOP_SCENE_DIR = DATA_DIR / "sentinel2"
"""``red.tif`` and ``nir.tif`` of the scene ``WORKSHOP_SCENE_ID``, as in the workshop's download."""

EARTH_SEARCH_URL = "https://earth-search.aws.element84.com/v1"
"""The live Earth Search STAC API; pass it as the notebooks' ``api_url`` when online."""

DEFAULT_PORT = 8765
PORT = int(os.environ.get("PORT", DEFAULT_PORT))
EMBEDDED_API_URL = f"http://127.0.0.1:{PORT}"
"""Root of the embedded STAC API (``make serve``); assets are served under ``/data/``."""

COLLECTION = "sentinel-2-l2a"


def workshop_scene_files() -> dict[str, Path]:
    """The STAC item and the ``red`` and ``nir`` bands of the workshop's download.

    Checked here so that a notebook without the generated data stops at its first read
    with what to do, not with a bare "No such file" from pystac or GDAL.
    """
    files = {
        "item": STAC_DIR / "items" / f"{WORKSHOP_SCENE_ID}.json",
        "red": WORKSHOP_SCENE_DIR / "red.tif",
        "nir": WORKSHOP_SCENE_DIR / "nir.tif",
    }
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            f"the offline data is missing ({', '.join(missing)}): run `make data` in the "
            'repository (about 2 minutes), or read the scene through a STAC API (read_from = "stac")'
        )
    return files
