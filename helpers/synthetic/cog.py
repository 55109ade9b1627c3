"""Fast COG writing for code rasters: GDAL's own header, blocks encoded here.

Why: most of a Rhodes tile is open sea or nodata, i.e. constant 1024 x 1024 blocks.
GDAL's COG driver compresses every block of every band again (0.5 s of CPU per
10980 x 10980 band even when it is all sea), which made GDAL two thirds of the build.
Here a constant block is encoded once and reused, and only blocks with land, coast,
cloud or swath edge go through the look-up table and ``zlib``.

How (hand-written, on purpose small): GDAL's COG driver writes, once per raster kind,
a *sparse* template (no block written) with the right size, georeferencing, nodata and
overview levels. Its header (GDAL's structural-metadata "ghost" area, the IFDs, the tag
values) is kept byte for byte; only the TileOffsets / TileByteCounts arrays are filled
in. Blocks are laid out as GDAL does: smallest overview first, full resolution last,
row-major, each with GDAL's 4-byte size leader and its last 4 bytes repeated as a
trailer (``BLOCK_LEADER=SIZE_AS_UINT4``, ``BLOCK_TRAILER=LAST_4_BYTES_REPEATED``).
"""

from __future__ import annotations

import struct
import tempfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.enums import Resampling

from helpers.synthetic.files import atomic_path, overview_factors

BLOCK = 1024
ZLEVEL = 1
"""zlib level 1: the land blocks are noisy; level 6 costs 5x the time for 40 % fewer bytes."""

_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}


