"""Where Dask computes: the ``scheduler`` parameter of the notebooks, checked up front.

The notebooks take ``scheduler = "threads"`` (this process), ``"local"`` (a
``LocalCluster`` they start) or the address of a running scheduler,
``"tcp://host:port"``. They check it in their first cell, so that a typo or a scheduler
that is not running stops the notebook in seconds, not after the lesson has computed
for minutes; creating the ``Client`` stays in the notebooks, where it is taught.
"""

from __future__ import annotations

import socket

SCHEDULER_CHOICES = '"threads", "local" or "tcp://host:port"'


class SchedulerNotAnswering(ConnectionError):
    """Nothing accepts connections at the scheduler address the notebook was given."""

    def __init__(self, address: str, reason: object = None) -> None:
        self.address = address
        because = f" ({reason})" if reason else ""
        super().__init__(
            f"no Dask scheduler answered at {address}{because}: is `dask scheduler` running "
            "there, and can this machine reach that port? Or run with scheduler = \"threads\"."
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

    ``"threads"`` and ``"local"`` need nothing. For an address, something must accept a
    TCP connection there within ``timeout`` seconds (``SchedulerNotAnswering`` if not).
    That does not prove it is a Dask scheduler; the ``Client`` finds out when it connects.
    """
    if scheduler in ("threads", "local"):
        return
    host, port = scheduler_host_port(scheduler)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as error:  # refused, unreachable, unknown host, or timed out
        raise SchedulerNotAnswering(scheduler, error.strerror or error) from None
