"""helpers.cluster: the notebooks' ``scheduler`` parameter is checked before anything runs.

Addresses are tried on loopback only: a port nobody listens on, a plain socket that
listens, and one whose queue of pending connections is full (a host that does not answer).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from helpers.cluster import SchedulerNotAnswering, check_scheduler, scheduler_host_port
from tests.server_fixtures import free_port


@pytest.mark.parametrize("scheduler", ["threads", "local"])
def test_threads_and_local_need_no_address(scheduler: str) -> None:
    assert check_scheduler(scheduler) is None


@pytest.mark.parametrize(
    ("address", "host_port"),
    [("tcp://127.0.0.1:8786", ("127.0.0.1", 8786)), ("tcp://[::1]:9000", ("::1", 9000)),
     ("tcp://scheduler.example.org:8786", ("scheduler.example.org", 8786))],
)
def test_an_address_gives_its_host_and_port(address: str, host_port: tuple[str, int]) -> None:
    assert scheduler_host_port(address) == host_port


@pytest.mark.parametrize("scheduler", ["processes", "", None, 8786, "127.0.0.1:8786", "tls://127.0.0.1:8786"])
def test_anything_else_is_refused_with_the_choices(scheduler) -> None:
    with pytest.raises(ValueError, match='scheduler must be "threads", "local" or "tcp://host:port", not'):
        check_scheduler(scheduler)


@pytest.mark.parametrize(
    ("scheduler", "error"),
    [("tcp://127.0.0.1", "is not an address of the form tcp://host:port"),
     ("tcp://", "is not an address of the form tcp://host:port"),
     ("tcp://127.0.0.1:port", "is not an address of the form tcp://host:port"),
     ("tcp://:8786", "needs a host and a port"),
     ("tcp://127.0.0.1:0", "needs a host and a port"),
     ("tcp://127.0.0.1:70000", "needs a host and a port")],
)
def test_an_address_without_host_or_port_says_what_one_looks_like(scheduler: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        check_scheduler(scheduler)


def test_a_port_nobody_listens_on_is_refused_at_once() -> None:
    nobody = f"tcp://127.0.0.1:{free_port()}"
    start = time.perf_counter()
    with pytest.raises(SchedulerNotAnswering, match=f"no Dask scheduler answered at {nobody} \\(Connection refused\\)"):
        check_scheduler(nobody, timeout=30)
    assert time.perf_counter() - start < 5  # refused, not waited out


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        yield server


def test_a_port_that_accepts_connections_passes(listening: socket.socket) -> None:
    check_scheduler(f"tcp://127.0.0.1:{listening.getsockname()[1]}", timeout=5)


def test_a_host_that_does_not_answer_is_given_up_after_the_timeout(listening: socket.socket) -> None:
    port = listening.getsockname()[1]
    # Fill the queue of connections waiting to be accepted: Linux then drops new ones,
    # as a firewall or a host that is down would, instead of refusing them.
    waiting = []
    for _ in range(4):
        client = socket.socket()
        client.setblocking(False)
        client.connect_ex(("127.0.0.1", port))
        waiting.append(client)
    time.sleep(0.2)
    try:
        start = time.perf_counter()
        with pytest.raises(SchedulerNotAnswering, match="timed out"):
            check_scheduler(f"tcp://127.0.0.1:{port}", timeout=1)
        assert 0.9 < time.perf_counter() - start < 10
    finally:
        for client in waiting:
            client.close()
