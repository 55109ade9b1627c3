"""The acquisition plan of the offline Rhodes catalogue: tiles, orbits, dates, footprints.

Everything here is geometry and calendar, no pixels. The figures reproduce what the
workshop saw on Earth Search in July/August 2023 (see
``shared/reference/earth-search-and-rhodes.md``): 4 MGRS tiles, relative orbit R107
every 5 days over all of them, a second orbit (R007) over the western tiles only, 73 items
over the island, 12 of them at ``Point(27.95, 36.20)``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from pyproj import Transformer
from shapely.geometry import Polygon, box
import shapely

from helpers import paths

EPSG = 32635
"""UTM zone 35N: every tile over Rhodes."""

TILE_SIZE_M = 109_800
"""A Sentinel-2 MGRS tile: 10980 pixels of 10 m (5490 of 20 m)."""

TILE_ORIGINS: dict[str, tuple[int, int]] = {
    # upper-left corner (x, y) of the 10 m grid in EPSG:32635
    "35SNA": (499_980, 4_100_040),
    "35SNV": (499_980, 4_000_020),
    "35SPA": (600_000, 4_100_040),
    "35SPV": (600_000, 4_000_020),
}

WORKSHOP_ITEM_ID = paths.WORKSHOP_SCENE_ID
WORKSHOP_FOOTPRINT: list[tuple[float, float]] = [
    # lon, lat of the live item (reference), closed below
    (27.2904, 37.0462),
    (27.2330, 36.8388),
    (27.0111, 36.0567),
    (28.2188, 36.0505),
    (28.2344, 37.0402),
]
WORKSHOP_PROPERTIES = {
    "datetime": "2023-08-27T09:00:21.327000Z",
    "eo:cloud_cover": 0.955362,
    "s2:nodata_pixel_percentage": 12.146,
}

POINT_OF_INTEREST = (27.95, 36.20)
"""The workshop's search point (lon, lat), inside 35SNA only."""

BURN_CHECK_POINT = (585_000, 3_995_000)
"""The workshop's burned-area check point (x, y) in EPSG:32635."""

# The west edge of R107 over 35SNA, from the live footprint; extended linearly north and
# south. R007, the next orbit to the west, passes 3 days and ~10 minutes later and
# overlaps R107 by about 70 km: its east edge is the R107 west edge moved east.
R107_WEST_EDGE: list[tuple[float, float]] = [
    (27.2904, 37.0462),
    (27.2330, 36.8388),
    (27.0111, 36.0567),
]
R007_EAST_EDGE_SHIFT_DEG = 0.78
"""R007's east edge = R107's west edge + this many degrees of longitude (west of the POI)."""

DATA_EDGE_INSET_M = -202.0
"""How far inside the footprint edge the valid pixels stop (negative: they reach past it).
Live footprints are simplified outlines that cut the jagged data edge; -202 m makes the
workshop item's nodata share come out at the live 12.146 % with the live polygon."""

MISSING_ITEM_ID = "S2B_35SNV_20230805_0_L2A"
"""The one R007 granule absent from the live archive (74 planned, 73 published)."""


@dataclass(frozen=True)
class Orbit:
    """A relative orbit: when it passes and which tiles it covers."""

    name: str  # "R107"
    number: int
    first: dt.date
    last: dt.date
    time_utc: dt.time  # of the 35SNA granule (north of the others)
    datatake_start: str  # "084601" in the product URI
    tiles: tuple[str, ...]
    side: str  # "east": the swath lies east of its edge (R107); "west" for R007


ORBITS: tuple[Orbit, ...] = (
    Orbit(
        "R107", 107, dt.date(2023, 7, 3), dt.date(2023, 8, 27), dt.time(9, 0, 21, 327000),
        "084601", ("35SNA", "35SNV", "35SPA", "35SPV"), "east",
    ),
    Orbit(
        "R007", 7, dt.date(2023, 7, 1), dt.date(2023, 8, 30), dt.time(9, 10, 19, 814000),
        "085601", ("35SNA", "35SNV"), "west",
    ),
)

# Sentinel-2A flies R107 on 2023-08-27; 2B is 5 days behind. R007 comes 43 orbits
# (3 days + ~10 min) after R107 on the same satellite.
_S2A_DAYS = {"R107": dt.date(2023, 8, 27), "R007": dt.date(2023, 8, 30)}


