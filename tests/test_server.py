"""The embedded STAC API on a tiny hand-written catalogue (tests/server_fixtures.py).

These tests start the real stack (a private PostgreSQL cluster, pgstac, uvicorn) on a
temporary data folder and a free port, so they do not depend on ``make data`` and
never touch a server a developer has running. The answers on the generated Rhodes
catalogue (12, 11, 73, ...) are in test_server_workshop.py.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import server_fixtures as fx
from pystac_client import Client
from pystac_client.exceptions import APIError
from shapely.geometry import Point

from helpers import paths, server
from helpers.server import cluster as cluster_module
from helpers.server.catalogue import CatalogueError
from helpers.server.cluster import Cluster, ClusterError
from server_fixtures import Served, free_port, served  # noqa: F401  (served: fixture)

pytestmark = pytest.mark.slow


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def raw_get(port: int, path: str) -> int:
    """GET a path exactly as written (urllib would normalise ``..`` away)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("GET", path, skip_host=False, skip_accept_encoding=True)
    conn.endheaders()
    status = conn.getresponse().status
    conn.close()
    return status


def point_search(client: Client, **kwargs):
    return client.search(
        collections=["sentinel-2-l2a"], intersects=Point(*fx.POINT), datetime=fx.DATES, **kwargs
    )


# -- the workshop's calls ------------------------------------------------------------
def test_collections_are_listed(served: Served) -> None:
    assert [c.id for c in served.client().get_collections()] == ["sentinel-2-l2a"]


def test_point_search_newest_first_with_count(served: Served) -> None:
    search = point_search(served.client())
    assert search.matched() == len(fx.POINT_IDS_NEWEST_FIRST)
    assert [item.id for item in search.items()] == fx.POINT_IDS_NEWEST_FIRST


def test_cloud_cover_query_compares_numbers(served: Served) -> None:
    client = served.client()
    below_1 = point_search(client, query=["eo:cloud_cover<1"])
    assert below_1.matched() == 3
    assert [item.id for item in below_1.items()] == fx.POINT_IDS_CLOUD_BELOW_1
    # As text, "10.5" < "2" would let the 10.5 % scene through.
    below_2 = point_search(client, query=["eo:cloud_cover<2"])
    assert [item.id for item in below_2.items()] == fx.POINT_IDS_CLOUD_BELOW_2


def test_sort_by_cloud_cover_is_numeric(served: Served) -> None:
    client = served.client()
    ascending = point_search(client, sortby=["+properties.eo:cloud_cover"])
    assert [item.id for item in ascending.items()] == fx.POINT_IDS_BY_CLOUD_COVER
    descending = point_search(client, sortby=["-properties.eo:cloud_cover"])
    assert [item.id for item in descending.items()] == fx.POINT_IDS_BY_CLOUD_COVER[::-1]


def test_pagination_past_the_page_limit(served: Served) -> None:
    search = served.client().search(
        collections=["sentinel-2-l2a"], bbox=fx.ISLAND_BBOX, datetime=fx.DATES, limit=2
    )
    pages = list(search.pages())
    assert [len(page) for page in pages] == [2, 2, 2]
    ids = [item.id for page in pages for item in page]
    assert len(set(ids)) == fx.ISLAND_COUNT
    assert search.matched() == fx.ISLAND_COUNT
    assert len(search.item_collection()) == fx.ISLAND_COUNT


def test_filter_extension_cql2(served: Served) -> None:
    client = served.client()
    cql2_json = point_search(
        client, filter={"op": "<", "args": [{"property": "eo:cloud_cover"}, 2]}, filter_lang="cql2-json"
    )
    assert [item.id for item in cql2_json.items()] == fx.POINT_IDS_CLOUD_BELOW_2
    status, _, body = get(
        f"{served.url}/search?collections=sentinel-2-l2a&filter-lang=cql2-text"
        "&filter=" + urllib.parse.quote('"eo:cloud_cover" >= 10')
    )
    assert status == 200
    assert [f["id"] for f in json.loads(body)["features"]] == ["S2B_35SNA_20230822_0_L2A"]


