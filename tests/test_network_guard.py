"""The suite may talk to loopback only: pytest-socket is on for every test (pyproject addopts)."""

import socket

import pytest
from pytest_socket import SocketConnectBlockedError


def test_loopback_is_allowed() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname(), timeout=2):
            pass


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_other_hosts_are_blocked() -> None:
    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("192.0.2.1", 80), timeout=1)  # TEST-NET-1, never routed
