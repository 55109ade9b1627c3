"""The ground under the scenes: island outline, land cover, villages and the fire.

Computed once per build on a 20 m "world" grid around Rhodes (aligned with every MGRS
tile's 20 m grid), then turned into *ground codes*: small integers that index spectral
look-up tables (:mod:`helpers.synthetic.scene`). Codes keep the rasters low-entropy, so
DEFLATE compresses them fast and small, while each item still differs by its clouds, the
fire's progress and a per-date radiometric change.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio import features
from shapely.geometry import MultiPolygon, Polygon, shape

from helpers.synthetic import scenario

# --------------------------------------------------------------------- the island

RHODES_OUTLINE: list[tuple[float, float]] = [
    # hand-made from the coastline's main capes and bays (lon, lat), clockwise from
    # the northern tip; about 1400 km2 like the real island
    (28.225, 36.458), (28.240, 36.432), (28.238, 36.405), (28.246, 36.382),
    (28.225, 36.352), (28.205, 36.330), (28.190, 36.300), (28.170, 36.270),
    (28.160, 36.245), (28.150, 36.228), (28.135, 36.205), (28.118, 36.180),
    (28.100, 36.160), (28.085, 36.125), (28.095, 36.095), (28.070, 36.070),
    (28.030, 36.055), (27.985, 36.035), (27.940, 36.010), (27.900, 35.975),
    (27.865, 35.935), (27.820, 35.905), (27.775, 35.875), (27.745, 35.905),
    (27.745, 35.955), (27.760, 36.010), (27.745, 36.055), (27.715, 36.095),
    (27.685, 36.130), (27.700, 36.165), (27.745, 36.200), (27.790, 36.235),
    (27.835, 36.270), (27.890, 36.310), (27.935, 36.340), (27.985, 36.365),
    (28.040, 36.390), (28.090, 36.410), (28.130, 36.420), (28.170, 36.435),
    (28.200, 36.450),
]

VILLAGES: list[tuple[str, float, float, float]] = [
    # name, lon, lat, radius (m)
    ("Rhodes", 28.212, 36.432, 1700), ("Ialysos", 28.155, 36.415, 900),
    ("Kremasti", 28.118, 36.405, 700), ("Paradisi", 28.088, 36.393, 600),
    ("Faliraki", 28.195, 36.340, 700), ("Kalythies", 28.170, 36.330, 450),
    ("Afandou", 28.165, 36.290, 600), ("Archangelos", 28.115, 36.215, 800),
    ("Lindos", 28.082, 36.095, 400), ("Lardos", 28.010, 36.088, 450),
    ("Gennadi", 27.925, 36.025, 400), ("Kattavia", 27.780, 35.955, 350),
    ("Apolakkia", 27.800, 36.050, 400), ("Embonas", 27.860, 36.230, 450),
    ("Laerma", 27.955, 36.160, 300), ("Asklipio", 27.990, 36.065, 300),
    ("Salakos", 27.950, 36.290, 300),
]

# --------------------------------------------------------------------- world grid

WORLD_RES = 20
WORLD_X0, WORLD_Y0 = 556_000, 4_040_000  # upper-left, multiples of 20 m like every tile
WORLD_WIDTH, WORLD_HEIGHT = 3_100, 3_800  # 62 km x 76 km around the island
WORLD_TRANSFORM = Affine(WORLD_RES, 0, WORLD_X0, 0, -WORLD_RES, WORLD_Y0)

# --------------------------------------------------------------------- ground codes

NODATA = 0
SEA = 1
VEG_LEVELS = 32  # vegetation fraction 0..0.95 in 32 steps
SOIL_LEVELS = 8  # soil brightness
LAND0 = 2  # LAND0 + veg * SOIL_LEVELS + soil
VILLAGE0 = LAND0 + VEG_LEVELS * SOIL_LEVELS  # 4 variants
VILLAGE_LEVELS = 4
BURNED0 = VILLAGE0 + VILLAGE_LEVELS  # BURNED0 + (burn * VEG_LEVELS + veg) * SOIL_LEVELS + soil
BURN_LEVELS = 12
"""Steps of a pixel's burn, :func:`burn_fraction`; the pre-fire vegetation is kept in
the code, so that a lightly burned pixel still looks like what grew there."""
N_GROUND = BURNED0 + BURN_LEVELS * VEG_LEVELS * SOIL_LEVELS

FIRE_START = dt.datetime(2023, 7, 18, 10, 0, tzinfo=dt.timezone.utc)  # ~13:00 local
FIRE_END = dt.datetime(2023, 7, 27, 12, 0, tzinfo=dt.timezone.utc)
IGNITION = (27.960, 36.152)  # near Laerma
TARGET_SCAR_KM2 = 165.0
"""Area reached by the front; unburned islands and the ragged edge leave ~150 km2 burned."""
EDGE_M = 80.0
"""Width (m of fire-front margin) over which a pixel on the front goes from unburned to
fully burned: the mixed pixels of the perimeter."""
CORE_M = 2500.0
"""Depth inside the front (m) where the burn reaches high severity."""
MMU_PIXELS = 25
"""Minimum mapping unit of the true scar: 25 pixels of 20 m, 1 ha."""


def burn_fraction(level: int | np.ndarray) -> float | np.ndarray:
    """Burn of a burned ground code's ``level`` (0..BURN_LEVELS-1): 0 unburned .. 1 charred.

    It is the pixel's burned share times the severity there, so a pixel half crossed by
    the front and a lightly scorched one share a level (an approximation). Steps are
    finer at low burn, where dNBR thresholds separate burned from unburned.
    """
    return ((np.asarray(level) + 1) / BURN_LEVELS) ** 1.5


def burn_level(burn: np.ndarray) -> np.ndarray:
    """Nearest level of :func:`burn_fraction` for a burn in 0..1 (uint16)."""
    k = np.round(np.clip(burn, 0, 1) ** (1 / 1.5) * BURN_LEVELS) - 1
    return np.clip(k, 0, BURN_LEVELS - 1).astype(np.uint16)


def island() -> Polygon:
    """The island outline in lon/lat (EPSG:4326)."""
    return Polygon(RHODES_OUTLINE)


def smooth_noise(shape: tuple[int, int], cell: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-interpolated value noise, roughly N(0, 1), features ~``cell`` pixels wide.

    Separable: fine = Wy @ coarse @ Wx.T with Gaussian weights, which is fast for
    any size and needs only numpy.
    """
    h, w = shape
    ch, cw = int(np.ceil(h / cell)) + 4, int(np.ceil(w / cell)) + 4
    coarse = rng.standard_normal((ch, cw))

    def weights(n: int, m: int) -> np.ndarray:
        u = (np.arange(n) + 0.5) / cell + 2.0
        d = u[:, None] - np.arange(m)[None, :]
        wts = np.exp(-(d / 0.85) ** 2)
        return wts / wts.sum(axis=1, keepdims=True)

    out = weights(h, ch) @ coarse @ weights(w, cw).T
    out /= max(float(out.std()), 1e-9)
    return np.round(out, 4)  # rounding keeps results stable across BLAS builds


