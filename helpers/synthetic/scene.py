"""One item's pixels: ground codes + cloud states -> bands, true colour and SCL.

Every pixel of a scene is a *code* = ground code x N_STATES + sky state. Per item, small
look-up tables turn codes into digital numbers for each band and into SCL classes, so
reflectance and classification agree by construction, and the COG writer
(:mod:`helpers.synthetic.cog`) only looks up the blocks that are not constant. Digital numbers are BOA reflectance x 10000 with the +1000 offset
of processing baseline >= 04.00 already removed, as on Earth Search
(``earthsearch:boa_offset_applied: true``).
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass

import numpy as np

from helpers.synthetic import landscape as L
from helpers.synthetic import scenario

BANDS = ("blue", "green", "red", "nir", "swir22")
"""Order of the reflectance tables (Earth Search asset keys)."""

# sky states
CLEAR, SHADOW = 0, 1
CIRRUS = (2, 3)
MEDIUM = (4, 5, 6, 7)
HIGH = tuple(range(8, 16))
N_STATES = 16
CIRRUS_HAZE = {2: 0.03, 3: 0.07}
OPACITY = {**{s: 0.30 + 0.12 * i for i, s in enumerate(MEDIUM)},
           **{s: 0.72 + 0.04 * i for i, s in enumerate(HIGH)}}

# end-member reflectances (blue, green, red, nir, swir22)
SEA = np.array([0.045, 0.035, 0.015, 0.008, 0.003])
CANOPY = np.array([0.025, 0.050, 0.030, 0.320, 0.070])
SOIL = np.array([0.100, 0.140, 0.200, 0.250, 0.300])
VILLAGE = np.array([0.140, 0.160, 0.190, 0.240, 0.250])
CHAR = np.array([0.040, 0.050, 0.065, 0.069, 0.170])  # NDVI 0.03, NBR -0.42
CLOUD = np.array([0.520, 0.530, 0.540, 0.560, 0.300])
CIRRUS_TINT = np.array([1.00, 0.95, 0.90, 0.85, 0.60])
SHADOW_FACTOR = 0.45
VEGETATION_NDVI = 0.35
"""Sen2Cor-like split between SCL 4 (vegetation) and 5 (not vegetated)."""

LAND_NOISE_DN = 50.0
SEA_NOISE_DN = 20.0
"""Sensor-like noise (1 sigma, DN) on the workshop scene's bands: land and cloud, open sea."""
NOISY_ITEM_IDS = (scenario.WORKSHOP_ITEM_ID,)
"""Items whose bands carry per-pixel noise, so that they weigh what a real scene does."""
NOISY_BANDS = ("blue", "green", "red", "nir", "swir22")

SCL_NODATA, SCL_SHADOW, SCL_VEG, SCL_NOT_VEG, SCL_WATER = 0, 3, 4, 5, 6
SCL_MEDIUM, SCL_HIGH, SCL_CIRRUS = 8, 9, 10

TILE_PX10 = scenario.TILE_SIZE_M // 10
TILE_PX20 = scenario.TILE_SIZE_M // 20


def item_rng(seed: int, item_id: str, purpose: int) -> np.random.Generator:
    """A generator that depends only on the seed and the item id (stable across runs)."""
    return np.random.default_rng([seed, zlib.crc32(item_id.encode()), purpose])