@dataclass(frozen=True)
class Acquisition:
    """One planned granule: a tile seen by one orbit on one date."""

    item_id: str
    tile: str
    orbit: Orbit
    platform: str  # "sentinel-2a"
    datetime: dt.datetime  # timezone-aware UTC

    @property
    def date(self) -> dt.date:
        return self.datetime.date()

    @property
    def cog_dir(self) -> str:
        """``35/S/NA/2023/8/<id>``: the Earth Search bucket layout, relative to the COG root."""
        zone, band, square = self.tile[:2], self.tile[2], self.tile[3:]
        return f"{zone}/{band}/{square}/{self.date.year}/{self.date.month}/{self.item_id}"


def _platform(orbit: Orbit, day: dt.date) -> str:
    return "sentinel-2a" if (day - _S2A_DAYS[orbit.name]).days % 10 == 0 else "sentinel-2b"


def _granule_time(orbit: Orbit, tile: str, day: dt.date) -> dt.datetime:
    """Descending pass: the southern row (``V``) is seen ~15 s after the northern (``A``)."""
    base = dt.datetime.combine(day, orbit.time_utc, tzinfo=dt.timezone.utc)
    if tile.endswith("V"):
        base += dt.timedelta(seconds=14, milliseconds=612)
    if tile[3] == "P":  # east of the ground track centre line: same line, a little earlier
        base -= dt.timedelta(milliseconds=1_180)
    return base


def item_id(platform: str, tile: str, day: dt.date) -> str:
    """Earth Search v1 id: ``S2A_35SNA_20230827_0_L2A``."""
    return f"S2{platform[-1].upper()}_{tile}_{day:%Y%m%d}_0_L2A"


def schedule() -> list[Acquisition]:
    """All published granules, newest first (the order of a live search)."""
    acquisitions = []
    for orbit in ORBITS:
        day = orbit.first
        while day <= orbit.last:
            platform = _platform(orbit, day)
            for tile in orbit.tiles:
                ident = item_id(platform, tile, day)
                if ident == MISSING_ITEM_ID:
                    continue
                acquisitions.append(
                    Acquisition(ident, tile, orbit, platform, _granule_time(orbit, tile, day))
                )
            day += dt.timedelta(days=5)
    acquisitions.sort(key=lambda a: (a.datetime, a.item_id), reverse=True)
    return acquisitions


# ---------------------------------------------------------------- geometry

_TO_UTM = Transformer.from_crs(4326, EPSG, always_xy=True)
_TO_LONLAT = Transformer.from_crs(EPSG, 4326, always_xy=True)


def lonlat_to_utm(lon: float, lat: float) -> tuple[float, float]:
    """One point lon/lat -> (x, y) in EPSG:32635."""
    return _TO_UTM.transform(lon, lat)


def to_utm(geom):
    """Shapely geometry lon/lat -> EPSG:32635."""
    return shapely.transform(geom, _TO_UTM.transform, interleaved=False)


def to_lonlat(geom):
    """Shapely geometry EPSG:32635 -> lon/lat."""
    return shapely.transform(geom, _TO_LONLAT.transform, interleaved=False)


def tile_box(tile: str) -> Polygon:
    """The tile's extent in EPSG:32635."""
    x0, y0 = TILE_ORIGINS[tile]
    return box(x0, y0 - TILE_SIZE_M, x0 + TILE_SIZE_M, y0)


@lru_cache(maxsize=None)
def swath_edge_utm(orbit_name: str) -> tuple[np.ndarray, np.ndarray]:
    """The orbit's swath edge over Rhodes as (x, y) arrays in EPSG:32635, y increasing.

    Densified in lon/lat (the edge is straight there) from latitude 34.5 to 38.0.
    """
    lons = np.array([p[0] for p in R107_WEST_EDGE])
    lats = np.array([p[1] for p in R107_WEST_EDGE])
    order = np.argsort(lats)
    lons, lats = lons[order], lats[order]
    # extend with the slopes of the end segments
    s_lo = (lons[1] - lons[0]) / (lats[1] - lats[0])
    s_hi = (lons[-1] - lons[-2]) / (lats[-1] - lats[-2])
    lat_lo, lat_hi = 34.5, 38.0
    lons = np.concatenate([[lons[0] + s_lo * (lat_lo - lats[0])], lons,
                           [lons[-1] + s_hi * (lat_hi - lats[-1])]])
    lats = np.concatenate([[lat_lo], lats, [lat_hi]])
    dense_lat = np.unique(np.concatenate([np.linspace(lat_lo, lat_hi, 351), lats]))
    dense_lon = np.interp(dense_lat, lats, lons)
    if orbit_name == "R007":
        dense_lon = dense_lon + R007_EAST_EDGE_SHIFT_DEG
    x, y = _TO_UTM.transform(dense_lon, dense_lat)
    return np.asarray(x), np.asarray(y)