@dataclass(frozen=True)
class Level:
    """One image of the COG (full resolution or an overview)."""

    width: int
    height: int
    offsets_at: int  # byte position of its TileOffsets values in the header
    counts_at: int  # byte position of its TileByteCounts values

    @property
    def tiles_x(self) -> int:
        return -(-self.width // BLOCK)

    @property
    def tiles_y(self) -> int:
        return -(-self.height // BLOCK)


@dataclass(frozen=True)
class Template:
    """A GDAL COG header with empty block tables."""

    header: bytes
    levels: tuple[Level, ...]  # full resolution first


def parse_header(data: bytes) -> Template:
    """Find the IFDs of a little-endian classic TIFF written by GDAL's COG driver."""
    if data[:4] != b"II*\x00" or b"LAYOUT=IFDS_BEFORE_DATA" not in data[:400]:
        raise ValueError("not a little-endian classic TIFF in GDAL's COG layout")
    levels, end = [], 0
    (ifd,) = struct.unpack_from("<I", data, 4)
    while ifd:
        (n,) = struct.unpack_from("<H", data, ifd)
        end = max(end, ifd + 2 + 12 * n + 4)
        tags: dict[int, tuple[int, int, int]] = {}
        for i in range(n):
            entry = ifd + 2 + 12 * i
            tag, typ, count, value = struct.unpack_from("<HHII", data, entry)
            size = _TYPE_SIZES[typ] * count
            where = value if size > 4 else entry + 8
            if size > 4:
                end = max(end, value + size)
            tags[tag] = (typ, count, where if tag in (324, 325) else value)
        if tags[324][0] != 4 or tags[325][0] != 4:
            raise ValueError("expected LONG TileOffsets/TileByteCounts")
        levels.append(Level(tags[256][2], tags[257][2], tags[324][2], tags[325][2]))
        (ifd,) = struct.unpack_from("<I", data, ifd + 2 + 12 * n)
    return Template(bytes(data[:end]), tuple(levels))


@lru_cache(maxsize=None)
def template(count: int, size: int, dtype: str, transform: tuple[float, ...], epsg: int) -> Template:
    """GDAL's COG header for a square raster (cached per worker)."""
    profile = dict(driver="MEM", width=size, height=size, count=count, dtype=dtype,
                   crs=f"EPSG:{epsg}", transform=Affine(*transform), nodata=0)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "template.tif"
        with rasterio.open("/vsimem/template", "w", **profile) as mem:
            mem.build_overviews(overview_factors(size), Resampling.nearest)
            rasterio.shutil.copy(mem, out, driver="COG", blocksize=BLOCK, compress="DEFLATE",
                                 overviews="FORCE_USE_EXISTING", sparse_ok=True, bigtiff="NO")
        parsed = parse_header(out.read_bytes())
    if len(parsed.levels) != len(overview_factors(size)) + 1:
        raise RuntimeError("unexpected overview count in GDAL's template")
    return parsed


def pyramid(codes: np.ndarray) -> list[np.ndarray]:
    """Full resolution plus nearest-neighbour overviews (2, 4, ... as GDAL sizes them)."""
    n = codes.shape[0]
    levels = [codes]
    for f in overview_factors(n):
        m = -(-n // f)
        idx = np.minimum(((np.arange(m) + 0.5) * f).astype(np.int64), n - 1)
        levels.append(codes[np.ix_(idx, idx)])
    return levels


def constant_blocks(codes: np.ndarray) -> np.ndarray:
    """(tiles_y, tiles_x) array: the code filling each block, or -1 when it varies."""
    ty, tx = -(-codes.shape[0] // BLOCK), -(-codes.shape[1] // BLOCK)
    out = np.full((ty, tx), -1, dtype=np.int64)
    for r in range(ty):
        for c in range(tx):
            blk = codes[r * BLOCK:(r + 1) * BLOCK, c * BLOCK:(c + 1) * BLOCK]
            first = blk[0, 0]
            if blk.min() == first and blk.max() == first:
                out[r, c] = first
    return out


_CONSTANT_CACHE: dict[tuple[bytes, tuple[int, ...], str], bytes] = {}


def _encode(values: np.ndarray, spp: int) -> bytes:
    """Pad a block to 1024 x 1024 (edge blocks) and deflate it."""
    h, w = values.shape[:2]
    if (h, w) != (BLOCK, BLOCK):
        full = np.zeros((BLOCK, BLOCK, spp) if spp > 1 else (BLOCK, BLOCK), dtype=values.dtype)
        full[:h, :w] = values
        values = full
    return zlib.compress(np.ascontiguousarray(values).tobytes(), ZLEVEL)


def noisy_block(base: np.ndarray, sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``base`` digital numbers plus Gaussian noise of ``sigma`` DN per pixel, rounded.

    Why: real Sentinel-2 pixels carry sensor noise and texture, so DEFLATE barely
    compresses them (a 10 m band is ~240 MB, not ~7 MB) and decoding costs what it does
    on the live service. Nodata (0) stays 0; valid pixels stay within 1..32767.
    """
    noise = rng.standard_normal(base.shape, dtype=np.float32)
    noise *= sigma
    out = np.clip(base.astype(np.float32) + noise, 1, 32767)
    np.rint(out, out=out)
    out = out.astype(base.dtype)
    out[base == 0] = 0
    return out


def write(path: Path, tpl: Template, levels: list[np.ndarray], consts: list[np.ndarray],
          lut: np.ndarray, sigma: np.ndarray | None = None, noise_key: tuple[int, ...] = ()) -> int:
    """Write ``lut[codes]`` for every level as one COG; return the file size.

    ``lut`` is (n_codes,) for one band or (n_codes, bands) for pixel-interleaved RGB.
    ``sigma`` (n_codes,) float32, one band only: add per-pixel noise of ``sigma[code]`` DN
    (see :func:`noisy_block`), drawn from a generator seeded by ``noise_key`` and the
    block's level, row and column, so the same key gives the same bytes.
    """
    spp = 1 if lut.ndim == 1 else lut.shape[1]
    if sigma is not None and (spp != 1 or sigma.shape != lut.shape):
        raise ValueError("noise needs a one-band lut and a sigma per code of the same length")
    header = bytearray(tpl.header)
    chunks: list[bytes] = []
    pos = len(header)
    for li in reversed(range(len(tpl.levels))):
        lv, codes, const = tpl.levels[li], levels[li], consts[li]
        offsets = np.zeros(lv.tiles_x * lv.tiles_y, dtype="<u4")
        counts = np.zeros_like(offsets)
        k = 0
        for r in range(lv.tiles_y):
            for c in range(lv.tiles_x):
                blk = codes[r * BLOCK:(r + 1) * BLOCK, c * BLOCK:(c + 1) * BLOCK]
                code = const[r, c]
                if sigma is not None and (code < 0 or sigma[code] > 0):
                    rng = np.random.default_rng([*noise_key, li, r, c])
                    data = _encode(noisy_block(lut[blk], sigma[blk], rng), spp)
                elif code >= 0:
                    key = (lut[code].tobytes(), blk.shape, lut.dtype.str)
                    data = _CONSTANT_CACHE.get(key)
                    if data is None:
                        data = _encode(np.broadcast_to(lut[code], blk.shape + ((spp,) if spp > 1 else ())), spp)
                        _CONSTANT_CACHE[key] = data
                else:
                    data = _encode(lut[blk], spp)
                chunks += [struct.pack("<I", len(data)), data, data[-4:]]
                offsets[k], counts[k] = pos + 4, len(data)
                pos += len(data) + 8
                k += 1
        header[lv.offsets_at:lv.offsets_at + offsets.nbytes] = offsets.tobytes()
        header[lv.counts_at:lv.counts_at + counts.nbytes] = counts.tobytes()
    if pos >= 2**32:
        raise ValueError(f"{path}: over 4 GB, classic TIFF cannot hold it")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(header)
            f.writelines(chunks)
    return path.stat().st_size
