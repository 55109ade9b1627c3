"""The workshop's answers from the embedded API on the generated Rhodes catalogue.

Expected values are the workshop's (shared/reference/earth-search-and-rhodes.md), not
values computed by the code under test. Uses the session fixture ``api`` of
tests/conftest.py (builds the data when needed, starts the server unless it runs).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from pystac_client import Client
from shapely.geometry import Point

from helpers import paths

pytestmark = pytest.mark.slow

POINT = Point(27.95, 36.20)
DATES = "2023-07-01/2023-08-31"
ISLAND_BBOX = (27.68, 35.87, 28.25, 36.46)
POINT_IDS = [
    f"{sat}_35SNA_{day}_0_L2A"
    for sat, day in [
        ("S2A", "20230827"), ("S2B", "20230822"), ("S2A", "20230817"), ("S2B", "20230812"),
        ("S2A", "20230807"), ("S2B", "20230802"), ("S2A", "20230728"), ("S2B", "20230723"),
        ("S2A", "20230718"), ("S2B", "20230713"), ("S2A", "20230708"), ("S2B", "20230703"),
    ]
]


@pytest.fixture(scope="module")
def client(api: str) -> Client:
    return Client.open(api)


def point_search(client: Client, **kwargs):
    return client.search(collections=[paths.COLLECTION], intersects=POINT, datetime=DATES, **kwargs)


def test_collection_is_listed(client: Client) -> None:
    assert paths.COLLECTION in [c.id for c in client.get_collections()]


def test_point_search_gives_the_workshops_12_scenes_newest_first(client: Client) -> None:
    search = point_search(client)
    assert search.matched() == 12
    assert [item.id for item in search.items()] == POINT_IDS


def test_cloud_cover_below_1_gives_11(client: Client) -> None:
    search = point_search(client, query=["eo:cloud_cover<1"])
    assert search.matched() == 11
    items = list(search.items())
    assert len(items) == 11
    assert all(item.properties["eo:cloud_cover"] < 1 for item in items)


def test_island_bbox_gives_73_newest_first(client: Client) -> None:
    search = client.search(collections=[paths.COLLECTION], bbox=ISLAND_BBOX, datetime=DATES)
    assert search.matched() == 73
    items = search.item_collection()
    assert len(items) == 73
    datetimes = [item.datetime for item in items]
    assert datetimes == sorted(datetimes, reverse=True)


def test_pagination_past_the_page_limit(client: Client) -> None:
    search = client.search(collections=[paths.COLLECTION], bbox=ISLAND_BBOX, datetime=DATES, limit=10)
    pages = [len(page) for page in search.pages()]
    assert pages == [10] * 7 + [3]
    assert len({item.id for item in search.items()}) == 73


def test_sort_by_cloud_cover_is_numeric(client: Client) -> None:
    on_disk = [
        json.loads((paths.STAC_DIR / "items" / f"{item_id}.json").read_text())["properties"]["eo:cloud_cover"]
        for item_id in POINT_IDS
    ]
    search = point_search(client, sortby=["+properties.eo:cloud_cover"])
    assert [item.properties["eo:cloud_cover"] for item in search.items()] == sorted(on_disk)


def test_workshop_scene_red_band_over_http(client: Client, api: str) -> None:
    item = client.get_collection(paths.COLLECTION).get_item("S2A_35SNA_20230827_0_L2A")
    assert item is not None
    href = item.assets["red"].href
    assert href.startswith(f"{api}/data/")
    relative = href.removeprefix(f"{api}/data/")
    size = (paths.DATA_DIR / relative).stat().st_size
    request = urllib.request.Request(href, headers={"Range": "bytes=0-1023"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 0-1023/{size}"
        assert response.read() == (paths.DATA_DIR / relative).read_bytes()[:1024]


def test_odc_stac_reads_a_window_over_http(client: Client) -> None:
    import odc.stac

    items = point_search(client, max_items=2).item_collection()
    lon, lat = POINT.x, POINT.y
    cube = odc.stac.load(
        items, bands=["red", "nir"], bbox=(lon - 0.005, lat - 0.005, lon + 0.005, lat + 0.005),
        crs="EPSG:32635", resolution=10,
    )
    assert cube.red.dtype == np.uint16
    assert cube.red.shape[0] == 2
    assert (cube.red.values > 0).any() and (cube.nir.values > 0).any()


def test_asset_files_are_inside_the_data_folder(client: Client, api: str) -> None:
    item = next(point_search(client, max_items=1).items())
    for asset in item.assets.values():
        if asset.href.startswith(f"{api}/data/"):
            target = (paths.DATA_DIR / asset.href.removeprefix(f"{api}/data/")).resolve()
            assert target.is_relative_to(Path(paths.DATA_DIR).resolve())
            assert target.is_file(), asset.href


def test_items_are_served_as_written(api: str) -> None:
    """pgstac stores items dehydrated; the served item must equal the file but for hrefs."""
    item_id = "S2A_35SNA_20230827_0_L2A"
    on_disk = json.loads((paths.STAC_DIR / "items" / f"{item_id}.json").read_text())
    # Raw JSON: pystac would migrate fields (proj:epsg -> proj:code) on reading.
    url = f"{api}/collections/{paths.COLLECTION}/items/{item_id}"
    with urllib.request.urlopen(url, timeout=10) as response:
        served = json.loads(response.read())
    assert served["properties"] == on_disk["properties"]
    assert served["geometry"] == on_disk["geometry"]
    assert served["bbox"] == on_disk["bbox"]
    assert set(served["assets"]) == set(on_disk["assets"])
    for key, asset in on_disk["assets"].items():
        without_href = {k: v for k, v in asset.items() if k != "href"}
        assert {k: v for k, v in served["assets"][key].items() if k != "href"} == without_href, key
