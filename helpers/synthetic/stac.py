"""STAC JSON for the offline catalogue, shaped like Earth Search v1's ``sentinel-2-l2a``.

Written as plain dictionaries (not pystac objects) so that the extension versions and
field names are exactly Earth Search's (``proj:epsg`` of projection v1.1.0, not the
``proj:code`` pystac's current extension would write); tests read them back with pystac.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from shapely.geometry import mapping

from helpers.synthetic import scenario

STAC_VERSION = "1.0.0"
COLLECTION_ID = "sentinel-2-l2a"
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"

ITEM_EXTENSIONS = [
    "https://stac-extensions.github.io/processing/v1.1.0/schema.json",
    "https://stac-extensions.github.io/grid/v1.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
]

# asset key -> (file, title, eo:bands entry or None, resolution, dtype)
BAND_ASSETS: dict[str, tuple[str, str, dict[str, Any], int]] = {
    "blue": ("B02.tif", "Blue (band 2) - 10m",
             {"name": "blue", "common_name": "blue", "description": "Blue (band 2)",
              "center_wavelength": 0.49, "full_width_half_max": 0.098}, 10),
    "green": ("B03.tif", "Green (band 3) - 10m",
              {"name": "green", "common_name": "green", "description": "Green (band 3)",
               "center_wavelength": 0.56, "full_width_half_max": 0.045}, 10),
    "red": ("B04.tif", "Red (band 4) - 10m",
            {"name": "red", "common_name": "red", "description": "Red (band 4)",
             "center_wavelength": 0.665, "full_width_half_max": 0.038}, 10),
    "nir": ("B08.tif", "NIR 1 (band 8) - 10m",
            {"name": "nir", "common_name": "nir", "description": "NIR 1 (band 8)",
             "center_wavelength": 0.842, "full_width_half_max": 0.145}, 10),
    "swir22": ("B12.tif", "SWIR 2.2μm (band 12) - 20m",
               {"name": "swir22", "common_name": "swir22", "description": "SWIR 2.2μm (band 12)",
                "center_wavelength": 2.19, "full_width_half_max": 0.242}, 20),
}
SCL_FILE, VISUAL_FILE, THUMBNAIL_FILE = "SCL.tif", "TCI.tif", "thumbnail.jpg"
ASSET_FILES = {**{k: v[0] for k, v in BAND_ASSETS.items()},
               "scl": SCL_FILE, "visual": VISUAL_FILE, "thumbnail": THUMBNAIL_FILE}
"""Asset key -> file name in the item's COG folder (Earth Search's names)."""


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _transform(tile: str, res: int) -> list[float]:
    x0, y0 = scenario.TILE_ORIGINS[tile]
    return [res, 0, x0, 0, -res, y0]


def asset_definitions(tile: str | None) -> dict[str, dict[str, Any]]:
    """Assets of an item (``tile`` given) or the collection's ``item_assets`` (None)."""
    assets: dict[str, dict[str, Any]] = {}
    for key, (_, title, band, res) in BAND_ASSETS.items():
        n = scenario.TILE_SIZE_M // res
        a: dict[str, Any] = {"type": COG_TYPE, "title": title, "eo:bands": [band], "gsd": res}
        if tile:
            a["proj:shape"] = [n, n]
            a["proj:transform"] = _transform(tile, res)
        a["raster:bands"] = [{"nodata": 0, "data_type": "uint16", "bits_per_sample": 15,
                              "spatial_resolution": res, "scale": 0.0001, "offset": -0.1}]
        a["roles"] = ["data", "reflectance"]
        assets[key] = a
    scl: dict[str, Any] = {"type": COG_TYPE, "title": "Scene classification map (SCL)"}
    if tile:
        scl["proj:shape"] = [5490, 5490]
        scl["proj:transform"] = _transform(tile, 20)
    scl["raster:bands"] = [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}]
    scl["roles"] = ["data", "reflectance"]
    assets["scl"] = scl
    visual: dict[str, Any] = {"type": COG_TYPE, "title": "True color image",
                              "eo:bands": [BAND_ASSETS[b][2] for b in ("red", "green", "blue")]}
    if tile:
        visual["proj:shape"] = [10980, 10980]
        visual["proj:transform"] = _transform(tile, 10)
    visual["roles"] = ["visual"]
    assets["visual"] = visual
    assets["thumbnail"] = {"type": "image/jpeg", "title": "Thumbnail image", "roles": ["thumbnail"]}
    return assets