def test_fields_extension(served: Served) -> None:
    search = point_search(served.client(), fields={"include": ["id", "properties.eo:cloud_cover"], "exclude": ["assets"]})
    item = next(search.items_as_dicts())
    assert "assets" not in item
    assert set(item["properties"]) == {"eo:cloud_cover"}


def test_conformance_declares_the_extensions(served: Served) -> None:
    conforms = set(served.client().get_conforms_to())
    for cc in ("core", "item-search", "ogcapi-features", "item-search#query",
               "item-search#fields", "item-search#sort"):
        assert f"https://api.stacspec.org/v1.0.0/{cc}" in conforms
    assert any(cc.endswith("/item-search#filter") for cc in conforms)


# -- assets over HTTP ----------------------------------------------------------------
def test_asset_hrefs_point_at_the_server(served: Served) -> None:
    item = next(point_search(served.client()).items())
    assert item.assets["red"].href == f"{served.url}/data/{fx.band_path(item.id)}"


@pytest.mark.parametrize(
    "byte_range, first, last",  # last: inclusive; negative counts from the end of the file
    [("bytes=100-199", 100, 199), ("bytes=-100", -100, -1), ("bytes=1000-", 1000, -1),
     ("bytes=0-999999999", 0, -1), ("bytes=5-5", 5, 5)],
)
def test_asset_range_request_answers_206(served: Served, byte_range: str, first: int, last: int) -> None:
    href = f"{served.url}/data/{fx.band_path(fx.SCENES[0].id)}"
    on_disk = (served.data_dir / fx.band_path(fx.SCENES[0].id)).read_bytes()
    first, last = first % len(on_disk), last % len(on_disk)
    status, headers, body = get(href, {"Range": byte_range})
    assert status == 206
    assert headers["content-range"] == f"bytes {first}-{last}/{len(on_disk)}"
    assert int(headers["content-length"]) == len(body) == last - first + 1
    assert body == on_disk[first : last + 1]


def test_asset_range_past_the_end_is_416_with_the_size(served: Served) -> None:
    href = f"{served.url}/data/{fx.band_path(fx.SCENES[0].id)}"
    size = (served.data_dir / fx.band_path(fx.SCENES[0].id)).stat().st_size
    status, headers, _ = get(href, {"Range": f"bytes={size}-"})
    assert status == 416
    assert headers["content-range"] == f"bytes */{size}"


def test_asset_several_ranges_are_one_multipart_answer(served: Served) -> None:
    href = f"{served.url}/data/{fx.band_path(fx.SCENES[0].id)}"
    on_disk = (served.data_dir / fx.band_path(fx.SCENES[0].id)).read_bytes()
    status, headers, body = get(href, {"Range": "bytes=0-9,100-109"})
    assert status == 206
    assert headers["content-type"].startswith("multipart/byteranges")
    assert on_disk[0:10] in body and on_disk[100:110] in body


def test_asset_head_and_whole_file(served: Served) -> None:
    href = f"{served.url}/data/{fx.band_path(fx.SCENES[0].id)}"
    on_disk = (served.data_dir / fx.band_path(fx.SCENES[0].id)).read_bytes()
    with urllib.request.urlopen(urllib.request.Request(href, method="HEAD"), timeout=10) as response:
        assert response.status == 200
        assert int(response.headers["content-length"]) == len(on_disk)
        assert response.headers["accept-ranges"] == "bytes"
        assert response.read() == b""
    status, _, body = get(href)
    assert status == 200 and body == on_disk


