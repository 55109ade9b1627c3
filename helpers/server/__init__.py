"""The embedded STAC API: stac-fastapi-pgstac on a private PostgreSQL, COGs over HTTP.

Only stac-fastapi-pgstac answers every workshop call exactly like Earth Search
(``numberMatched``, the Query extension, newest first), so the offline catalogue is
loaded into pgstac on a private PostgreSQL/PostGIS cluster (:mod:`.cluster`) and served
by uvicorn on 127.0.0.1 together with the data folder at ``/data/`` (HTTP Range), so
odc-stac reads the COGs over HTTP block by block as it reads the live S3 hrefs.

``start()`` leaves the server running in the background (like ``make serve``);
``embedded_api()`` is the context manager for tests; ``ensure_api(api_url)`` is what every
notebook calls right after its parameters cell.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from helpers import paths
from helpers.server import catalogue
from helpers.server.catalogue import CatalogueError
from helpers.server.cluster import DATABASE, INSTALL_HINT, Cluster, ClusterError
from helpers.server.names import API_ENVIRONMENT, ENV_DATA_DIR, ENV_DSN, LANDING_ID

__all__ = [
    "ServerError",
    "embedded_api",
    "ensure_api",
    "reset",
    "root_url",
    "start",
    "status",
    "stop",
]

READY_TIMEOUT = 60.0
"""Seconds uvicorn gets to answer its landing page (imports take ~2 s on a busy machine)."""


class ServerError(RuntimeError):
    """The embedded API cannot start; the message says what to do."""


@dataclass
class ServerState:
    """What ``server.json`` records about the running uvicorn (read by stop and status)."""

    pid: int
    port: int
    url: str
    data_dir: str
    log: str
    started: float


def root_url(port: int = paths.PORT) -> str:
    return f"http://127.0.0.1:{port}"


# -- state files ---------------------------------------------------------------------
def _state_file(cluster: Cluster) -> Path:
    return cluster.home / "server.json"


def _loaded_file(cluster: Cluster) -> Path:
    return cluster.home / "loaded.json"


def _api_log(cluster: Cluster) -> Path:
    return cluster.home / "uvicorn.log"


def _read_json(file: Path) -> dict | None:
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError):
        return None


def _is_our_uvicorn(pid: int, port: int) -> bool:
    """True when ``pid`` is a live server of ours on ``port`` (not a pid reused after a crash)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    # helpers.server.app:create_app: servers started by uvicorn's own CLI before serve.py existed.
    ours = "helpers.server.serve" in cmdline or "helpers.server.app:create_app" in cmdline
    return ours and f"--port {port}" in cmdline


def _running_server(cluster: Cluster) -> ServerState | None:
    """The uvicorn of this data folder if it runs; a stale ``server.json`` is removed."""
    raw = _read_json(_state_file(cluster))
    if raw is None:
        return None
    try:
        state = ServerState(**raw)
    except TypeError:
        state = None
    if state is not None and _is_our_uvicorn(state.pid, state.port):
        return state
    with contextlib.suppress(OSError):
        _state_file(cluster).unlink()
    return None


