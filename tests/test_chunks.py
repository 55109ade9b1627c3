"""helpers.chunks: block-aligned chunk suggestions from a COG's header.

Rasters are written here with known block shapes; every expected chunk size is worked
out by hand in the test (block bytes, blocks per target, rounding), not by the helper.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rioxarray
from rasterio.transform import from_origin

from helpers import paths
from helpers.chunks import GDAL_HTTP_OPTIONS, NotTiledError, configure_gdal, read_block_layout, suggest_chunks


def _write(path: Path, height: int, width: int, dtype: str = "uint16", **layout) -> Path:
    profile = dict(
        driver="GTiff", height=height, width=width, count=1, dtype=dtype, nodata=0,
        crs="EPSG:32635", transform=from_origin(499980, 4100040, 10, 10), **layout,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.arange(height * width, dtype="uint32").reshape(height, width).astype(dtype), 1)
    return path


@pytest.fixture
def tiled(tmp_path: Path) -> Path:
    """1000 x 1200 uint16 in 256 x 256 tiles: one tile is 256 * 256 * 2 = 131072 bytes."""
    return _write(tmp_path / "tiled.tif", 1000, 1200, tiled=True, blockxsize=256, blockysize=256)


def test_chunks_are_whole_blocks_near_the_target(tiled: Path) -> None:
    # 0.5 MB / 131072 B = 3.8 blocks -> 2 x 2 blocks = 512 x 512 pixels
    suggestion = suggest_chunks(tiled, target_mb=0.5)
    assert suggestion.block_shape == (256, 256)
    assert suggestion.raster_shape == (1000, 1200)
    assert suggestion.chunks == {"band": 1, "y": 512, "x": 512}
    assert suggestion.n_chunks == 2 * 3  # ceil(1000/512) * ceil(1200/512)
    assert suggestion.chunk_mb == pytest.approx(512 * 512 * 2 / 1e6)


def test_a_bigger_target_takes_more_blocks(tiled: Path) -> None:
    # 1.2 MB / 131072 B = 9.2 blocks -> 3 x 3 blocks = 768 x 768 pixels
    assert suggest_chunks(tiled, target_mb=1.2).chunks == {"band": 1, "y": 768, "x": 768}


def test_chunks_never_exceed_the_band(tiled: Path) -> None:
    assert suggest_chunks(tiled, target_mb=500).chunks == {"band": 1, "y": 1000, "x": 1200}


def test_a_tiny_target_still_gives_one_block(tiled: Path) -> None:
    assert suggest_chunks(tiled, target_mb=0.001).chunks == {"band": 1, "y": 256, "x": 256}


def test_a_non_square_chunk_when_the_target_falls_between_squares(tiled: Path) -> None:
    # 0.8 MB / 131072 B = 6.1 blocks; round(sqrt(6.1)) = 2 blocks in y, round(6.1 / 2) = 3
    # in x -> 2 x 3 blocks = 512 x 768 pixels
    assert suggest_chunks(tiled, target_mb=0.8).chunks == {"band": 1, "y": 512, "x": 768}


def test_a_wide_short_band_gets_the_rest_of_the_target_in_x(tmp_path: Path) -> None:
    # 200 x 3000 in 256 x 256 tiles: one block row. 1.2 MB / 131072 B = 9.2 blocks, all
    # side by side: 1 x 9 blocks = 200 rows x 2304 columns
    path = _write(tmp_path / "wide.tif", 200, 3000, tiled=True, blockxsize=256, blockysize=256)
    assert suggest_chunks(path, target_mb=1.2).chunks == {"band": 1, "y": 200, "x": 2304}


def test_a_tall_narrow_band_gets_the_rest_of_the_target_in_y(tmp_path: Path) -> None:
    # 3000 x 300 in 512 x 512 tiles: one block column. 8 MB / (512 * 512 * 2 B) = 15.3
    # blocks, more than the 6 the band has along y: the whole band, 3000 x 300 (1.8 MB),
    # not 4 x 1 blocks = 2048 x 300 (1.2 MB)
    path = _write(tmp_path / "tall.tif", 3000, 300, tiled=True, blockxsize=512, blockysize=512)
    assert suggest_chunks(path).chunks == {"band": 1, "y": 3000, "x": 300}


def test_tiles_wider_than_the_raster_are_still_tiles(tmp_path: Path) -> None:
    # 1000 x 200 in 128 x 256 (rows x cols) tiles: 128 * 256 * 2 = 65536 B per tile;
    # 0.2 MB / 65536 B = 3.1 blocks, all along y (one tile is the whole width):
    # 3 x 1 blocks = 384 rows x 200 columns
    path = _write(tmp_path / "wide_tiles.tif", 1000, 200, tiled=True, blockxsize=256, blockysize=128)
    suggestion = suggest_chunks(path, target_mb=0.2)
    assert suggestion.block_shape == (128, 256)
    assert suggestion.chunks == {"band": 1, "y": 384, "x": 200}


def test_non_square_blocks_and_wider_data_types(tmp_path: Path) -> None:
    # float32 512 x 256 (rows x cols) blocks: 512 * 256 * 4 = 524288 B;
    # 2.2 MB / 524288 B = 4.2 blocks -> 2 x 2 blocks = 1024 rows x 512 columns
    path = _write(tmp_path / "f32.tif", 3000, 3000, "float32", tiled=True, blockxsize=256, blockysize=512)
    suggestion = suggest_chunks(path, target_mb=2.2)
    assert suggestion.block_shape == (512, 256)
    assert suggestion.dtype == "float32"
    assert suggestion.chunks == {"band": 1, "y": 1024, "x": 512}


def test_the_explanation_names_blocks_chunks_and_sizes(tiled: Path) -> None:
    text = suggest_chunks(tiled, target_mb=0.5).explanation
    for expected in ("256 x 256 blocks of uint16", "2 x 2 blocks = 512 x 512 pixels", "6 chunks"):
        assert expected in text


@pytest.mark.parametrize("as_given", ["the suggestion itself", "its chunks dict"])
def test_rioxarray_accepts_the_chunks_and_reads_whole_blocks(tiled: Path, as_given: str) -> None:
    suggestion = suggest_chunks(tiled, target_mb=0.5)
    chunks = suggestion if as_given == "the suggestion itself" else suggestion.chunks
    band = rioxarray.open_rasterio(tiled, chunks=chunks)
    assert band.chunks == ((1,), (512, 488), (512, 512, 176))


def test_the_suggestion_is_the_dict_of_its_chunks(tiled: Path) -> None:
    suggestion = suggest_chunks(tiled, target_mb=0.5)
    assert isinstance(suggestion, dict)
    assert json.loads(json.dumps(suggestion)) == {"band": 1, "y": 512, "x": 512}
    assert suggestion == {"band": 1, "y": 512, "x": 512}
    assert suggestion != {"band": 1, "y": 256, "x": 256}
    assert str(suggestion) == suggestion.explanation


def test_an_untiled_file_says_to_convert_it(tmp_path: Path) -> None:
    path = _write(tmp_path / "strips.tif", 1000, 1200, tiled=False, blockysize=8)
    with pytest.raises(NotTiledError, match="as the strips of an untiled GeoTIFF do.*gdal_translate -of COG"):
        suggest_chunks(path)


def test_blocks_as_wide_as_the_band_are_refused_as_strips_are(tmp_path: Path) -> None:
    # tiled, but one 128 x 256 tile spans the 256-pixel width: GDAL shows it as strips do
    path = _write(tmp_path / "one_tile_wide.tif", 1000, 256, tiled=True, blockxsize=256, blockysize=128)
    with pytest.raises(NotTiledError, match="blocks of 128 x 256 pixels span the whole width"):
        suggest_chunks(path)


def test_a_missing_file_of_the_offline_data_says_how_to_get_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(paths, "DATA_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist. The offline data is generated by `make data`"):
        suggest_chunks(tmp_path / "sentinel2" / "red.tif")


def test_a_missing_file_elsewhere_says_to_check_the_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(paths, "DATA_DIR", tmp_path / "data")
    with pytest.raises(FileNotFoundError, match="does not exist. Check the path") as raised:
        suggest_chunks(tmp_path / "mine" / "red.tif")
    assert "make data" not in str(raised.value)


def test_a_path_under_the_home_folder_is_expanded(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    _write(tmp_path / "red.tif", 1000, 1200, tiled=True, blockxsize=256, blockysize=256)
    assert suggest_chunks("~/red.tif", target_mb=0.5).block_shape == (256, 256)


def test_a_folder_is_named_as_a_folder(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="is a folder, not a file: pass the path of one GeoTIFF in it"):
        suggest_chunks(tmp_path)


def test_a_gdal_virtual_path_is_not_taken_for_a_missing_local_file() -> None:
    with pytest.raises(
        OSError, match="could not open /vsimem/nowhere/red.tif as a raster: .*Check the href"
    ) as raised:
        suggest_chunks("/vsimem/nowhere/red.tif")
    assert "make data" not in str(raised.value)


def test_a_file_that_is_not_a_raster_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "red.tif"
    path.write_text("not a GeoTIFF")
    with pytest.raises(OSError, match="could not open .*red.tif as a raster: .*Is it a GeoTIFF") as raised:
        suggest_chunks(path)
    assert ".." not in str(raised.value)


@pytest.mark.parametrize("target_mb", [np.float32(0.5), np.int64(1), 0.5])
def test_any_real_number_is_a_target(tiled: Path, target_mb) -> None:
    assert suggest_chunks(tiled, target_mb=target_mb).target_mb == float(target_mb)


@pytest.mark.parametrize("target_mb", [0, -1, float("nan"), "8", True])
def test_a_bad_target_is_refused(tiled: Path, target_mb) -> None:
    with pytest.raises(ValueError, match="target_mb must be a positive number"):
        suggest_chunks(tiled, target_mb=target_mb)


def _seen_from_another_thread(key: str):
    from rasterio.env import get_gdal_config

    seen: list = []
    reader = threading.Thread(target=lambda: seen.append(get_gdal_config(key)))
    reader.start()
    reader.join()
    return seen[0]


def test_configure_gdal_sets_the_block_cache_in_megabytes_for_every_thread() -> None:
    from rasterio.env import get_gdal_config, set_gdal_config

    before = get_gdal_config("GDAL_CACHEMAX")  # GDAL counts the cache in bytes
    try:
        configure_gdal(cache_mb=48)
        assert _seen_from_another_thread("GDAL_CACHEMAX") == 48 * 1024 * 1024
    finally:
        set_gdal_config("GDAL_CACHEMAX", before)


@pytest.fixture
def no_http_options(monkeypatch) -> Iterator[None]:
    """The remote-COG options unset before the test (earlier tests may have set them) and after."""
    from rasterio._env import del_gdal_config  # rasterio.env has no public "unset"

    def unset_http_options() -> None:
        for key in GDAL_HTTP_OPTIONS:
            del_gdal_config(key)
            monkeypatch.delenv(key, raising=False)

    unset_http_options()
    assert _seen_from_another_thread("GDAL_HTTP_MAX_RETRY") is None
    yield
    unset_http_options()


def test_configure_gdal_without_a_cache_size_gives_back_gdals_own_cache() -> None:
    # In a fresh process: GDAL's default is what this process had before any call.
    script = """
