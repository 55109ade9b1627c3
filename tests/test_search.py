"""Unit tests of helpers.search on fixture items and a loopback fake STAC API.

The tests marked ``slow`` run against the embedded API over the offline catalogue
(fixture ``api`` in conftest.py); their expected numbers are the workshop's figures
(see ../shared/reference), not values computed by the code under test.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pystac
import pytest
import pystac_client
from shapely.geometry import Point, box

from helpers import paths
from helpers.search import (
    GDF_COLUMNS,
    NoScenesFound,
    SearchError,
    items_to_geodataframe,
    matched,
    open_client,
    search_items,
)
from tests.search_fixtures import FakeStac, fake_stac_api, fixture_items

POINT = Point(27.95, 36.20)  # the workshop's point of interest on Rhodes (lon, lat)
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def _items() -> pystac.ItemCollection:
    return pystac.ItemCollection([pystac.Item.from_dict(d) for d in fixture_items()])


# -- errors that say what to do -------------------------------------------------------


def test_unreachable_api_says_what_is_wrong_and_what_to_do() -> None:
    with pytest.raises(SearchError) as info:
        search_items(UNREACHABLE, intersects=POINT, retries=0)
    message = str(info.value)
    assert not isinstance(info.value, NoScenesFound)
    assert UNREACHABLE in message
    assert "connection refused" in message
    assert "make serve" in message
    assert paths.EARTH_SEARCH_URL in message
    assert paths.EMBEDDED_API_URL in message


def test_unreachable_api_with_default_retries_still_raises_search_error() -> None:
    with pytest.raises(SearchError, match="Could not reach a STAC API"):
        open_client(UNREACHABLE)


@pytest.mark.parametrize("api_url", ["127.0.0.1:8765", "earth-search.aws.element84.com/v1"])
def test_an_api_url_without_http_says_what_to_do(api_url: str) -> None:
    with pytest.raises(SearchError, match="does not start with http:// or https://") as info:
        open_client(api_url)
    assert paths.EMBEDDED_API_URL in str(info.value)


def test_a_web_page_that_is_not_a_stac_api_is_reported() -> None:
    with fake_stac_api(FakeStac(not_stac=True)) as fake:
        with pytest.raises(SearchError, match="not with a STAC API landing page") as info:
            search_items(fake.url, intersects=POINT)
    assert paths.EARTH_SEARCH_URL in str(info.value)


def test_a_wrong_path_on_a_live_server_reports_the_http_status() -> None:
    with fake_stac_api() as fake:
        with pytest.raises(SearchError, match="HTTP 404") as info:
            open_client(fake.url + "/v1/nothing-here")
    assert "check the URL" in str(info.value)


def test_a_catalogue_without_item_search_is_reported() -> None:
    with fake_stac_api(FakeStac(no_search=True)) as fake:
        with pytest.raises(SearchError, match="cannot be searched"):
            search_items(fake.url, intersects=POINT)


def test_no_scenes_found_names_the_search_and_what_to_change() -> None:
    with fake_stac_api(FakeStac(features=[])) as fake:
        with pytest.raises(NoScenesFound) as info:
            search_items(fake.url, intersects=POINT, datetime="2020-01-01/2020-01-31")
    message = str(info.value)
    assert "2020-01-01/2020-01-31" in message
    assert "POINT (27.95 36.2)" in message
    assert "widen the date range" in message
    assert isinstance(info.value, SearchError)  # one `except SearchError` catches both


def test_an_unknown_collection_is_reported_with_the_available_ones() -> None:
    with fake_stac_api() as fake:
        with pytest.raises(SearchError) as info:
            search_items(fake.url, collection="setinel-2-l2a", intersects=POINT)
    assert not isinstance(info.value, NoScenesFound)
    assert "no collection 'setinel-2-l2a'" in str(info.value)
    assert "['sentinel-2-l2a']" in str(info.value)


def test_intersects_and_bbox_together_are_refused() -> None:
    with pytest.raises(SearchError, match="either `intersects` or `bbox`"):
        search_items(UNREACHABLE, intersects=POINT, bbox=(27.6, 35.8, 28.3, 36.5))


def test_intersects_of_the_wrong_type_is_refused() -> None:
    with fake_stac_api() as fake:
        with pytest.raises(SearchError, match="shapely geometry or a GeoJSON dict"):
            search_items(fake.url, intersects=(27.95, 36.20))


# -- what is sent and returned --------------------------------------------------------


def test_search_sends_point_dates_and_cloud_limit_as_stac_parameters() -> None:
    with fake_stac_api() as fake:
        items = search_items(
            fake.url,
            intersects=POINT,
            datetime="2023-07-01/2023-08-31",
            max_cloud_cover=1,
            limit=50,
        )
    body = fake.searches[0]
    assert body["collections"] == ["sentinel-2-l2a"]
    assert body["intersects"] == {"type": "Point", "coordinates": [27.95, 36.2]}
    assert body["datetime"] == "2023-07-01T00:00:00Z/2023-08-31T23:59:59Z"
    assert body["query"] == {"eo:cloud_cover": {"lt": 1.0}}
    assert body["limit"] == 50
    assert "bbox" not in body
    assert isinstance(items, pystac.ItemCollection)


def test_search_by_bbox_sends_a_bbox() -> None:
    with fake_stac_api() as fake:
        search_items(fake.url, bbox=(27.68, 35.87, 28.25, 36.46))
    assert fake.searches[0]["bbox"] == [27.68, 35.87, 28.25, 36.46]
    assert "intersects" not in fake.searches[0]


def test_search_fetches_every_page() -> None:
    with fake_stac_api() as fake:
        items = search_items(fake.url, intersects=POINT, limit=2)
    assert [i.id for i in items] == [
        "S2A_35SNA_20230827_0_L2A",
        "S2B_35SNA_20230703_0_L2A",
        "S2B_35SPA_20230701_0_L2A",
    ]
    assert len(fake.searches) == 2  # two pages of at most 2


def test_search_retries_an_overloaded_server() -> None:
    with fake_stac_api(FakeStac(fail_first=2)) as fake:
        items = search_items(fake.url, intersects=POINT, retries=3)
    assert len(items) == 3
    assert len(fake.searches) == 3  # two 503s, then the answer


def test_search_without_retries_reports_the_server_error() -> None:
    with fake_stac_api(FakeStac(fail_first=1)) as fake:
        with pytest.raises(SearchError, match="failed the search") as info:
            search_items(fake.url, intersects=POINT, retries=0)
    assert "busy" in str(info.value)
    assert not isinstance(info.value, NoScenesFound)


# -- matched() ------------------------------------------------------------------------


def test_matched_counts_items_when_the_server_sends_no_count() -> None:
    with fake_stac_api(FakeStac(send_count=False)) as fake:
        client = pystac_client.Client.open(fake.url)
        search = client.search(collections=["sentinel-2-l2a"], intersects=POINT, limit=2)
        with pytest.warns(UserWarning, match="numberMatched"):
            assert search.matched() is None  # the pitfall the helper works around
        assert matched(search) == 3


def test_matched_reports_a_page_that_fails_while_counting() -> None:
    with fake_stac_api(FakeStac(send_count=False, fail_after=1)) as fake:
        client = pystac_client.Client.open(fake.url)
        search = client.search(collections=["sentinel-2-l2a"], intersects=POINT, limit=2)
        with pytest.raises(SearchError, match="failed to count the search: HTTP 503") as info:
            matched(search)
    assert "run the cell again" in str(info.value)
    assert len(fake.searches) == 2  # the count request, then the first page of items


def test_matched_uses_the_servers_count_when_there_is_one() -> None:
    many = fixture_items() * 4  # 12 features, as the workshop's summer search
    with fake_stac_api(FakeStac(features=many, send_count=True)) as fake:
        client = pystac_client.Client.open(fake.url)
        search = client.search(collections=["sentinel-2-l2a"], intersects=POINT, limit=5)
        assert matched(search) == 12
    assert len(fake.searches) == 1  # the count came from one request, not from paging


def test_matched_is_zero_for_an_empty_search() -> None:
    with fake_stac_api(FakeStac(features=[])) as fake:
        client = pystac_client.Client.open(fake.url)
        search = client.search(collections=["sentinel-2-l2a"], intersects=POINT)
        assert matched(search) == 0


# -- items_to_geodataframe ------------------------------------------------------------


def test_geodataframe_has_one_row_per_scene_with_the_columns() -> None:
    gdf = items_to_geodataframe(_items())
    assert list(gdf.columns) == GDF_COLUMNS
    assert gdf.crs.to_epsg() == 4326
    first = gdf.iloc[0]
    assert first["id"] == "S2A_35SNA_20230827_0_L2A"
    assert first["datetime"] == pd.Timestamp("2023-08-27T09:00:21.327Z")
    assert first["datetime"].tzinfo is not None
    assert first["cloud_cover"] == pytest.approx(0.955362)
    assert first["platform"] == "sentinel-2a"
    assert first["epsg"] == 32635


def test_geodataframe_tile_and_epsg_from_older_or_newer_property_names() -> None:
    gdf = items_to_geodataframe(_items()).set_index("id")
    assert gdf.loc["S2A_35SNA_20230827_0_L2A", "tile"] == "35SNA"  # grid:code
    # this fixture has only mgrs:* and projection v2's proj:code
    assert gdf.loc["S2B_35SPA_20230701_0_L2A", "tile"] == "35SPA"
    assert gdf.loc["S2B_35SPA_20230701_0_L2A", "epsg"] == 32635


def test_geodataframe_footprints_are_lon_lat_polygons() -> None:
    gdf = items_to_geodataframe(_items()).set_index("id")
    assert gdf.loc["S2A_35SNA_20230827_0_L2A", "geometry"].contains(POINT)
    assert not gdf.loc["S2B_35SPA_20230701_0_L2A", "geometry"].contains(POINT)
    island = box(27.68, 35.87, 28.25, 36.46)
    assert gdf.geometry.intersects(island).all()


def test_geodataframe_of_no_items_is_empty_but_typed() -> None:
    gdf = items_to_geodataframe([])
    assert len(gdf) == 0
    assert list(gdf.columns) == GDF_COLUMNS
    assert gdf.crs.to_epsg() == 4326


def test_geodataframe_datetimes_are_utc() -> None:
    gdf = items_to_geodataframe(_items())
    assert str(gdf["datetime"].dt.tz) == "UTC"
    assert gdf["datetime"].min().to_pydatetime() == dt.datetime(
        2023, 7, 1, 9, 10, 22, 501000, tzinfo=dt.timezone.utc
    )


# -- against the embedded API over the offline catalogue -------------------------------


@pytest.mark.slow
def test_point_search_summer_2023_finds_the_workshops_12_scenes(api: str) -> None:
    items = search_items(api, intersects=POINT, datetime="2023-07-01/2023-08-31")
    ids = [i.id for i in items]
    assert len(ids) == 12
    assert ids[0] == "S2A_35SNA_20230827_0_L2A"  # newest first, as Earth Search
    assert ids[-1] == "S2B_35SNA_20230703_0_L2A"


@pytest.mark.slow
def test_point_search_with_cloud_limit_finds_11(api: str) -> None:
    items = search_items(
        api, intersects=POINT, datetime="2023-07-01/2023-08-31", max_cloud_cover=1
    )
    assert len(items) == 11
    assert all(i.properties["eo:cloud_cover"] < 1 for i in items)


@pytest.mark.slow
def test_matched_on_the_embedded_api(api: str) -> None:
    client = open_client(api)
    search = client.search(
        collections=[paths.COLLECTION], intersects=POINT, datetime="2023-08-01/2023-08-31"
    )
    assert matched(search) == 6


@pytest.mark.slow
def test_open_sea_has_no_scenes(api: str) -> None:
    with pytest.raises(NoScenesFound, match="No scenes found"):
        search_items(api, intersects=Point(20.0, 34.0), datetime="2023-07-01/2023-08-31")


@pytest.mark.slow
def test_2020_has_no_scenes_offline(api: str) -> None:
    with pytest.raises(NoScenesFound, match="2020"):
        search_items(api, intersects=POINT, datetime="2020-07-01/2020-08-31")