def _absolute_orbit(acq: scenario.Acquisition) -> int:
    """Plausible absolute orbit: 143 per 10-day cycle, consistent with the relative one."""
    epoch = dt.date(2023, 8, 27)
    cycles = (acq.date - epoch).days // 10
    base = 42866 if acq.platform == "sentinel-2a" else 34003
    return base + 143 * cycles + (acq.orbit.number - 107) % 143


def item_dict(acq: scenario.Acquisition, stats: dict[str, float], cog_href_prefix: str,
              generator_version: str) -> dict[str, Any]:
    """The item JSON; ``stats`` holds the ``s2:*_percentage`` and ``eo:cloud_cover`` measured
    on the written SCL raster, ``cog_href_prefix`` the item folder relative to the JSON file."""
    geom = scenario.footprint(acq)
    zone, band, square = acq.tile[:2], acq.tile[2], acq.tile[3:]
    sensing = acq.datetime
    start = dt.datetime.combine(acq.date, dt.time.fromisoformat(
        f"{acq.orbit.datatake_start[:2]}:{acq.orbit.datatake_start[2:4]}:{acq.orbit.datatake_start[4:]}"),
        tzinfo=dt.timezone.utc)
    generated = start + dt.timedelta(hours=3, minutes=14, seconds=7)
    created = generated + dt.timedelta(hours=1, minutes=2, seconds=11.5)
    sat = f"S2{acq.platform[-1].upper()}"
    orbit = _absolute_orbit(acq)
    lon, lat = geom.centroid.coords[0]
    azimuth, elevation = scenario.sun_angles(sensing, lon, lat)
    props: dict[str, Any] = {
        "created": _iso(created),
        "platform": acq.platform,
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": round(stats["eo:cloud_cover"], 6),
        "proj:epsg": scenario.EPSG,
        "mgrs:utm_zone": int(zone),
        "mgrs:latitude_band": band,
        "mgrs:grid_square": square,
        "grid:code": f"MGRS-{acq.tile}",
        "view:sun_azimuth": round(azimuth, 6),
        "view:sun_elevation": round(elevation, 6),
        "s2:degraded_msi_data_percentage": 0,
    }
    for key in sorted(k for k in stats if k.startswith("s2:")):
        props[key] = round(stats[key], 6)
    tag = f"{sensing:%Y%m%d}"
    props.update({
        "s2:product_type": "S2MSI2A",
        "s2:processing_baseline": "05.09",
        "s2:product_uri": f"{sat}_MSIL2A_{tag}T{acq.orbit.datatake_start}_N0509_R{acq.orbit.number:03d}"
                          f"_T{acq.tile}_{generated:%Y%m%dT%H%M%S}.SAFE",
        "s2:generation_time": _iso(generated),
        "s2:datatake_id": f"G{sat}_{tag}T{acq.orbit.datatake_start}_{orbit:06d}_N05.09",
        "s2:datatake_type": "INS-NOBS",
        "s2:datastrip_id": f"{sat}_OPER_MSI_L2A_DS_2APS_{generated:%Y%m%dT%H%M%S}_S{start:%Y%m%dT%H%M%S}_N05.09",
        "s2:granule_id": f"{sat}_OPER_MSI_L2A_TL_2APS_{generated:%Y%m%dT%H%M%S}_A{orbit:06d}_T{acq.tile}_N05.09",
        "s2:reflectance_conversion_factor": round(
            1 / (1 - 0.01672 * math.cos(0.0172 * (sensing.timetuple().tm_yday - 4))) ** 2, 6),
        "datetime": _iso(sensing),
        "s2:sequence": "0",
        "earthsearch:s3_path": f"s3://sentinel-cogs/sentinel-s2-l2a-cogs/{acq.cog_dir}",
        "earthsearch:payload_id": f"roda-sentinel2/workflow-sentinel2-to-stac/offline-{acq.item_id}",
        "earthsearch:boa_offset_applied": True,
        "processing:software": {"sentinel2-to-stac": "0.1.1", "rhodes-synthetic": generator_version},
        "updated": _iso(created),
    })
    if acq.item_id == scenario.WORKSHOP_ITEM_ID:
        props.update(scenario.WORKSHOP_PROPERTIES)
    assets = asset_definitions(acq.tile)
    for key, a in assets.items():
        a["href"] = f"{cog_href_prefix}/{ASSET_FILES[key]}"
        assets[key] = {"href": a.pop("href"), **a}
    minx, miny, maxx, maxy = geom.bounds
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "id": acq.item_id,
        "properties": props,
        "geometry": mapping(geom),
        "links": [
            {"rel": "collection", "type": "application/json", "href": "../collection.json"},
            {"rel": "parent", "type": "application/json", "href": "../collection.json"},
            {"rel": "root", "type": "application/json", "href": "../collection.json"},
            {"rel": "license", "href": "https://sentinel.esa.int/documents/247904/690755/Sentinel_Data_Legal_Notice"},
        ],
        "assets": assets,
        "bbox": [round(minx, 6), round(miny, 6), round(maxx, 6), round(maxy, 6)],
        "stac_extensions": ITEM_EXTENSIONS,
        "collection": COLLECTION_ID,
    }


