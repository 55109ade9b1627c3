"""Dask chunk sizes that follow a Cloud-Optimised GeoTIFF's internal blocks.

A COG is stored as independently compressed blocks (1024 x 1024 pixels for Earth Search's
Sentinel-2 bands). A chunk that is a whole multiple of the block shape decodes every
block exactly once; a chunk edge that cuts through blocks (the workshop's first try,
4000 x 4000) makes neighbouring chunks decode the same block twice, and over HTTP fetch
it twice. :func:`suggest_chunks` reads the block shape and data type from the file's
header only (a few kilobytes, also for an ``http(s)://`` href) and picks a whole number
of blocks near a target chunk size: about as many blocks in y as in x, and, where the
band is narrower (or shorter) than that, the rest of the target along the other axis.
"""

from __future__ import annotations

import math
import numbers
import os
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError

from helpers import paths

DEFAULT_TARGET_MB = 8.0
"""Default chunk size in megabytes of the file's data type (2048 x 2048 uint16 pixels).

Measured on the full Sentinel-2 band pair with 2 cores (``benchmarks/bench_dask.py
--chunk-mb``): 8, 18 and 32 MB chunks took the same time within the machine's noise
(0.46, 0.45 and 0.44 s, best of 5), and 8 MB (36 chunks per band, against 9 at 32 MB)
keeps more cores busy to the end. 2 MB chunks pay per-task overhead (opening the file,
scheduling) 3.4 times as often (one 1024 x 1024 block each: 121 chunks per band against
36). A float32 copy of a chunk is twice this size.
"""

GDAL_HTTP_OPTIONS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_HTTP_CONNECTTIMEOUT": "5",
    "GDAL_HTTP_LOW_SPEED_TIME": "30",
    "GDAL_HTTP_LOW_SPEED_LIMIT": "1",
    "GDAL_HTTP_TIMEOUT": "120",
}
"""Remote COGs: no directory listing on open (one request, not many), neighbouring blocks
fetched in one range request, retries when a busy server answers 502/503, and limits on
waiting: by default GDAL waits forever on a server that accepted the connection but never
answers.

GDAL retries a timed-out connection or request like a 503, so such a limit is waited out
up to 4 times, plus about 9 s of back-off. Hence 5 s to connect (DNS, TCP and TLS take
well under a second on a working network): an unreachable host fails after about 30 s.
A server that sends nothing for 30 s is dropped by the low-speed limit, which GDAL 3.10
does not retry: it fails after 30 s, long enough for a busy local server or a slow link
to recover. ``GDAL_HTTP_TIMEOUT`` caps a whole request, body included, and a merged
range request of a chunk row can be several MB: a small value would break a slow but
working connection, so it is only a backstop (120 s, 15 MB at 1 Mbit/s) for a server
that trickles."""

CHUNKED_READ_CACHE_MB = 64
"""GDAL block cache for block-aligned chunked reads (GDAL's default is 5% of the RAM).

With block-aligned chunks every block is decoded exactly once, so a large cache only
holds memory: on the full Sentinel-2 pair, notebook 02's NDVI peaks at 0.93 GB of RSS
with this cache and at 1.41 GB with the default one (1.2 GiB on a 24 GiB machine), and
takes 0.46 s against 0.53 s (``benchmarks/bench_dask.py``, case ``notebook``, best of
5; ``--cache-mb gdal`` runs the benchmark with the default cache). Writing the NDVI COG
(case ``write_cog``) took 4.97 s and 0.80 GB with this cache, 5.21 s and 1.83 GB with
the default one. It must not be tiny either: with a 64-byte cache the write took twice
as long (10.5 s against 5.1-5.2 s, 2 runs each, with the numpy NDVI kernel of the time).

Code that reads the same blocks twice wants the default: the workshop's serial NDVI
(``masked=True``, no chunks) reads both bands again for ``nir + red``, and that second
read took 1.6 s with the default cache and 2.9-3.9 s with this one, which decodes every
block again (measured in the same runs). Hence ``configure_gdal(cache_mb=None)``.
"""


_cache_bytes_before: int | None = None
"""GDAL's block cache size before :func:`configure_gdal` first changed it."""


