"""A private PostgreSQL/PostGIS cluster that holds the pgstac database.

The cluster is a cache: everything in it is rebuilt from the catalogue files
(``data/stac/``), so it may be deleted at any time and it is rebuilt when it is found
half-initialised or corrupted. It listens on a Unix socket in its own folder only
(``listen_addresses = ''``), never on a TCP port.

PostgreSQL refuses to run as root, so when the user is root the cluster runs as the
``postgres`` system user and lives under ``/var/tmp`` (a fresh clone's parent folders may
be mode 700, out of reach of that user); a normal user keeps it in the cache folder.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "postgres"
"""The unprivileged system user that runs the cluster when we are root (as on CI)."""

DATABASE = "pgstac"
SUPERUSER = "postgres"
PG_PORT = 5432
"""Only names the socket file (``.s.PGSQL.5432``): the cluster opens no TCP port."""

INSTALL_HINT = (
    "Install PostgreSQL 15 and PostGIS 3: `apt-get install postgresql-15 "
    "postgresql-15-postgis-3` (Debian/Ubuntu) or `conda install -c conda-forge "
    "postgresql postgis`; or set RHODES_PG_BINDIR to the folder holding initdb and pg_ctl."
)

_SOCKET_PATH_MAX = 100
"""Unix socket paths are limited to 107 bytes; keep a margin for ``.s.PGSQL.5432``."""

_CONFIG = """
# Written by helpers.server: a private, rebuildable cache of the offline catalogue.
listen_addresses = ''
unix_socket_directories = '{socket_dir}'
unix_socket_permissions = 0700
port = {port}
max_connections = 40
shared_buffers = 128MB
# Durability is not needed: the cluster is rebuilt from the catalogue files.
fsync = off
synchronous_commit = off
full_page_writes = off
jit = off
min_wal_size = 2MB
max_wal_size = 64MB
logging_collector = off
"""


class ClusterError(RuntimeError):
    """The private PostgreSQL cluster cannot be found, built or started."""


def _is_root() -> bool:
    return os.geteuid() == 0


def _data_key(data_dir: Path) -> str:
    """A short name per data folder, so two checkouts never share a cluster."""
    resolved = str(Path(data_dir).resolve())
    return hashlib.sha1(resolved.encode()).hexdigest()[:10]


def default_home(data_dir: Path) -> Path:
    """Where the cluster of ``data_dir`` lives (``RHODES_PGSTAC_DIR`` overrides it)."""
    override = os.environ.get("RHODES_PGSTAC_DIR")
    if override:
        return Path(override) / _data_key(data_dir)
    name = f"rhodes-pgstac-{_data_key(data_dir)}"
    if _is_root():
        base = Path("/var/tmp") if Path("/var/tmp").is_dir() else Path(tempfile.gettempdir())
        return base / name
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    home = cache / "rhodes-pgstac" / _data_key(data_dir)
    if len(str(home / "run" / ".s.PGSQL.5432")) > _SOCKET_PATH_MAX:
        home = Path(tempfile.gettempdir()) / f"{name}-{os.getuid()}"
    return home


def find_bindir() -> Path:
    """The folder of ``initdb``/``pg_ctl``/``postgres``, or a ClusterError saying what to install.

    Debian keeps the server binaries off PATH (``/usr/lib/postgresql/15/bin``) while
    conda puts them on it, so several places are tried.
    """
    candidates: list[Path] = []
    if os.environ.get("RHODES_PG_BINDIR"):
        candidates.append(Path(os.environ["RHODES_PG_BINDIR"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            candidates.append(Path(out))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    candidates += [
        Path(p)
        for p in sorted(
            glob.glob("/usr/lib/postgresql/*/bin"),
            key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
            reverse=True,
        )
    ]
    for bindir in candidates:
        if all((bindir / exe).is_file() for exe in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise ClusterError(f"PostgreSQL server binaries (initdb, pg_ctl) were not found. {INSTALL_HINT}")


@dataclass(frozen=True)
class Cluster:
    """The private cluster of one data folder: paths, and commands run as the right user."""

    home: Path
    bindir: Path

    @classmethod
    def for_data_dir(cls, data_dir: Path, home: Path | None = None) -> Cluster:
        return cls(home=Path(home) if home else default_home(data_dir), bindir=find_bindir())

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_file(self) -> Path:
        return self.home / "postgresql.log"

    @property
    def lock_file(self) -> Path:
        """Serialises start/stop of this cluster; beside the folder, which init() replaces."""
        return self.home.parent / f"{self.home.name}.lock"

    @property
    def ready_marker(self) -> Path:
        """Written last by :meth:`init`: a cluster without it is half-initialised."""
        return self.home / "cluster-initialised"

    def dsn(self, dbname: str = DATABASE) -> str:
        """libpq/psycopg connection string over the private socket."""
        return f"host={self.socket_dir} port={PG_PORT} user={SUPERUSER} dbname={dbname}"

    def asyncpg_dsn(self, dbname: str = DATABASE) -> str:
        """The same for asyncpg (stac-fastapi-pgstac), which takes the socket as ``?host=``."""
        return f"postgresql://{SUPERUSER}@/{dbname}?host={self.socket_dir}&port={PG_PORT}"

    # -- running commands ------------------------------------------------------------
    def _run_as(self) -> dict:
        """subprocess arguments that drop root to the service user (nothing otherwise)."""
        if not _is_root():
            return {}
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise ClusterError(
                f"PostgreSQL refuses to run as root and there is no '{SERVICE_USER}' system "
                f"user to run it as. Run as a normal user, or create the user "
                f"(installing the Debian package postgresql-15 does). {INSTALL_HINT}"
            ) from None
        return {"user": SERVICE_USER, "group": SERVICE_USER, "extra_groups": []}

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        env["LANG"] = "C"
        if _is_root():
            env["HOME"] = str(self.home)
            env["USER"] = env["LOGNAME"] = SERVICE_USER
        return env

    def run(self, exe: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a PostgreSQL program from the cluster's folder, as the cluster's owner."""
        return subprocess.run(
            [str(self.bindir / exe), *args],
            cwd=self.home,
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            **self._run_as(),
        )

    def _own(self, path: Path) -> None:
        """Hand a folder we created to the service user (root only)."""
        if _is_root():
            entry = pwd.getpwnam(SERVICE_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    # -- state -----------------------------------------------------------------------
    def is_initialised(self) -> bool:
        return self.ready_marker.is_file() and (self.pgdata / "PG_VERSION").is_file()

    def postmaster_pid(self) -> int | None:
        """The pid of a live postmaster of this cluster, or None (a stale pid file is removed)."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        if _is_our_postmaster(pid, self.pgdata):
            return pid
        # Left by a crash (or the pid now belongs to another program): PostgreSQL would
        # refuse to start while it exists.
        with contextlib.suppress(OSError):
            pid_file.unlink()
        return None

    def is_running(self) -> bool:
        return self.postmaster_pid() is not None

    # -- life cycle ------------------------------------------------------------------
    def destroy(self) -> None:
        """Stop the cluster and delete its folder (only derived data lives there)."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)
        self.lock_file.unlink(missing_ok=True)

    def init(self) -> None:
        """Create a fresh cluster (any previous one in the folder is deleted first)."""
        if self.home.exists():
            self.stop()
            shutil.rmtree(self.home)
        self.home.mkdir(parents=True, mode=0o700)
        self._own(self.home)
        self.socket_dir.mkdir(mode=0o700)
        self._own(self.socket_dir)
        self._check_reachable()
        result = self.run(
            "initdb",
            "--pgdata", str(self.pgdata),
            "--username", SUPERUSER,
            "--auth", "trust",
            "--encoding", "UTF8",
            "--locale", "C",
            "--no-sync",
            "--wal-segsize", "1",  # MB: the catalogue is tiny; 16 MB segments triple the folder
        )
        if result.returncode != 0:
            raise ClusterError(f"initdb failed in {self.pgdata}:\n{result.stderr.strip()}")
        with open(self.pgdata / "postgresql.conf", "a") as conf:
            conf.write(_CONFIG.format(socket_dir=self.socket_dir, port=PG_PORT))
        # Only the private socket is allowed, and only for the owner (socket mode 0700).
        (self.pgdata / "pg_hba.conf").write_text("local all all trust\n")
        self.ready_marker.write_text("initdb done\n")

    def _check_reachable(self) -> None:
        """Fail early, with the reason, when the service user cannot reach the folder."""
        if not _is_root():
            return
        result = subprocess.run(
            ["test", "-w", str(self.home)], env=self._env(), cwd="/", **self._run_as()
        )
        if result.returncode != 0:
            raise ClusterError(
                f"The '{SERVICE_USER}' user cannot write to {self.home} (a parent folder is "
                "closed to it). Set RHODES_PGSTAC_DIR to a folder it can reach, e.g. /var/tmp."
            )

    def start(self, timeout: float = 60) -> None:
        """Start the postmaster in the background (it outlives this Python process)."""
        if self.is_running():
            return
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self._own(self.socket_dir)
        args = [
            str(self.bindir / "pg_ctl"), "start", "--wait", f"--timeout={int(timeout)}",
            "--pgdata", str(self.pgdata), "--log", str(self.log_file),
        ]
        # A new session: the postmaster must not die with the terminal or pytest that started it.
        result = subprocess.run(
            args, cwd=self.home, env=self._env(), capture_output=True, text=True,
            timeout=timeout + 10, start_new_session=True, **self._run_as(),
        )
        if result.returncode != 0 or not self.is_running():
            raise ClusterError(
                f"PostgreSQL did not start (data folder {self.pgdata}).\n"
                f"{result.stderr.strip()}\n{self.log_tail()}"
            )

    def stop(self, timeout: float = 30) -> bool:
        """Stop the postmaster if it runs; True when it was running."""
        pid = self.postmaster_pid()
        if pid is None:
            return False
        result = self.run(
            "pg_ctl", "stop", "--wait", f"--timeout={int(timeout)}", "--mode", "fast",
            "--pgdata", str(self.pgdata), timeout=timeout + 10,
        )
        if result.returncode != 0 and _is_our_postmaster(pid, self.pgdata):
            # The data folder may be broken beyond pg_ctl's reach: stop the process itself.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)
            _wait_gone(pid, timeout)
        return True

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


def _is_our_postmaster(pid: int, pgdata: Path) -> bool:
    """True when ``pid`` is a live postgres process serving ``pgdata`` (not a reused pid)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    if not cmdline or "postgres" not in Path(cmdline[0]).name:
        return False
    try:
        return Path(proc.cwd()).resolve() == pgdata.resolve() or str(pgdata) in " ".join(cmdline)
    except (psutil.AccessDenied, psutil.NoSuchProcess, OSError):
        return str(pgdata) in " ".join(cmdline)


def _wait_gone(pid: int, timeout: float) -> None:
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).wait(timeout=timeout)
    time.sleep(0.05)
