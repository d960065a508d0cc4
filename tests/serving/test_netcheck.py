"""Host, port and worker checks, and busy-port detection with real sockets."""

from __future__ import annotations

import os
import socket

import pytest

from core.errors import Conflict, InvalidArgument
from core.serving.netcheck import (
    MAX_WORKERS,
    check_host,
    check_port,
    check_workers,
    connect_host,
    ensure_port_free,
    free_port,
    listener_description,
    listener_pid,
    port_is_free,
    url_host,
)


@pytest.fixture()
def listening():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


@pytest.mark.parametrize(("given", "expected"), [
    ("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "0.0.0.0"), ("localhost", "127.0.0.1"),
    ("LOCALHOST", "127.0.0.1"), ("::1", "::1"), ("[::1]", "::1"), (" 10.0.0.1 ", "10.0.0.1"),
])
def test_hosts_accepted(given, expected):
    assert check_host(given) == expected


@pytest.mark.parametrize("host", ["example.com", "", "256.1.1.1", "127.0.0.1:80",
                                  "x" * 5000, "127.0.0.1; rm -rf /", "\x00"])
def test_hosts_that_are_not_addresses(host):
    with pytest.raises(InvalidArgument, match=r"is not an IP address; use 127\.0\.0\.1"):
        check_host(host)


def test_long_host_is_shortened_in_the_message():
    with pytest.raises(InvalidArgument) as info:
        check_host("a" * 5000)
    assert len(info.value.message) < 200


@pytest.mark.parametrize("port", ["8080", 8080, " 1 ", "65535"])
def test_ports_accepted(port):
    assert 1 <= check_port(port) <= 65535


@pytest.mark.parametrize("port", ["0", "-1", "65536", "99999999999999999999"])
def test_ports_out_of_range(port):
    with pytest.raises(InvalidArgument, match="out of range; give a port between 1 and 65535"):
        check_port(port)


@pytest.mark.parametrize("port", ["http", "", "80.5", None, "8080/tcp"])
def test_ports_that_are_not_numbers(port):
    with pytest.raises(InvalidArgument, match="is not a number; give a port between 1 and 65535"):
        check_port(port)


def test_port_zero_allowed_when_asked():
    assert check_port("0", allow_zero=True) == 0


@pytest.mark.parametrize("workers", ["0", "-2", str(MAX_WORKERS + 1), "1000000"])
def test_bad_worker_counts(workers):
    with pytest.raises(InvalidArgument, match=f"workers must be between 1 and {MAX_WORKERS}"):
        check_workers(workers)


@pytest.mark.parametrize("workers", ["two", "1.5", "", None])
def test_worker_counts_that_are_not_numbers(workers):
    with pytest.raises(InvalidArgument, match="is not a whole number; one per CPU core"):
        check_workers(workers)


def test_busy_port_names_its_owner(listening):
    assert not port_is_free("127.0.0.1", listening)
    with pytest.raises(Conflict, match=rf"port {listening} is already in use \(by pid "
                                       rf"{os.getpid()}: .*python.*\); choose another"):
        ensure_port_free("127.0.0.1", listening)
    assert listener_pid(listening) == os.getpid()
    assert listener_description(listening).startswith(f"pid {os.getpid()}")


def test_busy_port_message_takes_a_hint_and_a_known_owner(listening):
    with pytest.raises(Conflict, match=r"in use \(by endpoint x@1\); choose another with --port"):
        ensure_port_free("127.0.0.1", listening, hint="choose another with --port",
                         owner="endpoint x@1")


def test_free_port_prefers_the_given_one_and_skips_busy_ones(listening):
    assert free_port("127.0.0.1", preferred=listening) > listening
    port = free_port("127.0.0.1")
    assert port_is_free("127.0.0.1", port)
    assert free_port("127.0.0.1", preferred=port) == port


def test_host_that_is_not_on_this_machine():
    # TEST-NET-1 (RFC 5737) is never assigned to a local interface.
    with pytest.raises(InvalidArgument, match="192.0.2.1 is not an address of this machine"):
        ensure_port_free("192.0.2.1", 8080)


def test_connect_host_and_url_host():
    assert connect_host("0.0.0.0") == "127.0.0.1"
    assert connect_host("::") == "::1"
    assert connect_host("10.1.1.1") == "10.1.1.1"
    assert url_host("::") == "[::1]"
    assert url_host("127.0.0.1") == "127.0.0.1"
