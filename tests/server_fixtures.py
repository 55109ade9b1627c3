"""A tiny Earth-Search-shaped catalogue for the server tests (independent of ``make data``).

Seven items with hand-picked dates, footprints and cloud covers, so every expected
answer below is known without asking the code under test:

- five scenes over the point of interest, 2023-07-03 .. 2023-08-27;
- one scene over the east of the island only (not the point);
- one scene before the workshop's date range (2023-06-28).

Cloud covers 10.5 and 2.0 are chosen so that a text comparison gives other answers
than a numeric one ("10.5" < "2" as text; 10.5 > 2 as numbers).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pystac_client import Client

from helpers import server
from helpers.server.cluster import Cluster

POINT = (27.95, 36.20)
ISLAND_BBOX = (27.68, 35.87, 28.25, 36.46)
DATES = "2023-07-01/2023-08-31"

TILE_FOOTPRINT = [  # the workshop item's footprint (35SNA), lon/lat
    [27.2904, 37.0462], [27.2330, 36.8388], [27.0111, 36.0567],
    [28.2188, 36.0505], [28.2344, 37.0402], [27.2904, 37.0462],
]
EAST_FOOTPRINT = [  # a strip east of the point, inside the island's bbox
    [28.05, 36.0], [28.25, 36.0], [28.25, 36.4], [28.05, 36.4], [28.05, 36.0],
]


@dataclass(frozen=True)
class Scene:
    id: str
    datetime: str
    cloud_cover: float
    footprint: list


SCENES = [
    Scene("S2A_35SNA_20230827_0_L2A", "2023-08-27T09:00:21.327000Z", 0.955362, TILE_FOOTPRINT),
    Scene("S2B_35SNA_20230822_0_L2A", "2023-08-22T09:00:19.000000Z", 10.5, TILE_FOOTPRINT),
    Scene("S2A_35SNA_20230728_0_L2A", "2023-07-28T09:00:22.000000Z", 2.0, TILE_FOOTPRINT),
    Scene("S2B_35SNA_20230713_0_L2A", "2023-07-13T09:00:18.000000Z", 0.0, TILE_FOOTPRINT),
    Scene("S2A_35SNA_20230703_0_L2A", "2023-07-03T09:00:20.000000Z", 0.5, TILE_FOOTPRINT),
    Scene("S2B_35SPA_20230802_0_L2A", "2023-08-02T09:00:25.000000Z", 0.2, EAST_FOOTPRINT),
    Scene("S2A_35SNA_20230628_0_L2A", "2023-06-28T09:00:20.000000Z", 0.1, TILE_FOOTPRINT),
]

POINT_IDS_NEWEST_FIRST = [s.id for s in SCENES[:5]]
"""Point search in DATES: the five 35SNA scenes, newest first."""
POINT_IDS_CLOUD_BELOW_1 = [
    "S2A_35SNA_20230827_0_L2A", "S2B_35SNA_20230713_0_L2A", "S2A_35SNA_20230703_0_L2A",
]
POINT_IDS_CLOUD_BELOW_2 = POINT_IDS_CLOUD_BELOW_1  # 2.0 is not < 2, and 10.5 > 2 as a number
POINT_IDS_BY_CLOUD_COVER = [  # ascending cloud cover, numeric order
    "S2B_35SNA_20230713_0_L2A", "S2A_35SNA_20230703_0_L2A", "S2A_35SNA_20230827_0_L2A",
    "S2A_35SNA_20230728_0_L2A", "S2B_35SNA_20230822_0_L2A",
]
ISLAND_COUNT = 6
"""Island bbox in DATES: the five point scenes and the eastern one (not June's)."""

COG_SHAPE = (512, 512)
COG_ORIGIN = (580000.0, 4010000.0)  # EPSG:32635, around the point of interest
COG_RES = 10.0


def red_pixels() -> np.ndarray:
    """The digital numbers written to every B04.tif: a known ramp, so reads can be checked."""
    rows, cols = np.indices(COG_SHAPE)
    return (1000 + rows * 3 + cols).astype("uint16")


def write_cog(path: Path) -> None:
    """A small tiled DEFLATE COG (256 blocks, overviews) like Earth Search's band files."""
    import rasterio
    from rasterio.transform import from_origin

    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path, "w", driver="COG", width=COG_SHAPE[1], height=COG_SHAPE[0], count=1,
        dtype="uint16", crs="EPSG:32635", nodata=0,
        transform=from_origin(*COG_ORIGIN, COG_RES, COG_RES),
        BLOCKSIZE=256, COMPRESS="DEFLATE",
    ) as dst:
        dst.write(red_pixels(), 1)