def collection_dict(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The collection JSON with the real extent of the offline items."""
    xs = [b for it in items for b in (it["bbox"][0], it["bbox"][2])]
    ys = [b for it in items for b in (it["bbox"][1], it["bbox"][3])]
    times = sorted(it["properties"]["datetime"] for it in items)
    return {
        "type": "Collection",
        "id": COLLECTION_ID,
        "stac_version": STAC_VERSION,
        "stac_extensions": [
            "https://stac-extensions.github.io/item-assets/v1.0.0/schema.json",
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/view/v1.0.0/schema.json",
        ],
        "title": "Sentinel-2 Level-2A (offline Rhodes replica, synthetic pixels)",
        "description": (
            "Offline stand-in for Earth Search's sentinel-2-l2a collection over Rhodes, "
            "July-August 2023: the real MGRS tiles, orbits, dates, ids and metadata layout, "
            "with simulated pixels (sea, vegetation, bare soil, villages, clouds and the "
            "July 2023 burn scar). Generated by helpers.synthetic; not ESA data."
        ),
        "keywords": ["sentinel", "earth observation", "esa", "rhodes", "synthetic"],
        "license": "proprietary",
        "providers": [
            {"name": "ESA", "roles": ["producer"], "url": "https://earth.esa.int/web/guest/home"},
            {"name": "Element 84", "roles": ["processor"], "url": "https://element84.com"},
            {"name": "rhodes-helpers (synthetic replica)", "roles": ["processor", "host"]},
        ],
        "extent": {
            "spatial": {"bbox": [[min(xs), min(ys), max(xs), max(ys)]]},
            "temporal": {"interval": [[times[0], times[-1]]]},
        },
        "summaries": {
            "platform": ["sentinel-2a", "sentinel-2b"],
            "constellation": ["sentinel-2"],
            "instruments": ["msi"],
            "gsd": [10, 20],
            "view:off_nadir": [0],
            "proj:epsg": [scenario.EPSG],
            "eo:bands": [v[2] for v in BAND_ASSETS.values()],
        },
        "item_assets": asset_definitions(None),
        "links": [
            {"rel": "license", "href": "https://sentinel.esa.int/documents/247904/690755/Sentinel_Data_Legal_Notice"},
        ],
    }