def test_asset_can_only_be_read(served: Served) -> None:
    request = urllib.request.Request(f"{served.url}/data/{fx.band_path(fx.SCENES[0].id)}", data=b"x", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405


def test_asset_ranges_are_sent_as_stored_even_to_clients_that_accept_compression(served: Served) -> None:
    """Like S3: a browser or ``requests`` (Accept-Encoding: br, gzip) gets the stored bytes."""
    href = f"{served.url}/data/{fx.band_path(fx.SCENES[0].id)}"
    on_disk = (served.data_dir / fx.band_path(fx.SCENES[0].id)).read_bytes()
    status, headers, body = get(href, {"Range": "bytes=0-4095", "Accept-Encoding": "br, gzip"})
    assert status == 206
    assert "content-encoding" not in {k.lower() for k in headers}
    assert body == on_disk[:4096]
    # the API's JSON is still compressed for such clients
    status, headers, _ = get(f"{served.url}/collections", {"Accept-Encoding": "br"})
    assert status == 200 and headers.get("content-encoding") == "br"


def test_gdal_reads_the_cog_over_http(served: Served) -> None:
    import rasterio

    href = f"{served.url}/data/{fx.band_path(fx.SCENES[0].id)}"
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        with rasterio.open(href) as src:
            assert src.block_shapes[0] == (256, 256)
            window = src.read(1, window=((256, 512), (0, 256)))
    np.testing.assert_array_equal(window, fx.red_pixels()[256:512, 0:256])


def test_odc_stac_loads_items_over_http(served: Served) -> None:
    import odc.stac

    items = point_search(served.client(), ids=[fx.SCENES[0].id]).item_collection()
    cube = odc.stac.load(items, bands=["red"], chunks={})
    assert cube.red.shape == (1, *fx.COG_SHAPE)
    np.testing.assert_array_equal(cube.red.isel(time=0).values, fx.red_pixels())


@pytest.mark.parametrize(
    "path",
    [
        "/data/../pgdata/PG_VERSION",
        "/data/%2e%2e/%2e%2e/etc/passwd",
        "/data/..%2f..%2fetc%2fpasswd",
        "/data//etc/passwd",
        "/data/stac/../../../etc/passwd",
        "/data/link-out/passwd",
        "/data/.hidden",
        "/data/no-such-file.tif",
    ],
)
def test_nothing_outside_the_data_folder_is_served(served: Served, path: str) -> None:
    (served.data_dir / ".hidden").write_text("secret")
    link = served.data_dir / "link-out"
    if not link.exists():
        link.symlink_to("/etc")
    assert raw_get(served.port, path) == 404


def test_a_file_in_the_data_folder_is_served(served: Served) -> None:
    status, _, body = get(f"{served.url}/data/stac/collection.json")
    assert status == 200
    assert json.loads(body)["id"] == "sentinel-2-l2a"


# -- bad input -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bbox": [28.25, 36.46, 27.68]}, "bbox"),
        ({"filter": {"op": "<", "args": [{"property": "eo:cloud_cover"}, "abc"]}, "filter_lang": "cql2-json"}, "abc"),
        ({"query": {"eo:cloud_cover": {"lt": "abc"}}}, "abc"),
    ],
)
def test_malformed_search_is_a_400_with_the_servers_message(served: Served, kwargs: dict, message: str) -> None:
    search = served.client().search(collections=["sentinel-2-l2a"], **kwargs)
    with pytest.raises(APIError) as raised:
        search.matched()
    assert raised.value.status_code == 400
    assert message in str(raised.value).lower()


def test_malformed_json_parameter_is_a_400(served: Served) -> None:
    status, _, body = get(f"{served.url}/search?query=%7Bbad")
    assert status == 400
    assert "not valid JSON" in json.loads(body)["detail"]


# -- life cycle ----------------------------------------------------------------------
def test_start_reuses_the_running_server(served: Served) -> None:
    pid = served.state()["pid"]
    assert served.start() == served.url
    assert served.state()["pid"] == pid