def _band_path(scene: Scene) -> str:
    tile = scene.id.split("_")[1]
    month = int(scene.datetime[5:7])
    return f"sentinel-s2-l2a-cogs/35/S/{tile[3:]}/2023/{month}/{scene.id}/B04.tif"


def item_dict(scene: Scene) -> dict:
    """An item shaped like Earth Search's (trimmed to what the server and odc-stac read)."""
    lons = [p[0] for p in scene.footprint]
    lats = [p[1] for p in scene.footprint]
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
        ],
        "id": scene.id,
        "collection": "sentinel-2-l2a",
        "geometry": {"type": "Polygon", "coordinates": [scene.footprint]},
        "bbox": [min(lons), min(lats), max(lons), max(lats)],
        "properties": {
            "datetime": scene.datetime,
            "platform": "sentinel-2a" if scene.id.startswith("S2A") else "sentinel-2b",
            "constellation": "sentinel-2",
            "instruments": ["msi"],
            "eo:cloud_cover": scene.cloud_cover,
            "proj:epsg": 32635,
            "mgrs:utm_zone": 35,
            "mgrs:latitude_band": "S",
            "mgrs:grid_square": scene.id.split("_")[1][3:],
            "earthsearch:boa_offset_applied": True,
        },
        "links": [
            {"rel": "self", "href": f"./{scene.id}.json"},
            {"rel": "license", "href": "../../README.md", "type": "text/markdown"},
        ],
        "assets": {
            "red": {
                "href": f"../../{_band_path(scene)}",
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "title": "Red (band 4) - 10m",
                "roles": ["data", "reflectance"],
                "proj:shape": list(COG_SHAPE),
                "proj:transform": [COG_RES, 0, COG_ORIGIN[0], 0, -COG_RES, COG_ORIGIN[1]],
                "raster:bands": [{"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -0.1}],
            },
        },
    }


COLLECTION = {
    "type": "Collection",
    "stac_version": "1.0.0",
    "id": "sentinel-2-l2a",
    "title": "Sentinel-2 Level-2A",
    "description": "Sentinel-2 L2A over Rhodes (test fixture)",
    "license": "proprietary",
    "extent": {
        "spatial": {"bbox": [[27.0, 35.8, 28.3, 37.1]]},
        "temporal": {"interval": [["2023-06-01T00:00:00Z", "2023-08-31T23:59:59Z"]]},
    },
    "links": [{"rel": "self", "href": "./collection.json"}],
}


def write_catalogue(data_dir: Path) -> Path:
    """Write the collection, the seven items and one shared COG per item under ``data_dir``."""
    stac = data_dir / "stac"
    (stac / "items").mkdir(parents=True, exist_ok=True)
    (stac / "collection.json").write_text(json.dumps(COLLECTION))
    (data_dir / "README.md").write_text("test fixture\n")
    first_cog: Path | None = None
    for scene in SCENES:
        (stac / "items" / f"{scene.id}.json").write_text(json.dumps(item_dict(scene)))
        cog = data_dir / _band_path(scene)
        if first_cog is None:
            write_cog(cog)
            first_cog = cog
        else:
            cog.parent.mkdir(parents=True, exist_ok=True)
            cog.write_bytes(first_cog.read_bytes())
    return data_dir


def band_path(scene_id: str) -> str:
    """The COG of a scene, relative to the data folder."""
    return _band_path(next(s for s in SCENES if s.id == scene_id))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    """The fixture server: its data folder, port and cluster."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.cluster = Cluster.for_data_dir(data_dir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> str:
        return server.start(port=self.port, data_dir=self.data_dir)

    def client(self) -> Client:
        return Client.open(self.start())

    def state(self) -> dict:
        return json.loads((self.cluster.home / "server.json").read_text())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = write_catalogue(tmp_path_factory.mktemp("server") / "data")
    s = Served(data_dir, free_port())
    s.start()
    try:
        yield s
    finally:
        server.stop(data_dir=data_dir)
        s.cluster.destroy()