def configure_gdal(cache_mb: int | None = CHUNKED_READ_CACHE_MB) -> None:
    """Set GDAL's block cache and remote-COG options for this whole process.

    ``rasterio.Env`` settings apply to the calling thread only, but Dask reads chunks
    in worker threads (and worker processes): these are process-wide, from whichever
    thread this runs in. On a ``dask.distributed`` cluster run it on every worker too:
    ``client.run(configure_gdal)``. ``cache_mb=None`` gives the block cache the size it
    had before the first call of this function in this process, GDAL's default unless
    something else changed it (see :data:`CHUNKED_READ_CACHE_MB`).
    """
    from rasterio.env import get_gdal_config, set_gdal_config

    global _cache_bytes_before
    if _cache_bytes_before is None:
        _cache_bytes_before = int(get_gdal_config("GDAL_CACHEMAX"))  # GDAL reports bytes
    # rasterio hands an integer GDAL_CACHEMAX to GDALSetCacheMax64, which counts bytes.
    cache_bytes = _cache_bytes_before if cache_mb is None else int(cache_mb * 2**20)
    set_gdal_config("GDAL_CACHEMAX", cache_bytes)
    on_main_thread = threading.current_thread() is threading.main_thread()
    for key, value in GDAL_HTTP_OPTIONS.items():
        if on_main_thread:
            set_gdal_config(key, value)
        else:  # rasterio would set it for this thread only; GDAL falls back to the environment
            os.environ[key] = value


class NotTiledError(ValueError):
    """The raster's blocks span its whole width, as strips do: not a Cloud-Optimised GeoTIFF."""


class ChunkSuggestion(dict[str, int]):
    """Block-aligned chunks for ``rioxarray.open_rasterio(..., chunks=suggestion)``.

    A dict, ``{"band": 1, "y": rows, "x": columns}``, so it goes straight into ``chunks=``
    (or into JSON), that also carries the reasons: ``print(suggestion)`` explains the
    choice.
    """

    def __init__(
        self,
        chunks: Mapping[str, int],
        *,
        block_shape: tuple[int, int],
        raster_shape: tuple[int, int],
        dtype: str,
        target_mb: float,
    ) -> None:
        super().__init__(chunks)
        self.block_shape = block_shape
        """Rows and columns of one internal block of the file."""
        self.raster_shape = raster_shape
        """Rows and columns of the full band."""
        self.dtype = dtype
        self.target_mb = target_mb

    @property
    def chunks(self) -> dict[str, int]:
        """The chunks as a plain dict (the suggestion itself is one too)."""
        return dict(self)

    @property
    def blocks_per_chunk(self) -> tuple[int, int]:
        """How many blocks a chunk spans in y and x (the last chunk may hold fewer)."""
        return (
            math.ceil(self.chunks["y"] / self.block_shape[0]),
            math.ceil(self.chunks["x"] / self.block_shape[1]),
        )

    @property
    def chunk_mb(self) -> float:
        """Size of one full chunk in megabytes (10**6 bytes) of the file's data type."""
        itemsize = np.dtype(self.dtype).itemsize
        return self.chunks["y"] * self.chunks["x"] * itemsize / 1e6

    @property
    def n_chunks(self) -> int:
        """Number of chunks per band."""
        return math.ceil(self.raster_shape[0] / self.chunks["y"]) * math.ceil(
            self.raster_shape[1] / self.chunks["x"]
        )

    @property
    def explanation(self) -> str:
        """Why these chunks, in words a learner can check against ``gdalinfo``."""
        rows, cols = self.block_shape
        by, bx = self.blocks_per_chunk
        block_mb = rows * cols * np.dtype(self.dtype).itemsize / 1e6
        return (
            f"The file is stored in {rows} x {cols} blocks of {self.dtype} "
            f"({block_mb:.1f} MB each). A target of {self.target_mb:g} MB per chunk gives "
            f"{by} x {bx} blocks = {self.chunks['y']} x {self.chunks['x']} pixels "
            f"({self.chunk_mb:.1f} MB), so every block is decoded exactly once; the "
            f"{self.raster_shape[0]} x {self.raster_shape[1]} band makes {self.n_chunks} "
            f"chunk{'s' if self.n_chunks != 1 else ''}."
        )

    def __str__(self) -> str:
        return self.explanation


def _is_remote(href: str) -> bool:
    """A URL (http, s3, gs, az, ...) or a GDAL virtual file: not a path to look for on disk."""
    return "://" in href or href.startswith("/vsi")


def _remote_hint(href: str, error_text: str) -> str:
    """What to check when GDAL cannot open an href; the fix depends on its scheme."""
    if href.startswith(("s3://", "/vsis3/")):
        return (
            "Check the bucket and key; for a public bucket set AWS_NO_SIGN_REQUEST=YES (e.g. in "
            "rasterio.Env), for a private one AWS credentials (AWS_PROFILE, or AWS_ACCESS_KEY_ID "
            "and AWS_SECRET_ACCESS_KEY) and AWS_REGION."
        )
    if not href.startswith(("http://", "https://", "/vsicurl/")):
        return "Check the href, and the credentials GDAL needs for its scheme (GDAL's virtual file systems)."
    hint = (
        "Check the URL in a browser or with curl; for the embedded API run `make serve` "
        "(or helpers.server.ensure_api)."
    )
    if any(word in error_text.lower() for word in ("timed out", "too slow")):
        hint = "The request timed out: is the server running, and are host and port right? " + hint
    return hint


