"""The integration-mark rule, run on a small suite of its own: declared servers mark, undeclared ones fail."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration  # the suite under test binds loopback sockets

SUITE = '''
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.integration import server_fixture


def _server():
    return ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)


@server_fixture
def declared_server():
    server = _server()
    yield server
    server.server_close()


@pytest.fixture(scope="session")
def listening_elsewhere():
    """A server that listens before the test starts, as a process started by a helper would."""
    server = _server()
    yield server
    server.server_close()


def test_a_declared_server_marks_its_tests(declared_server, request):
    assert request.node.get_closest_marker("integration") is not None


def test_a_server_started_in_the_body():
    _server().server_close()


def test_a_server_reached_without_the_mark(listening_elsewhere):
    socket.create_connection(listening_elsewhere.server_address, timeout=5).close()


def test_a_server_reached_from_another_thread(listening_elsewhere):
    reach = threading.Thread(target=lambda: socket.create_connection(listening_elsewhere.server_address, 5))
    reach.start()
    reach.join(10)


def test_a_refused_connection_is_not_a_server():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(closed.getsockname(), timeout=5)
'''


def test_servers_are_integration_tests_by_declaration_or_fail_by_name(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess("-p", "tests.support.integration", "-p", "no:cacheprovider", "-rf")
    # The thread's test passes its call and fails at teardown (an error).
    result.assert_outcomes(passed=3, failed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_a_server_started_in_the_body starts a server (listens on a TCP socket): mark it "
            "@pytest.mark.integration*",
            "*test_a_server_reached_without_the_mark talks to a local server at*",
            "*test_a_server_reached_from_another_thread talks to a local server at*",
        ],
        consecutive=False,
    )
    unit_run = pytester.runpytest_inprocess("-p", "tests.support.integration", "-m", "not integration")
    unit_run.assert_outcomes(passed=2, failed=2, errors=1, deselected=1)