def box_blur(a: np.ndarray, radius: int, passes: int = 2) -> np.ndarray:
    """Box filter by cumulative sums, repeated (≈ Gaussian); edges clamp."""
    out = a.astype(np.float64)
    for _ in range(passes):
        for axis in (0, 1):
            pad = [(0, 0), (0, 0)]
            pad[axis] = (radius + 1, radius)
            c = np.cumsum(np.pad(out, pad, mode="edge"), axis=axis)
            n = out.shape[axis]
            hi = np.take(c, np.arange(2 * radius + 1, 2 * radius + 1 + n), axis=axis)
            lo = np.take(c, np.arange(0, n), axis=axis)
            out = (hi - lo) / (2 * radius + 1)
    return out


def _rasterize_world(geom_utm, value: int = 1) -> np.ndarray:
    return features.rasterize(
        [(geom_utm, value)], out_shape=(WORLD_HEIGHT, WORLD_WIDTH),
        transform=WORLD_TRANSFORM, fill=0, dtype="uint8",
    ).astype(bool)


def _world_xy() -> tuple[np.ndarray, np.ndarray]:
    x = WORLD_X0 + (np.arange(WORLD_WIDTH) + 0.5) * WORLD_RES
    y = WORLD_Y0 - (np.arange(WORLD_HEIGHT) + 0.5) * WORLD_RES
    return x, y


