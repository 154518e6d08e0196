"""The `integration` mark cannot be forgotten: a plugin the root conftest loads.

A test that uses a fixture declared with `server_fixture` is marked `integration` at collection. Any other
test that listens on a TCP socket, or reaches a server on loopback (one it started itself, in-process or as a
process), fails with a message that says what to do; a refused connection (nothing there) is allowed.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

_INET = (socket.AF_INET, socket.AF_INET6)


def server_fixture(function: Callable[..., Any] | None = None, **fixture_args: Any) -> Any:
    """`pytest.fixture` for a fixture that starts a real server: the tests that use it are `integration`."""

    def declare(fixture_function: Callable[..., Any]) -> Any:
        fixture_function.starts_server = True  # type: ignore[attr-defined]
        return pytest.fixture(**fixture_args)(fixture_function)

    return declare(function) if function is not None else declare


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `integration` every test whose fixtures (direct or through others) include a server fixture."""
    for item in items:
        # The fixture definitions the test resolved (pytest's own record; a fixture of the same name elsewhere
        # that starts nothing does not count).
        definitions = getattr(item, "_fixtureinfo", None)
        by_name = definitions.name2fixturedefs if definitions is not None else {}
        if any(getattr(d.func, "starts_server", False) for defs in by_name.values() for d in defs):
            item.add_marker(pytest.mark.integration)


def _is_loopback(address: Any) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _servers_only_in_integration_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Outside `integration` tests, listening on TCP or reaching a server on loopback TCP fails the test.

    In the test's own thread the socket call raises; one made in another thread (where an exception may only
    end that thread) also fails the test when it ends.
    """
    if request.node.get_closest_marker("integration") is not None:
        yield
        return
    test_thread = threading.get_ident()
    in_other_threads: list[str] = []
    advice = (
        f"{request.node.nodeid} {{}}: mark it @pytest.mark.integration, or start the server in a fixture "
        "declared with tests.support.integration.server_fixture"
    )
    listen, connect, connect_ex = socket.socket.listen, socket.socket.connect, socket.socket.connect_ex

    def refuse(what: str) -> None:
        message = advice.format(what)
        if threading.get_ident() != test_thread:
            in_other_threads.append(message)
        pytest.fail(message, pytrace=False)

    def guarded_listen(sock: socket.socket, *backlog: int) -> None:
        if sock.family in _INET:
            refuse("starts a server (listens on a TCP socket)")
        listen(sock, *backlog)

    def connected(sock: socket.socket, address: Any) -> None:
        if sock.family in _INET and sock.type == socket.SOCK_STREAM and _is_loopback(address):
            refuse(f"talks to a local server at {address}")

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        connect(sock, address)  # raises when nothing listens there
        connected(sock, address)

    def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
        error = connect_ex(sock, address)
        if error == 0:
            connected(sock, address)
        return error

    monkeypatch.setattr(socket.socket, "listen", guarded_listen)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    yield
    if in_other_threads:
        pytest.fail(in_other_threads[0], pytrace=False)