def ground_reflectance(when: dt.datetime, gain: float | np.ndarray, sea_gain: float) -> np.ndarray:
    """(N_GROUND, 5) reflectance of every ground code at a date.

    Vegetation dries through the summer, faster on the brighter, thinner soils (the
    vegetation fraction loses 5 to 20 % from July to September): NDVI and NBR drop a
    little outside the scar too, as in real summer pairs. ``gain`` is the item's small
    radiometric change (sun, atmosphere), one number or one per band.
    """
    table = np.zeros((L.N_GROUND, len(BANDS)))
    table[L.SEA] = SEA * sea_gain
    season = (when - dt.datetime(2023, 7, 1, tzinfo=dt.timezone.utc)).days / 61
    for v in range(L.VEG_LEVELS):
        for s in range(L.SOIL_LEVELS):
            fv = v / (L.VEG_LEVELS - 1) * 0.95 * (1.0 - (0.05 + 0.022 * s) * season)
            soil = SOIL * (0.80 + 0.06 * s)
            table[L.LAND0 + v * L.SOIL_LEVELS + s] = (fv * CANOPY + (1 - fv) * soil) * gain
            for k in range(L.BURN_LEVELS):
                table[L.BURNED0 + (k * L.VEG_LEVELS + v) * L.SOIL_LEVELS + s] = \
                    burned_reflectance(fv, soil, float(L.burn_fraction(k))) * gain
    for k in range(L.VILLAGE_LEVELS):
        table[L.VILLAGE0 + k] = VILLAGE * (0.90 + 0.08 * k) * gain
    return table


def burned_reflectance(fv: float, soil: np.ndarray, burn: float) -> np.ndarray:
    """Reflectance after a fire of ``burn`` (0 unburned .. 1 fully charred) over canopy ``fv``.

    Green canopy survives as ``fv (1 - burn)^2`` (scorched leaves die before they char,
    so NIR drops faster than the char cover grows), char covers ``burn`` of the rest and
    soil shows through the remainder: a lightly burned pixel keeps NDVI ~0.2-0.35, a
    moderately to fully burned one 0.0-0.15, like Sentinel-2 over Mediterranean fires.
    """
    green = fv * (1 - burn) ** 2
    char = burn * (1 - green)
    return green * CANOPY + char * CHAR + (1 - green - char) * soil


def code_reflectance(ground: np.ndarray) -> np.ndarray:
    """(N_GROUND * N_STATES, 5): every ground code under every sky state."""
    out = np.empty((L.N_GROUND, N_STATES, len(BANDS)))
    out[:, CLEAR] = ground
    out[:, SHADOW] = ground * SHADOW_FACTOR
    for s, haze in CIRRUS_HAZE.items():
        out[:, s] = ground + haze * CIRRUS_TINT
    for s, a in OPACITY.items():
        out[:, s] = (1 - a) * ground + a * CLOUD
    out[L.NODATA] = 0.0
    return out.reshape(L.N_GROUND * N_STATES, len(BANDS))


def code_scl(ground: np.ndarray) -> np.ndarray:
    """(N_GROUND * N_STATES,) uint8 SCL class of every code."""
    red, nir = ground[:, 2], ground[:, 3]
    ndvi = (nir - red) / np.maximum(nir + red, 1e-9)
    base = np.where(ndvi >= VEGETATION_NDVI, SCL_VEG, SCL_NOT_VEG).astype(np.uint8)
    base[L.VILLAGE0:L.BURNED0] = SCL_NOT_VEG  # villages; burned land by its NDVI, as Sen2Cor
    base[L.SEA] = SCL_WATER
    base[L.NODATA] = SCL_NODATA
    out = np.repeat(base[:, None], N_STATES, axis=1)
    out[:, SHADOW] = SCL_SHADOW
    out[:, list(CIRRUS)] = SCL_CIRRUS
    out[:, list(MEDIUM)] = SCL_MEDIUM
    out[:, list(HIGH)] = SCL_HIGH
    out[L.NODATA] = SCL_NODATA
    return out.reshape(-1)


def code_noise_sigma() -> np.ndarray:
    """(N_GROUND * N_STATES,) float32 noise sigma in DN per code: 0 for nodata,
    :data:`SEA_NOISE_DN` for open sea (clear or shadowed), :data:`LAND_NOISE_DN` else."""
    sigma = np.full((L.N_GROUND, N_STATES), LAND_NOISE_DN, dtype=np.float32)
    sigma[L.SEA, [CLEAR, SHADOW]] = SEA_NOISE_DN
    sigma[L.NODATA] = 0.0
    return sigma.reshape(-1)


def to_dn(reflectance: np.ndarray) -> np.ndarray:
    """Harmonised L2A digital numbers (reflectance x 10000), 0 kept for nodata."""
    dn = np.clip(np.round(reflectance * 10000), 1, 32767).astype(np.uint16)
    dn[reflectance <= 0] = 0
    return dn