def test_status_says_what_runs_where(served: Served) -> None:
    served.start()
    text = server.status(served.data_dir)
    assert f"running at {served.url}" in text
    assert str(served.cluster.socket_dir) in text
    assert f"{len(fx.SCENES)} items" in text


def test_cli_status_and_start(served: Served) -> None:
    served.start()
    base = [sys.executable, "-m", "helpers.server"]
    out = subprocess.run(
        [*base, "status", "--data-dir", str(served.data_dir)], capture_output=True, text=True, check=True
    ).stdout
    assert served.url in out
    out = subprocess.run(
        [*base, "start", "--port", str(served.port), "--data-dir", str(served.data_dir)],
        capture_output=True, text=True, check=True,
    ).stdout
    assert out.strip() == served.url


def test_second_port_for_the_same_data_is_refused(served: Served) -> None:
    served.start()
    with pytest.raises(server.ServerError, match="already runs at"):
        server.start(port=free_port(), data_dir=served.data_dir)


@pytest.fixture
def unserved_data(tmp_path: Path) -> Iterator[Path]:
    """A catalogue no server runs for; its cluster (if a test builds one) is removed after."""
    data_dir = fx.write_catalogue(tmp_path / "data")
    yield data_dir
    Cluster.for_data_dir(data_dir).destroy()


def test_port_used_by_another_program(unserved_data: Path) -> None:
    data_dir = unserved_data
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(
            server.ServerError,
            match=f'Port {port} .* in use by another program.*`PORT={port + 1} make serve`.*'
            f'api_url = "http://127.0.0.1:{port + 1}"',
        ):
            server.start(port=port, data_dir=data_dir)
    assert not Cluster.for_data_dir(data_dir).home.exists()  # nothing was built


def test_missing_catalogue_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="make data"):
        server.start(port=free_port(), data_dir=tmp_path / "empty")
    Cluster.for_data_dir(tmp_path / "empty").destroy()


def test_stale_state_files_after_a_crash(served: Served) -> None:
    served.start()
    server.stop(data_dir=served.data_dir)
    # A crash leaves both pid files behind, naming processes that are not ours.
    (served.cluster.home / "server.json").write_text(
        json.dumps({"pid": os.getpid(), "port": served.port, "url": served.url,
                    "data_dir": str(served.data_dir), "log": "x", "started": 0.0})
    )
    (served.cluster.pgdata / "postmaster.pid").write_text(f"{os.getpid()}\n{served.cluster.pgdata}\n")
    assert "not running" in server.status(served.data_dir)
    served.start()
    assert served.state()["pid"] != os.getpid()
    assert point_search(served.client()).matched() == len(fx.POINT_IDS_NEWEST_FIRST)


def test_corrupted_cluster_is_rebuilt(served: Served) -> None:
    server.stop(data_dir=served.data_dir)
    (served.cluster.pgdata / "global" / "pg_control").write_bytes(b"garbage")
    served.start()
    assert point_search(served.client()).matched() == len(fx.POINT_IDS_NEWEST_FIRST)


def test_half_initialised_cluster_is_rebuilt(served: Served) -> None:
    server.stop(data_dir=served.data_dir)
    served.cluster.ready_marker.unlink()  # as if initdb had been interrupted
    served.start()
    assert served.cluster.is_initialised()
    assert point_search(served.client()).matched() == len(fx.POINT_IDS_NEWEST_FIRST)


def test_changed_catalogue_is_reloaded(served: Served) -> None:
    served.start()
    item_file = served.data_dir / "stac" / "items" / f"{fx.SCENES[1].id}.json"
    original = item_file.read_text()
    item = json.loads(original)
    item["properties"]["eo:cloud_cover"] = 0.3  # the 10.5 % scene becomes clear
    try:
        item_file.write_text(json.dumps(item))
        search = point_search(served.client(), query=["eo:cloud_cover<1"])
        assert fx.SCENES[1].id in [i.id for i in search.items()]
    finally:
        item_file.write_text(original)
    served.start()