import json
from rasterio.env import get_gdal_config
from helpers.chunks import configure_gdal
sizes = [get_gdal_config("GDAL_CACHEMAX")]
for cache_mb in (None, 48, None):
    configure_gdal(cache_mb=cache_mb)
    sizes.append(get_gdal_config("GDAL_CACHEMAX"))
print(json.dumps({"sizes": sizes, "retries": get_gdal_config("GDAL_HTTP_MAX_RETRY")}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=paths.ROOT)
    seen = json.loads(done.stdout)
    default, untouched, shrunk, restored = seen["sizes"]
    assert default > 48 * 2**20  # GDAL's default: 5% of the RAM
    assert untouched == default and restored == default
    assert shrunk == 48 * 2**20
    assert seen["retries"] == 3  # the remote-COG options all the same


@pytest.mark.parametrize("caller", ["main thread", "worker thread"])
def test_configure_gdal_sets_the_http_options_for_every_thread(caller, no_http_options) -> None:
    from rasterio.env import get_gdal_config, set_gdal_config

    cache_before = get_gdal_config("GDAL_CACHEMAX")
    try:
        if caller == "main thread":
            configure_gdal()
        else:  # e.g. client.run(configure_gdal) on an in-process dask.distributed worker
            setter = threading.Thread(target=configure_gdal)
            setter.start()
            setter.join()
        assert _seen_from_another_thread("GDAL_HTTP_MAX_RETRY") == 3
        assert _seen_from_another_thread("GDAL_DISABLE_READDIR_ON_OPEN") == "EMPTY_DIR"
    finally:
        set_gdal_config("GDAL_CACHEMAX", cache_before)


# --- over HTTP -----------------------------------------------------------------------


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server with Range support (starlette's StaticFiles) over tmp_path."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = Starlette(routes=[Mount("/data", StaticFiles(directory=tmp_path))])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the test's HTTP server did not start"
    yield f"http://127.0.0.1:{port}/data", tmp_path
    server.should_exit = True
    thread.join(timeout=10)


def test_an_http_href_is_read_from_the_header(http_dir: tuple[str, Path]) -> None:
    url, folder = http_dir
    _write(folder / "red.tif", 1000, 1200, tiled=True, blockxsize=256, blockysize=256)
    suggestion = suggest_chunks(f"{url}/red.tif", target_mb=0.5)
    assert suggestion.block_shape == (256, 256)
    assert suggestion.chunks == {"band": 1, "y": 512, "x": 512}


def test_a_missing_http_href_names_the_url(http_dir: tuple[str, Path]) -> None:
    url, _ = http_dir
    with pytest.raises(
        OSError,
        match=r"could not open http://127\.0\.0\.1:\d+/data/nir\.tif.*Check the URL in a browser.*make serve",
    ):
        suggest_chunks(f"{url}/nir.tif")


def test_a_failing_s3_href_gets_an_s3_hint(http_dir: tuple[str, Path], monkeypatch) -> None:
    # GDAL reads its AWS options from the environment too: s3://data/... -> {url}/nir.tif here
    url, _ = http_dir
    monkeypatch.setenv("AWS_S3_ENDPOINT", url.split("/")[2])
    monkeypatch.setenv("AWS_HTTPS", "NO")
    monkeypatch.setenv("AWS_VIRTUAL_HOSTING", "FALSE")
    monkeypatch.setenv("AWS_NO_SIGN_REQUEST", "YES")  # no credential look-up off this machine
    with pytest.raises(
        OSError, match="could not open s3://data/nir.tif .*Check the bucket and key.*AWS_NO_SIGN_REQUEST"
    ) as raised:
        read_block_layout("s3://data/nir.tif")
    assert "make serve" not in str(raised.value)


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A loopback port that accepts TCP connections (the kernel does) but never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/red.tif"


def test_a_server_that_never_answers_times_out_with_advice(silent_url: str, monkeypatch) -> None:
    # The shipped limit drops a request after 30 s without a byte; 1 s keeps the test short.
    assert "GDAL_HTTP_LOW_SPEED_TIME" in GDAL_HTTP_OPTIONS
    monkeypatch.setitem(GDAL_HTTP_OPTIONS, "GDAL_HTTP_LOW_SPEED_TIME", "1")
    with pytest.raises(
        OSError, match="could not open .* The request timed out: is the server running.*make serve"
    ):
        read_block_layout(silent_url)


@pytest.mark.slow
def test_the_workshop_scene_through_the_embedded_api(api: str) -> None:
    """Earth Search's layout, 1024 x 1024 uint16 blocks (2.1 MB): 8 MB -> 2 x 2 blocks."""
    from pystac_client import Client

    item = next(Client.open(api).search(collections=[paths.COLLECTION], ids=["S2A_35SNA_20230827_0_L2A"]).items())
    href = item.assets["red"].href
    assert href.startswith(api)
    suggestion = suggest_chunks(href)
    assert suggestion.block_shape == (1024, 1024)
    assert suggestion.raster_shape == (10980, 10980)
    assert suggestion.chunks == {"band": 1, "y": 2048, "x": 2048}
    assert suggestion.n_chunks == 36
