"""helpers.cluster: the notebooks' ``scheduler`` parameter is checked before anything runs.

Addresses are tried on loopback only: a port nobody listens on, a server that speaks
first (as a scheduler does), one that stays silent (as the dashboard's port does), and
one whose queue of pending connections is full (a host that does not answer).
"""

from __future__ import annotations

import socket
import threading
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
     ("tcp://scheduler.example.org:8786", ("scheduler.example.org", 8786)), ("tcp://h:65535", ("h", 65535))],
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
    """A port that accepts connections (the kernel completes them) and never says a word."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        yield server


@pytest.fixture
def speaking() -> Iterator[int]:
    """A port whose server sends a few bytes first on every connection, as a Dask scheduler does."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)

        def serve() -> None:
            while True:
                try:
                    connection, _ = server.accept()
                except OSError:  # closed at the end of the test
                    return
                with connection:
                    connection.sendall(b"hello")

        threading.Thread(target=serve, daemon=True).start()
        yield server.getsockname()[1]


def test_a_server_that_speaks_first_passes(speaking: int) -> None:
    check_scheduler(f"tcp://127.0.0.1:{speaking}", timeout=5)


def test_a_port_that_accepts_but_stays_silent_is_not_a_scheduler(listening: socket.socket) -> None:
    # e.g. the dashboard's port (8787, HTTP: waits for the client) given for the scheduler's
    silent = f"tcp://127.0.0.1:{listening.getsockname()[1]}"
    start = time.perf_counter()
    with pytest.raises(SchedulerNotAnswering, match=r"sent no handshake in 0.5 s\): is that the scheduler's port.*a proxy, a firewall"):
        check_scheduler(silent, timeout=0.5)
    assert 0.4 < time.perf_counter() - start < 3


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
        with pytest.raises(SchedulerNotAnswering, match=r"\(timed out\)"):
            check_scheduler(f"tcp://127.0.0.1:{port}", timeout=1)
        assert 0.9 < time.perf_counter() - start < 3
    finally:
        for client in waiting:
            client.close()


def test_the_notebooks_wait_a_few_seconds_not_forever(monkeypatch: pytest.MonkeyPatch) -> None:
    waited = []

    def no_answer(address, timeout=None):
        waited.append(timeout)
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", no_answer)
    with pytest.raises(SchedulerNotAnswering):
        check_scheduler("tcp://10.0.0.5:8786")  # as the notebooks call it
    assert waited and 0 < waited[0] <= 10


def test_a_host_name_that_does_not_resolve_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def unknown(address, timeout=None):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", unknown)
    with pytest.raises(SchedulerNotAnswering, match=r"at tcp://schedular:8786 \(Name or service not known\)"):
        check_scheduler("tcp://schedular:8786")


def test_a_scheduler_without_workers_says_to_start_one() -> None:
    from distributed import Client, LocalCluster

    from helpers.cluster import NoWorkers, wait_for_workers

    with (
        LocalCluster(n_workers=0, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None) as cluster,
        Client(cluster.scheduler_address) as client,  # as the notebooks connect to an address
    ):
        start = time.perf_counter()
        with pytest.raises(NoWorkers, match=f"at {cluster.scheduler_address} has no workers .*`dask worker {cluster.scheduler_address}`"):
            wait_for_workers(client, timeout=1)
        assert time.perf_counter() - start < 10  # gave up after the timeout, did not hang
        cluster.scale(1)
        assert wait_for_workers(client, timeout=30) == 1