@contextlib.contextmanager
def _locked(cluster: Cluster) -> Iterator[None]:
    """One start/stop at a time per data folder (two notebooks may start together)."""
    cluster.home.parent.mkdir(parents=True, exist_ok=True)
    with open(cluster.lock_file, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# -- HTTP probes (loopback only) -----------------------------------------------------
def _landing_page(url: str, timeout: float = 1.0) -> dict | None:
    """The JSON landing page at ``url``, or None when nothing (or not JSON) answers."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/", timeout=timeout) as response:
            return json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _port_taken_message(port: int) -> str:
    landing = _landing_page(root_url(port))
    who = (
        "another embedded STAC API (for another data folder)"
        if landing and landing.get("id") == LANDING_ID
        else "another program"
    )
    return (
        f"Port {port} on 127.0.0.1 is already in use by {who}. Stop it, or start the embedded "
        f"API on another port, `PORT={port + 1} make serve` in a terminal (or "
        f"helpers.server.start(port={port + 1}) in Python), then give the notebooks "
        f'api_url = "{root_url(port + 1)}".'
    )


# -- database ------------------------------------------------------------------------
def _create_database(cluster: Cluster) -> None:
    """Create the pgstac database with PostGIS (a clear message when PostGIS is missing)."""
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except psycopg.errors.UndefinedFile as exc:  # no postgis.control for this server
            raise ServerError(f"PostGIS is not installed for this PostgreSQL. {INSTALL_HINT}") from exc


def _item_count(cluster: Cluster) -> int | None:
    with contextlib.suppress(psycopg.Error):
        with psycopg.connect(cluster.dsn(), connect_timeout=5) as conn:
            row = conn.execute("SELECT count(*) FROM pgstac.items").fetchone()
            return int(row[0]) if row else None
    return None


def _prepare_database(cluster: Cluster, data_dir: Path, url: str) -> None:
    """Cluster running, schema migrated, catalogue loaded for ``url``; rebuilt once if broken."""
    wanted_fingerprint = catalogue.fingerprint(data_dir)  # CatalogueError: nothing to rebuild
    for attempt in (1, 2):
        try:
            if not cluster.is_initialised():
                cluster.init()
            cluster.start()
            _create_database(cluster)
            version = catalogue.migrate(cluster.dsn())
            wanted = {"fingerprint": wanted_fingerprint, "url": url, "pgstac": version}
            loaded = _read_json(_loaded_file(cluster)) or {}
            if {k: loaded.get(k) for k in wanted} != wanted or _item_count(cluster) != loaded.get(
                "items"
            ):
                _loaded_file(cluster).unlink(missing_ok=True)
                items = catalogue.load(cluster.dsn(), data_dir, url)
                _loaded_file(cluster).write_text(json.dumps({**wanted, "items": items}))
            return
        except (ServerError, CatalogueError):
            raise
        except Exception as exc:  # a corrupted or half-initialised cluster: rebuild it
            if attempt == 2:
                raise ServerError(
                    f"The private PostgreSQL cluster in {cluster.home} could not be prepared "
                    f"even after a rebuild: {exc}\n{cluster.log_tail()}"
                ) from exc
            print(
                f"The private PostgreSQL cluster in {cluster.home} is broken ({exc}); "
                "rebuilding it from the catalogue files.",
                file=sys.stderr,
            )
            cluster.init()


# -- uvicorn -------------------------------------------------------------------------
def _launch(cluster: Cluster, data_dir: Path, port: int) -> ServerState:
    """Start uvicorn detached (its own session: it outlives this Python process)."""
    env = {
        **os.environ,
        **API_ENVIRONMENT,
        ENV_DSN: cluster.asyncpg_dsn(),
        ENV_DATA_DIR: str(data_dir),
    }
    env["PYTHONUNBUFFERED"] = "1"
    log = _api_log(cluster)
    with open(log, "w") as log_stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "helpers.server.serve", "--port", str(port)],
            cwd=cluster.home,  # no stray .env file is read from the caller's folder
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = root_url(port)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            if "address already in use" in tail.lower():
                raise ServerError(_port_taken_message(port))
            raise ServerError(f"The STAC API process exited (code {process.returncode}):\n{tail}")
        landing = _landing_page(url, timeout=0.5)
        if landing and landing.get("id") == LANDING_ID:
            state = ServerState(
                pid=process.pid, port=port, url=url, data_dir=str(data_dir), log=str(log),
                started=time.time(),
            )
            _state_file(cluster).write_text(json.dumps(asdict(state)))
            return state
        time.sleep(0.1)
    _terminate(process.pid)
    raise ServerError(f"The STAC API did not answer at {url} within {READY_TIMEOUT:.0f} s; see {log}")


def _terminate(pid: int, timeout: float = 10) -> None:
    import psutil

    try:
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=timeout)
    except psutil.TimeoutExpired:
        proc.kill()
        with contextlib.suppress(psutil.Error):
            proc.wait(timeout=timeout)
    except psutil.NoSuchProcess:
        pass
    # Reap it when we are its parent, so no zombie stays behind in a long pytest session.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


# -- public API ----------------------------------------------------------------------
def _cluster(data_dir: Path) -> Cluster:
    """The cluster of ``data_dir``, or a ServerError saying what to install."""
    try:
        return Cluster.for_data_dir(data_dir)
    except ClusterError as exc:
        raise ServerError(str(exc)) from exc


def start(port: int = paths.PORT, data_dir: Path = paths.DATA_DIR) -> str:
    """Start (or reuse) the embedded API for ``data_dir`` on ``port``; returns its root URL.

    Starts the private PostgreSQL cluster, builds/migrates/loads it when needed and
    starts uvicorn in the background; it keeps running after this process exits
    (``stop()`` or ``make stop`` ends it).
    """
    data_dir = Path(data_dir).resolve()
    url = root_url(port)
    catalogue.item_files(data_dir)  # a missing catalogue is the first thing to fix
    cluster = _cluster(data_dir)
    with _locked(cluster):
        running = _running_server(cluster)
        if running is not None and running.port != port:
            raise ServerError(
                f"The embedded STAC API for {data_dir} already runs at {running.url}. Use that "
                "URL, or stop it first (`make stop` or helpers.server.stop())."
            )
        if running is not None and cluster.is_running():
            _prepare_database(cluster, data_dir, url)  # reloads if the catalogue changed
            return url
        if running is not None:  # the API outlived its database: restart both
            _terminate(running.pid)
            _state_file(cluster).unlink(missing_ok=True)
        if _port_in_use(port):
            raise ServerError(_port_taken_message(port))
        _prepare_database(cluster, data_dir, url)
        _launch(cluster, data_dir, port)
    return url


def stop(data_dir: Path = paths.DATA_DIR) -> str:
    """Stop the API and the PostgreSQL cluster of ``data_dir``; says what was stopped."""
    data_dir = Path(data_dir).resolve()
    try:
        cluster = Cluster.for_data_dir(data_dir)
    except ClusterError as exc:
        return f"Nothing to stop ({exc})"
    stopped = []
    with _locked(cluster):
        running = _running_server(cluster)
        if running is not None:
            _terminate(running.pid)
            _state_file(cluster).unlink(missing_ok=True)
            stopped.append(f"the STAC API at {running.url}")
        if cluster.stop():
            stopped.append("PostgreSQL")
    if not stopped:
        return "The embedded STAC API was not running."
    return f"Stopped {' and '.join(stopped)}."


def reset(data_dir: Path = paths.DATA_DIR) -> str:
    """Stop everything and delete the private cluster; the next start rebuilds it."""
    data_dir = Path(data_dir).resolve()
    stopped = stop(data_dir)
    cluster = _cluster(data_dir)
    existed = cluster.home.exists()
    cluster.destroy()
    return f"{stopped} " + (f"Deleted the cluster in {cluster.home}." if existed else "No cluster to delete.")


def status(data_dir: Path = paths.DATA_DIR) -> str:
    """What runs where, in a few human-readable lines."""
    data_dir = Path(data_dir).resolve()
    try:
        cluster = Cluster.for_data_dir(data_dir)
    except ClusterError as exc:
        return f"Embedded STAC API: cannot run here. {exc}"
    lines = [f"Embedded STAC API for {data_dir}"]
    running = _running_server(cluster)
    if running is not None:
        lines.append(f"  API:        running at {running.url} (pid {running.pid}), log {running.log}")
    else:
        lines.append("  API:        not running (start it: make serve)")
    pg_pid = cluster.postmaster_pid()
    if pg_pid is not None:
        lines.append(f"  PostgreSQL: running (pid {pg_pid}), socket {cluster.socket_dir}, data {cluster.pgdata}")
    elif cluster.is_initialised():
        lines.append(f"  PostgreSQL: stopped, data {cluster.pgdata}")
    else:
        lines.append(f"  PostgreSQL: no cluster yet (built on first start in {cluster.home})")
    loaded = _read_json(_loaded_file(cluster))
    if loaded:
        try:
            fresh = loaded.get("fingerprint") == catalogue.fingerprint(data_dir)
        except CatalogueError:
            fresh = False
        note = "up to date" if fresh else "older than the catalogue files: reloaded on next start"
        lines.append(f"  Catalogue:  {loaded.get('items')} items, pgstac {loaded.get('pgstac')}, {note}")
    return "\n".join(lines)


@contextlib.contextmanager
def embedded_api(port: int | None = None, data_dir: Path = paths.DATA_DIR) -> Iterator[str]:
    """Run the embedded API for a block (tests); stops on exit only what it started."""
    data_dir = Path(data_dir).resolve()
    port = paths.PORT if port is None else port
    cluster = _cluster(data_dir)
    api_was_running = _running_server(cluster) is not None
    pg_was_running = cluster.is_running()
    url = start(port, data_dir)
    try:
        yield url
    finally:
        with _locked(cluster):
            running = _running_server(cluster)
            if not api_was_running and running is not None:
                _terminate(running.pid)
                _state_file(cluster).unlink(missing_ok=True)
            if not pg_was_running:
                cluster.stop()


def _is_embedded_default(api_url: str) -> bool:
    parts = urlsplit(api_url)
    return (
        parts.scheme == "http"
        and parts.hostname in ("127.0.0.1", "localhost")
        and parts.port == paths.PORT
        and parts.path in ("", "/")
    )


def ensure_api(api_url: str) -> str:
    """Make sure the notebook's ``api_url`` answers; returns the URL to use.

    The embedded default (127.0.0.1 or localhost on the configured port) is started
    when nothing answers there; any other URL (e.g. the live Earth Search) is returned
    untouched, without a network test.
    """
    if not _is_embedded_default(api_url):
        return api_url
    url = root_url(paths.PORT)
    cluster = _cluster(paths.DATA_DIR.resolve())
    if _running_server(cluster) is not None:
        start(paths.PORT, paths.DATA_DIR)  # reuses it; reloads the catalogue if it was rebuilt
        print(f"Using the embedded STAC API already running at {url} (offline Rhodes catalogue)")
        return url
    if _landing_page(url) is not None:
        print(f"Using the STAC API already running at {url}")
        return url
    start(paths.PORT, paths.DATA_DIR)
    print(f"Started the embedded STAC API at {url} (offline Rhodes catalogue)")
    return url