def to_tci(dn: np.ndarray) -> np.ndarray:
    """ESA true-colour stretch: DN 0-2000 -> 1-255, 0 kept for nodata."""
    tci = np.clip(np.round(dn.astype(np.float64) * 255 / 2000), 1, 255).astype(np.uint8)
    tci[dn == 0] = 0
    return tci


@dataclass
class Luts:
    """Per-item look-up tables indexed by code."""

    dn: dict[str, np.ndarray]  # band -> uint16
    tci: np.ndarray  # (codes, 3) uint8: red, green, blue
    scl: np.ndarray  # uint8


def item_luts(acq: scenario.Acquisition, seed: int) -> Luts:
    """The item's tables: a small radiometric gain per date (sun, atmosphere) and sea state."""
    rng = item_rng(seed, acq.item_id, 1)
    gain = float(np.clip(1 + 0.012 * rng.standard_normal(), 0.97, 1.03))
    sea_gain = float(np.clip(1 + 0.04 * rng.standard_normal(), 0.9, 1.1))
    band_gain = np.clip(1 + 0.008 * rng.standard_normal(len(BANDS)), 0.98, 1.02)  # calibration noise
    ground = ground_reflectance(acq.datetime, gain * band_gain, sea_gain)
    refl = code_reflectance(ground)
    dn = {band: to_dn(refl[:, i]) for i, band in enumerate(BANDS)}
    tci = np.stack([to_tci(dn["red"]), to_tci(dn["green"]), to_tci(dn["blue"])], axis=1)
    return Luts(dn, tci, code_scl(ground))


# ------------------------------------------------------------------ clouds


def cloud_target(acq: scenario.Acquisition, seed: int) -> float:
    """Planned cloud cover (%) of an item: a dry summer with a few cloudy days.

    At the point of interest (35SNA, R107) every scene stays under 1 % except one, so
    that the workshop's ``eo:cloud_cover<1`` filter keeps 11 of 12; the workshop scene
    gets the live value.
    """
    if acq.item_id == scenario.WORKSHOP_ITEM_ID:
        return float(scenario.WORKSHOP_PROPERTIES["eo:cloud_cover"])
    if acq.item_id == CLOUDY_POINT_ITEM_ID:
        return 6.84
    rng = item_rng(seed, acq.item_id, 2)
    if acq.tile == "35SNA" and acq.orbit.name == "R107" or acq.date == dt.date(2023, 7, 13):
        return round(float(rng.choice([0.0, rng.uniform(0.0, 0.05), rng.uniform(0.05, 0.9)])), 6)
    u = rng.uniform()
    if u < 0.55:
        return round(float(rng.uniform(0.0, 1.0)), 6)
    if u < 0.88:
        return round(float(rng.uniform(1.0, 10.0)), 6)
    return round(float(rng.uniform(10.0, 35.0)), 6)


CLOUDY_POINT_ITEM_ID = "S2B_35SNA_20230812_0_L2A"
"""The one point-of-interest scene with cloud cover >= 1 %."""


def valid_mask(start: np.ndarray, stop: np.ndarray, n: int) -> np.ndarray:
    """(n, n) bool: inside the swath, from per-row column ranges."""
    cols = np.arange(n)
    return (cols[None, :] >= start[:, None]) & (cols[None, :] < stop[:, None])