def read_block_layout(href_or_path: str | os.PathLike[str]) -> tuple[tuple[int, int], tuple[int, int], str]:
    """Block shape, raster shape and data type of band 1, read from the header only.

    A local path may start with ``~``. Raises :class:`FileNotFoundError` for a missing local
    file, :class:`IsADirectoryError` for a folder and :class:`OSError` for an href that
    cannot be opened, each saying what to check.
    """
    href = os.fspath(href_or_path)
    if not _is_remote(href):
        href = os.path.expanduser(href)  # GDAL does not expand "~"
        if not os.path.exists(href):
            generated = Path(href).resolve().is_relative_to(paths.DATA_DIR.resolve())
            raise FileNotFoundError(
                f"{href} does not exist. "
                + ("The offline data is generated by `make data` in the repository; "
                   if generated else "Check the path; ")
                + "or pass the asset's http(s) href."
            )
        if os.path.isdir(href):
            raise IsADirectoryError(
                f"{href} is a folder, not a file: pass the path of one GeoTIFF in it (one band)."
            )
    try:
        with rasterio.Env(**GDAL_HTTP_OPTIONS), rasterio.open(href) as src:
            return tuple(src.block_shapes[0]), (src.height, src.width), src.dtypes[0]
    except RasterioIOError as error:
        error_text = str(error).rstrip(".")  # GDAL's messages end in a full stop of their own
        hint = _remote_hint(href, error_text) if _is_remote(href) else "Is it a GeoTIFF?"
        raise OSError(f"could not open {href} as a raster: {error_text}. {hint}") from error


def suggest_chunks(
    href_or_path: str | os.PathLike[str], target_mb: float = DEFAULT_TARGET_MB
) -> ChunkSuggestion:
    """Chunks for rioxarray that are whole multiples of the COG's blocks, near ``target_mb``.

    The chunk is kept as square as possible (as many blocks in y as in x) because
    neighbourhood operations and plots are roughly isotropic; it never exceeds the band,
    and a band narrower or shorter than that chunk gets the rest of the target along its
    length, so that it is not cut into needlessly small chunks.
    A raster stored in strips (not tiled) raises :class:`NotTiledError`: such a file is
    not a COG and reading any window decodes whole rows, so convert it first. A tiled file
    one tile wide, with tiles wider than tall, looks the same and is refused too (rare: COG
    tiles are square). Pass the result as ``chunks=``.
    """
    is_number = isinstance(target_mb, numbers.Real) and not isinstance(target_mb, bool)
    if not (is_number and math.isfinite(target_mb) and target_mb > 0):
        raise ValueError(f"target_mb must be a positive number of megabytes, got {target_mb!r}")
    (rows, cols), (height, width), dtype = read_block_layout(href_or_path)
    # GDAL does not say whether a GeoTIFF is tiled (rasterio's profile["tiled"] guesses from
    # the block shape too). Strips span exactly the raster's width; tiles may be wider.
    if cols == width and rows < cols and height > rows:
        raise NotTiledError(
            f"{os.fspath(href_or_path)}: its blocks of {rows} x {cols} pixels span the whole width, "
            "as the strips of an untiled GeoTIFF do. It is not a Cloud-Optimised GeoTIFF, and "
            "block-aligned chunks could only be whole-width strips. "
            "Convert it first, e.g. `gdal_translate -of COG -co BLOCKSIZE=1024 in.tif out.tif` "
            "or rasterio.shutil.copy(src, dst, driver='COG')."
        )
    block_bytes = rows * cols * np.dtype(dtype).itemsize
    blocks_wanted = max(1.0, target_mb * 1e6 / block_bytes)
    max_y, max_x = math.ceil(height / rows), math.ceil(width / cols)
    blocks_y = min(max(1, round(math.sqrt(blocks_wanted))), max_y)
    blocks_x = min(max(1, round(blocks_wanted / blocks_y)), max_x)
    if blocks_x == max_x:  # as wide as the band: the rest of the target goes along y
        blocks_y = min(max(blocks_y, round(blocks_wanted / blocks_x)), max_y)
    chunks = {"band": 1, "y": min(blocks_y * rows, height), "x": min(blocks_x * cols, width)}
    return ChunkSuggestion(
        chunks=chunks,
        block_shape=(rows, cols),
        raster_shape=(height, width),
        dtype=dtype,
        target_mb=float(target_mb),
    )
