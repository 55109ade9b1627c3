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


OUTPUTS_DIR = BUILD_DIR / "outputs"
"""Where the notebooks write their files unless their ``output_dir`` parameter says otherwise."""


def output_folder(output_dir: str | os.PathLike[str] = "") -> Path:
    """The notebooks' ``output_dir`` parameter as a folder that exists.

    Empty means :data:`OUTPUTS_DIR`, the same folder whether the notebook runs in
    JupyterLab (working directory ``notebooks/``) or under papermill from anywhere else;
    any other path is taken as given (relative to the working directory).
    """
    folder = Path(output_dir).expanduser() if str(output_dir) else OUTPUTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class DamagedFileError(OSError):
    """A data file is there but cannot be read whole (cut short, or not a GeoTIFF)."""


def check_geotiff_complete(path: Path) -> None:
    """Raise :class:`DamagedFileError` unless every block of the GeoTIFF lies inside the file.

    A copy or a ``make data`` that was interrupted leaves a file that opens fine (the
    header is at its start) and fails only when a read reaches the missing blocks,
    minutes into a lesson and with a bare GDAL error. The block offsets and sizes are in
    the header: checking them takes milliseconds and reads no pixel.
    """
    import rasterio

    advice = "run `make data` in the repository, which rebuilds a data folder whose files do not match its build"
    try:
        with rasterio.open(path) as src:
            block_height, block_width = src.block_shapes[0]
            ends = [
                int(src.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=1) or 0)
                + int(src.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=1) or 0)
                for x in range(-(-src.width // block_width))
                for y in range(-(-src.height // block_height))
            ]
    except rasterio.errors.RasterioIOError as error:
        raise DamagedFileError(f"{path} cannot be read as a GeoTIFF ({error}): {advice}") from None
    size = path.stat().st_size
    if max(ends, default=0) > size:
        raise DamagedFileError(
            f"{path} is cut short: its blocks run to byte {max(ends):,} but the file has "
            f"{size:,} bytes (an interrupted copy or build?): {advice}"
        )


def workshop_scene_files() -> dict[str, Path]:
    """The STAC item and the ``red`` and ``nir`` bands of the workshop's download.

    Checked here so that a notebook without the generated data, or with a band cut
    short, stops at its first read with what to do, not with a bare "No such file" from
    pystac or "Read failed" from GDAL halfway through the lesson.
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
            "repository (about 2 minutes), or, online, read the scene from the live API "
            f'(read_from = "stac", api_url = "{EARTH_SEARCH_URL}")'
        )
    for band in ("red", "nir"):
        check_geotiff_complete(files[band])
    return files