@dataclass
class World:
    """Static ground of the scenario at 10 m, plus the fire's arrival field at 20 m."""

    ground10: np.ndarray  # uint16 codes, (2*H, 2*W), no fire
    burned10: np.ndarray  # uint16 codes if burned, same shape
    arrival20: np.ndarray  # float32, 0..1 where the fire burned (fraction of fire duration), inf elsewhere
    scar_window: tuple[slice, slice]  # 20 m window holding the whole scar
    scar_utm: MultiPolygon  # the true scar: 20 m pixels at least half burned (pixel edges)
    land20: np.ndarray  # bool
    burn20: np.ndarray  # float32 0..1, burned share x severity of each 20 m pixel (0 unburned)


def build_world(seed: int) -> World:
    """Land cover, villages and the burn scar around Rhodes; deterministic for a seed."""
    rng = np.random.default_rng([seed, 20230718])
    grid_shape = (WORLD_HEIGHT, WORLD_WIDTH)
    land = _rasterize_world(scenario.to_utm(island()))
    inland = np.clip(box_blur(land.astype(np.float32), 40) * 1.6 - 0.3, 0, 1)

    big = smooth_noise(grid_shape, 300, rng)
    mid = smooth_noise(grid_shape, 70, rng)
    small = smooth_noise(grid_shape, 15, rng)
    x, y = _world_xy()
    # pine forest in the centre-south hills (where the 2023 fire burned), drier north-west
    ix, iy = scenario.lonlat_to_utm(*IGNITION)
    forest = np.exp(-(((x[None, :] - ix + 3000) / 16000) ** 2 + ((y[:, None] - iy + 2000) / 14000) ** 2))
    fv = 0.30 + 0.25 * inland + 0.30 * forest + 0.10 * big + 0.07 * mid + 0.04 * small
    fv = np.clip(fv, 0.03, 0.95)
    veg = np.clip(np.round(fv / 0.95 * (VEG_LEVELS - 1)), 0, VEG_LEVELS - 1).astype(np.uint16)
    soil = np.clip(np.round(3.5 + 1.6 * smooth_noise(grid_shape, 40, rng)), 0, SOIL_LEVELS - 1).astype(np.uint16)

    villages = np.zeros(grid_shape, dtype=np.uint16)  # 0 = none, else 1 + variant
    wobble = smooth_noise(grid_shape, 8, rng)
    for k, (_, lon, lat, radius) in enumerate(VILLAGES):
        vx, vy = scenario.lonlat_to_utm(lon, lat)
        c0 = max(int((vx - 1.5 * radius - WORLD_X0) // WORLD_RES), 0)
        c1 = min(int((vx + 1.5 * radius - WORLD_X0) // WORLD_RES) + 1, WORLD_WIDTH)
        r0 = max(int((WORLD_Y0 - vy - 1.5 * radius) // WORLD_RES), 0)
        r1 = min(int((WORLD_Y0 - vy + 1.5 * radius) // WORLD_RES) + 1, WORLD_HEIGHT)
        win = (slice(r0, r1), slice(c0, c1))
        wx, wy = x[c0:c1][None, :] - vx, y[r0:r1][:, None] - vy
        village = (np.hypot(wx, wy) / radius + 0.25 * wobble[win] < 1.0) & land[win]
        variant = ((np.floor(wx / 60) + np.floor(wy / 60) + k) % VILLAGE_LEVELS).astype(np.uint16)
        villages[win][village] = 1 + variant[village]

    # ---- the fire: anisotropic spread from Laerma, mostly south and south-east. The
    # front stops where its arrival "time" reaches ``limit``; ``margin`` (m) is how far
    # inside the front a pixel lies. Noise at several scales makes the perimeter ragged,
    # unburned islands and fingers come from a patchy field that lifts the arrival
    # (more often near the edge, where the fire was weaker), and severity grows from
    # low at the edge to high in the core, with the fuel and local noise.
    dx, dy = x[None, :] - ix, y[:, None] - iy
    along = 0.30 * dx - 0.95 * dy  # towards SSE
    across = 0.95 * dx + 0.30 * dy
    dist = np.hypot(np.where(along > 0, along / 1.5, along / 0.8), across / 1.1)
    fine = smooth_noise(grid_shape, 4, rng)
    arrival = dist * (1 + 0.12 * mid + 0.09 * small + 0.03 * fine)
    burnable = land & (villages == 0) & (veg >= 8)
    order = np.sort(arrival[burnable])
    limit = order[int(TARGET_SCAR_KM2 * 1e6 / WORLD_RES**2)]
    patches = smooth_noise(grid_shape, 10, rng)
    specks = smooth_noise(grid_shape, 2.5, rng)
    lift = 4000.0 * np.clip(patches - 1.3, 0, None) + 3000.0 * np.clip(specks - 1.5, 0, None)
    margin = limit - arrival - lift
    share = np.clip(0.5 + margin / EDGE_M, 0, 1)  # burned share of the pixel
    depth = np.clip(margin / CORE_M, 0, 1)
    head = np.clip(along / 8000, 0, 1)  # the wind-driven run burned hot up to its edge
    severity = np.clip(0.04 + 0.95 * depth + 0.2 * smooth_noise(grid_shape, 30, rng)
                       + 0.08 * small + 0.5 * (fv - 0.6) + 0.2 * head, 0.03, 1.0)
    touched = burnable & (share > 0)
    burn = np.where(touched, share * severity, 0.0)
    parts = [shape(g) for g, v in features.shapes(touched.astype(np.uint8), mask=touched,
                                                   transform=WORLD_TRANSFORM) if v == 1]
    main = max(parts, key=lambda g: g.area)  # the fire's own region, no stray pixels
    fire = _rasterize_world(main) & touched
    burn20 = np.where(fire, burn, 0).astype(np.float32)
    # the truth as an analyst maps it: pixels at least half burned, at a minimum mapping
    # unit of 1 ha (smaller unburned islands are part of the scar, smaller specks are not)
    scar = features.sieve((fire & (share >= 0.5)).astype(np.uint8), MMU_PIXELS, connectivity=4).astype(bool)
    scar_parts = [shape(g) for g, v in features.shapes(scar.astype(np.uint8), mask=scar,
                                                        transform=WORLD_TRANSFORM) if v == 1]
    scar_utm = MultiPolygon(sorted(scar_parts, key=lambda g: -g.area))
    arrival20 = np.where(fire, np.clip(arrival / limit, 0, 1), np.inf).astype(np.float32)
    rows, cols = np.nonzero(fire)
    scar_window = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    level = burn_level(burn20)

    # ---- codes at 10 m: each 20 m pixel gives 2 x 2 equal 10 m pixels (a +-1 level
    # texture at 20 m keeps the land grainy); repeated rows make DEFLATE fast and small
    def up(a: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)

    grain = rng.integers(-1, 2, size=veg.shape, dtype=np.int16)
    veg10 = up(np.clip(veg.astype(np.int16) + grain, 0, VEG_LEVELS - 1).astype(np.uint16))
    soil10 = up(soil)
    land10 = up(land)
    vill10 = up(villages)
    ground10 = np.where(land10, LAND0 + veg10 * SOIL_LEVELS + soil10, SEA).astype(np.uint16)
    in_village = vill10 > 0
    ground10[in_village] = VILLAGE0 + vill10[in_village] - 1
    fire10 = up(fire)
    burned10 = np.where(fire10, BURNED0 + (up(level) * VEG_LEVELS + veg10) * SOIL_LEVELS + soil10,
                        ground10).astype(np.uint16)
    return World(ground10, burned10, arrival20, scar_window, scar_utm, land, burn20)


def fire_progress(when: dt.datetime) -> float:
    """Share of the fire's duration elapsed at ``when`` (0 before, 1 after)."""
    total = (FIRE_END - FIRE_START).total_seconds()
    return float(np.clip((when - FIRE_START).total_seconds() / total, 0.0, 1.0))
