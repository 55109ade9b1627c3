"""Where Dask computes: the ``scheduler`` parameter of the notebooks, checked up front.

The notebooks take ``scheduler = "threads"`` (this process), ``"local"`` (a
``LocalCluster`` they start) or the address of a running scheduler,
``"tcp://host:port"``. They check it in their first cell, so that a typo or a scheduler
that is not running stops the notebook in seconds, not after the lesson has computed
for minutes; creating the ``Client`` stays in the notebooks, where it is taught.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distributed import Client

SCHEDULER_CHOICES = '"threads", "local" or "tcp://host:port"'


class SchedulerNotAnswering(ConnectionError):
    """No Dask scheduler answers at the address the notebook was given."""

    def __init__(self, address: str, reason: object = None, advice: str | None = None) -> None:
        self.address = address
        because = f" ({reason})" if reason else ""
        advice = advice or "is `dask scheduler` running there, and can this machine reach that port?"
        super().__init__(
            f"no Dask scheduler answered at {address}{because}: {advice} "
            'Or run with scheduler = "threads".'
        )


def scheduler_host_port(scheduler: str) -> tuple[str, int]:
    """Host and port of a ``"tcp://host:port"`` address; ValueError for anything else."""
    from distributed.comm import parse_address, parse_host_port

    if not isinstance(scheduler, str) or not scheduler.startswith("tcp://"):
        raise ValueError(f"scheduler must be {SCHEDULER_CHOICES}, not {scheduler!r}")
    _, location = parse_address(scheduler)
    try:
        host, port = parse_host_port(location)
    except ValueError as error:
        raise ValueError(
            f"scheduler {scheduler!r} is not an address of the form tcp://host:port ({error}); "
            "`dask scheduler` prints its address when it starts, e.g. tcp://10.0.0.5:8786"
        ) from None
    if not host or not 0 < port < 65536:
        raise ValueError(f"scheduler {scheduler!r} needs a host and a port between 1 and 65535")
    return host, port


def check_scheduler(scheduler: str, timeout: float = 5.0) -> None:
    """Refuse a ``scheduler`` the notebook could not use, before anything is computed.

    ``"threads"`` and ``"local"`` need nothing. At an address, something must accept a
    TCP connection within ``timeout`` seconds and then speak first, as a Dask scheduler
    does (it sends its handshake at once); otherwise ``SchedulerNotAnswering``. That
    catches the dashboard's port (8787) given for the scheduler's (8786): a ``Client``
    would wait for a handshake there forever. (The scheduler logs the probe as a
    connection "closed before handshake completed".)
    """
    if scheduler in ("threads", "local"):
        return
    host, port = scheduler_host_port(scheduler)
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            try:
                spoke = connection.recv(1)  # the timeout applies here too
            except TimeoutError:
                spoke = b""
    except OSError as error:  # refused, unreachable, unknown host, or timed out
        raise SchedulerNotAnswering(scheduler, error.strerror or error) from None
    if not spoke:
        raise SchedulerNotAnswering(
            scheduler,
            f"it accepts connections but sent no handshake in {timeout:g} s",
            "is that the scheduler's port (8786 by default), not its dashboard's (8787)? Or does "
            "something on the way (a proxy, a firewall) accept connections for a host that is down?",
        )


class NoWorkers(TimeoutError):
    """The scheduler answers but no worker has joined it."""


def wait_for_workers(client: Client, timeout: float = 30.0) -> int:
    """The number of workers of ``client``'s scheduler, once at least one has joined.

    A scheduler without workers accepts every computation and runs none: the notebook
    would wait for ever at its first ``compute()``. A worker started at the same time as
    the notebook may take a few seconds to join, hence the wait (``timeout`` seconds).
    """
    from distributed.exceptions import WorkerStartTimeoutError

    try:
        client.wait_for_workers(1, timeout=timeout)
    except WorkerStartTimeoutError:
        address = client.scheduler.address
        raise NoWorkers(
            f"the Dask scheduler at {address} has no workers (none joined in {timeout:g} s), so "
            f"nothing would run: start one on each machine that should compute, `dask worker {address}`, "
            'then run this cell again; or run with scheduler = "threads".'
        ) from None
    return len(client.scheduler_info()["workers"])