def test_new_port_rewrites_the_asset_hrefs(served: Served) -> None:
    server.stop(data_dir=served.data_dir)
    served.port = free_port()
    item = next(point_search(served.client()).items())
    assert item.assets["red"].href.startswith(f"http://127.0.0.1:{served.port}/data/")


def test_embedded_api_stops_only_what_it_started(served: Served) -> None:
    served.start()
    with server.embedded_api(port=served.port, data_dir=served.data_dir) as url:
        assert url == served.url
    assert get(served.url)[0] == 200  # it was running before: still running

    server.stop(data_dir=served.data_dir)
    with server.embedded_api(port=served.port, data_dir=served.data_dir) as url:
        assert get(url)[0] == 200
    assert not served.cluster.is_running()
    with pytest.raises(OSError):
        urllib.request.urlopen(served.url, timeout=2)
    served.start()


def test_ensure_api_starts_the_embedded_default(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server.stop(data_dir=served.data_dir)
    monkeypatch.setattr(paths, "PORT", served.port)
    monkeypatch.setattr(paths, "DATA_DIR", served.data_dir)
    assert server.ensure_api(f"http://localhost:{served.port}/") == served.url
    assert capsys.readouterr().out == (
        f"Started the embedded STAC API at {served.url} (offline Rhodes catalogue)\n"
    )
    assert server.ensure_api(served.url) == served.url
    assert "already running" in capsys.readouterr().out


def test_ensure_api_leaves_other_urls_alone(capsys: pytest.CaptureFixture[str]) -> None:
    # No network test: pytest-socket would fail this test if one were attempted.
    assert server.ensure_api(paths.EARTH_SEARCH_URL) == paths.EARTH_SEARCH_URL
    other_port = f"http://127.0.0.1:{paths.PORT + 1}"
    assert server.ensure_api(other_port) == other_port
    assert capsys.readouterr().out == ""


def test_missing_postgresql_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RHODES_PG_BINDIR", raising=False)
    monkeypatch.setattr(cluster_module.shutil, "which", lambda name: None)
    monkeypatch.setattr(cluster_module.glob, "glob", lambda pattern: [])
    with pytest.raises(ClusterError, match="postgresql-15-postgis-3"):
        cluster_module.find_bindir()


def test_cluster_home_for_root_is_reachable_by_postgres(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RHODES_PGSTAC_DIR", raising=False)
    monkeypatch.setattr(cluster_module.os, "geteuid", lambda: 0)
    home = cluster_module.default_home(tmp_path / "data")
    assert home.parent == Path("/var/tmp")  # not inside a clone whose parents may be mode 700
    assert home != cluster_module.default_home(tmp_path / "other-data")  # one cluster per data folder


def test_cluster_home_for_a_user_is_in_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RHODES_PGSTAC_DIR", raising=False)
    monkeypatch.setattr(cluster_module.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_CACHE_HOME", "/home/learner/.cache")  # only computed, not created
    assert cluster_module.default_home(tmp_path / "data").parent == Path("/home/learner/.cache/rhodes-pgstac")
    # A cache path too long for a Unix socket falls back to the temporary folder.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / ("x" * 120)))
    home = cluster_module.default_home(tmp_path / "data")
    assert len(str(home / "run" / ".s.PGSQL.5432")) < 108


def test_reset_deletes_the_cluster_and_start_rebuilds_it(unserved_data: Path) -> None:
    port = free_port()
    home = Cluster.for_data_dir(unserved_data).home
    server.start(port=port, data_dir=unserved_data)
    assert "Deleted the cluster" in server.reset(unserved_data)
    assert not home.exists()
    url = server.start(port=port, data_dir=unserved_data)
    assert Client.open(url).search(collections=["sentinel-2-l2a"]).matched() == len(fx.SCENES)
    server.stop(unserved_data)