def sky_states(acq: scenario.Acquisition, seed: int, target_pct: float) -> np.ndarray:
    """(5490, 5490) uint8 sky state at 20 m: exactly ``target_pct`` % of valid pixels cloudy.

    Clouds are noisy blobs dropped on the swath; the brightest ``n`` pixels of their
    field become cloud (cores high probability, rims medium, some blobs thin cirrus),
    and opaque clouds cast shadows away from the sun.
    """
    n = TILE_PX20
    states = np.zeros((n, n), dtype=np.uint8)
    start, stop = scenario.valid_columns(acq.orbit.name, acq.tile, 20)
    n_valid = int(np.sum(stop - start))
    n_cloud = int(round(target_pct / 100 * n_valid))
    if n_cloud == 0:
        return states
    rng = item_rng(seed, acq.item_id, 3)
    field = np.zeros((n, n), dtype=np.float32)
    cirrus = np.zeros((n, n), dtype=bool)
    valid = valid_mask(start, stop, n)
    rows_ok = np.flatnonzero(stop > start)
    n_blobs = int(np.clip(n_cloud // 4000, 2, 25))
    covered = 0
    while covered < 2.0 * n_cloud:
        radius = float(np.sqrt(2.5 * n_cloud / (np.pi * n_blobs)) * rng.lognormal(0, 0.35))
        radius = max(radius, 6.0)
        r = int(rng.choice(rows_ok))
        c = int(rng.integers(start[r], stop[r]))
        half = int(2.2 * radius) + 2
        r0, r1, c0, c1 = max(r - half, 0), min(r + half, n), max(c - half, 0), min(c + half, n)
        yy = (np.arange(r0, r1) - r)[:, None] / radius
        xx = (np.arange(c0, c1) - c)[None, :] / radius
        wobble = L.smooth_noise((r1 - r0, c1 - c0), max(radius / 3, 2.0), rng)
        value = (np.exp(-(yy**2 + xx**2)) * (1 + 0.35 * wobble)).astype(np.float32)
        win = (slice(r0, r1), slice(c0, c1))
        better = value > field[win]
        field[win] = np.where(better, value, field[win])
        if rng.uniform() < 0.15:
            cirrus[win] |= better
        else:
            cirrus[win] &= ~better
        covered += int(np.count_nonzero((value > 0.05) & valid[win]))
    field[~valid] = 0
    flat = np.flatnonzero(field > 0)
    values = field.ravel()[flat]
    if flat.size < n_cloud:
        raise RuntimeError(f"{acq.item_id}: cloud blobs too small for {target_pct} %")
    pick = np.argpartition(-values, n_cloud - 1)[:n_cloud]
    chosen, chosen_values = flat[pick], values[pick]
    lo, hi = float(chosen_values.min()), float(chosen_values.max())
    rel = (chosen_values - lo) / max(hi - lo, 1e-6)
    state = np.where(
        rel < 0.35,
        MEDIUM[0] + np.minimum((rel / 0.35 * len(MEDIUM)).astype(int), len(MEDIUM) - 1),
        HIGH[0] + np.minimum(((rel - 0.35) / 0.65 * len(HIGH)).astype(int), len(HIGH) - 1),
    ).astype(np.uint8)
    is_cirrus = cirrus.ravel()[chosen]
    state[is_cirrus] = np.where(rel[is_cirrus] > 0.5, CIRRUS[1], CIRRUS[0])
    states.ravel()[chosen] = state

    # shadows: opaque cloud moved away from the sun by height / tan(elevation)
    lon, lat = scenario.to_lonlat(scenario.tile_box(acq.tile).centroid).coords[0]
    azimuth, elevation = scenario.sun_angles(acq.datetime, lon, lat)
    length = 2000.0 / np.tan(np.radians(elevation)) / 20  # pixels at 20 m
    dc = int(round(-np.sin(np.radians(azimuth)) * length))
    dr = int(round(np.cos(np.radians(azimuth)) * length))
    opaque = states >= MEDIUM[0]
    shadow = np.zeros_like(opaque)
    src = opaque[max(-dr, 0):n - max(dr, 0), max(-dc, 0):n - max(dc, 0)]
    shadow[max(dr, 0):n - max(-dr, 0), max(dc, 0):n - max(-dc, 0)] = src
    shadow &= (states == CLEAR) & valid
    states[shadow] = SHADOW
    return states


# ------------------------------------------------------------------ codes


def _paste_window(tile: str, resolution: int, world_res: int, world_shape: tuple[int, int]):
    """Slices (tile, world) where the world grid overlaps the tile grid."""
    x0, y0 = scenario.TILE_ORIGINS[tile]
    n = scenario.TILE_SIZE_M // resolution
    col = (L.WORLD_X0 - x0) // resolution
    row = (y0 - L.WORLD_Y0) // resolution
    h, w = world_shape
    t_r0, t_c0 = max(row, 0), max(col, 0)
    t_r1, t_c1 = min(row + h, n), min(col + w, n)
    return (slice(t_r0, t_r1), slice(t_c0, t_c1)), (slice(t_r0 - row, t_r1 - row), slice(t_c0 - col, t_c1 - col))


def scene_codes(acq: scenario.Acquisition, world: L.World, states20: np.ndarray,
                out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the scene at 10 m (10980^2) and 20 m (5490^2), nodata outside the swath.

    ``out``: a (10980, 10980) uint16 buffer to fill (reused from item to item).
    """
    n10 = TILE_PX10
    codes = np.empty((n10, n10), dtype=np.uint16) if out is None else out
    codes.fill(L.SEA)
    t_win, w_win = _paste_window(acq.tile, 10, 10, world.ground10.shape)
    ground = world.ground10[w_win]
    progress = L.fire_progress(acq.datetime)
    if progress > 0:
        ground = ground.copy()
        sr, sc = world.scar_window
        burned20 = world.arrival20[sr, sc] <= progress
        burned10 = np.repeat(np.repeat(burned20, 2, axis=0), 2, axis=1)
        scar10 = (slice(2 * sr.start, 2 * sr.stop), slice(2 * sc.start, 2 * sc.stop))
        # the scar window in the pasted-world coordinates
        wr0, wc0 = w_win[0].start, w_win[1].start
        r0, r1 = max(scar10[0].start, wr0), min(scar10[0].stop, w_win[0].stop)
        c0, c1 = max(scar10[1].start, wc0), min(scar10[1].stop, w_win[1].stop)
        if r0 < r1 and c0 < c1:
            sub = burned10[r0 - scar10[0].start:r1 - scar10[0].start, c0 - scar10[1].start:c1 - scar10[1].start]
            tgt = ground[r0 - wr0:r1 - wr0, c0 - wc0:c1 - wc0]
            tgt[sub] = world.burned10[r0:r1, c0:c1][sub]
    codes[t_win] = ground
    codes20 = codes[::2, ::2] * np.uint16(N_STATES) + states20
    codes *= np.uint16(N_STATES)
    # each 20 m sky state covers 2 x 2 pixels at 10 m: add through a broadcast view
    codes.reshape(TILE_PX20, 2, TILE_PX20, 2)[...] += states20[:, None, :, None]
    for grid, res in ((codes, 10), (codes20, 20)):
        start, stop = scenario.valid_columns(acq.orbit.name, acq.tile, res)
        n = grid.shape[0]
        for r in np.flatnonzero(start > 0):
            grid[r, :start[r]] = 0
        for r in np.flatnonzero(stop < n):
            grid[r, stop[r]:] = 0
    return codes, codes20


SCL_NAMES = {
    1: "saturated_defective_pixel", 2: "dark_features", 3: "cloud_shadow", 4: "vegetation",
    5: "not_vegetated", 6: "water", 7: "unclassified", 8: "medium_proba_clouds",
    9: "high_proba_clouds", 10: "thin_cirrus", 11: "snow_ice",
}


def scl_statistics(scl: np.ndarray) -> dict[str, float]:
    """Earth Search's ``s2:*_percentage`` and ``eo:cloud_cover`` measured on an SCL raster."""
    return scl_statistics_from_counts(np.bincount(scl.ravel(), minlength=12))


def scl_statistics_from_counts(counts: np.ndarray) -> dict[str, float]:
    """The same from pixel counts per SCL class (index = class).

    Class shares are over valid (non-zero) pixels, the nodata share over all pixels.
    """
    counts = np.asarray(counts, dtype=np.float64)
    valid = counts[1:].sum()
    stats = {"s2:nodata_pixel_percentage": counts[0] / counts.sum() * 100}
    for cls, name in SCL_NAMES.items():
        stats[f"s2:{name}_percentage"] = counts[cls] / valid * 100 if valid else 0.0
    stats["eo:cloud_cover"] = counts[[8, 9, 10]].sum() / valid * 100 if valid else 0.0
    return stats