def _orbit(orbit_name: str) -> Orbit:
    return next(o for o in ORBITS if o.name == orbit_name)


def swath_polygon_utm(orbit_name: str) -> Polygon:
    """The swath side of the edge, as a large polygon in EPSG:32635."""
    x, y = swath_edge_utm(orbit_name)
    far = 400_000 if _orbit(orbit_name).side == "east" else -400_000
    ring = list(zip(x, y)) + [(x[-1] + far, y[-1]), (x[0] + far, y[0])]
    return Polygon(ring)


def footprint(acq: Acquisition) -> Polygon:
    """Item geometry in lon/lat: tile ∩ swath (the live polygon for the workshop item)."""
    if acq.item_id == WORKSHOP_ITEM_ID:
        return Polygon(WORKSHOP_FOOTPRINT)
    part = tile_box(acq.tile).intersection(swath_polygon_utm(acq.orbit.name))
    part = part.segmentize(5_000)  # tile edges are straight in UTM, curved in lon/lat
    lonlat = to_lonlat(part).simplify(0.0001)
    return Polygon([(round(x, 6), round(y, 6)) for x, y in lonlat.exterior.coords])


def valid_columns(orbit_name: str, tile: str, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of the tile grid, the half-open range [start, stop) of valid columns.

    A pixel is valid when its centre lies on the swath side of the data edge, which is
    :data:`DATA_EDGE_INSET_M` inside the footprint edge. Rows are contiguous because the
    swath is a half-plane-like region across the tile.
    """
    x0, y0 = TILE_ORIGINS[tile]
    n = TILE_SIZE_M // resolution
    ex, ey = swath_edge_utm(orbit_name)
    row_y = y0 - (np.arange(n) + 0.5) * resolution
    edge_x = np.interp(row_y, ey, ex)
    side = _orbit(orbit_name).side
    edge_x = edge_x + (DATA_EDGE_INSET_M if side == "east" else -DATA_EDGE_INSET_M)
    # column c is valid when x0 + (c + 0.5) * res is on the swath side of edge_x
    boundary = np.ceil((edge_x - x0) / resolution - 0.5)
    if side == "east":
        start = np.clip(boundary, 0, n).astype(np.int64)
        stop = np.full(n, n, dtype=np.int64)
    else:
        start = np.zeros(n, dtype=np.int64)
        stop = np.clip(boundary, 0, n).astype(np.int64)
    return start, stop


def nodata_fraction(orbit_name: str, tile: str, resolution: int = 10) -> float:
    """Share of the tile's pixels outside the swath (0-1)."""
    start, stop = valid_columns(orbit_name, tile, resolution)
    n = TILE_SIZE_M // resolution
    return 1.0 - float(np.sum(stop - start)) / (n * n)


# ---------------------------------------------------------------- sun


def sun_angles(when: dt.datetime, lon: float, lat: float) -> tuple[float, float]:
    """Solar azimuth and elevation in degrees (NOAA's low-precision formulae, ±0.1°).

    Hand-written: no solar ephemeris library is in the pinned stack, and the STAC
    ``view:sun_*`` properties and cloud-shadow offsets need only a tenth of a degree.
    """
    doy = when.timetuple().tm_yday
    hour = when.hour + when.minute / 60 + when.second / 3600
    g = 2 * math.pi / 365 * (doy - 1 + (hour - 12) / 24)
    eqtime = 229.18 * (0.000075 + 0.001868 * math.cos(g) - 0.032077 * math.sin(g)
                       - 0.014615 * math.cos(2 * g) - 0.040849 * math.sin(2 * g))
    decl = (0.006918 - 0.399912 * math.cos(g) + 0.070257 * math.sin(g)
            - 0.006758 * math.cos(2 * g) + 0.000907 * math.sin(2 * g)
            - 0.002697 * math.cos(3 * g) + 0.00148 * math.sin(3 * g))
    tst = hour * 60 + eqtime + 4 * lon
    ha = math.radians(tst / 4 - 180)
    phi = math.radians(lat)
    cos_zen = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(ha)
    zen = math.acos(max(-1.0, min(1.0, cos_zen)))
    az = math.degrees(math.atan2(
        math.sin(ha), math.cos(ha) * math.sin(phi) - math.tan(decl) * math.cos(phi))) + 180
    return az % 360, 90 - math.degrees(zen)
